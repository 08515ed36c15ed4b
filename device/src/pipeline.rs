//! One direction: audio samples -> front end columns -> streaming network ->
//! gate and explanation -> [`Reading`]. The same code serves live audio, the
//! demo, `--file` and `earshotd analyze`.
//!
//! ## Hops and windows in frames
//! Readings are due at frame counts `n` with `n ≡ window (mod hop)`, counting
//! frames of the front end (704 samples, 31.93 ms). `hop_ms` is rounded to whole
//! frames: the default 1000 ms is 31 frames (989.8 ms), so the reading whose window
//! is full for the `k`-th time covers frames `[31 k, 31 k + 313)`, exactly the
//! windows of `train.py windows()`. Before the first full window, readings are
//! due every hop from the receptive field (63 frames, 2 s) on; live sources
//! publish them from the frames heard so far (`partial_windows`), `analyze`
//! marks them `warmup`. The network runs once per reading, on the positions
//! that are new since the previous one.
//!
//! What leaves the process is decided by `publish`; this module only builds readings.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use earshot_protocol::{Hello, InputState, MidLevel, Reading};

use crate::explain::{Explainer, N_EMO, N_MID};
use crate::frontend::{self, Frontend};
use crate::gate::{self, Gate};
use crate::health::Counters;
use crate::model::{Model, ModelError, StreamRunner};

/// Bands of the coarse level meter in each reading.
pub const METER_BANDS: usize = 16;
/// Spectrogram value shown as a full meter. The front end is level-relative: a
/// band at the music's running level reads 2.5 and the loudest bands about 4.5,
/// so the meter shows the spectrum's shape whatever the microphone gain.
const METER_FULL_SCALE: f32 = 5.0;
/// Largest sample magnitude passed to the front end (+6 dBFS). Sources deliver
/// [-1, 1]; decoded mp3 may overshoot a little and passes unchanged, while a
/// damaged or hostile file's 1e30 would read as 600 dBFS and overflow to inf.
pub const MAX_SAMPLE: f32 = 2.0;

/// Input samples that had to be repaired before analysis.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Repaired {
    /// NaN or infinite samples, replaced by 0 (silence).
    pub not_finite: u64,
    /// Samples beyond [`MAX_SAMPLE`], clipped to it.
    pub clipped: u64,
}

/// How readings are made; built from the validated config and the model.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineSettings {
    pub hop_frames: usize,
    pub window_frames: usize,
    pub smoothing_ms: u32,
    pub silence_dbfs: f32,
    /// Publish readings from the frames heard so far before the first full window.
    pub partial_windows: bool,
}

impl PipelineSettings {
    /// `hop_ms` and `window_ms` rounded to frames; window defaults to the model's.
    pub fn new(
        model: &Model,
        hop_ms: u32,
        window_ms: Option<u32>,
        smoothing_ms: u32,
        silence_dbfs: f32,
    ) -> Result<Self, ModelError> {
        let period = frontend::frame_period_ms();
        let hop_frames = ((f64::from(hop_ms) / period).round() as usize).max(1);
        let window_frames = match window_ms {
            Some(ms) => (f64::from(ms) / period).round() as usize,
            None => model.window_frames(),
        };
        if window_frames < model.receptive_field() {
            return Err(ModelError::Shape {
                path: "analysis.window_ms".into(),
                message: format!(
                    "{window_frames} frames is shorter than the model's receptive field ({} frames, {:.0} ms)",
                    model.receptive_field(),
                    model.receptive_field() as f64 * period
                ),
            });
        }
        Ok(Self {
            hop_frames,
            window_frames,
            smoothing_ms,
            silence_dbfs,
            partial_windows: true,
        })
    }

    /// Effective reading cadence in ms (whole frames).
    pub fn hop_ms(&self) -> f64 {
        self.hop_frames as f64 * frontend::frame_period_ms()
    }

    /// Effective window in ms (whole frames).
    pub fn window_ms(&self) -> f64 {
        self.window_frames as f64 * frontend::frame_period_ms()
    }
}

