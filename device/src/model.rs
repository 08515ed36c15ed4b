//! The network, on tract: load a model directory (or the built-in model),
//! check it against its manifest, optimise it once, and run it.
//!
//! `Model::load` reads `metadata.json`, checks the ONNX file's sha256 against
//! it, checks the front-end parameters, band count and head against the
//! network, and keeps the parsed graph. From it come two runners, each with
//! concrete shapes and optimised once:
//!
//! * [`StreamRunner`]: the network on the newest `hop + 62` frames only. The
//!   network has no padding over time, so the `hop` newest embeddings are the
//!   same as in any longer input; a ring keeps the embeddings of the window,
//!   and the linear head from `metadata.json` is applied to their mean. This
//!   gives the whole window's values at about `(hop + 62) / window` of its cost.
//! * [`WindowRunner`]: the network on a whole window, all three outputs (tests,
//!   benchmarks, and the check that the manifest's head is the network's).
//!
//! What the numbers mean and how they are explained is left to `explain`.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};
use tract_hir::infer::Factoid;
use tract_onnx::prelude::*;
use tract_pulse::internal::{PulsedModel, PulsedModelExt};

use crate::config::Precision;
use crate::explain::{Linear, N_EMO, N_MID};
use crate::frontend;
use earshot_protocol::{Emotions, MidLevel};

/// Why a model cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    #[error(
        "model file {path}: {source}; a model directory holds metadata.json, model.onnx and \
         model.int8.onnx as written by `python -m earshot_train export` (leave out --model \
         to use the built-in model)"
    )]
    Missing {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "this earshotd was built without models/edge-v4, so it has no built-in model; \
         pass --model DIR (a directory with metadata.json, model.onnx, model.int8.onnx)"
    )]
    NotBuiltIn,
    #[error("model metadata {path}: {message}; re-export the model with `python -m earshot_train export`")]
    Metadata { path: String, message: String },
    #[error(
        "{path}: sha256 {got} does not match metadata.json ({expected}); the model and its \
         metadata.json come from different exports: copy the whole models/<id>/ directory"
    )]
    Checksum {
        path: String,
        expected: String,
        got: String,
    },
    #[error("{path}: not a usable ONNX model: {message}; re-export it with `python -m earshot_train export`")]
    Onnx { path: String, message: String },
    #[error("{path}: {message}")]
    Shape { path: String, message: String },
    #[error(
        "{path}: metadata.json does not describe this network: {message}; the model and its \
         metadata.json come from different exports"
    )]
    Mismatch { path: String, message: String },
    #[error("running the model: {0}")]
    Run(String),
}

fn onnx_err(path: &str) -> impl Fn(TractError) -> ModelError + '_ {
    move |e| ModelError::Onnx {
        path: path.to_string(),
        message: format!("{e:#}"),
    }
}

/// `metadata.json`, the manifest written beside the ONNX files (the keys the daemon uses).
#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    pub model_id: String,
    pub mid_level_names: Vec<String>,
    pub emotion_names: Vec<String>,
    pub input: InputMeta,
    pub frontend: FrontendMeta,
    pub head: HeadMeta,
    pub linear: LinearMeta,
    pub mid_level_means: Vec<f64>,
    #[serde(default)]
    pub macs_per_window: Option<u64>,
    pub files: HashMap<String, FileMeta>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct InputMeta {
    pub window_frames: usize,
    pub receptive_field_frames: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FrontendMeta {
    pub sample_rate_hz: u32,
    pub frame_size: usize,
    pub hop_size: usize,
    pub n_bands: usize,
    pub input_scale: f64,
    pub filterbank_bins: Vec<usize>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HeadMeta {
    pub mid_weight: Vec<Vec<f32>>,
    pub mid_bias: Vec<f32>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LinearMeta {
    pub weight: Vec<Vec<f32>>,
    pub bias: Vec<f32>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FileMeta {
    pub sha256: String,
    pub bytes: u64,
}

/// Where the model comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// `models/edge-v4`, compiled into the binary.
    BuiltIn,
    Dir(PathBuf),
}

#[cfg(earshot_embedded_model)]
mod embedded {
    pub const METADATA: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../models/edge-v4/metadata.json"
    ));
    pub const F32: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../models/edge-v4/model.onnx"
    ));
    pub const INT8: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../models/edge-v4/model.int8.onnx"
    ));
}

