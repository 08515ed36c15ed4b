//! Streaming log-frequency spectrogram: mono 22050 Hz samples in, one
//! [`N_BANDS`]-value column per 704-sample hop out.
//!
//! The executable spec is `models/train/earshot_train/frontend.py` (described in
//! `models/FRONTEND.md`, version 2): periodic Hann window over 2048 samples
//! scaled to the 16-bit range, real FFT (realfft, NEON on aarch64), magnitude, the
//! 137 unit-area triangular bands of a 24-per-octave grid that end below 8 kHz,
//! then a level-relative compression: a slow automatic gain control divides the
//! bands by the music's running level before `log10(1 + x)`, so an unknown
//! microphone gain does not move the input and a noise floor far below the
//! music compresses towards 0. A frame exists once all its samples have
//! arrived, so the stream needs no look-ahead.
//!
//! Tolerance against the reference (float64 numpy) on the golden vectors:
//! max abs [`GOLDEN_TOLERANCE_ABS`], mean abs [`GOLDEN_TOLERANCE_MEAN_ABS`]
//! (measured on x86: 1.8e-3 max, 2.1e-4 mean; values are 0..7; microfft, used
//! before, 0.011 and 4.4e-4). A float32 FFT cannot reach FRONTEND.md's 1e-4
//! everywhere: its rounding noise is relative to the whole frame, so bands
//! ~100 dB below a loud frame's peak (true value ~0.001) come out off by about
//! that much (numpy's own float32 FFT: 1.5e-3). The model barely notices: fed
//! this front end's output instead of the reference's, its mid-level values
//! move by less than [`MODEL_TOLERANCE_ABS`] (test below; edge-v7: 2.6e-5),
//! and on real music by less than 1e-4.
//! Normalisation is not done here; it is inside the model.

use std::f64::consts::PI;
use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

/// Front-end version (models/FRONTEND.md); a model's metadata.json must name it.
pub const VERSION: u32 = 2;
/// Model sample rate.
pub const SAMPLE_RATE_HZ: u32 = 22050;
/// Samples per analysis frame.
pub const FRAME_SIZE: usize = 2048;
/// Samples between frame starts (31.32 frames per second).
pub const HOP_SIZE: usize = 704;
/// FFT magnitude bins, DC to Nyquist.
pub const N_FFT_BINS: usize = FRAME_SIZE / 2 + 1;
const BANDS_PER_OCTAVE: f64 = 24.0;
const FMIN_HZ: f64 = 20.0;
const FMAX_HZ: f64 = 16000.0;
const A4_HZ: f64 = 440.0;
/// Samples in [-1, 1] are scaled to the 16-bit range (madmom convention).
pub const INPUT_SCALE: f32 = 32768.0;
/// Bands end at or below this frequency: what the training audio fills.
pub const BANDS_FMAX_HZ: f64 = 8000.0;
/// Bands per column (the model's input width).
pub const N_BANDS: usize = 137;
/// Time constant of the running level, seconds.
pub const AGC_TAU_S: f64 = 3.0;
/// Running level (log10 units) below which no further gain is applied: silence stays quiet.
pub const AGC_MIN_LEVEL: f64 = 1.5;
/// A band this far (log10 units) below the running level reads about log10(2).
pub const HEADROOM: f64 = 2.5;
/// Largest absolute difference to the float64 reference on the golden vectors.
pub const GOLDEN_TOLERANCE_ABS: f32 = 5e-3;
/// Largest mean absolute difference to the float64 reference on the golden vectors.
pub const GOLDEN_TOLERANCE_MEAN_ABS: f32 = 5e-4;
/// Largest change of the model's mid-level values from the front-end difference
/// on the golden signal, a worst case: its top bands are ~100 dB below the
/// frame peak, 4 standard deviations below the training data, where the float32
/// rounding noise is largest relative to the value (measured 3.3e-4 with the
/// trained edge-v4, 1.3e-4 with edge-v3, 2.8e-3 with edge-v2; on Soundtracks
/// clips the whole pipeline agrees with Python within 4e-5, see
/// `tests/it/analyze.rs`).
pub const MODEL_TOLERANCE_ABS: f32 = 1e-2;