/// One reading plus what the offline path needs besides it.
#[derive(Debug, Clone)]
pub struct Step {
    pub reading: Reading,
    /// The window's mid-level values and the model's emotions for them,
    /// whatever the gate said (offline summaries average these).
    pub model_mid: [f32; N_MID],
    pub model_emotions: [f32; N_EMO],
    /// Frames the window covers.
    pub window_frames: usize,
    /// The window has its full length (or is the whole of a shorter recording).
    pub full_window: bool,
}

struct Core {
    runner: StreamRunner,
    explainer: Explainer,
    gate: Gate,
    settings: PipelineSettings,
    receptive_field: usize,
    model_id: String,
    health: Arc<Counters>,
    seq: u64,
    frames: u64,
    last_reading_frame: u64,
    full_windows: u64,
    hop_energy: f64,
    hop_samples: usize,
    meter: Vec<f64>,
    meter_frames: usize,
    level: DcFreeLevel,
    error: Option<ModelError>,
}

/// The streaming pipeline; feed it samples, it calls back with readings.
pub struct Pipeline {
    frontend: Frontend,
    core: Core,
    /// Repaired copies of input blocks that needed it.
    scratch: Vec<f32>,
    repaired: Repaired,
}

impl Pipeline {
    pub fn new(
        model: &Model,
        settings: PipelineSettings,
        health: Arc<Counters>,
    ) -> Result<Self, ModelError> {
        let runner = model.stream(settings.hop_frames, settings.window_frames)?;
        let explainer = Explainer::new(
            model.linear().clone(),
            settings.hop_ms(),
            settings.smoothing_ms,
        );
        Ok(Self {
            frontend: Frontend::new(),
            core: Core {
                runner,
                explainer,
                gate: Gate::new(settings.silence_dbfs),
                receptive_field: model.receptive_field(),
                settings,
                model_id: model.id().to_string(),
                health,
                seq: 0,
                frames: 0,
                last_reading_frame: 0,
                full_windows: 0,
                hop_energy: 0.0,
                hop_samples: 0,
                meter: vec![0.0; METER_BANDS],
                meter_frames: 0,
                level: DcFreeLevel::default(),
                error: None,
            },
            scratch: Vec::new(),
            repaired: Repaired::default(),
        })
    }

    /// Samples repaired so far (NaN/inf and beyond [`MAX_SAMPLE`]).
    pub fn repaired(&self) -> Repaired {
        self.repaired
    }

    pub fn settings(&self) -> &PipelineSettings {
        &self.core.settings
    }

    /// The first message of a stream of these readings.
    pub fn hello(&self, source: &str) -> Hello {
        let s = &self.core.settings;
        Hello {
            daemon: env!("CARGO_PKG_VERSION").to_string(),
            model_id: self.core.model_id.clone(),
            source: source.to_string(),
            hop_ms: s.hop_ms().round() as u32,
            window_ms: s.window_ms().round() as u32,
            smoothing_ms: s.smoothing_ms,
            mid_level_means: MidLevel::from_array(self.core.explainer.linear().mid_means),
        }
    }

