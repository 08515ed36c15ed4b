//! The network on one whole window: all three outputs.

use tract_onnx::prelude::*;

use super::ModelError;
use crate::explain::{N_EMO, N_MID};
use crate::frontend;

/// Outputs of a whole-window run.
#[derive(Debug, Clone)]
pub struct WindowOutput {
    /// `[positions, dim]`, row-major.
    pub embedding: Vec<f32>,
    pub dim: usize,
    pub mid_level: [f32; N_MID],
    pub emotions: [f32; N_EMO],
}

impl WindowOutput {
    pub fn positions(&self) -> usize {
        self.embedding.len() / self.dim
    }

    /// Mean embedding over positions, float64.
    pub fn embedding_mean(&self) -> Vec<f64> {
        let mut mean = vec![0f64; self.dim];
        for row in self.embedding.chunks_exact(self.dim) {
            for (m, &x) in mean.iter_mut().zip(row) {
                *m += f64::from(x);
            }
        }
        let n = self.positions().max(1) as f64;
        mean.iter_mut().for_each(|m| *m /= n);
        mean
    }
}

/// The network on a whole window of fixed length.
#[derive(Debug)]
pub struct WindowRunner {
    pub(super) state: TypedSimpleState,
    pub(super) frames: usize,
    pub(super) dim: usize,
}

impl WindowRunner {
    /// Runs on `[frames, bands]` row-major.
    pub fn run(&mut self, spectrogram: &[f32]) -> Result<WindowOutput, ModelError> {
        let input = Tensor::from_shape(&[1, self.frames, frontend::N_BANDS], spectrogram)
            .map_err(|e| ModelError::Run(format!("{e:#}")))?;
        let out = self
            .state
            .run(tvec!(input.into()))
            .map_err(|e| ModelError::Run(format!("{e:#}")))?;
        let slice = |i: usize| -> Result<Vec<f32>, ModelError> {
            out[i]
                .try_as_plain_ram()
                .and_then(|v| v.as_slice::<f32>().map(|s| s.to_vec()))
                .map_err(|e| ModelError::Run(format!("{e:#}")))
        };
        let mid = slice(1)?;
        let emo = slice(2)?;
        if mid.len() != N_MID || emo.len() != N_EMO {
            return Err(ModelError::Run(format!(
                "outputs mid_level / emotions have {} / {} values, expected {N_MID} / {N_EMO}",
                mid.len(),
                emo.len()
            )));
        }
        Ok(WindowOutput {
            embedding: slice(0)?,
            dim: self.dim,
            mid_level: std::array::from_fn(|i| mid[i]),
            emotions: std::array::from_fn(|i| emo[i]),
        })
    }
}
