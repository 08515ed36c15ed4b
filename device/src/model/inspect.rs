//! What tract made of the network: optimised graphs, matrix kernels, cost.

use tract_onnx::prelude::*;
use tract_pulse::internal::PulsedModelExt;

use super::{onnx_err, Model, ModelError};
use crate::frontend;

impl Model {
    /// The optimised graph for `[1, frames, bands]` (inspection: kernels, cost).
    pub fn optimized_graph(&self, frames: usize) -> Result<TypedModel, ModelError> {
        Ok(self.plan(frames, &["embedding"])?.model().clone())
    }

    /// The matrix-multiply kernel of every `OptMatMul` in the optimised plan
    /// for `frames` frames, e.g. `avx512vnni_mmm_i32_8x8` (int8) or
    /// `avx512_mmm_f32_16x12` (f32): what "int8" means is in the plan, not the file.
    pub fn matmul_kernels(&self, frames: usize) -> Result<Vec<String>, ModelError> {
        let graph = self.optimized_graph(frames)?;
        let mut kernels = Vec::new();
        for node in graph.nodes() {
            if node.op.name() != "OptMatMul" {
                continue;
            }
            let info = node.op.info().map_err(onnx_err(&self.origin))?;
            let kernel = info
                .iter()
                .find_map(|line| {
                    let start = line.find("with [")? + 6;
                    let end = line[start..].find(']')? + start;
                    Some(line[start..end].to_string())
                })
                .unwrap_or_else(|| "?".into());
            kernels.push(kernel);
        }
        Ok(kernels)
    }

    /// The decluttered (not yet optimised) graph, whose ops report their cost.
    pub fn decluttered_graph(&self, frames: usize) -> Result<TypedModel, ModelError> {
        self.graph
            .clone()
            .with_input_fact(0, f32::fact([1, frames, frontend::N_BANDS]).into())
            .and_then(|m| m.with_outputs_by_name(["embedding"]))
            .and_then(|m| m.into_typed())
            .and_then(|m| m.into_decluttered())
            .map_err(onnx_err(&self.origin))
    }

    /// Multiply-accumulates of one run on `frames` frames (embedding only).
    pub fn macs(&self, frames: usize) -> Result<u64, ModelError> {
        cost_fma(&self.decluttered_graph(frames)?, &self.origin)
    }

    /// Multiply-accumulates of one pulse of `hop_frames` frames in the streaming runner.
    pub fn macs_per_pulse(&self, hop_frames: usize) -> Result<u64, ModelError> {
        let typed = self
            .pulsed_graph(hop_frames)
            .and_then(|p| p.into_typed())
            .map_err(onnx_err(&self.origin))?;
        cost_fma(&typed, &self.origin)
    }
}

/// Sum of the multiply-accumulates tract's ops report for a typed graph.
fn cost_fma(graph: &TypedModel, origin: &str) -> Result<u64, ModelError> {
    let mut total = 0u64;
    for node in graph.nodes() {
        let inputs = graph.node_input_facts(node.id).map_err(onnx_err(origin))?;
        let costs = node.op.cost(&inputs).map_err(onnx_err(origin))?;
        for (cost, n) in costs {
            if let tract_onnx::tract_core::ops::Cost::FMA(_) = cost {
                total += n.to_i64().unwrap_or(0).max(0) as u64;
            }
        }
    }
    Ok(total)
}
