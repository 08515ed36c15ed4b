//! Health counters shared by capture, pipeline and publishing: a few atomics
//! written where things happen and copied into every reading. Nothing here
//! blocks, so the audio callback may count too.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use earshot_protocol::{Health, InputHealth, OutputHealth, OutputState, SourceState};

/// Totals since start. Shared as `Arc<Counters>`.
#[derive(Debug)]
pub struct Counters {
    started: Instant,
    /// Audio samples lost because the capture ring was full.
    pub dropped_frames: AtomicU64,
    /// Overruns reported by the audio backend.
    pub xruns: AtomicU64,
    /// Times the input device was lost and reopened.
    pub reconnects: AtomicU64,
    /// Readings dropped for slow subscribers (sink queues and stream clients).
    pub dropped_readings: AtomicU64,
    /// Stream clients connected now.
    pub clients: AtomicU32,
    /// Failed `publish` calls, all sinks together.
    pub sink_errors: AtomicU64,
    /// The input's [`SourceState`], as an index into `SOURCE_STATES`.
    input_state: AtomicU8,
    /// Capture restarts (after a loss or a stall) since start.
    pub input_restarts: AtomicU64,
    /// When audio last arrived, ms after `started`.
    last_audio_ms: AtomicU64,
    /// Each output's own counters, in the order they were registered.
    outputs: RwLock<Vec<Arc<OutputCounters>>>,
}

/// One output's state and totals, written by the output (or the fan-out on
/// its behalf) and read into every reading's health.
#[derive(Debug)]
pub struct OutputCounters {
    name: String,
    state: AtomicU8,
    /// Failed deliveries.
    pub errors: AtomicU64,
    /// Readings dropped because the output fell behind.
    pub dropped: AtomicU64,
}

const STATES: [OutputState; 6] = [
    OutputState::Starting,
    OutputState::Ok,
    OutputState::Retrying,
    OutputState::Down,
    OutputState::Closed,
    OutputState::Failed,
];

const SOURCE_STATES: [SourceState; 3] =
    [SourceState::Ok, SourceState::NoInput, SourceState::Failed];

impl OutputCounters {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn set_state(&self, state: OutputState) {
        let i = STATES.iter().position(|s| *s == state).unwrap_or(0);
        self.state.store(i as u8, Ordering::Relaxed);
    }

    pub fn state(&self) -> OutputState {
        STATES
            .get(usize::from(self.state.load(Ordering::Relaxed)))
            .copied()
            .unwrap_or_default()
    }

    fn snapshot(&self) -> OutputHealth {
        OutputHealth {
            name: self.name.clone(),
            state: self.state(),
            errors: self.errors.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            dropped_frames: AtomicU64::new(0),
            xruns: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            dropped_readings: AtomicU64::new(0),
            clients: AtomicU32::new(0),
            sink_errors: AtomicU64::new(0),
            input_state: AtomicU8::new(0),
            input_restarts: AtomicU64::new(0),
            last_audio_ms: AtomicU64::new(0),
            outputs: RwLock::new(Vec::new()),
        }
    }
}

impl Counters {
    /// Adds one to a counter.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The input's state, as every reading reports it.
    pub fn set_input(&self, state: SourceState) {
        let i = SOURCE_STATES.iter().position(|s| *s == state).unwrap_or(0);
        self.input_state.store(i as u8, Ordering::Relaxed);
    }

    pub fn input(&self) -> SourceState {
        SOURCE_STATES
            .get(usize::from(self.input_state.load(Ordering::Relaxed)))
            .copied()
            .unwrap_or_default()
    }

    /// Audio arrived just now.
    pub fn audio_arrived(&self) {
        self.last_audio_ms
            .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Adds an output to every reading's health; called while outputs are
    /// built, never on the audio path.
    pub fn register_output(&self, name: &str) -> Arc<OutputCounters> {
        let counters = Arc::new(OutputCounters {
            name: name.to_string(),
            state: AtomicU8::new(0),
            errors: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        });
        self.outputs
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::clone(&counters));
        counters
    }

    /// The protocol's view of the counters, now.
    pub fn snapshot(&self) -> Health {
        Health {
            uptime_s: self.started.elapsed().as_secs(),
            dropped_frames: self.dropped_frames.load(Ordering::Relaxed),
            xruns: self.xruns.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            dropped_readings: self.dropped_readings.load(Ordering::Relaxed),
            clients: self.clients.load(Ordering::Relaxed),
            input: self.input_snapshot(),
            outputs: self
                .outputs
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(|o| o.snapshot())
                .collect(),
        }
    }
}

impl Counters {
    fn input_snapshot(&self) -> InputHealth {
        let state = self.input();
        let no_audio_ms = match state {
            SourceState::Ok => 0,
            _ => (self.started.elapsed().as_millis() as u64)
                .saturating_sub(self.last_audio_ms.load(Ordering::Relaxed)),
        };
        InputHealth {
            state,
            restarts: self.input_restarts.load(Ordering::Relaxed),
            no_audio_s: no_audio_ms / 1000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_reads_counters() {
        let c = Counters::default();
        Counters::bump(&c.xruns);
        c.clients.store(2, Ordering::Relaxed);
        let h = c.snapshot();
        assert_eq!((h.xruns, h.clients, h.dropped_frames), (1, 2, 0));
        assert_eq!(h.input, InputHealth::default());
    }

    #[test]
    fn input_state_and_time_without_audio() {
        let c = Counters::default();
        c.audio_arrived();
        for s in SOURCE_STATES {
            c.set_input(s);
            assert_eq!(c.input(), s);
        }
        c.set_input(SourceState::NoInput);
        Counters::bump(&c.input_restarts);
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let h = c.snapshot().input;
        assert_eq!(
            (h.state, h.restarts, h.no_audio_s),
            (SourceState::NoInput, 1, 1)
        );
        // While audio flows the gap is not reported.
        c.set_input(SourceState::Ok);
        assert_eq!(c.snapshot().input.no_audio_s, 0);
    }

    #[test]
    fn outputs_appear_in_the_snapshot_with_their_state() {
        let c = Counters::default();
        let mqtt = c.register_output("mqtt");
        assert_eq!(c.snapshot().outputs[0].state, OutputState::Starting);
        mqtt.set_state(OutputState::Down);
        Counters::bump(&mqtt.errors);
        let h = c.snapshot();
        assert_eq!(h.outputs.len(), 1);
        assert_eq!(
            (
                h.outputs[0].name.as_str(),
                h.outputs[0].state,
                h.outputs[0].errors
            ),
            ("mqtt", OutputState::Down, 1)
        );
        for s in STATES {
            mqtt.set_state(s);
            assert_eq!(mqtt.state(), s);
        }
    }
}