/// Duration of one frame hop in milliseconds (31.93 ms).
pub fn frame_period_ms() -> f64 {
    HOP_SIZE as f64 * 1000.0 / f64::from(SAMPLE_RATE_HZ)
}

/// Frames that fit entirely in `n_samples` (no padding).
pub fn n_frames(n_samples: usize) -> usize {
    if n_samples < FRAME_SIZE {
        0
    } else {
        1 + (n_samples - FRAME_SIZE) / HOP_SIZE
    }
}

/// Grid frequencies, 24 per octave around A4, within `[FMIN_HZ, FMAX_HZ]`.
fn log_frequencies() -> Vec<f64> {
    let left = ((FMIN_HZ / A4_HZ).log2() * BANDS_PER_OCTAVE).floor() as i64;
    let right = ((FMAX_HZ / A4_HZ).log2() * BANDS_PER_OCTAVE).ceil() as i64;
    (left..right)
        .map(|j| A4_HZ * 2f64.powf(j as f64 / BANDS_PER_OCTAVE))
        .filter(|f| (FMIN_HZ..=FMAX_HZ).contains(f))
        .collect()
}

/// The distinct FFT bins of the grid, ascending (151 for the shipped parameters);
/// `metadata.json` lists the same as `frontend.filterbank_bins`.
pub fn filterbank_bins() -> Vec<usize> {
    let bin_hz = |k: usize| k as f64 * f64::from(SAMPLE_RATE_HZ) / FRAME_SIZE as f64;
    let mut bins: Vec<usize> = log_frequencies()
        .into_iter()
        .map(|f| {
            // searchsorted(side="left"): first bin with bin_hz >= f
            let first = (0..N_FFT_BINS)
                .find(|&k| bin_hz(k) >= f)
                .unwrap_or(N_FFT_BINS);
            let r = first.clamp(1, N_FFT_BINS - 1);
            if f - bin_hz(r - 1) < bin_hz(r) - f {
                r - 1
            } else {
                r
            }
        })
        .collect();
    bins.dedup();
    bins
}

/// One triangular band: weights for bins `start..start + weights.len()`.
#[derive(Debug, Clone)]
struct Band {
    start: usize,
    weights: Vec<f32>,
}

/// The bands of the grid that end at or below [`BANDS_FMAX_HZ`].
fn bands() -> Vec<Band> {
    let bins = filterbank_bins();
    let bin_hz = |k: usize| k as f64 * f64::from(SAMPLE_RATE_HZ) / FRAME_SIZE as f64;
    bins.windows(3)
        .take_while(|w| bin_hz(w[2]) <= BANDS_FMAX_HZ)
        .map(|w| {
            let (start, centre, stop) = (w[0], w[1], w[2]);
            let mut weights: Vec<f64> = (start..stop)
                .map(|k| {
                    if k < centre {
                        (k - start) as f64 / (centre - start) as f64
                    } else {
                        1.0 - (k - centre) as f64 / (stop - centre) as f64
                    }
                })
                .collect();
            let sum: f64 = weights.iter().sum();
            weights.iter_mut().for_each(|x| *x /= sum);
            Band {
                start,
                weights: weights.into_iter().map(|x| x as f32).collect(),
            }
        })
        .collect()
}

/// The streaming front end. Keeps at most one frame of audio; allocation-free
/// after construction.
pub struct Frontend {
    /// Periodic Hann window times [`INPUT_SCALE`].
    window: Box<[f32; FRAME_SIZE]>,
    bands: Vec<Band>,
    /// Samples not yet consumed by a complete frame (< FRAME_SIZE + block).
    pending: Vec<f32>,
    /// realfft rather than microfft: 43 k instead of 72 k instructions per
    /// frame on a Cortex-A72, about 0.9 M less per reading (bench/resampler.md).
    fft: Arc<dyn RealToComplex<f32>>,
    /// The windowed frame (the FFT overwrites it), its spectrum and the FFT's scratch.
    frame: Vec<f32>,
    spectrum: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
    magnitude: Vec<f32>,
    /// Bins below the last band's end: the only magnitudes computed.
    used_bins: usize,
    /// Linear band magnitudes of the current frame.
    linear: Vec<f32>,
    column: Vec<f32>,
    /// Running level (mean over bands of log10(1 + x)); None before the first frame.
    level: Option<f64>,
    /// Weight of the previous level per frame: exp(-hop / (rate * tau)).
    decay: f64,
    frames: u64,
}

