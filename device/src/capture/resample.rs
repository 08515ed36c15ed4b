//! Mono resampling to the model rate: a polyphase FIR (Kaiser-windowed sinc)
//! cut to what the front end reads, streaming, without allocation once the
//! largest input block was seen. Output sample 0 is input sample 0 (the filter
//! is centred, so the output waits for half the filter's input, under 1 ms).
//!
//! Why not rubato: the front end's bands end at 8 kHz
//! ([`BANDS_FMAX_HZ`]), so the filter only has to keep 0-8 kHz flat and stop
//! what would fold back below 8 kHz. At 22.05 kHz out that is a transition
//! from 8 to 14.05 kHz, 40 taps at 48 kHz in. A general resampler keeps the
//! whole band up to the output's Nyquist frequency and pays for it: measured
//! as a Cortex-A72 (qemu guest instructions per second of 48 kHz input,
//! bench/resampler.md), rubato 1.0's FFT resampler 4.8 M, its sinc resampler
//! with 48 taps 3.2 M (mostly per-sample bookkeeping), this one 1.6 M.

use crate::frontend::BANDS_FMAX_HZ;

use super::CaptureError;

/// Rejection of everything that would alias into the front end's bands.
const STOP_ATTENUATION_DB: f64 = 80.0;
/// Filter phases at most. Common rates need few (48 kHz: 147, 44.1 kHz: 1);
/// an odd rate (say 44 056 Hz) is placed on a grid of 1/1024 input sample,
/// a timing error far below what 8 kHz content can show.
const MAX_PHASES: u64 = 1024;
/// Taps are a multiple of this, so the dot product vectorises.
const LANES: usize = 8;

/// Streaming mono resampler; a pass-through when the rates are equal.
pub struct MonoResampler {
    fir: Option<Polyphase>,
    /// Input samples seen and output samples produced (for the final flush).
    input_total: u64,
    output_total: u64,
    from_hz: u32,
    to_hz: u32,
}

impl MonoResampler {
    pub fn new(from_hz: u32, to_hz: u32) -> Result<Self, CaptureError> {
        if from_hz == 0 || to_hz == 0 {
            return Err(CaptureError::Resample {
                from_hz,
                message: format!("cannot resample between {from_hz} Hz and {to_hz} Hz"),
            });
        }
        Ok(Self {
            fir: (from_hz != to_hz).then(|| Polyphase::new(from_hz, to_hz)),
            input_total: 0,
            output_total: 0,
            from_hz,
            to_hz,
        })
    }

    /// Resamples `input`, appending ready output to `out`.
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) -> Result<(), CaptureError> {
        self.input_total += input.len() as u64;
        let before = out.len();
        match &mut self.fir {
            None => out.extend_from_slice(input),
            Some(fir) => fir.process(input, out),
        }
        self.output_total += (out.len() - before) as u64;
        Ok(())
    }

    /// End of input: the last samples come out (the input is taken as silent
    /// after its end) and the output has the input's duration.
    pub fn flush(&mut self, out: &mut Vec<f32>) -> Result<(), CaptureError> {
        let Some(fir) = &mut self.fir else {
            return Ok(());
        };
        let expected = ((u128::from(self.input_total) * u128::from(self.to_hz)
            + u128::from(self.from_hz / 2))
            / u128::from(self.from_hz)) as u64;
        let before = out.len();
        fir.finish(expected.saturating_sub(self.output_total), out);
        self.output_total += (out.len() - before) as u64;
        Ok(())
    }
}

/// The FIR proper. Output `n` lies at input position `n * m / l`; it is the
/// dot product of `taps` consecutive input samples around that position with
/// the filter phase for the position's fraction.
struct Polyphase {
    /// The rate ratio in lowest terms: output rate / input rate = `l / m`.
    l: u64,
    m: u64,
    /// Phases (`l`, or [`MAX_PHASES`] for odd rates) and taps per phase.
    phases: u64,
    taps: usize,
    /// `phases * taps` coefficients, phase by phase, ordered like the input.
    table: Vec<f32>,
    /// Input samples still needed; `buf[0]` is input sample `base`
    /// (negative at the start: the silence before the input).
    buf: Vec<f32>,
    base: i64,
    /// Where the next output lies: input sample `whole` plus `frac / l`.
    /// Stepped by `m / l` per output (a 128-bit division per output cost
    /// more than the filter).
    whole: i64,
    frac: u64,
}

