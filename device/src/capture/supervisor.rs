//! Keeps the input open, and keeps the daemon listening when it is not.
//!
//! The source runs on its own thread (`capture`), so a source that blocks
//! (a pipe without a writer, a stalled device) never holds up the pipeline:
//! the pipeline thread asks [`Supervisor::next`] for audio and gets
//! [`Event::Idle`] at least every [`POLL`], so that it can publish readings
//! without audio while there is none.
//!
//! - A loss (the source fails with [`CaptureError::Lost`]: a device unplugged,
//!   a pipe's writer gone) sets the input to `no_input` at once; the source is
//!   reopened after 0.5 s, then with a doubling delay up to 30 s
//!   ([`Backoff`]), until it opens. Audio sets it back to `ok`.
//! - A stall (an open source that delivers nothing for `[watchdog] stall_s`)
//!   raises the alarm once, sets `no_input` and restarts the capture.
//! - Each loss or stall is a restart; one more than `max_restarts` within
//!   `restart_window_s` ([`Watchdog`]) sets `failed` and ends the run with
//!   [`CaptureError::GaveUp`], for the service manager to restart earshotd.
//!
//! Other errors (a damaged file) end the run as before; so does a failure to
//! open the input at start, where the user can still fix the configuration.

use std::collections::VecDeque;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use earshot_protocol::SourceState;

use super::{CaptureError, Read};
use crate::config::SourceConfig;
use crate::health::Counters;
use crate::Shutdown;

/// Longest wait in [`Supervisor::next`]: readings without audio are due
/// every hop, so the pipeline must get control back well within one.
pub const POLL: Duration = Duration::from_millis(100);
/// Blocks in flight between the capture thread and the pipeline: enough to
/// ride over a slow model run, few enough to bound memory (about 0.2 s each).
const IN_FLIGHT: usize = 8;
/// How long dropping a supervisor waits for its capture thread, so that a
/// restart with a new configuration finds the device free.
const JOIN_WAIT: Duration = Duration::from_secs(1);
/// Failed reopen attempts are logged first, then once per this many.
const LOG_ATTEMPTS_EVERY: u64 = 20;

/// `[watchdog]`: when a silent input is restarted, and when to give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchdogSettings {
    /// No audio this long from an open input is a stall.
    pub stall: Duration,
    /// Restarts allowed within `window`; one more is a failure.
    pub max_restarts: u32,
    pub window: Duration,
}

impl Default for WatchdogSettings {
    fn default() -> Self {
        Self {
            stall: Duration::from_secs(30),
            max_restarts: 5,
            window: Duration::from_secs(600),
        }
    }
}

/// Delays between attempts to reopen a lost input: doubling from `min` to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// First retry: soon, for a glitch.
    pub const MIN: Duration = Duration::from_millis(500);
    /// Longest wait: a microphone plugged back in is heard within this.
    pub const MAX: Duration = Duration::from_secs(30);

    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max: max.max(min),
            next: min,
        }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    /// The input works again: the next loss starts from `min`.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(Self::MIN, Self::MAX)
    }
}

/// Counts restarts in a sliding window.
#[derive(Debug, Clone)]
pub struct Watchdog {
    settings: WatchdogSettings,
    recent: VecDeque<Instant>,
}

impl Watchdog {
    pub fn new(settings: WatchdogSettings) -> Self {
        Self {
            settings,
            recent: VecDeque::with_capacity(settings.max_restarts as usize + 1),
        }
    }

    pub fn settings(&self) -> &WatchdogSettings {
        &self.settings
    }

    /// Whether an input last heard at `last_audio` has stalled by `now`.
    pub fn stalled(&self, last_audio: Instant, now: Instant) -> bool {
        now.saturating_duration_since(last_audio) >= self.settings.stall
    }

    /// Records a restart at `now`; `false` when it is one more than allowed
    /// within the window (the caller gives up).
    pub fn restart(&mut self, now: Instant) -> bool {
        while self
            .recent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= self.settings.window)
        {
            self.recent.pop_front();
        }
        self.recent.push_back(now);
        self.recent.len() <= self.settings.max_restarts as usize
    }

    /// Restarts within the window that ends at the last one.
    pub fn recent(&self) -> usize {
        self.recent.len()
    }
}

/// What [`Supervisor::next`] produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Samples were appended.
    Audio,
    /// The source has no more audio (the end of a file).
    End,
    /// No audio within [`POLL`]; see [`Supervisor::state`] for why.
    Idle,
}