impl Default for Frontend {
    fn default() -> Self {
        Self::new()
    }
}

impl Frontend {
    pub fn new() -> Self {
        let mut window = Box::new([0f32; FRAME_SIZE]);
        for (k, w) in window.iter_mut().enumerate() {
            let hann = 0.5 - 0.5 * (2.0 * PI * k as f64 / FRAME_SIZE as f64).cos();
            *w = (hann * f64::from(INPUT_SCALE)) as f32;
        }
        let bands = bands();
        debug_assert_eq!(bands.len(), N_BANDS);
        let used_bins = bands
            .iter()
            .map(|b| b.start + b.weights.len())
            .max()
            .unwrap_or(0)
            .min(N_FFT_BINS);
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(FRAME_SIZE);
        Self {
            frame: fft.make_input_vec(),
            spectrum: fft.make_output_vec(),
            scratch: fft.make_scratch_vec(),
            fft,
            used_bins,
            window,
            column: vec![0.0; bands.len()],
            linear: vec![0.0; bands.len()],
            bands,
            pending: Vec::with_capacity(4 * FRAME_SIZE),
            magnitude: vec![0.0; N_FFT_BINS],
            level: None,
            decay: (-(HOP_SIZE as f64) / (f64::from(SAMPLE_RATE_HZ) * AGC_TAU_S)).exp(),
            frames: 0,
        }
    }

    /// Bands per column.
    pub fn n_bands(&self) -> usize {
        self.bands.len()
    }

    /// Frames produced so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Feeds samples (mono, [`SAMPLE_RATE_HZ`], in [-1, 1]); calls `on_column`
    /// with each completed frame's column and the samples that frame added
    /// (its last [`HOP_SIZE`] samples, the whole frame for the first one), in
    /// order: together they are the input once, up to the last complete frame.
    pub fn push(&mut self, samples: &[f32], mut on_column: impl FnMut(&[f32], &[f32])) {
        let mut rest = samples;
        while !rest.is_empty() {
            // Bounded chunks keep `pending` within its initial capacity.
            let take = rest.len().min(2 * FRAME_SIZE);
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            let mut offset = 0;
            while self.pending.len() - offset >= FRAME_SIZE {
                let new = if self.frames == 0 {
                    FRAME_SIZE
                } else {
                    HOP_SIZE
                };
                let frame = &self.pending[offset..offset + FRAME_SIZE];
                for ((dst, &x), &w) in self.frame.iter_mut().zip(frame).zip(self.window.iter()) {
                    *dst = x * w;
                }
                self.compute_column();
                self.frames += 1;
                let end = offset + FRAME_SIZE;
                on_column(&self.column, &self.pending[end - new..end]);
                offset += HOP_SIZE;
            }
            self.pending.drain(..offset);
        }
    }

