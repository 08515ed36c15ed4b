//! `earshotd`, the earshot daemon: audio in, the trained model on a sliding
//! window, 7 mid-level values, 8 emotions and their explanation out.
//!
//! One direction, one stage per module:
//! `capture` (live / file / demo, mono 22050 Hz) -> `frontend` (spectrogram
//! columns) -> `model` (tract, streaming) -> `gate` + `explain` -> `pipeline`
//! (readings) -> `publish` (a shelf of sinks: stream server, stdout, ...).
//! [`run`] puts them together for the daemon, [`analyze`] for a recording.
//! Readings are `earshot_protocol` types, serialised only at the edge.

pub mod capture;
pub mod config;
pub mod explain;
pub mod frontend;
pub mod gate;
pub mod health;
pub mod lights;
pub mod model;
pub mod notify;
pub mod pipeline;
pub mod publish;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use earshot_protocol::{Emotions, InputState, MidLevel, Reading, SourceState};
use serde::Serialize;

use capture::{AudioSource, CaptureError, Read};
use config::{AnalysisSettings, PrecisionChoice, Settings};
use health::Counters;
use model::{Model, ModelError, ModelSource};
use pipeline::{Pipeline, PipelineSettings, Step};
use publish::{FanOut, PublishError};

/// Everything that can stop the daemon, one variant per boundary.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error(
        "{path}: {seconds:.2} s of audio is too short to analyse; the model needs at least \
         {needed_s:.2} s (its receptive field)"
    )]
    TooShort {
        path: std::path::PathBuf,
        seconds: f64,
        needed_s: f64,
    },
}

/// A shutdown request shared by `main` (signals) and the running parts.
#[derive(Debug, Clone, Default)]
pub struct Shutdown(Arc<AtomicBool>);

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// The flag itself, for signal handlers.
    pub fn flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.0)
    }

    pub fn trigger(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Sleeps up to `d`, waking early on shutdown.
    pub fn sleep(&self, d: Duration) {
        self.sleep_until(Instant::now() + d);
    }

    /// Sleeps until `t`, waking early on shutdown.
    pub fn sleep_until(&self, t: Instant) {
        const STEP: Duration = Duration::from_millis(50);
        loop {
            let now = Instant::now();
            if now >= t || self.is_set() {
                return;
            }
            std::thread::sleep((t - now).min(STEP));
        }
    }
}

/// The model the settings ask for (built in unless a directory is given).
pub fn load_model(
    dir: Option<&Path>,
    precision: impl Into<PrecisionChoice>,
) -> Result<Model, ModelError> {
    let source = match dir {
        Some(d) => ModelSource::Dir(d.to_path_buf()),
        None => ModelSource::BuiltIn,
    };
    let started = Instant::now();
    let model = Model::load(&source, precision)?;
    tracing::info!(
        "model {} ({}: {}) loaded and checked in {:.0} ms",
        model.id(),
        model.precision(),
        model.precision_reason(),
        started.elapsed().as_secs_f64() * 1000.0
    );
    Ok(model)
}

fn pipeline_settings(model: &Model, a: &AnalysisSettings) -> Result<PipelineSettings, ModelError> {
    PipelineSettings::new(model, a.hop_ms, a.window_ms, a.smoothing_ms, a.silence_dbfs)
}

/// A way to reload the configuration while running (SIGHUP).
pub struct Reload<'a> {
    /// Set (by a signal handler) to ask for a reload.
    pub requested: Arc<AtomicBool>,
    /// Reads and checks the configuration again; the message says why it cannot be used.
    pub load: &'a dyn Fn() -> Result<Settings, String>,
}

/// Runs the daemon until the source ends or `shutdown` is triggered.
pub fn run(settings: &Settings, shutdown: &Shutdown) -> Result<(), Error> {
    run_reloadable(settings, shutdown, None).map(|_| ())
}