/// The linear head from `metadata.json`: embedding mean -> mid-level.
#[derive(Debug, Clone)]
pub struct Head {
    pub weight: Vec<[f32; N_MID]>,
    pub bias: [f32; N_MID],
}

impl Head {
    /// `mid = W · e + b` in float64 accumulation.
    pub fn apply(&self, embedding_mean: &[f64]) -> [f32; N_MID] {
        std::array::from_fn(|m| {
            let dot: f64 = self
                .weight
                .iter()
                .zip(embedding_mean)
                .map(|(w, &e)| f64::from(w[m]) * e)
                .sum();
            (dot + f64::from(self.bias[m])) as f32
        })
    }
}

/// A loaded, checked model; runners are built from it.
#[derive(Debug)]
pub struct Model {
    meta: Metadata,
    precision: Precision,
    /// The ONNX file, for messages.
    origin: String,
    graph: InferenceModel,
    head: Head,
    linear: Linear,
    embedding_dim: usize,
}

impl Model {
    /// Loads, verifies and parses a model at the given precision.
    pub fn load(source: &ModelSource, precision: Precision) -> Result<Self, ModelError> {
        let file = match precision {
            Precision::F32 => "model.onnx",
            Precision::Int8 => "model.int8.onnx",
        };
        let (meta_origin, meta_bytes, origin, onnx) = match source {
            ModelSource::Dir(dir) => {
                let read = |name: &str| {
                    let path = dir.join(name);
                    std::fs::read(&path).map_err(|source| ModelError::Missing { path, source })
                };
                (
                    dir.join("metadata.json").display().to_string(),
                    read("metadata.json")?,
                    dir.join(file).display().to_string(),
                    read(file)?,
                )
            }
            ModelSource::BuiltIn => {
                let (m, o) = builtin(precision)?;
                (
                    "<built-in>/metadata.json".to_string(),
                    m.to_vec(),
                    format!("<built-in>/{file}"),
                    o.to_vec(),
                )
            }
        };
        let meta: Metadata =
            serde_json::from_slice(&meta_bytes).map_err(|e| ModelError::Metadata {
                path: meta_origin.clone(),
                message: e.to_string(),
            })?;
        let (head, linear) = check_metadata(&meta, &meta_origin)?;
        let expected = meta.files.get(file).ok_or_else(|| ModelError::Metadata {
            path: meta_origin.clone(),
            message: format!("`files` has no entry for {file}"),
        })?;
        let got = hex(&Sha256::digest(&onnx));
        if !got.eq_ignore_ascii_case(&expected.sha256) {
            return Err(ModelError::Checksum {
                path: origin,
                expected: expected.sha256.clone(),
                got,
            });
        }
        // Intermediate shapes in the file (value_info) name the time axis
        // symbolically; tract derives them itself from the concrete input.
        let graph = tract_onnx::onnx()
            .with_ignore_value_info(true)
            .with_ignore_output_shapes(true)
            .model_for_read(&mut onnx.as_slice())
            .map_err(onnx_err(&origin))?;
        let embedding_dim = head.weight.len();
        let model = Self {
            meta,
            precision,
            origin,
            graph,
            head,
            linear,
            embedding_dim,
        };
        model.check_interface()?;
        model.check_head()?;
        Ok(model)
    }

    pub fn id(&self) -> &str {
        &self.meta.model_id
    }