/// What the capture thread reports.
enum Msg {
    /// The input exists (a pipe has a writer); opening goes on.
    Connected,
    Opened(String),
    OpenFailed(CaptureError),
    Audio(Vec<f32>),
    End,
    Failed(CaptureError),
}

/// One capture thread: its source, opened and read there (a live stream
/// cannot move between threads).
struct Capture {
    rx: Receiver<Msg>,
    free: SyncSender<Vec<f32>>,
    stop: Shutdown,
    thread: Option<JoinHandle<()>>,
}

impl Capture {
    fn spawn(source: &SourceConfig, ring_ms: u32, health: &Arc<Counters>) -> Self {
        let (tx, rx) = mpsc::sync_channel(IN_FLIGHT);
        let (free, spare) = mpsc::sync_channel(IN_FLIGHT + 1);
        let stop = Shutdown::new();
        let (config, health, flag) = (source.clone(), Arc::clone(health), stop.clone());
        let thread = std::thread::Builder::new()
            .name("capture".into())
            .spawn(move || read_loop(&config, ring_ms, health, &tx, &spare, &flag))
            .map_err(|e| tracing::error!("cannot start the capture thread: {e}"))
            .ok();
        Self {
            rx,
            free,
            stop,
            thread,
        }
    }
}

impl Capture {
    /// Stops the thread and waits up to `wait` for it to let go of the input.
    /// A thread blocked in a read (a silent pipe) is left to end with it.
    fn stop(mut self, wait: Duration) {
        self.stop.trigger();
        let Some(thread) = self.thread.take() else {
            return;
        };
        let deadline = Instant::now() + wait;
        loop {
            // Unblock a thread waiting to hand over a block.
            while self.rx.try_recv().is_ok() {}
            if thread.is_finished() || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if thread.is_finished() && thread.join().is_err() {
            tracing::error!("the capture thread panicked");
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        // Dropping the receiver fails the thread's next hand-over: it ends.
        self.stop.trigger();
    }
}

/// The capture thread: open, then read blocks until the end, a failure or `stop`.
fn read_loop(
    config: &SourceConfig,
    ring_ms: u32,
    health: Arc<Counters>,
    tx: &SyncSender<Msg>,
    spare: &Receiver<Vec<f32>>,
    stop: &Shutdown,
) {
    let mut connected = || {
        let _ = tx.send(Msg::Connected);
    };
    let mut source = match super::open_notify(config, ring_ms, health, &mut connected) {
        Ok(s) => s,
        Err(e) => {
            let _ = tx.send(Msg::OpenFailed(e));
            return;
        }
    };
    if tx.send(Msg::Opened(source.label())).is_err() {
        return;
    }
    let mut kept: Option<Vec<f32>> = None;
    let last = loop {
        if stop.is_set() {
            return;
        }
        let mut buf = kept
            .take()
            .or_else(|| spare.try_recv().ok())
            .unwrap_or_else(|| Vec::with_capacity(16 * 1024));
        buf.clear();
        match source.read(&mut buf, stop) {
            Ok(Read::Audio) if buf.is_empty() => kept = Some(buf),
            Ok(Read::Audio) => {
                if tx.send(Msg::Audio(buf)).is_err() {
                    return;
                }
            }
            Ok(Read::End) => break Msg::End,
            Err(e) => break Msg::Failed(e),
        }
    };
    // Let go of the input before saying so: a pipe's next writer must not
    // find this reader still open, write into it and lose what it wrote
    // when it closes.
    drop(source);
    let _ = tx.send(last);
}

enum Phase {
    /// Open and reading; `last_audio` starts at the open.
    Running { last_audio: Instant },
    /// A capture thread is opening the input again; once it is `connected`
    /// (a pipe has a writer), it may stall.
    Opening { connected: Option<Instant> },
    /// Waiting before the next attempt.
    Waiting { until: Instant },
}

/// Owns the capture thread and its restarts; see the module docs.
pub struct Supervisor {
    config: SourceConfig,
    ring_ms: u32,
    health: Arc<Counters>,
    watchdog: Watchdog,
    backoff: Backoff,
    label: String,
    capture: Option<Capture>,
    phase: Phase,
    /// Why the input was last lost, for the final error.
    last_problem: String,
    /// Failed reopen attempts since the input was lost.
    attempts: u64,
    /// When the input was lost, for the log line when it is back.
    lost_at: Option<Instant>,
}

impl Supervisor {
    /// Opens the input; an input that cannot be opened at start is an error.
    pub fn start(
        config: &SourceConfig,
        ring_ms: u32,
        health: Arc<Counters>,
        watchdog: WatchdogSettings,
        shutdown: &Shutdown,
    ) -> Result<Self, CaptureError> {
        let capture = Capture::spawn(config, ring_ms, &health);
        let label = loop {
            match capture.rx.recv_timeout(POLL) {
                Ok(Msg::Opened(label)) => break label,
                Ok(Msg::Connected) => {}
                Ok(Msg::OpenFailed(e)) | Ok(Msg::Failed(e)) => return Err(e),
                Ok(_) | Err(RecvTimeoutError::Disconnected) => {
                    return Err(CaptureError::Lost {
                        what: source_name(config),
                        message: "the capture thread stopped while opening".into(),
                    })
                }
                Err(RecvTimeoutError::Timeout) if shutdown.is_set() => {
                    return Err(CaptureError::Lost {
                        what: source_name(config),
                        message: "shut down while waiting for it to open".into(),
                    })
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
        };
        health.audio_arrived();
        health.set_input(SourceState::Ok);
        Ok(Self {
            config: config.clone(),
            ring_ms,
            health,
            watchdog: Watchdog::new(watchdog),
            backoff: Backoff::default(),
            label,
            capture: Some(capture),
            phase: Phase::Running {
                last_audio: Instant::now(),
            },
            last_problem: String::new(),
            attempts: 0,
            lost_at: None,
        })
    }

    /// How readings name the input (`demo`, `file:/x.flac`, `alsa:USB Mic`).
    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn state(&self) -> SourceState {
        self.health.input()
    }

    /// Appends the next audio to `out`, waiting at most [`POLL`]; restarts
    /// the input as the module docs say. Errors end the run.
    pub fn next(&mut self, out: &mut Vec<f32>, shutdown: &Shutdown) -> Result<Event, CaptureError> {
        let now = Instant::now();
        if let Phase::Waiting { until } = self.phase {
            if now < until {
                shutdown.sleep_until(until.min(now + POLL));
                return Ok(Event::Idle);
            }
            self.capture = Some(Capture::spawn(&self.config, self.ring_ms, &self.health));
            self.phase = Phase::Opening { connected: None };
        }
        let Some(capture) = &self.capture else {
            return self.lost(
                CaptureError::Lost {
                    what: self.label.clone(),
                    message: "the capture thread could not start".into(),
                },
                now,
            );
        };
        let msg = match capture.rx.recv_timeout(POLL) {
            Ok(msg) => msg,
            Err(RecvTimeoutError::Timeout) => {
                let since = match self.phase {
                    Phase::Running { last_audio } => Some(last_audio),
                    Phase::Opening { connected } => connected,
                    Phase::Waiting { .. } => None,
                };
                let now = Instant::now();
                if since.is_some_and(|t| self.watchdog.stalled(t, now)) {
                    return self.stalled(now);
                }
                return Ok(Event::Idle);
            }
            Err(RecvTimeoutError::Disconnected) => Msg::Failed(CaptureError::Lost {
                what: self.label.clone(),
                message: "the capture thread stopped".into(),
            }),
        };
        let now = Instant::now();
        match msg {
            Msg::Audio(block) => {
                out.extend_from_slice(&block);
                let _ = capture.free.try_send(block);
                self.heard(now);
                Ok(Event::Audio)
            }
            Msg::Connected => {
                if let Phase::Opening { connected } = &mut self.phase {
                    connected.get_or_insert(now);
                }
                Ok(Event::Idle)
            }
            Msg::Opened(label) => {
                tracing::info!("input {label} is open again");
                Counters::bump(&self.health.reconnects);
                self.label = label;
                self.phase = Phase::Running { last_audio: now };
                Ok(Event::Idle)
            }
            Msg::OpenFailed(e) => {
                self.attempts += 1;
                let delay = self.backoff.next_delay();
                if self.attempts == 1 {
                    tracing::warn!(
                        "cannot reopen the input yet ({e}); retrying, at most every {} s",
                        Backoff::MAX.as_secs()
                    );
                } else if self.attempts.is_multiple_of(LOG_ATTEMPTS_EVERY) {
                    tracing::warn!("still no input after {} attempts ({e})", self.attempts);
                } else {
                    tracing::debug!("reopening the input failed ({e}); next try in {delay:?}");
                }
                self.capture = None;
                self.phase = Phase::Waiting { until: now + delay };
                Ok(Event::Idle)
            }
            Msg::End => Ok(Event::End),
            Msg::Failed(e) if e.is_loss() => self.lost(e, now),
            Msg::Failed(e) => Err(e),
        }
    }

    /// Audio arrived.
    fn heard(&mut self, now: Instant) {
        self.health.audio_arrived();
        self.phase = Phase::Running { last_audio: now };
        if self.health.input() != SourceState::Ok {
            let after = self
                .lost_at
                .map(|t| format!(" after {:.1} s", now.duration_since(t).as_secs_f64()))
                .unwrap_or_default();
            tracing::info!("audio from {} is back{after}", self.label);
            self.health.set_input(SourceState::Ok);
            self.backoff.reset();
            self.attempts = 0;
            self.lost_at = None;
        }
    }

    /// The source failed in a way reopening may mend.
    fn lost(&mut self, e: CaptureError, now: Instant) -> Result<Event, CaptureError> {
        tracing::warn!("{e}; readings go on without audio while it is reopened");
        self.capture = None;
        self.restart(now, e.to_string())?;
        self.phase = Phase::Waiting {
            until: now + self.backoff.next_delay(),
        };
        Ok(Event::Idle)
    }

    /// The source is open but silent: the watchdog's alarm.
    fn stalled(&mut self, now: Instant) -> Result<Event, CaptureError> {
        let stall = secs(self.watchdog.settings().stall);
        tracing::warn!(
            "no audio from {} for {stall}; restarting the capture ([watchdog] stall_s)",
            self.label
        );
        self.capture = None;
        self.restart(now, format!("no audio for {stall}"))?;
        self.capture = Some(Capture::spawn(&self.config, self.ring_ms, &self.health));
        self.phase = Phase::Opening { connected: None };
        Ok(Event::Idle)
    }

    /// Counts a restart; gives up when there were too many.
    fn restart(&mut self, now: Instant, why: String) -> Result<(), CaptureError> {
        self.health.set_input(SourceState::NoInput);
        self.lost_at.get_or_insert(now);
        self.last_problem = why;
        Counters::bump(&self.health.input_restarts);
        if self.watchdog.restart(now) {
            return Ok(());
        }
        self.health.set_input(SourceState::Failed);
        let s = self.watchdog.settings();
        Err(CaptureError::GaveUp {
            what: self.label.clone(),
            failures: self.watchdog.recent() as u32,
            window_s: s.window.as_secs(),
            last: self.last_problem.clone(),
        })
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        // A new run (a reload) may open the same device at once.
        if let Some(c) = self.capture.take() {
            c.stop(JOIN_WAIT);
        }
    }
}

/// Seconds as people write them: `30 s`, `0.3 s`.
fn secs(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

/// The input's name before it is open (errors at start).
fn source_name(config: &SourceConfig) -> String {
    match config {
        SourceConfig::Demo {} => "demo".into(),
        SourceConfig::File { path, .. } => format!("file:{}", path.display()),
        SourceConfig::Device { name } => format!("device {name:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_half_a_second_to_thirty_and_resets() {
        let mut b = Backoff::default();
        let delays: Vec<u64> = (0..9).map(|_| b.next_delay().as_millis() as u64).collect();
        assert_eq!(
            delays,
            [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(500));
        // A maximum below the minimum is the minimum.
        let mut b = Backoff::new(Duration::from_secs(2), Duration::from_secs(1));
        assert_eq!(
            (b.next_delay(), b.next_delay()),
            (Duration::from_secs(2), Duration::from_secs(2))
        );
    }

    #[test]
    fn watchdog_allows_max_restarts_per_window() {
        let mut w = Watchdog::new(WatchdogSettings {
            stall: Duration::from_secs(30),
            max_restarts: 5,
            window: Duration::from_secs(600),
        });
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        for i in 0..5 {
            assert!(w.restart(at(i * 60)), "restart {i}");
        }
        // A sixth within ten minutes of the first is one too many ...
        assert!(!w.restart(at(5 * 60)));
        assert_eq!(w.recent(), 6);
        // ... but spread out, restarts go on for ever.
        let mut w = Watchdog::new(*w.settings());
        for i in 0..50 {
            assert!(w.restart(at(i * 121)), "restart {i}");
        }
        assert_eq!(w.recent(), 5);
    }

    #[test]
    fn no_restarts_allowed_means_the_first_loss_fails() {
        let mut w = Watchdog::new(WatchdogSettings {
            max_restarts: 0,
            ..Default::default()
        });
        assert!(!w.restart(Instant::now()));
    }

    #[test]
    fn a_stall_is_no_audio_for_the_stall_time() {
        let w = Watchdog::new(WatchdogSettings::default());
        let t0 = Instant::now();
        assert!(!w.stalled(t0, t0 + Duration::from_millis(29_999)));
        assert!(w.stalled(t0, t0 + Duration::from_secs(30)));
        // A clock that seems to go back is no stall.
        assert!(!w.stalled(t0 + Duration::from_secs(5), t0));
    }

    fn fifo(dir: &std::path::Path) -> std::path::PathBuf {
        let path = dir.join("in.wav");
        let status = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .expect("mkfifo (coreutils) runs");
        assert!(status.success());
        path
    }

    /// A writer on its own thread: opens the pipe (waiting for a reader),
    /// writes `bytes`, holds it open for `hold`, then leaves.
    fn pipe_writer(
        path: &std::path::Path,
        bytes: Vec<u8>,
        hold: Duration,
    ) -> std::thread::JoinHandle<()> {
        let path = path.to_path_buf();
        std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            std::io::Write::write_all(&mut f, &bytes).unwrap();
            std::thread::sleep(hold);
        })
    }

    /// A 16-bit mono wav header for `n` samples at 22050 Hz, and the samples.
    fn wav(n: usize) -> Vec<u8> {
        let mut d = b"RIFF".to_vec();
        d.extend_from_slice(&(36 + 2 * n as u32).to_le_bytes());
        d.extend_from_slice(b"WAVEfmt \x10\0\0\0\x01\0\x01\0");
        d.extend_from_slice(&22050u32.to_le_bytes());
        d.extend_from_slice(&44100u32.to_le_bytes());
        d.extend_from_slice(b"\x02\0\x10\0data");
        d.extend_from_slice(&(2 * n as u32).to_le_bytes());
        for i in 0..n {
            let x = (0.3 * (i as f32 * 0.06).sin() * 32767.0) as i16;
            d.extend_from_slice(&x.to_le_bytes());
        }
        d
    }

    /// Runs `next` until `want` holds, for at most `limit`.
    fn until(
        s: &mut Supervisor,
        limit: Duration,
        mut want: impl FnMut(&Supervisor, Event) -> bool,
    ) -> Result<Vec<f32>, CaptureError> {
        let never = Shutdown::new();
        let start = Instant::now();
        let mut out = Vec::new();
        loop {
            let e = s.next(&mut out, &never)?;
            if want(s, e) {
                return Ok(out);
            }
            assert!(start.elapsed() < limit, "not within {limit:?}");
        }
    }

    #[test]
    fn a_pipe_whose_writer_leaves_is_no_input_until_the_next_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = fifo(dir.path());
        let writer = pipe_writer(&path, wav(22050), Duration::ZERO);
        let health = Arc::new(Counters::default());
        let config = SourceConfig::File {
            path: path.clone(),
            realtime: false,
        };
        let never = Shutdown::new();
        let mut s = Supervisor::start(
            &config,
            2000,
            Arc::clone(&health),
            WatchdogSettings::default(),
            &never,
        )
        .unwrap();
        assert_eq!(s.label(), format!("file:{}", path.display()));
        let audio = until(&mut s, Duration::from_secs(10), |s, _| {
            s.state() == SourceState::NoInput
        })
        .unwrap();
        writer.join().unwrap();
        assert!(audio.len() >= 22000, "{} samples", audio.len());
        assert_eq!(health.snapshot().input.restarts, 1);
        // The next writer is heard without a restart of earshotd.
        let writer = pipe_writer(&path, wav(4410), Duration::ZERO);
        until(&mut s, Duration::from_secs(10), |_, e| e == Event::Audio).unwrap();
        writer.join().unwrap();
        assert_eq!(s.state(), SourceState::Ok);
        assert_eq!(health.snapshot().reconnects, 1);
    }

    #[test]
    fn a_silent_pipe_is_restarted_then_given_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = fifo(dir.path());
        // A writer that opens the pipe and says nothing.
        let writer = pipe_writer(&path, wav(22050)[..44].to_vec(), Duration::from_secs(3));
        let health = Arc::new(Counters::default());
        let config = SourceConfig::File {
            path,
            realtime: false,
        };
        let settings = WatchdogSettings {
            stall: Duration::from_millis(300),
            max_restarts: 1,
            window: Duration::from_secs(60),
        };
        let never = Shutdown::new();
        let mut s =
            Supervisor::start(&config, 2000, Arc::clone(&health), settings, &never).unwrap();
        let t0 = Instant::now();
        let err = until(&mut s, Duration::from_secs(10), |_, _| false).unwrap_err();
        let took = t0.elapsed();
        assert!(
            matches!(err, CaptureError::GaveUp { failures: 2, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("no audio for 0.3 s"), "{err}");
        assert!(took >= Duration::from_millis(600), "{took:?}");
        assert_eq!(s.state(), SourceState::Failed);
        assert_eq!(health.snapshot().input.restarts, 2);
        writer.join().unwrap();
    }
}
