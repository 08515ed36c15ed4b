//! Mono resampling to the model rate with rubato's synchronous FFT resampler,
//! in a streaming form: feed any block size, get output as it is ready, with
//! the resampler's delay removed so that output sample 0 is input sample 0.

use audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler};

use super::CaptureError;

/// Input frames per resampler call.
const CHUNK: usize = 1024;

/// Streaming mono resampler; a pass-through when the rates are equal.
pub struct MonoResampler {
    inner: Option<Fft<f32>>,
    from_hz: u32,
    pending: Vec<f32>,
    out_buf: Vec<f32>,
    /// Output samples still to discard (the resampler's delay).
    skip: usize,
    /// Input samples seen and output samples produced (for the final flush).
    input_total: u64,
    output_total: u64,
    ratio: f64,
}

impl MonoResampler {
    pub fn new(from_hz: u32, to_hz: u32) -> Result<Self, CaptureError> {
        let err = |e: &dyn std::fmt::Display| CaptureError::Resample {
            from_hz,
            message: e.to_string(),
        };
        let inner = if from_hz == to_hz {
            None
        } else {
            Some(
                Fft::<f32>::new(
                    from_hz as usize,
                    to_hz as usize,
                    CHUNK,
                    1,
                    1,
                    FixedSync::Input,
                )
                .map_err(|e| err(&e))?,
            )
        };
        let (out_len, skip) = match &inner {
            Some(r) => (r.output_frames_max(), r.output_delay()),
            None => (0, 0),
        };
        Ok(Self {
            inner,
            from_hz,
            pending: Vec::with_capacity(2 * CHUNK),
            out_buf: vec![0.0; out_len],
            skip,
            input_total: 0,
            output_total: 0,
            ratio: f64::from(to_hz) / f64::from(from_hz),
        })
    }

    /// Resamples `input`, appending ready output to `out`.
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) -> Result<(), CaptureError> {
        self.input_total += input.len() as u64;
        if self.inner.is_none() {
            out.extend_from_slice(input);
            self.output_total += input.len() as u64;
            return Ok(());
        }
        self.pending.extend_from_slice(input);
        let mut offset = 0;
        while self.pending.len() - offset >= CHUNK {
            self.run_chunk(offset, None, out)?;
            offset += CHUNK;
        }
        self.pending.drain(..offset);
        Ok(())
    }

    /// End of input: pushes the remaining samples and the resampler's tail through.
    pub fn flush(&mut self, out: &mut Vec<f32>) -> Result<(), CaptureError> {
        if self.inner.is_none() {
            return Ok(());
        }
        let expected = (self.input_total as f64 * self.ratio).round() as u64;
        let mut guard = 0;
        while self.output_total < expected && guard < 64 {
            let partial = self.pending.len().min(CHUNK);
            self.pending.resize(CHUNK, 0.0);
            self.run_chunk(0, Some(partial), out)?;
            self.pending.clear();
            guard += 1;
        }
        if self.output_total > expected {
            let extra = (self.output_total - expected) as usize;
            out.truncate(out.len().saturating_sub(extra));
            self.output_total = expected;
        }
        Ok(())
    }

    fn run_chunk(
        &mut self,
        offset: usize,
        partial: Option<usize>,
        out: &mut Vec<f32>,
    ) -> Result<(), CaptureError> {
        let from_hz = self.from_hz;
        let err = |e: &dyn std::fmt::Display| CaptureError::Resample {
            from_hz,
            message: e.to_string(),
        };
        let Some(r) = self.inner.as_mut() else {
            return Ok(());
        };
        let input = InterleavedSlice::new(&self.pending[offset..offset + CHUNK], 1, CHUNK)
            .map_err(|e| err(&e))?;
        let cap = self.out_buf.len();
        let mut output =
            InterleavedSlice::new_mut(&mut self.out_buf[..], 1, cap).map_err(|e| err(&e))?;
        let indexing = Indexing {
            input_offset: 0,
            output_offset: 0,
            active_channels_mask: None,
            partial_len: partial,
        };
        let (_, written) = r
            .process_into_buffer(&input, &mut output, Some(&indexing))
            .map_err(|e| err(&e))?;
        let produced = &self.out_buf[..written];
        let skip = self.skip.min(produced.len());
        self.skip -= skip;
        out.extend_from_slice(&produced[skip..]);
        self.output_total += (produced.len() - skip) as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: u32, hz: f32, seconds: f32) -> Vec<f32> {
        (0..(rate as f32 * seconds) as usize)
            .map(|i| (2.0 * std::f32::consts::PI * hz * i as f32 / rate as f32).sin())
            .collect()
    }

    #[test]
    fn resamples_48k_to_22050_in_phase_and_in_length() {
        let input = sine(48000, 440.0, 2.0);
        let mut r = MonoResampler::new(48000, 22050).unwrap();
        let mut out = Vec::new();
        for block in input.chunks(480) {
            r.process(block, &mut out).unwrap();
        }
        r.flush(&mut out).unwrap();
        assert_eq!(out.len(), 44100);
        let want = sine(22050, 440.0, 2.0);
        // away from the edges the output is the same sine, delay removed
        let err = out[2000..40000]
            .iter()
            .zip(&want[2000..40000])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(err < 0.01, "{err}");
    }

    #[test]
    fn equal_rates_pass_through() {
        let mut r = MonoResampler::new(22050, 22050).unwrap();
        let mut out = Vec::new();
        r.process(&[0.5, -0.5], &mut out).unwrap();
        r.flush(&mut out).unwrap();
        assert_eq!(out, vec![0.5, -0.5]);
    }
}