    pub fn metadata(&self) -> &Metadata {
        &self.meta
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The 7 -> 8 layer and the mid-level means (for `explain`).
    pub fn linear(&self) -> &Linear {
        &self.linear
    }

    pub fn head(&self) -> &Head {
        &self.head
    }

    /// Frames one output position depends on (63).
    pub fn receptive_field(&self) -> usize {
        self.meta.input.receptive_field_frames
    }

    /// The training window in frames (313).
    pub fn window_frames(&self) -> usize {
        self.meta.input.window_frames
    }

    /// Declared input: `[1, T, bands]` with `bands` fixed.
    fn check_interface(&self) -> Result<(), ModelError> {
        let shape_err = |message: String| ModelError::Shape {
            path: self.origin.clone(),
            message,
        };
        let inputs = self.graph.input_outlets().map_err(onnx_err(&self.origin))?;
        if inputs.len() != 1 {
            return Err(shape_err(format!(
                "has {} inputs, the daemon feeds one (`spectrogram`, [1, T, {}])",
                inputs.len(),
                frontend::N_BANDS
            )));
        }
        let fact = self.graph.input_fact(0).map_err(onnx_err(&self.origin))?;
        let dims: Vec<Option<i64>> = fact
            .shape
            .dims()
            .map(|d| d.concretize().and_then(|d| d.as_i64()))
            .collect();
        if dims.len() != 3 {
            return Err(shape_err(format!(
                "input has rank {} ({fact:?}), expected [1, T, {}] (a spectrogram)",
                dims.len(),
                frontend::N_BANDS
            )));
        }
        if let Some(bands) = dims[2] {
            if bands != frontend::N_BANDS as i64 {
                return Err(shape_err(format!(
                    "expects {bands} bands per frame, the front end gives {}; use a model \
                     trained on this front end (models/FRONTEND.md)",
                    frontend::N_BANDS
                )));
            }
        }
        for name in ["embedding", "mid_level", "emotions"] {
            if self.graph.find_outlet_label(name).is_none()
                && self.graph.node_id_by_name(name).is_err()
            {
                return Err(shape_err(format!(
                    "has no output `{name}`; the daemon needs the outputs embedding, \
                     mid_level and emotions (models/FRONTEND.md)"
                )));
            }
        }
        Ok(())
    }

    /// Optimised plan for `[1, frames, bands]` with the given outputs.
    fn plan(&self, frames: usize, outputs: &[&str]) -> Result<Arc<TypedRunnableModel>, ModelError> {
        let shape_err = |e: TractError| ModelError::Shape {
            path: self.origin.clone(),
            message: format!(
                "cannot run on a [1, {frames}, {}] spectrogram: {e:#}",
                frontend::N_BANDS
            ),
        };
        self.graph
            .clone()
            .with_input_fact(0, f32::fact([1, frames, frontend::N_BANDS]).into())
            .and_then(|m| m.with_outputs_by_name(outputs))
            .and_then(|m| m.into_optimized())
            .map_err(shape_err)?
            .into_runnable()
            .map_err(onnx_err(&self.origin))
    }

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

    /// The embedding part of the network, time axis symbolic, pulsed by `hop_frames`.
    fn pulsed_graph(&self, hop_frames: usize) -> TractResult<PulsedModel> {
        let graph = self.graph.clone();
        let s = graph.sym("S");
        let typed = graph
            .with_input_fact(
                0,
                f32::fact([1.to_dim(), s.clone().into(), frontend::N_BANDS.to_dim()]).into(),
            )
            .and_then(|m| m.with_outputs_by_name(["embedding"]))
            .and_then(|m| m.into_typed())
            .and_then(|m| m.into_decluttered())?;
        PulsedModel::new(&typed, s, &hop_frames.to_dim())
    }

    /// The network pulsed by tract over time: each run takes `hop_frames`
    /// new frames and gives `hop_frames` embeddings, `receptive_field - 1`
    /// frames late; the convolutions keep what they need of earlier frames
    /// (tract's `Delay` ops), so nothing is computed twice.
    fn pulsed_plan(
        &self,
        hop_frames: usize,
    ) -> Result<(Arc<TypedRunnableModel>, usize), ModelError> {
        let shape_err = |e: TractError| ModelError::Shape {
            path: self.origin.clone(),
            message: format!("cannot stream it over time in pulses of {hop_frames} frames: {e:#}"),
        };
        let pulsed = self.pulsed_graph(hop_frames).map_err(shape_err)?;
        let fact = pulsed.output_fact(0).map_err(shape_err)?;
        let delay = fact.stream.as_ref().map(|st| st.delay).unwrap_or(0);
        if delay != self.receptive_field() - 1 {
            return Err(ModelError::Mismatch {
                path: self.origin.clone(),
                message: format!(
                    "its embedding lags the input by {delay} frames, metadata.json says the \
                     receptive field is {} frames",
                    self.receptive_field()
                ),
            });
        }
        let plan = pulsed
            .into_typed()
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(shape_err)?;
        Ok((plan, delay))
    }

    /// Multiply-accumulates of one pulse of `hop_frames` frames in the streaming runner.
    pub fn macs_per_pulse(&self, hop_frames: usize) -> Result<u64, ModelError> {
        let typed = self
            .pulsed_graph(hop_frames)
            .and_then(|p| p.into_typed())
            .map_err(onnx_err(&self.origin))?;
        cost_fma(&typed, &self.origin)
    }

    /// The streaming runner: readings every `hop_frames` frames over a window
    /// of `window_frames`.
    pub fn stream(
        &self,
        hop_frames: usize,
        window_frames: usize,
    ) -> Result<StreamRunner, ModelError> {
        let (plan, delay) = self.pulsed_plan(hop_frames)?;
        let state = plan
            .spawn()
            .map_err(|e| ModelError::Run(format!("{e:#}")))?;
        let positions = window_frames.saturating_sub(delay).max(1);
        // Zero frames in front make pulses end exactly where readings are due
        // (frame counts = window mod hop); positions that see them are dropped.
        let pad = (hop_frames - window_frames % hop_frames) % hop_frames;
        let mut runner = StreamRunner {
            state,
            head: self.head.clone(),
            hop: hop_frames,
            delay,
            pad,
            n_bands: frontend::N_BANDS,
            dim: self.embedding_dim,
            pending: vec![0.0; hop_frames * frontend::N_BANDS],
            pending_frames: 0,
            rows_out: 0,
            frames: 0,
            ring: VecDeque::with_capacity(positions + 1),
            capacity: positions,
            free: Vec::new(),
            run_time: std::time::Duration::ZERO,
            flushed: false,
        };
        let zeros = vec![0.0; frontend::N_BANDS];
        for _ in 0..pad {
            runner.push_frame(&zeros)?;
        }
        Ok(runner)
    }

    /// The whole-window runner for `frames` frames.
    pub fn window(&self, frames: usize) -> Result<WindowRunner, ModelError> {
        let plan = self.plan(frames, &["embedding", "mid_level", "emotions"])?;
        let state = plan
            .spawn()
            .map_err(|e| ModelError::Run(format!("{e:#}")))?;
        Ok(WindowRunner {
            state,
            frames,
            dim: self.embedding_dim,
        })
    }

    /// Runs the network once and checks that metadata's head and linear
    /// layer reproduce its `mid_level` and `emotions` outputs.
    fn check_head(&self) -> Result<(), ModelError> {
        let frames = self.receptive_field() + 8;
        let mut runner = self.window(frames)?;
        // A fixed, band- and time-varying input around typical spectrogram values.
        let spec: Vec<f32> = (0..frames * frontend::N_BANDS)
            .map(|i| 3.0 + 2.0 * ((i as f32) * 0.013).sin() * ((i % 149) as f32 * 0.07).cos())
            .collect();
        let out = runner.run(&spec)?;
        let mean = out.embedding_mean();
        let mid = self.head.apply(&mean);
        let emo = self.linear.emotions(&out.mid_level);
        let diff_mid = max_abs(&mid, &out.mid_level);
        let diff_emo = max_abs(&emo, &out.emotions);
        if diff_mid > 1e-3 || diff_emo > 1e-3 {
            return Err(ModelError::Mismatch {
                path: self.origin.clone(),
                message: format!(
                    "its head gives mid_level {:?} and emotions {:?}, the network {:?} and {:?} \
                     (max abs difference {diff_mid:.2e} / {diff_emo:.2e})",
                    mid, emo, out.mid_level, out.emotions
                ),
            });
        }
        Ok(())
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

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(earshot_embedded_model)]
fn builtin(precision: Precision) -> Result<(&'static [u8], &'static [u8]), ModelError> {
    Ok(match precision {
        Precision::F32 => (embedded::METADATA, embedded::F32),
        Precision::Int8 => (embedded::METADATA, embedded::INT8),
    })
}

#[cfg(not(earshot_embedded_model))]
fn builtin(_precision: Precision) -> Result<(&'static [u8], &'static [u8]), ModelError> {
    Err(ModelError::NotBuiltIn)
}

/// Checks the manifest against this daemon (names, front end, shapes).
fn check_metadata(meta: &Metadata, path: &str) -> Result<(Head, Linear), ModelError> {
    let err = |message: String| ModelError::Metadata {
        path: path.to_string(),
        message,
    };
    if meta.mid_level_names != MidLevel::<f32>::NAMES {
        return Err(err(format!(
            "mid_level_names are {:?}, this daemon's protocol has {:?}",
            meta.mid_level_names,
            MidLevel::<f32>::NAMES
        )));
    }
    if meta.emotion_names != Emotions::<f32>::NAMES {
        return Err(err(format!(
            "emotion_names are {:?}, this daemon's protocol has {:?}",
            meta.emotion_names,
            Emotions::<f32>::NAMES
        )));
    }
    let fe = &meta.frontend;
    let ours = (
        frontend::SAMPLE_RATE_HZ,
        frontend::FRAME_SIZE,
        frontend::HOP_SIZE,
        frontend::N_BANDS,
    );
    if (fe.sample_rate_hz, fe.frame_size, fe.hop_size, fe.n_bands) != ours {
        return Err(err(format!(
            "front end (sample rate, frame, hop, bands) = {:?}, this daemon computes {ours:?}",
            (fe.sample_rate_hz, fe.frame_size, fe.hop_size, fe.n_bands)
        )));
    }
    if fe.input_scale != f64::from(frontend::INPUT_SCALE) {
        return Err(err(format!(
            "frontend.input_scale is {}, this daemon uses {}",
            fe.input_scale,
            frontend::INPUT_SCALE
        )));
    }
    if fe.filterbank_bins != frontend::filterbank_bins() {
        return Err(err(
            "frontend.filterbank_bins differ from this daemon's filterbank".to_string(),
        ));
    }
    let rf = meta.input.receptive_field_frames;
    if rf == 0 || meta.input.window_frames < rf {
        return Err(err(format!(
            "input.window_frames {} must be at least input.receptive_field_frames {rf} (> 0)",
            meta.input.window_frames
        )));
    }
    let h = &meta.head;
    if h.mid_weight.len() != N_MID || h.mid_bias.len() != N_MID {
        return Err(err(format!(
            "head.mid_weight has {} rows and head.mid_bias {} values, expected {N_MID}",
            h.mid_weight.len(),
            h.mid_bias.len()
        )));
    }
    let dim = h.mid_weight[0].len();
    if dim == 0 || h.mid_weight.iter().any(|r| r.len() != dim) {
        return Err(err("head.mid_weight rows differ in length".into()));
    }
    let head = Head {
        weight: (0..dim)
            .map(|j| std::array::from_fn(|m| h.mid_weight[m][j]))
            .collect(),
        bias: std::array::from_fn(|m| h.mid_bias[m]),
    };
    let l = &meta.linear;
    if l.weight.len() != N_EMO
        || l.bias.len() != N_EMO
        || l.weight.iter().any(|r| r.len() != N_MID)
        || meta.mid_level_means.len() != N_MID
    {
        return Err(err(format!(
            "linear.weight must be [{N_EMO}][{N_MID}], linear.bias [{N_EMO}], mid_level_means [{N_MID}]"
        )));
    }
    let linear = Linear {
        weight: std::array::from_fn(|e| std::array::from_fn(|m| l.weight[e][m])),
        bias: std::array::from_fn(|e| l.bias[e]),
        mid_means: std::array::from_fn(|m| meta.mid_level_means[m] as f32),
    };
    Ok((head, linear))
}

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
    state: TypedSimpleState,
    frames: usize,
    dim: usize,
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

/// The network on a stream of spectrogram columns (pulsed), keeping the
/// embeddings of the window in a ring.
#[derive(Debug)]
pub struct StreamRunner {
    state: TypedSimpleState,
    head: Head,
    /// Frames per pulse (= readings cadence).
    hop: usize,
    /// Output lag of the pulsed network, receptive field - 1 (62).
    delay: usize,
    /// Zero frames fed before the first real one.
    pad: usize,
    n_bands: usize,
    dim: usize,
    /// Frames of the pulse being filled, `[hop, bands]`.
    pending: Vec<f32>,
    pending_frames: usize,
    /// Output rows produced so far (padded stream).
    rows_out: u64,
    /// Real frames pushed.
    frames: u64,
    /// Embeddings of the window's positions, oldest first.
    ring: VecDeque<Vec<f32>>,
    capacity: usize,
    /// Recycled rows, so that the steady state allocates no rows.
    free: Vec<Vec<f32>>,
    /// Network time since the last `take_run_time`.
    run_time: std::time::Duration,
    /// A partial pulse was flushed with zeros: the stream has ended.
    flushed: bool,
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

    fn push_frame(&mut self, column: &[f32]) -> Result<(), ModelError> {
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
}

/// Reads a model directory's files for tests and tools.
pub fn dir_source(dir: impl AsRef<Path>) -> ModelSource {
    ModelSource::Dir(dir.as_ref().to_path_buf())
}

/// The shipped model's directory in this repository (unit tests of every module).
#[cfg(test)]
pub(crate) fn shipped_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/edge-v4")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn testdata_f32(name: &str) -> Vec<f32> {
        let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../models/testdata")
            .join(name);
        std::fs::read(&p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }

    #[derive(Deserialize)]
    struct Golden {
        mid_level: Vec<f32>,
        emotions: Vec<f32>,
        embedding_first: Vec<f32>,
        embedding_last: Vec<f32>,
        embedding_rows: usize,
        int8: GoldenInt8,
    }

    #[derive(Deserialize)]
    struct GoldenInt8 {
        mid_level: Vec<f32>,
        emotions: Vec<f32>,
    }

    fn golden() -> Golden {
        let p =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/testdata/model_output.json");
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    }

    /// FRONTEND.md: the Rust model run matches model_output.json within 1e-4 (f32).
    #[test]
    fn f32_matches_golden_output() {
        let model = Model::load(&dir_source(shipped_dir()), Precision::F32).unwrap();
        let input = testdata_f32("model_input.f32");
        let frames = input.len() / frontend::N_BANDS;
        let out = model.window(frames).unwrap().run(&input).unwrap();
        let g = golden();
        assert_eq!(out.positions(), g.embedding_rows);
        assert!(max_abs(&out.mid_level, &g.mid_level) < 1e-4);
        assert!(max_abs(&out.emotions, &g.emotions) < 1e-4);
        assert!(max_abs(&out.embedding[..out.dim], &g.embedding_first) < 1e-4);
        assert!(
            max_abs(
                &out.embedding[out.embedding.len() - out.dim..],
                &g.embedding_last
            ) < 1e-4
        );
    }

    /// int8 in tract against int8 in onnxruntime: the same quantised graph,
    /// rounding may differ by one step in places, so 1e-2.
    #[test]
    fn int8_matches_golden_output_loosely() {
        let model = Model::load(&dir_source(shipped_dir()), Precision::Int8).unwrap();
        let input = testdata_f32("model_input.f32");
        let out = model
            .window(input.len() / frontend::N_BANDS)
            .unwrap()
            .run(&input)
            .unwrap();
        let g = golden();
        assert!(
            max_abs(&out.mid_level, &g.int8.mid_level) < 1e-2,
            "{:?} vs {:?}",
            out.mid_level,
            g.int8.mid_level
        );
        assert!(max_abs(&out.emotions, &g.int8.emotions) < 1e-2);
    }

    /// The streaming runner, fed column by column, gives the whole window's values.
    #[test]
    fn streaming_equals_full_window() {
        let model = Model::load(&dir_source(shipped_dir()), Precision::F32).unwrap();
        let input = testdata_f32("model_input.f32");
        let frames = input.len() / frontend::N_BANDS;
        let full = model.window(frames).unwrap().run(&input).unwrap();
        for hop in [31, 7, 1] {
            let mut s = model.stream(hop, frames).unwrap();
            for col in input.chunks_exact(frontend::N_BANDS) {
                s.push_column(col).unwrap();
            }
            s.flush().unwrap();
            let mid = s.mid_level();
            assert_eq!(s.positions(), frames - 62, "hop {hop}");
            let d = max_abs(&mid, &full.mid_level);
            assert!(
                d < 1e-4,
                "hop {hop}: streaming differs from full window by {d}"
            );
        }
        // a window that is not a whole number of hops, read at its end
        let mut s = model.stream(31, 200).unwrap();
        let part = &input[..(200 + 31 * 3) * frontend::N_BANDS];
        for col in part.chunks_exact(frontend::N_BANDS) {
            s.push_column(col).unwrap();
        }
        assert_eq!(s.positions(), 200 - 62);
        let want = model
            .window(200)
            .unwrap()
            .run(&part[31 * 3 * frontend::N_BANDS..])
            .unwrap();
        assert!(max_abs(&s.mid_level(), &want.mid_level) < 1e-4);
    }

    /// Reuse: a pulse costs a fraction of a whole window.
    #[test]
    fn pulse_costs_less_than_recomputing() {
        let model = Model::load(&dir_source(shipped_dir()), Precision::F32).unwrap();
        let pulse = model.macs_per_pulse(31).unwrap();
        let hop_plus_context = model.macs(31 + 62).unwrap();
        let window = model.macs(313).unwrap();
        assert!(
            pulse * 2 < hop_plus_context && hop_plus_context * 3 < window,
            "{pulse} {hop_plus_context} {window}"
        );
    }

    #[test]
    fn int8_plan_has_int8_matmul_kernels() {
        let model = Model::load(&dir_source(shipped_dir()), Precision::Int8).unwrap();
        let kernels = model.matmul_kernels(93).unwrap();
        let f32_kernels = Model::load(&dir_source(shipped_dir()), Precision::F32)
            .unwrap()
            .matmul_kernels(93)
            .unwrap();
        // six convolutions per encoder (edge-v3 and edge-v4: three 2-D, two 1-D, one 1x1)
        assert_eq!(kernels.len(), f32_kernels.len(), "{kernels:?}");
        assert!(!kernels.is_empty() && kernels.len() % 6 == 0, "{kernels:?}");
        // the convolutions run int8 kernels (i8 x i8 -> i32): at least five
        // of each six (the 1x1 embedding convolution may stay f32)
        let int8 = kernels.iter().filter(|k| k.contains("mmm_i32")).count();
        assert!(
            int8 >= 5 * kernels.len() / 6,
            "int8 plan has f32 kernels: {kernels:?}"
        );
        assert!(
            f32_kernels.iter().all(|k| k.contains("mmm_f32")),
            "{f32_kernels:?}"
        );
    }

    #[test]
    fn macs_are_counted() {
        let model = Model::load(&dir_source(shipped_dir()), Precision::F32).unwrap();
        let window = model.macs(313).unwrap();
        let hop = model.macs(93).unwrap();
        // cost grows with the frames: 313 frames cost over 3x what 93 do
        assert!(window > 3 * hop, "{window} vs {hop}");
        if let Some(m) = model.metadata().macs_per_window {
            // metadata counts the head too (a few thousand MACs)
            assert!(
                (window as f64 - m as f64).abs() / (m as f64) < 0.01,
                "{window} vs {m}"
            );
        }
    }
}