    fn compute_column(&mut self) {
        // The buffers come from the plan, so their lengths are right; were
        // they not, the column stays the previous one rather than panicking.
        if let Err(e) =
            self.fft
                .process_with_scratch(&mut self.frame, &mut self.spectrum, &mut self.scratch)
        {
            debug_assert!(false, "{e}");
            return;
        }
        // Only the bins the bands read (those below 8 kHz: about 3/4 of them).
        // f32 is enough: |X|^2 stays below 1e17 even for samples at +6 dBFS.
        for (m, c) in self.magnitude[..self.used_bins]
            .iter_mut()
            .zip(&self.spectrum)
        {
            *m = (c.re * c.re + c.im * c.im).sqrt();
        }
        let mut log_sum = 0.0;
        for (out, band) in self.linear.iter_mut().zip(&self.bands) {
            let sum: f32 = band
                .weights
                .iter()
                .zip(&self.magnitude[band.start..])
                .map(|(&w, &m)| w * m)
                .sum();
            *out = sum;
            log_sum += f64::from(log10_1p(sum));
        }
        let frame_level = log_sum / self.linear.len() as f64;
        let level = match self.level {
            None => frame_level,
            Some(prev) => self.decay * prev + (1.0 - self.decay) * frame_level,
        };
        self.level = Some(level);
        let gain = 10f64.powf(HEADROOM - level.max(AGC_MIN_LEVEL)) as f32;
        for (out, &x) in self.column.iter_mut().zip(&self.linear) {
            *out = log10_1p(x * gain);
        }
    }

    /// The running level (log10 units of band magnitude) after the last frame.
    pub fn level(&self) -> Option<f64> {
        self.level
    }
}

/// `log10(1 + x)` in f32 (the column is f32 anyway): glibc's `log10f` is
/// `logf` and a correction, twice the instructions of `logf` alone (about 70
/// against 35 on a Cortex-A72), so the natural log is scaled instead.
#[inline]
fn log10_1p(x: f32) -> f32 {
    (1.0 + x).ln() * std::f32::consts::LOG10_E
}

