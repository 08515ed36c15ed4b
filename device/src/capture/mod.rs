//! Where audio comes from: live input (cpal), files (symphonia), the
//! built-in demo music and a synthetic test signal. Every source delivers
//! mono samples at the model rate (22050 Hz) in [-1, 1]; mixing down and
//! resampling happen here, framing and everything after it in `frontend`
//! and `pipeline`.

pub mod demo;
pub mod file;
pub mod live;
pub mod resample;
pub mod supervisor;
pub mod synth;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::SourceConfig;
use crate::frontend::SAMPLE_RATE_HZ;
use crate::health::Counters;
use crate::Shutdown;

pub use supervisor::{Backoff, Event, Supervisor, Watchdog, WatchdogSettings};

/// Why audio could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    #[error("cannot open audio file {path}: {source}; check the path and permissions")]
    FileOpen {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path}: not a readable audio file ({message}); earshotd reads wav, flac, mp3 and \
         ogg/vorbis"
    )]
    FileFormat { path: PathBuf, message: String },
    #[error("{path}: decoding failed: {message}")]
    FileDecode { path: PathBuf, message: String },
    #[error(
        "no input device named {name:?}; available: {}; run `earshotd devices` to list them, \
         or use \"default\"",
        if .available.is_empty() { "none".to_string() } else { .available.join(", ") }
    )]
    UnknownDevice {
        name: String,
        available: Vec<String>,
    },
    #[error("listing audio devices: {message}; is ALSA available (libasound2) and are you in the `audio` group?")]
    Devices { message: String },
    #[error("input device {name:?}: {message}")]
    Device { name: String, message: String },
    #[error("resampling from {from_hz} Hz: {message}")]
    Resample { from_hz: u32, message: String },
    /// The input went away while running (a device unplugged, a stream's
    /// writer gone, a read error): it may come back, so it is reopened.
    #[error("input {what} lost: {message}")]
    Lost { what: String, message: String },
    /// The input kept failing: the watchdog gives up.
    #[error(
        "input {what} failed {failures} times within {window_s} s (last: {last}); giving up \
         so that the service manager restarts earshotd ([watchdog] max_restarts, \
         restart_window_s)"
    )]
    GaveUp {
        what: String,
        failures: u32,
        window_s: u64,
        last: String,
    },
}

impl CaptureError {
    /// Whether reopening the input may help: it was lost, not unreadable.
    pub fn is_loss(&self) -> bool {
        matches!(self, CaptureError::Lost { .. })
    }
}

/// What one `read` produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// Samples were appended (possibly none, if shutdown is near).
    Audio,
    /// The source has no more audio.
    End,
}

/// A source of mono audio at [`SAMPLE_RATE_HZ`].
pub trait AudioSource {
    /// How readings name this source (`demo`, `file:/x.flac`, `alsa:USB Mic`).
    fn label(&self) -> String;
    /// Appends the next samples to `out`, waiting for them if the source is live.
    fn read(&mut self, out: &mut Vec<f32>, shutdown: &Shutdown) -> Result<Read, CaptureError>;
}

/// Opens the configured source. `realtime` pacing applies to files; the demo
/// is always paced, live audio paces itself.
pub fn open(
    source: &SourceConfig,
    ring_ms: u32,
    health: Arc<Counters>,
) -> Result<Box<dyn AudioSource>, CaptureError> {
    open_notify(source, ring_ms, health, &mut || {})
}

/// [`open`], calling `connected` once the input exists: a named pipe may
/// wait for a writer before that ([`file::FileSource::open_notify`]); other
/// sources are there or fail at once.
pub fn open_notify(
    source: &SourceConfig,
    ring_ms: u32,
    health: Arc<Counters>,
    connected: &mut dyn FnMut(),
) -> Result<Box<dyn AudioSource>, CaptureError> {
    if !matches!(source, SourceConfig::File { .. }) {
        connected();
    }
    Ok(match source {
        SourceConfig::Demo {} => Box::new(Paced::new(demo::Demo::open()?)),
        SourceConfig::File { path, realtime } => {
            let f = file::FileSource::open_notify(path, connected)?;
            if *realtime {
                Box::new(Paced::new(f))
            } else {
                Box::new(f)
            }
        }
        SourceConfig::Device { name } => Box::new(live::LiveSource::open(name, ring_ms, health)?),
    })
}

/// Releases a source's audio no faster than real time.
pub struct Paced<S> {
    inner: S,
    started: Option<Instant>,
    samples: u64,
}

impl<S: AudioSource> Paced<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            started: None,
            samples: 0,
        }
    }
}

impl<S: AudioSource> AudioSource for Paced<S> {
    fn label(&self) -> String {
        self.inner.label()
    }

    fn read(&mut self, out: &mut Vec<f32>, shutdown: &Shutdown) -> Result<Read, CaptureError> {
        let started = *self.started.get_or_insert_with(Instant::now);
        let before = out.len();
        let r = self.inner.read(out, shutdown)?;
        self.samples += (out.len() - before) as u64;
        let due =
            started + Duration::from_secs_f64(self.samples as f64 / f64::from(SAMPLE_RATE_HZ));
        shutdown.sleep_until(due);
        Ok(r)
    }
}
