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
//! Files: `manifest` (metadata.json, the built-in model, the checks against
//! this daemon), `stream` and `window` (the two runners), `inspect` (kernels and
//! cost, for benchmarks and `earshotd model`).
//!
//! What the numbers mean and how they are explained is left to `explain`.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tract_hir::infer::Factoid;
use tract_onnx::prelude::*;
use tract_pulse::internal::{PulsedModel, PulsedModelExt};

use crate::config::{Precision, PrecisionChoice};
use crate::explain::Linear;
use crate::frontend;

mod inspect;
mod manifest;
pub mod precision;
mod stream;
mod window;

use manifest::{builtin, builtin_metadata, check_metadata};
pub use manifest::{
    FileMeta, FrontendMeta, Head, HeadMeta, InputMeta, LinearMeta, Metadata, Novelty, NoveltyMeta,
    SHIPPED_ID,
};
pub use stream::StreamRunner;
pub use window::{WindowOutput, WindowRunner};

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
        "this earshotd was built without the model named in models/SHIPPED, so it has no \
         built-in model; \
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

/// tract 0.23.9's AMX int8 kernel (x86 Xeons since Sapphire Rapids, this
/// project's build machines among them) loads tiles past the end of its packed
/// operand: int8 runs died with SIGSEGV in `avx512amx_mmm_i32_16x16` whenever
/// that buffer ended at a page boundary (`tileloaddt1`, fault one byte into the
/// next page). Out of tract's kernel pool it goes, below any `TRACT_CPU_ISA`
/// the user sets; int8 then runs the AVX-512 VNNI kernels, same results.
fn avoid_broken_kernels() {
    #[cfg(target_arch = "x86_64")]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            if let Err(e) = tract_onnx::prelude::tract_data::knobs::set_config_global(
                "TRACT_CPU_ISA",
                "-amx-int8",
            ) {
                tracing::warn!("could not take tract's AMX int8 kernel out: {e}");
            }
        });
    }
}

fn read(path: &Path) -> Result<Vec<u8>, ModelError> {
    std::fs::read(path).map_err(|source| ModelError::Missing {
        path: path.to_path_buf(),
        source,
    })
}

fn onnx_err(path: &str) -> impl Fn(TractError) -> ModelError + '_ {
    move |e| ModelError::Onnx {
        path: path.to_string(),
        message: format!("{e:#}"),
    }
}

/// Where the model comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// `models/<SHIPPED_ID>`, compiled into the binary.
    BuiltIn,
    Dir(PathBuf),
}

/// A loaded, checked model; runners are built from it.
#[derive(Debug)]
pub struct Model {
    meta: Metadata,
    precision: Precision,
    /// Why this precision (the configuration, or what `auto` found).
    precision_reason: String,
    /// The ONNX file, for messages.
    origin: String,
    graph: InferenceModel,
    head: Head,
    linear: Linear,
    embedding_dim: usize,
}

impl Model {
    /// Loads, verifies and parses a model at the given precision (`auto`:
    /// see [`precision::choose`]).
    pub fn load(
        source: &ModelSource,
        choice: impl Into<PrecisionChoice>,
    ) -> Result<Self, ModelError> {
        avoid_broken_kernels();
        let (meta_origin, meta_bytes) = match source {
            ModelSource::Dir(dir) => {
                let path = dir.join("metadata.json");
                let bytes = read(&path)?;
                (path.display().to_string(), bytes)
            }
            ModelSource::BuiltIn => (
                "<built-in>/metadata.json".to_string(),
                builtin_metadata()?.to_vec(),
            ),
        };
        let meta: Metadata =
            serde_json::from_slice(&meta_bytes).map_err(|e| ModelError::Metadata {
                path: meta_origin.clone(),
                message: e.to_string(),
            })?;
        let (head, linear) = check_metadata(&meta, &meta_origin)?;
        let (precision, precision_reason) =
            precision::choose(choice.into(), &meta.int8_faster_on, &precision::this_cpu());
        let file = match precision {
            Precision::F32 => "model.onnx",
            Precision::Int8 => "model.int8.onnx",
        };
        let (origin, onnx) = match source {
            ModelSource::Dir(dir) => {
                let path = dir.join(file);
                (path.display().to_string(), read(&path)?)
            }
            ModelSource::BuiltIn => (format!("<built-in>/{file}"), builtin(precision)?.to_vec()),
        };
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
            precision_reason,
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

    /// Why [`Model::precision`] was chosen.
    pub fn precision_reason(&self) -> &str {
        &self.precision_reason
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

/// Reads a model directory's files for tests and tools.
pub fn dir_source(dir: impl AsRef<Path>) -> ModelSource {
    ModelSource::Dir(dir.as_ref().to_path_buf())
}

/// The shipped model's directory in this repository (unit tests of every module).
#[cfg(test)]
pub(crate) fn shipped_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../models")
        .join(SHIPPED_ID)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

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
        assert!(
            !kernels.is_empty() && kernels.len().is_multiple_of(6),
            "{kernels:?}"
        );
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
        // tract's AMX int8 kernel reads past its operand (avoid_broken_kernels)
        assert!(
            kernels.iter().all(|k| !k.contains("amx")),
            "the int8 plan runs tract's AMX kernel: {kernels:?}"
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