/// [`run`], and on a reload request: a configuration that does not load or
/// validate is logged and the running one kept; a changed one stops this run
/// and is returned, for the caller to run it.
pub fn run_reloadable(
    settings: &Settings,
    shutdown: &Shutdown,
    reload: Option<&Reload>,
) -> Result<Option<Box<Settings>>, Error> {
    let health = Arc::new(Counters::default());
    let model = load_model(settings.model_dir.as_deref(), settings.precision)?;
    let ps = pipeline_settings(&model, &settings.analysis)?;
    let mut pipeline = Pipeline::new(&model, ps, Arc::clone(&health))?;
    let mut source = capture::Supervisor::start(
        &settings.source,
        settings.ring_ms,
        Arc::clone(&health),
        settings.watchdog,
        shutdown,
    )?;
    let hello = pipeline.hello(source.label());
    let sinks = publish::build(
        &settings.outputs,
        &publish::SinkContext {
            hello: &hello,
            health: &health,
            shutdown,
        },
    )?;
    let fanout = FanOut::new(sinks, Arc::clone(&health));
    tracing::info!(
        "reading {} every {} ms over {} ms windows",
        hello.source,
        hello.hop_ms,
        hello.window_ms
    );
    // systemd (Type=notify): ready once readings can flow; the watchdog is
    // fed per published reading, so a daemon that publishes nothing (a stuck
    // model or loop) gets restarted. A lost input is the supervisor's: it
    // publishes readings without audio, and exits when restarts do not help.
    let mut watchdog = notify::Watchdog::from_env();
    let status = format!("reading {} every {} ms", hello.source, hello.hop_ms);
    if let Err(e) = watchdog.notifier().ready(&status) {
        tracing::warn!("{e}");
    }
    let mut next = None;
    let mut check_reload = || {
        let Some(r) = reload else { return false };
        if !r.requested.swap(false, Ordering::Relaxed) {
            return false;
        }
        match (r.load)() {
            Err(message) => {
                tracing::error!("reloading the config failed; the running one stays: {message}");
                false
            }
            Ok(new) if new == *settings => {
                tracing::info!("config reloaded: nothing changed");
                false
            }
            Ok(new) => {
                tracing::info!("config reloaded: restarting with it");
                next = Some(Box::new(new));
                true
            }
        }
    };
    let mut shown = SourceState::Ok;
    let result = listen(
        &mut source,
        &mut pipeline,
        shutdown,
        &mut check_reload,
        &mut |step| {
            let input = step.reading.health.input.state;
            if input != shown {
                shown = input;
                let line = match input {
                    SourceState::Ok => status.clone(),
                    _ => format!("no audio from {}; reopening it", hello.source),
                };
                if let Err(e) = watchdog.notifier().status(&line) {
                    tracing::debug!("{e}");
                }
            }
            fanout.publish(step.reading);
            watchdog.reading();
            if fanout.failure().is_some() {
                shutdown.trigger();
            } else if fanout.all_closed() {
                tracing::info!("every output has closed; stopping");
                shutdown.trigger();
            }
        },
    );
    if shutdown.is_set() {
        if let Err(e) = watchdog.notifier().stopping() {
            tracing::debug!("{e}");
        }
    }
    // A broken output outranks the rest: its readings were lost.
    match fanout.close() {
        Some(message) => Err(PublishError::SinkFailed(message).into()),
        None => result.map(|_| next),
    }
}

/// Pumps the supervised input through `pipeline` until the end, shutdown or
/// `stop`; while there is no input, publishes a reading without audio every
/// hop, so that subscribers see why and the daemon is never silent.
fn listen(
    source: &mut capture::Supervisor,
    pipeline: &mut Pipeline,
    shutdown: &Shutdown,
    stop: &mut dyn FnMut() -> bool,
    out: &mut dyn FnMut(Step),
) -> Result<(), Error> {
    let hop = Duration::from_secs_f64(pipeline.settings().hop_ms() / 1000.0);
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut last_reading = Instant::now();
    while !shutdown.is_set() && !stop() {
        buf.clear();
        let event = match source.next(&mut buf, shutdown) {
            Ok(e) => e,
            Err(e) => {
                if source.state() == SourceState::Failed {
                    // The subscribers' last word: the input failed.
                    pipeline.gap(out);
                }
                return Err(e.into());
            }
        };
        let mut made = false;
        pipeline.push(&buf, &mut |s| {
            made = true;
            out(s)
        })?;
        match event {
            capture::Event::End => {
                pipeline.finish(out)?;
                tracing::info!("end of input");
                break;
            }
            capture::Event::Idle
                if source.state() != SourceState::Ok && last_reading.elapsed() >= hop =>
            {
                pipeline.gap(out);
                made = true;
            }
            _ => {}
        }
        if made {
            last_reading = Instant::now();
        }
    }
    Ok(())
}

/// Pumps audio from `source` through `pipeline` until the end or shutdown.
///
/// `stop` is asked between reads; `true` ends the run early (a reload).
fn drive(
    source: &mut dyn AudioSource,
    pipeline: &mut Pipeline,
    shutdown: &Shutdown,
    stop: &mut dyn FnMut() -> bool,
    out: &mut dyn FnMut(Step),
) -> Result<u64, Error> {
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut samples = 0u64;
    while !shutdown.is_set() && !stop() {
        buf.clear();
        let read = source.read(&mut buf, shutdown)?;
        samples += buf.len() as u64;
        pipeline.push(&buf, out)?;
        if read == Read::End {
            pipeline.finish(out)?;
            tracing::info!("end of input");
            break;
        }
    }
    Ok(samples)
}