    /// Feeds mono samples at 22050 Hz; `out` receives each reading as it is due.
    ///
    /// NaN and infinite samples become 0 and samples beyond [`MAX_SAMPLE`] are
    /// clipped, so that every reading holds finite numbers (valid protocol v1);
    /// the first of each kind is logged.
    pub fn push(&mut self, samples: &[f32], out: &mut dyn FnMut(Step)) -> Result<(), ModelError> {
        let Self {
            frontend,
            core,
            scratch,
            repaired,
        } = self;
        let samples = repair(samples, scratch, repaired);
        frontend.push(samples, |column, added| core.on_column(column, added, out));
        match core.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// A reading without audio, for while the input is lost: subscribers
    /// keep hearing from the daemon (the reading's health says why) and no
    /// claim is made about the room: `silence` at the level floor, no
    /// analysis, `stream_ms` standing still.
    pub fn gap(&mut self, out: &mut dyn FnMut(Step)) {
        let c = &mut self.core;
        c.explainer.reset();
        let reading = Reading {
            seq: c.seq,
            time_ms: now_ms(),
            stream_ms: c.stream_ms(),
            model_id: c.model_id.clone(),
            state: InputState::Silence,
            level_dbfs: gate::FLOOR_DBFS,
            spectrum: vec![0.0; METER_BANDS],
            analysis: None,
            latency_ms: 0.0,
            health: c.health.snapshot(),
        };
        c.seq += 1;
        out(Step {
            reading,
            model_mid: [0.0; N_MID],
            model_emotions: [0.0; N_EMO],
            window_frames: 0,
            full_window: false,
        });
    }

    /// End of input: a recording shorter than one window gets one reading
    /// over all of it (as the reference's `windows()` does), if none was due.
    pub fn finish(&mut self, out: &mut dyn FnMut(Step)) -> Result<(), ModelError> {
        let c = &mut self.core;
        if c.full_windows == 0
            && c.frames >= c.receptive_field as u64
            && c.frames > c.last_reading_frame
        {
            c.emit(true, out)?;
        }
        Ok(())
    }
}

/// The level meter's view of the input: the energy of the samples with DC
/// removed (a one-pole high-pass at about 17 Hz), so that a constant offset
/// (a cheap microphone, a damaged file) reads as the silence it is. Fed each
/// frame's new samples, so that the energy belongs to that frame.
#[derive(Debug, Default)]
struct DcFreeLevel {
    /// The previous input sample; `None` before the first, so that the filter
    /// starts settled on the input's offset instead of ringing from a step.
    x1: Option<f64>,
    y1: f64,
}

impl DcFreeLevel {
    /// Pole of the DC blocker: cut-off (1 - R) fs / 2 pi, about 17 Hz at 22050 Hz.
    const R: f64 = 0.995;