impl Polyphase {
    fn new(from_hz: u32, to_hz: u32) -> Self {
        let (from, to) = (f64::from(from_hz), f64::from(to_hz));
        let g = gcd(u64::from(from_hz), u64::from(to_hz));
        let (l, m) = (u64::from(to_hz) / g, u64::from(from_hz) / g);
        let phases = l.min(MAX_PHASES);
        // Keep 0..pass flat; stop from where a frequency would fold to below
        // `pass` (downsampling: aliases around the output's Nyquist frequency;
        // upsampling: images around the input's).
        let pass = BANDS_FMAX_HZ.min(0.45 * from.min(to));
        let stop = from.min(to) - pass;
        let cutoff = 0.5 * (pass + stop) / from; // cycles per input sample
        let transition = (stop - pass) / from;
        // Kaiser's estimates of the length and the window's shape.
        let a = STOP_ATTENUATION_DB;
        let beta = 0.1102 * (a - 8.7);
        let min_taps = ((a - 7.95) / (14.36 * transition)).ceil() as usize;
        let taps = min_taps.div_ceil(LANES).max(1) * LANES;

        // Prototype at `phases` times the input rate, centred on `half`.
        let len = taps as u64 * phases;
        let half = (len / 2) as f64;
        let i0_beta = bessel_i0(beta);
        let prototype = |k: u64| -> f64 {
            let offset = k as f64 - half;
            let t = offset / phases as f64; // in input samples
            let x = 2.0 * cutoff * t;
            let sinc = if x == 0.0 {
                1.0
            } else {
                (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x)
            };
            let r = offset / half;
            let window = bessel_i0(beta * (1.0 - r * r).max(0.0).sqrt()) / i0_beta;
            2.0 * cutoff * sinc * window
        };
        let mut table = vec![0f32; len as usize];
        for (q, phase) in table.chunks_exact_mut(taps).enumerate() {
            // Tap i multiplies input sample (position's integer part) - taps/2 + 1 + i.
            let coeffs: Vec<f64> = (0..taps as u64)
                .map(|i| prototype(q as u64 + phases * (taps as u64 - 1 - i)))
                .collect();
            // Each phase passes DC exactly.
            let sum: f64 = coeffs.iter().sum();
            for (dst, c) in phase.iter_mut().zip(&coeffs) {
                *dst = (c / sum) as f32;
            }
        }
        let mut buf = Vec::with_capacity(taps + 8192);
        buf.resize(taps, 0.0);
        Self {
            l,
            m,
            phases,
            taps,
            table,
            buf,
            base: -(taps as i64),
            whole: 0,
            frac: 0,
        }
    }

    /// For the output at `whole + frac / l`: the first input sample it reads
    /// and its phase.
    fn locate(&self, whole: i64, frac: u64) -> (i64, usize) {
        let (whole, q) = if self.phases == self.l {
            (whole, frac)
        } else {
            // Nearest point of the phase grid; u64 cannot overflow (l <= 22050).
            let q = (frac * self.phases + self.l / 2) / self.l;
            if q == self.phases {
                (whole + 1, 0)
            } else {
                (whole, q)
            }
        };
        (whole - self.taps as i64 / 2 + 1, q as usize)
    }

    /// Moves `(whole, frac)` on by `steps` outputs.
    fn advance(&self, whole: i64, frac: u64, steps: u64) -> (i64, u64) {
        let total = frac + steps % self.l * self.m;
        (
            whole + (steps / self.l * self.m + total / self.l) as i64,
            total % self.l,
        )
    }

    fn process(&mut self, input: &[f32], out: &mut Vec<f32>) {
        self.buf.extend_from_slice(input);
        self.run(out, u64::MAX);
    }

    /// Computes outputs while their input is there (at most `limit` of them),
    /// then forgets the input no later output reads.
    fn run(&mut self, out: &mut Vec<f32>, limit: u64) {
        let taps = self.taps;
        let (step_whole, step_frac) = ((self.m / self.l) as i64, self.m % self.l);
        let (mut whole, mut frac) = (self.whole, self.frac);
        let mut produced = 0;
        while produced < limit {
            let (first, q) = self.locate(whole, frac);
            // Past the input there is (first >= end): wait for more.
            let Some(x) = self
                .buf
                .get((first - self.base) as usize..)
                .and_then(|rest| rest.get(..taps))
            else {
                break;
            };
            out.push(dot(x, &self.table[q * taps..(q + 1) * taps]));
            whole += step_whole;
            frac += step_frac;
            if frac >= self.l {
                frac -= self.l;
                whole += 1;
            }
            produced += 1;
        }
        (self.whole, self.frac) = (whole, frac);
        let (first, _) = self.locate(whole, frac);
        let keep_from = (first - self.base).clamp(0, self.buf.len() as i64) as usize;
        self.buf.drain(..keep_from);
        self.base += keep_from as i64;
    }

    /// Appends the silence after the input and produces the `remaining` outputs.
    fn finish(&mut self, remaining: u64, out: &mut Vec<f32>) {
        if remaining == 0 {
            return;
        }
        let (whole, frac) = self.advance(self.whole, self.frac, remaining - 1);
        let (first, _) = self.locate(whole, frac);
        let end = self.base + self.buf.len() as i64;
        let silence = (first + self.taps as i64 - end).max(0) as usize;
        self.buf.resize(self.buf.len() + silence, 0.0);
        self.run(out, remaining);
    }
}

/// Dot product of two slices whose length is a multiple of [`LANES`]. The
/// separate accumulators let the compiler use vector registers (two of four
/// lanes each; a pairwise final sum made it choose two lanes instead).
fn dot(x: &[f32], h: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    for (xs, hs) in x.chunks_exact(LANES).zip(h.chunks_exact(LANES)) {
        for ((a, &x), &h) in acc.iter_mut().zip(xs).zip(hs) {
            *a = multiply_add(x, h, *a);
        }
    }
    acc.iter().sum()
}