/// One analysed window of a recording (model values, unsmoothed).
#[derive(Debug, Clone, Serialize)]
pub struct WindowRow {
    pub start_s: f64,
    pub end_s: f64,
    pub state: InputState,
    pub level_dbfs: f32,
    pub mid_level: MidLevel<f32>,
    pub emotions: Emotions<f32>,
}

/// What a whole recording reads as: the mean over its windows.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub windows: usize,
    pub music_windows: usize,
    pub mid_level: MidLevel<f32>,
    pub emotions: Emotions<f32>,
}

/// `earshotd analyze`: per-window values, the readings, and a summary.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub source: String,
    pub model_id: String,
    pub precision: String,
    /// Why that precision (the configuration, or what `auto` found on this CPU).
    pub precision_reason: String,
    pub hop_ms: f64,
    pub window_ms: f64,
    pub seconds: f64,
    pub windows: Vec<WindowRow>,
    pub summary: Summary,
    pub readings: Vec<Reading>,
}

/// Analyses a recording with the live path's code, as fast as possible.
///
/// Windows are the full windows of the stream (`[k hop, k hop + window)` in
/// frames); a recording shorter than one window is one window. The summary
/// averages the model's values over all windows, music or not, as the
/// training pipeline's `predict_clip` does.
pub fn analyze(
    path: &Path,
    model_dir: Option<&Path>,
    precision: impl Into<PrecisionChoice>,
    analysis: &AnalysisSettings,
) -> Result<Report, Error> {
    let health = Arc::new(Counters::default());
    let model = load_model(model_dir, precision)?;
    let mut ps = pipeline_settings(&model, analysis)?;
    ps.partial_windows = false;
    let mut pipeline = Pipeline::new(&model, ps.clone(), health)?;
    let mut source = capture::file::FileSource::open(path)?;
    let label = source.label();
    let mut steps: Vec<Step> = Vec::new();
    let samples = drive(
        &mut source,
        &mut pipeline,
        &Shutdown::new(),
        &mut || false,
        &mut |s| {
            if s.full_window {
                steps.push(s)
            }
        },
    )?;
    let period_s = frontend::frame_period_ms() / 1000.0;
    if steps.is_empty() {
        let rate = f64::from(frontend::SAMPLE_RATE_HZ);
        return Err(Error::TooShort {
            path: path.to_path_buf(),
            seconds: samples as f64 / rate,
            needed_s: (frontend::FRAME_SIZE + frontend::HOP_SIZE * (model.receptive_field() - 1))
                as f64
                / rate,
        });
    }
    let windows: Vec<WindowRow> = steps
        .iter()
        .map(|s| {
            let end_s = s.reading.stream_ms as f64 / 1000.0;
            WindowRow {
                start_s: (end_s
                    - frontend::FRAME_SIZE as f64 / f64::from(frontend::SAMPLE_RATE_HZ)
                    - (s.window_frames as f64 - 1.0) * period_s)
                    .max(0.0),
                end_s,
                state: s.reading.state,
                level_dbfs: s.reading.level_dbfs,
                mid_level: MidLevel::from_array(s.model_mid),
                emotions: Emotions::from_array(s.model_emotions),
            }
        })
        .collect();
    let n = steps.len().max(1) as f64;
    let mean = |f: &dyn Fn(&Step) -> Vec<f32>, len: usize| -> Vec<f32> {
        let mut acc = vec![0f64; len];
        for s in &steps {
            for (a, v) in acc.iter_mut().zip(f(s)) {
                *a += f64::from(v);
            }
        }
        acc.into_iter().map(|a| (a / n) as f32).collect()
    };
    let mid = mean(&|s| s.model_mid.to_vec(), explain::N_MID);
    let emo = mean(&|s| s.model_emotions.to_vec(), explain::N_EMO);
    let summary = Summary {
        windows: steps.len(),
        music_windows: steps
            .iter()
            .filter(|s| s.reading.state == InputState::Music)
            .count(),
        mid_level: MidLevel::from_array(std::array::from_fn(|i| mid[i])),
        emotions: Emotions::from_array(std::array::from_fn(|i| emo[i])),
    };
    Ok(Report {
        source: label,
        model_id: model.id().to_string(),
        precision: model.precision().to_string(),
        precision_reason: model.precision_reason().to_string(),
        hop_ms: ps.hop_ms(),
        window_ms: ps.window_ms(),
        seconds: samples as f64 / f64::from(frontend::SAMPLE_RATE_HZ),
        windows,
        summary,
        readings: steps.into_iter().map(|s| s.reading).collect(),
    })
}