/// The whole-signal spectrogram `[frames, bands]`, row-major (offline use and tests).
pub fn spectrogram(samples: &[f32]) -> Vec<f32> {
    let mut fe = Frontend::new();
    let mut out = Vec::with_capacity(n_frames(samples.len()) * N_BANDS);
    fe.push(samples, |col, _| out.extend_from_slice(col));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn testdata(name: &str) -> Vec<f32> {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../models/testdata")
            .join(name);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; the golden vectors come from `python -m earshot_train golden`",
                path.display()
            )
        });
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }

    #[test]
    fn filterbank_has_151_bins_and_137_unit_area_bands_below_8_khz() {
        let bins = filterbank_bins();
        assert_eq!(bins.len(), 151);
        assert_eq!(bins.last(), Some(&(N_FFT_BINS - 1)));
        let bands = bands();
        assert_eq!(bands.len(), N_BANDS);
        for b in &bands {
            let s: f32 = b.weights.iter().sum();
            assert!((s - 1.0).abs() < 1e-5);
        }
    }

    #[test]
    fn frame_count_follows_the_spec() {
        assert_eq!(n_frames(2047), 0);
        assert_eq!(n_frames(2048), 1);
        assert_eq!(n_frames(2048 + 703), 1);
        assert_eq!(n_frames(2048 + 704), 2);
    }

    /// Golden vectors: the reference front end's output for 4 s of synthetic audio.
    #[test]
    fn matches_reference_on_golden_vectors() {
        let pcm = testdata("frontend_pcm.f32");
        let want = testdata("frontend_spec.f32");
        let got = spectrogram(&pcm);
        assert_eq!(got.len(), want.len(), "frame count differs");
        let diffs: Vec<f32> = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).collect();
        let max = diffs.iter().cloned().fold(0.0, f32::max);
        let mean = diffs.iter().sum::<f32>() / diffs.len() as f32;
        assert!(
            max <= GOLDEN_TOLERANCE_ABS,
            "max abs diff {max} > {GOLDEN_TOLERANCE_ABS}"
        );
        assert!(
            mean <= GOLDEN_TOLERANCE_MEAN_ABS,
            "mean abs diff {mean} > {GOLDEN_TOLERANCE_MEAN_ABS}"
        );
    }

    /// What the front-end difference does to the model: both spectrograms
    /// through the shipped f32 network.
    #[test]
    fn model_output_is_insensitive_to_the_float32_fft() {
        use crate::config::Precision;
        use crate::model::{dir_source, shipped_dir, Model};
        let pcm = testdata("frontend_pcm.f32");
        let want = testdata("frontend_spec.f32");
        let got = spectrogram(&pcm);
        let frames = want.len() / N_BANDS;
        let model = Model::load(&dir_source(shipped_dir()), Precision::F32).unwrap();
        let mut runner = model.window(frames).unwrap();
        let a = runner.run(&got).unwrap().mid_level;
        let b = runner.run(&want).unwrap().mid_level;
        let d = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(d < MODEL_TOLERANCE_ABS, "mid-level moved by {d}");
    }

    /// A dense, music-like test signal: a chord over deterministic noise.
    fn dense_signal(seconds: f32) -> Vec<f32> {
        let mut state = 0x2545_f491_u32;
        (0..(seconds * SAMPLE_RATE_HZ as f32) as usize)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                let noise = (state as f32 / u32::MAX as f32) - 0.5;
                let t = i as f32 / SAMPLE_RATE_HZ as f32;
                let chord: f32 = [220.0f32, 277.2, 329.6]
                    .iter()
                    .map(|f| (2.0 * std::f32::consts::PI * f * t).sin())
                    .sum();
                0.1 * chord + 0.1 * noise
            })
            .collect()
    }

    /// What a user notices: turning the microphone gain down by 30 dB, or up
    /// by 6, leaves the model's input where it was.
    #[test]
    fn microphone_gain_does_not_move_the_columns() {
        let x = dense_signal(6.0);
        let clean = spectrogram(&x);
        for db in [-30.0f32, 6.0] {
            let g = 10f32.powf(db / 20.0);
            let scaled: Vec<f32> = x.iter().map(|v| v * g).collect();
            let other = spectrogram(&scaled);
            let mean = clean
                .iter()
                .zip(&other)
                .map(|(a, b)| (a - b).abs())
                .sum::<f32>()
                / clean.len() as f32;
            assert!(mean < 0.01, "gain {db} dB moved the columns by {mean}");
        }
    }

    #[test]
    fn silence_stays_zero() {
        assert!(spectrogram(&[0.0; 22050]).iter().all(|&v| v == 0.0));
    }

    /// Streaming in odd block sizes gives the same columns as one big block.
    #[test]
    fn block_size_does_not_matter() {
        let pcm = testdata("frontend_pcm.f32");
        let whole = spectrogram(&pcm);
        let mut fe = Frontend::new();
        let mut streamed = Vec::new();
        for chunk in pcm.chunks(333) {
            fe.push(chunk, |c, _| streamed.extend_from_slice(c));
        }
        assert_eq!(whole, streamed);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Any finite input, however loud, quiet or odd (the capture path
        /// clamps to [-1, 1], but the front end must not depend on it), gives
        /// finite, non-negative columns, and how the samples are split into
        /// pushes changes nothing.
        #[test]
        fn finite_in_finite_out_whatever_the_chunking(
            samples in proptest::collection::vec(
                proptest::prop_oneof![
                    -1f32..1.0,
                    -1e-6f32..1e-6,
                    proptest::sample::select(vec![0.0f32, 1.0, -1.0, 1e6, -1e6, f32::MIN_POSITIVE]),
                ],
                FRAME_SIZE..FRAME_SIZE + 6 * HOP_SIZE,
            ),
            cuts in proptest::collection::vec(1usize..3000, 0..6),
        ) {
            let whole = spectrogram(&samples);
            proptest::prop_assert_eq!(whole.len(), n_frames(samples.len()) * N_BANDS);
            proptest::prop_assert!(whole.iter().all(|v| v.is_finite() && *v >= 0.0));
            let mut fe = Frontend::new();
            let mut chunked = Vec::new();
            let mut rest = samples.as_slice();
            for cut in cuts {
                let (a, b) = rest.split_at(cut.min(rest.len()));
                fe.push(a, |col, _| chunked.extend_from_slice(col));
                rest = b;
            }
            fe.push(rest, |col, _| chunked.extend_from_slice(col));
            proptest::prop_assert_eq!(chunked, whole);
        }
    }
}
