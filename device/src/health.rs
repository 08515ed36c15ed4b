//! Health counters shared by capture, pipeline and publishing: a few atomics
//! written where things happen and copied into every reading. Nothing here
//! blocks, so the audio callback may count too.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use earshot_protocol::Health;

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
        }
    }
}

impl Counters {
    /// Adds one to a counter.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
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
    }
}