    /// Sum of squares of `samples` after the filter.
    fn energy(&mut self, samples: &[f32]) -> f64 {
        let Some(&first) = samples.first() else {
            return 0.0;
        };
        let mut x1 = self.x1.unwrap_or(f64::from(first));
        let mut y1 = self.y1;
        let mut sum = 0.0;
        for &x in samples {
            let x = f64::from(x);
            let y = x - x1 + Self::R * y1;
            x1 = x;
            y1 = y;
            sum += y * y;
        }
        self.x1 = Some(x1);
        self.y1 = y1;
        sum
    }
}

/// `samples`, or a repaired copy of them in `scratch` when any is not finite
/// or beyond [`MAX_SAMPLE`].
fn repair<'a>(samples: &'a [f32], scratch: &'a mut Vec<f32>, count: &mut Repaired) -> &'a [f32] {
    // `!(|x| <= MAX)` is also true for NaN.
    if samples.iter().all(|x| x.abs() <= MAX_SAMPLE) {
        return samples;
    }
    let before = *count;
    scratch.clear();
    scratch.extend(samples.iter().map(|&x| {
        if !x.is_finite() {
            count.not_finite += 1;
            0.0
        } else if x.abs() > MAX_SAMPLE {
            count.clipped += 1;
            x.clamp(-MAX_SAMPLE, MAX_SAMPLE)
        } else {
            x
        }
    }));
    if before.not_finite == 0 && count.not_finite > 0 {
        tracing::warn!(
            "the input has samples that are not numbers (NaN or infinite); they are read as \
             silence (logged once: the source is damaged)"
        );
    }
    if before.clipped == 0 && count.clipped > 0 {
        tracing::warn!(
            "the input has samples far beyond full scale; they are clipped to +6 dBFS \
             (logged once: the source is damaged or not audio)"
        );
    }
    scratch
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Core {
    /// The end of the frames so far in the input, ms.
    fn stream_ms(&self) -> u64 {
        let end_sample = match self.frames {
            0 => 0,
            n => frontend::FRAME_SIZE as u64 + frontend::HOP_SIZE as u64 * (n - 1),
        };
        end_sample * 1000 / u64::from(frontend::SAMPLE_RATE_HZ)
    }

    /// `added`: the samples this frame added (the whole first frame, then a hop each).
    fn on_column(&mut self, column: &[f32], added: &[f32], out: &mut dyn FnMut(Step)) {
        let energy = self.level.energy(added);
        if self.error.is_some() {
            return;
        }
        self.frames += 1;
        self.hop_energy += energy;
        self.hop_samples += added.len();
        let per_group = column.len() as f64 / METER_BANDS as f64;
        for (j, &v) in column.iter().enumerate() {
            let g = ((j as f64 / per_group) as usize).min(METER_BANDS - 1);
            self.meter[g] += f64::from(v) / per_group;
        }
        self.meter_frames += 1;
        if let Err(e) = self.runner.push_column(column) {
            self.error = Some(e);
            return;
        }
        let (n, w, hop) = (
            self.frames,
            self.settings.window_frames as u64,
            self.settings.hop_frames as u64,
        );
        let due = n >= self.receptive_field as u64 && (n + hop * (w / hop + 1) - w) % hop == 0;
        if due {
            let full = n >= w;
            if let Err(e) = self.emit(full, out) {
                self.error = Some(e);
            }
        }
    }

    /// Builds the reading for the frames so far.
    fn emit(&mut self, full_window: bool, out: &mut dyn FnMut(Step)) -> Result<(), ModelError> {
        let started = Instant::now();
        if full_window && (self.frames as usize) < self.settings.window_frames {
            // the end of a recording shorter than a window
            self.runner.flush()?;
        }
        let (mid, novelty) = self.runner.read();
        let latency = self.runner.take_run_time() + started.elapsed();
        let latency_ms = latency.as_secs_f32() * 1000.0;
        let level_dbfs = gate::level_dbfs(self.hop_energy, self.hop_samples);
        let music = self.gate.update(level_dbfs);
        let publish = full_window || self.settings.partial_windows;
        let state = match (publish, music) {
            (false, _) => InputState::Warmup,
            (true, true) => InputState::Music,
            (true, false) => InputState::Silence,
        };
        let analysis = match state {
            InputState::Music => {
                let mut a = self.explainer.analyse(mid);
                if let Some((distance, in_range)) = novelty {
                    a.novelty = Some(distance);
                    a.in_range = in_range;
                }
                Some(a)
            }
            _ => {
                self.explainer.reset();
                None
            }
        };
        let frames = self.meter_frames.max(1) as f64;
        let spectrum = self
            .meter
            .iter()
            .map(|&v| ((v / frames) as f32 / METER_FULL_SCALE).clamp(0.0, 1.0))
            .collect();
        let reading = Reading {
            seq: self.seq,
            time_ms: now_ms(),
            stream_ms: self.stream_ms(),
            model_id: self.model_id.clone(),
            state,
            level_dbfs,
            spectrum,
            analysis,
            latency_ms,
            health: self.health.snapshot(),
        };
        let model_emotions = self.explainer.linear().emotions(&mid);
        self.seq += 1;
        self.last_reading_frame = self.frames;
        if full_window {
            self.full_windows += 1;
        }
        self.hop_energy = 0.0;
        self.hop_samples = 0;
        self.meter.fill(0.0);
        self.meter_frames = 0;
        out(Step {
            reading,
            model_mid: mid,
            model_emotions,
            window_frames: (self.frames as usize).min(self.settings.window_frames),
            full_window,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Precision;
    use crate::model::{dir_source, shipped_dir, Model};

    fn model() -> Model {
        Model::load(&dir_source(shipped_dir()), Precision::F32).unwrap()
    }

    fn tone(seconds: f32, amp: f32) -> Vec<f32> {
        (0..(seconds * 22050.0) as usize)
            .map(|i| {
                let t = i as f32 / 22050.0;
                amp * ((2.0 * std::f32::consts::PI * 220.0 * t).sin()
                    + 0.5 * (2.0 * std::f32::consts::PI * 330.0 * t).sin()
                    + 0.3
                        * (2.0 * std::f32::consts::PI * 3.0 * t).sin()
                        * (2.0 * std::f32::consts::PI * 1760.0 * t).sin())
            })
            .collect()
    }

    #[test]
    fn readings_follow_the_frame_schedule_and_explain_exactly() {
        let m = model();
        let settings = PipelineSettings::new(&m, 1000, None, 3000, -60.0).unwrap();
        assert_eq!((settings.hop_frames, settings.window_frames), (31, 313));
        let mut p = Pipeline::new(&m, settings, Arc::new(Counters::default())).unwrap();
        let mut steps = Vec::new();
        let audio = tone(14.0, 0.3);
        for chunk in audio.chunks(1000) {
            p.push(chunk, &mut |s| steps.push(s)).unwrap();
        }
        p.finish(&mut |s| steps.push(s)).unwrap();
        let frames = frontend::n_frames(audio.len()) as u64;
        // due at n = 65, 96, ..., 313, 344, ... <= frames
        let expect: Vec<u64> = (1..=frames)
            .filter(|n| *n >= 63 && (*n + 31 * 11 - 313) % 31 == 0)
            .collect();
        assert_eq!(steps.len(), expect.len());
        assert_eq!(expect[0], 65);
        for (i, s) in steps.iter().enumerate() {
            let r = &s.reading;
            assert_eq!(r.seq, i as u64);
            assert_eq!(r.state, InputState::Music);
            let a = r.analysis.as_ref().unwrap();
            for (x, e) in a.explanation.to_array().iter().zip(a.emotions.to_array()) {
                assert_eq!(x.total(), e, "bias + sum(effects) == emotion");
            }
            assert_eq!(r.spectrum.len(), METER_BANDS);
            assert!(
                r.level_dbfs > -20.0 && r.level_dbfs < 0.0,
                "{}",
                r.level_dbfs
            );
        }
        assert_eq!(
            steps.iter().filter(|s| s.full_window).count(),
            expect.iter().filter(|n| **n >= 313).count()
        );
    }

    #[test]
    fn silence_is_flagged_without_emotions() {
        let m = model();
        let settings = PipelineSettings::new(&m, 1000, None, 0, -60.0).unwrap();
        let mut p = Pipeline::new(&m, settings, Arc::new(Counters::default())).unwrap();
        let mut steps = Vec::new();
        let mut audio = tone(4.0, 0.3);
        audio.extend(std::iter::repeat_n(0.0, 22050 * 6));
        audio.extend(tone(1.0, 0.00001)); // -100 dBFS hiss is still silence
        p.push(&audio, &mut |s| steps.push(s)).unwrap();
        let last = &steps.last().unwrap().reading;
        assert_eq!(last.state, InputState::Silence);
        assert!(last.analysis.is_none());
        assert!(last.level_dbfs < -90.0);
        assert_eq!(steps[0].reading.state, InputState::Music);
    }

    #[test]
    fn constant_dc_reads_as_silence() {
        let m = model();
        let settings = PipelineSettings::new(&m, 1000, None, 0, -60.0).unwrap();
        let mut p = Pipeline::new(&m, settings, Arc::new(Counters::default())).unwrap();
        let mut steps = Vec::new();
        let mut audio = vec![0.5f32; 22050 * 4];
        audio.extend(tone(3.0, 0.3).iter().map(|x| x + 0.5));
        p.push(&audio, &mut |s| steps.push(s)).unwrap();
        let dc: Vec<_> = steps
            .iter()
            .filter(|s| s.reading.stream_ms <= 4000)
            .collect();
        assert!(!dc.is_empty());
        for s in dc {
            assert_eq!(
                s.reading.state,
                InputState::Silence,
                "{}",
                s.reading.level_dbfs
            );
        }
        // music on top of the offset is still music, at the music's level
        let last = &steps.last().unwrap().reading;
        assert_eq!(last.state, InputState::Music);
        assert!(
            last.level_dbfs > -20.0 && last.level_dbfs < 0.0,
            "{}",
            last.level_dbfs
        );
    }

    #[test]
    fn nan_inf_and_huge_samples_give_finite_readings() {
        let m = model();
        let settings = PipelineSettings::new(&m, 1000, None, 0, -60.0).unwrap();
        let mut p = Pipeline::new(&m, settings, Arc::new(Counters::default())).unwrap();
        let mut steps = Vec::new();
        let mut audio = tone(3.0, 0.3);
        audio.extend([f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e30, -1e30, 3.0]);
        audio.extend(std::iter::repeat_n(f32::NAN, 22050 * 2));
        audio.extend(std::iter::repeat_n(1e30, 22050 * 2));
        audio.extend(tone(3.0, 0.3));
        for chunk in audio.chunks(4096) {
            p.push(chunk, &mut |s| steps.push(s)).unwrap();
        }
        assert_eq!(
            p.repaired(),
            Repaired {
                not_finite: 3 + 22050 * 2,
                clipped: 3 + 22050 * 2
            }
        );
        assert!(steps.len() >= 5);
        for s in &steps {
            let line = earshot_protocol::encode(&earshot_protocol::Message::Reading(Box::new(
                s.reading.clone(),
            )));
            // a non-finite float is written as null, which no v1 decoder accepts
            earshot_protocol::decode(&line).unwrap();
            assert!(s.reading.level_dbfs <= 20.0 * MAX_SAMPLE.log10() + 0.01);
        }
    }

    #[test]
    fn a_gap_reading_claims_nothing_and_keeps_the_sequence() {
        let m = model();
        let settings = PipelineSettings::new(&m, 1000, None, 0, -60.0).unwrap();
        let health = Arc::new(Counters::default());
        health.set_input(earshot_protocol::SourceState::NoInput);
        let mut p = Pipeline::new(&m, settings, Arc::clone(&health)).unwrap();
        let mut steps = Vec::new();
        p.push(&tone(3.0, 0.3), &mut |s| steps.push(s)).unwrap();
        let before = steps.last().unwrap().reading.clone();
        assert_eq!(before.state, InputState::Music);
        p.gap(&mut |s| steps.push(s));
        let gap = steps.last().unwrap().reading.clone();
        assert_eq!(gap.seq, before.seq + 1);
        assert_eq!(gap.state, InputState::Silence);
        assert!(gap.analysis.is_none());
        assert_eq!(gap.level_dbfs, gate::FLOOR_DBFS);
        // the audio heard so far, and no more while there is none
        assert!(gap.stream_ms >= before.stream_ms && gap.stream_ms <= 3000);
        p.gap(&mut |s| steps.push(s));
        assert_eq!(steps.last().unwrap().reading.stream_ms, gap.stream_ms);
        assert_eq!(
            gap.health.input.state,
            earshot_protocol::SourceState::NoInput
        );
        // Audio after the gap goes on from where it was.
        p.push(&tone(1.0, 0.3), &mut |s| steps.push(s)).unwrap();
        let after = &steps.last().unwrap().reading;
        assert_eq!(after.seq, gap.seq + 2);
        assert!(after.stream_ms > gap.stream_ms);
    }

    #[test]
    fn without_partial_windows_early_readings_are_warmup() {
        let m = model();
        let mut settings = PipelineSettings::new(&m, 1000, None, 0, -60.0).unwrap();
        settings.partial_windows = false;
        let mut p = Pipeline::new(&m, settings, Arc::new(Counters::default())).unwrap();
        let mut steps = Vec::new();
        p.push(&tone(11.0, 0.3), &mut |s| steps.push(s)).unwrap();
        assert!(steps[..steps.len() - 1]
            .iter()
            .all(|s| s.reading.state == InputState::Warmup && !s.full_window));
        assert_eq!(steps.last().unwrap().reading.state, InputState::Music);
        // a short recording gets one whole-recording reading at the end
        let mut p = Pipeline::new(&m, p.settings().clone(), Arc::new(Counters::default())).unwrap();
        let mut steps = Vec::new();
        p.push(&tone(5.0, 0.3), &mut |s| steps.push(s)).unwrap();
        p.finish(&mut |s| steps.push(s)).unwrap();
        let last = steps.last().unwrap();
        assert!(last.full_window);
        assert_eq!(last.window_frames, frontend::n_frames(5 * 22050));
    }
}
