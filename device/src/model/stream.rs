//! The network pulsed over a stream of spectrogram columns.

use std::collections::VecDeque;

use tract_onnx::prelude::*;

use super::{Head, ModelError};
use crate::explain::N_MID;

/// The network on a stream of spectrogram columns (pulsed), keeping the
/// embeddings of the window in a ring.
#[derive(Debug)]
pub struct StreamRunner {
    pub(super) state: TypedSimpleState,
    pub(super) head: Head,
    /// Frames per pulse (= readings cadence).
    pub(super) hop: usize,
    /// Output lag of the pulsed network, receptive field - 1 (62).
    pub(super) delay: usize,
    /// Zero frames fed before the first real one.
    pub(super) pad: usize,
    pub(super) n_bands: usize,
    pub(super) dim: usize,
    /// Frames of the pulse being filled, `[hop, bands]`.
    pub(super) pending: Vec<f32>,
    pub(super) pending_frames: usize,
    /// Output rows produced so far (padded stream).
    pub(super) rows_out: u64,
    /// Real frames pushed.
    pub(super) frames: u64,
    /// Embeddings of the window's positions, oldest first.
    pub(super) ring: VecDeque<Vec<f32>>,
    pub(super) capacity: usize,
    /// Recycled rows, so that the steady state allocates no rows.
    pub(super) free: Vec<Vec<f32>>,
    /// Network time since the last `take_run_time`.
    pub(super) run_time: std::time::Duration,
    /// A partial pulse was flushed with zeros: the stream has ended.
    pub(super) flushed: bool,
}

impl StreamRunner {
    /// Frames per network run.
    pub fn hop_frames(&self) -> usize {
        self.hop
    }

    /// Positions (embeddings) a full window holds.
    pub fn window_positions(&self) -> usize {
        self.capacity
    }

    /// Positions in the ring now (`window_positions` once the window is full).
    pub fn positions(&self) -> usize {
        self.ring.len()
    }

    /// Real frames pushed so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Time spent in the network since the last call.
    pub fn take_run_time(&mut self) -> std::time::Duration {
        std::mem::take(&mut self.run_time)
    }

    /// Adds one column; runs the network whenever a pulse is complete.
    pub fn push_column(&mut self, column: &[f32]) -> Result<(), ModelError> {
        if self.flushed {
            return Err(ModelError::Run("the stream was already flushed".into()));
        }
        self.frames += 1;
        self.push_frame(column)
    }

    pub(super) fn push_frame(&mut self, column: &[f32]) -> Result<(), ModelError> {
        let at = self.pending_frames * self.n_bands;
        self.pending[at..at + self.n_bands].copy_from_slice(column);
        self.pending_frames += 1;
        if self.pending_frames == self.hop {
            self.run_pulse(None)?;
        }
        Ok(())
    }

    /// One network run on the pending pulse (zero-filled if partial); keeps
    /// the rows of real positions below `limit` (all real ones if `None`).
    fn run_pulse(&mut self, limit: Option<u64>) -> Result<(), ModelError> {
        self.pending[self.pending_frames * self.n_bands..].fill(0.0);
        let started = std::time::Instant::now();
        let tensor = Tensor::from_shape(&[1, self.hop, self.n_bands], &self.pending)
            .map_err(|e| ModelError::Run(format!("{e:#}")))?;
        let out = self
            .state
            .run(tvec!(tensor.into()))
            .map_err(|e| ModelError::Run(format!("{e:#}")))?;
        let view = out[0]
            .try_as_plain_ram()
            .map_err(|e| ModelError::Run(format!("{e:#}")))?;
        let emb = view
            .as_slice::<f32>()
            .map_err(|e| ModelError::Run(format!("{e:#}")))?;
        for (i, row) in emb.chunks_exact(self.dim).enumerate() {
            // Output row r is the embedding of padded position r - delay.
            let r = self.rows_out + i as u64;
            let Some(position) = r.checked_sub((self.delay + self.pad) as u64) else {
                continue;
            };
            if limit.is_some_and(|l| position >= l) {
                continue;
            }
            let mut v = self.free.pop().unwrap_or_default();
            v.clear();
            v.extend_from_slice(row);
            self.ring.push_back(v);
            if self.ring.len() > self.capacity {
                if let Some(old) = self.ring.pop_front() {
                    self.free.push(old);
                }
            }
        }
        self.rows_out += self.hop as u64;
        self.pending_frames = 0;
        self.run_time += started.elapsed();
        Ok(())
    }

    /// End of stream: runs the partial pulse, zero-filled, keeping only
    /// positions whose frames all arrived. No frames may follow.
    pub fn flush(&mut self) -> Result<(), ModelError> {
        if self.pending_frames > 0 && !self.flushed {
            let limit = self.frames.saturating_sub(self.delay as u64);
            self.run_pulse(Some(limit))?;
            self.flushed = true;
        }
        Ok(())
    }

    /// Mean embedding over the ring, float64.
    pub fn embedding_mean(&self) -> Vec<f64> {
        let mut mean = vec![0f64; self.dim];
        for row in &self.ring {
            for (m, &x) in mean.iter_mut().zip(row) {
                *m += f64::from(x);
            }
        }
        let n = self.ring.len().max(1) as f64;
        mean.iter_mut().for_each(|m| *m /= n);
        mean
    }

    /// The head applied to the window's mean embedding.
    pub fn mid_level(&self) -> [f32; N_MID] {
        self.head.apply(&self.embedding_mean())
    }

    /// The window's mid-level values, and how far it lies from the training
    /// windows with whether that is within what the model has seen (None: the
    /// model records no statistics); one pass over the ring for both.
    pub fn read(&self) -> ([f32; N_MID], Option<(f32, bool)>) {
        let mean = self.embedding_mean();
        let novelty = self.head.novelty.as_ref().map(|n| {
            let d = n.distance(&mean);
            (d as f32, d <= n.threshold)
        });
        (self.head.apply(&mean), novelty)
    }
}