/// `x * h + a`: fused where every CPU has it (aarch64), one instruction
/// instead of two; elsewhere `mul_add` may be a libm call.
#[inline(always)]
fn multiply_add(x: f32, h: f32, a: f32) -> f32 {
    #[cfg(target_arch = "aarch64")]
    return x.mul_add(h, a);
    #[cfg(not(target_arch = "aarch64"))]
    return x * h + a;
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Modified Bessel function of the first kind, order 0 (power series).
fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let q = x * x / 4.0;
    for k in 1..64 {
        term *= q / (k * k) as f64;
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    fn sine(rate: u32, hz: f64, seconds: f64) -> Vec<f32> {
        (0..(f64::from(rate) * seconds) as usize)
            .map(|i| (2.0 * PI * hz * i as f64 / f64::from(rate)).sin() as f32)
            .collect()
    }

    fn resample(from: u32, input: &[f32], block: usize) -> Vec<f32> {
        let mut r = MonoResampler::new(from, 22050).unwrap();
        let mut out = Vec::new();
        for b in input.chunks(block) {
            r.process(b, &mut out).unwrap();
        }
        r.flush(&mut out).unwrap();
        out
    }

    /// Largest difference of `out` (at 22050 Hz) from a sine of `hz` starting at
    /// sample 0, away from the first and last 100 samples (the edges' silence).
    fn error_against_sine(out: &[f32], hz: f64) -> f32 {
        let want = sine(22050, hz, out.len() as f64 / 22050.0);
        out.iter()
            .zip(&want)
            .take(out.len() - 100)
            .skip(100)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max)
    }

    /// Amplitude of `hz` in `x` (at 22050 Hz), by correlation over whole cycles.
    fn amplitude(x: &[f32], hz: f64) -> f64 {
        let (mut c, mut s) = (0.0, 0.0);
        for (i, &v) in x.iter().enumerate() {
            let w = 2.0 * PI * hz * i as f64 / 22050.0;
            c += f64::from(v) * w.cos();
            s += f64::from(v) * w.sin();
        }
        2.0 * (c * c + s * s).sqrt() / x.len() as f64
    }

    #[test]
    fn resamples_48k_to_22050_in_phase_and_in_length() {
        let input = sine(48000, 440.0, 2.0);
        let out = resample(48000, &input, 480);
        assert_eq!(out.len(), 44100);
        // away from the edges the output is the same sine, with no delay
        let err = error_against_sine(&out, 440.0);
        assert!(err < 1e-3, "{err}");
    }

    #[test]
    fn block_sizes_do_not_change_the_output() {
        let input = sine(44100, 1000.0, 0.5);
        let whole = resample(44100, &input, input.len());
        for block in [1, 7, 441, 4096] {
            assert_eq!(resample(44100, &input, block), whole, "block {block}");
        }
    }

    #[test]
    fn the_bands_pass_and_what_would_fold_into_them_is_stopped() {
        for from in [44100, 48000, 96000, 32000] {
            // 0..8 kHz within 0.05 dB
            for hz in [60.0, 500.0, 2000.0, 5000.0, 7000.0, 8000.0] {
                let out = resample(from, &sine(from, hz, 0.5), 1024);
                let a = amplitude(&out[1000..10000], hz);
                let db = 20.0 * a.log10();
                assert!(db.abs() < 0.05, "{from} Hz input, {hz} Hz: {db:.3} dB");
            }
            // tones that would land below 8 kHz are 80 dB down
            let mut hz = 14100.0;
            while hz < f64::from(from) / 2.0 - 50.0 {
                let out = resample(from, &sine(from, hz, 0.5), 1024);
                let folded = (hz - 22050.0 * (hz / 22050.0).round()).abs();
                if folded <= 8000.0 {
                    let db = 20.0 * amplitude(&out[1000..10000], folded).log10();
                    assert!(
                        db < -75.0,
                        "{from} Hz input, {hz} Hz folds to {folded}: {db:.1} dB"
                    );
                }
                hz += 777.0;
            }
        }
    }

    #[test]
    fn an_odd_rate_stays_in_phase() {
        // gcd(44056, 22050) = 2: 11025 exact phases would be needed; the grid of
        // 1024 is off by at most 1/2048 input sample.
        let input = sine(44056, 1000.0, 1.0);
        let out = resample(44056, &input, 1000);
        assert_eq!(out.len(), 22050);
        let err = error_against_sine(&out, 1000.0);
        assert!(err < 2e-3, "{err}");
    }

    #[test]
    fn equal_rates_pass_through() {
        let mut r = MonoResampler::new(22050, 22050).unwrap();
        let mut out = Vec::new();
        r.process(&[0.5, -0.5], &mut out).unwrap();
        r.flush(&mut out).unwrap();
        assert_eq!(out, vec![0.5, -0.5]);
    }

    #[test]
    fn a_zero_rate_is_an_error() {
        assert!(MonoResampler::new(0, 22050).is_err());
    }
}
