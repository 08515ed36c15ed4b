//! `metadata.json`: the manifest written beside the ONNX files, the model
//! compiled into the binary, and the checks of both against this daemon.

use std::collections::HashMap;

use serde::Deserialize;

use super::ModelError;
use crate::config::Precision;
use crate::explain::{Linear, N_EMO, N_MID};
use crate::frontend;
use earshot_protocol::{Emotions, MidLevel};

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
    /// CPU classes (`precision::CPU_CLASSES`) where the int8 plan was measured
    /// cheaper than f32, for `precision = "auto"`; absent: none.
    #[serde(default)]
    pub int8_faster_on: Vec<String>,
    /// Where the training windows' embeddings lie (`in_range`); absent in older models.
    #[serde(default)]
    pub novelty: Option<NoveltyMeta>,
    pub files: HashMap<String, FileMeta>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct InputMeta {
    pub window_frames: usize,
    pub receptive_field_frames: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FrontendMeta {
    /// 1 (models up to edge-v4, no `version` key): log10(1 + x), 149 bands; 2: level-relative.
    #[serde(default = "version_1")]
    pub version: u32,
    pub sample_rate_hz: u32,
    pub frame_size: usize,
    pub hop_size: usize,
    pub n_bands: usize,
    pub input_scale: f64,
    pub filterbank_bins: Vec<usize>,
    #[serde(default)]
    pub agc_tau_s: Option<f64>,
    #[serde(default)]
    pub agc_min_level: Option<f64>,
    #[serde(default)]
    pub headroom: Option<f64>,
}

fn version_1() -> u32 {
    1
}

#[derive(Debug, Clone, Deserialize)]
pub struct HeadMeta {
    pub mid_weight: Vec<Vec<f32>>,
    pub mid_bias: Vec<f32>,
    /// "linear" (default) or "sigmoid" (mid-level inside 0..1 by construction).
    #[serde(default = "linear")]
    pub activation: String,
}

fn linear() -> String {
    "linear".into()
}

/// Where the training windows' mean embeddings lie: their mean and a whitening
/// matrix (inverse square root of their shrunk covariance).
#[derive(Debug, Clone, Deserialize)]
pub struct NoveltyMeta {
    pub mean: Vec<f64>,
    pub whiten: Vec<Vec<f64>>,
    /// Largest distance still read as in range (99th percentile over training windows).
    pub threshold: f64,
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

/// The shipped model's id (`models/SHIPPED`, read by build.rs).
pub const SHIPPED_ID: &str = env!("EARSHOT_SHIPPED_MODEL");

#[cfg(earshot_embedded_model)]
mod embedded {
    pub const METADATA: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../models/",
        env!("EARSHOT_SHIPPED_MODEL"),
        "/metadata.json"
    ));
    pub const F32: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../models/",
        env!("EARSHOT_SHIPPED_MODEL"),
        "/model.onnx"
    ));
    pub const INT8: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../models/",
        env!("EARSHOT_SHIPPED_MODEL"),
        "/model.int8.onnx"
    ));
}

/// The head from `metadata.json`: embedding mean -> mid-level.
#[derive(Debug, Clone)]
pub struct Head {
    pub weight: Vec<[f32; N_MID]>,
    pub bias: [f32; N_MID],
    /// Mid-level = sigmoid(W · e + b): inside 0..1 by construction.
    pub sigmoid: bool,
    pub novelty: Option<Novelty>,
}

/// How far a window lies from the training data (see `NoveltyMeta`).
#[derive(Debug, Clone)]
pub struct Novelty {
    mean: Vec<f64>,
    whiten: Vec<Vec<f64>>,
    pub threshold: f64,
}

impl Novelty {
    /// Mahalanobis distance of a mean embedding from the training windows',
    /// per dimension: sqrt(|W (e - mean)|^2 / dim).
    pub fn distance(&self, embedding_mean: &[f64]) -> f64 {
        let sum: f64 = self
            .whiten
            .iter()
            .map(|row| {
                row.iter()
                    .zip(embedding_mean.iter().zip(&self.mean))
                    .map(|(&w, (&e, &m))| w * (e - m))
                    .sum::<f64>()
                    .powi(2)
            })
            .sum();
        (sum / self.mean.len().max(1) as f64).sqrt()
    }
}

impl Head {
    /// `mid = W · e + b` in float64 accumulation, then the activation.
    pub fn apply(&self, embedding_mean: &[f64]) -> [f32; N_MID] {
        std::array::from_fn(|m| {
            let dot: f64 = self
                .weight
                .iter()
                .zip(embedding_mean)
                .map(|(w, &e)| f64::from(w[m]) * e)
                .sum();
            let z = dot + f64::from(self.bias[m]);
            (if self.sigmoid {
                1.0 / (1.0 + (-z).exp())
            } else {
                z
            }) as f32
        })
    }
}

/// The built-in model's metadata.
#[cfg(earshot_embedded_model)]
pub(super) fn builtin_metadata() -> Result<&'static [u8], ModelError> {
    Ok(embedded::METADATA)
}

/// The built-in model's ONNX bytes.
#[cfg(earshot_embedded_model)]
pub(super) fn builtin(precision: Precision) -> Result<&'static [u8], ModelError> {
    Ok(match precision {
        Precision::F32 => embedded::F32,
        Precision::Int8 => embedded::INT8,
    })
}

#[cfg(not(earshot_embedded_model))]
pub(super) fn builtin_metadata() -> Result<&'static [u8], ModelError> {
    Err(ModelError::NotBuiltIn)
}

#[cfg(not(earshot_embedded_model))]
pub(super) fn builtin(_precision: Precision) -> Result<&'static [u8], ModelError> {
    Err(ModelError::NotBuiltIn)
}

/// Checks the manifest against this daemon (names, front end, shapes).
pub(super) fn check_metadata(meta: &Metadata, path: &str) -> Result<(Head, Linear), ModelError> {
    let err = |message: String| ModelError::Metadata {
        path: path.to_string(),
        message,
    };
    if let Some(c) = meta
        .int8_faster_on
        .iter()
        .find(|c| !super::precision::CPU_CLASSES.contains(&c.as_str()))
    {
        return Err(err(format!(
            "int8_faster_on names the CPU class {c:?}; this daemon knows {:?}",
            super::precision::CPU_CLASSES
        )));
    }
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
    if fe.version != frontend::VERSION {
        return Err(err(format!(
            "front end version {} (models/FRONTEND.md), this daemon computes version {}; \
             use a model exported for this daemon",
            fe.version,
            frontend::VERSION
        )));
    }
    let agc = (fe.agc_tau_s, fe.agc_min_level, fe.headroom);
    let our_agc = (
        Some(frontend::AGC_TAU_S),
        Some(frontend::AGC_MIN_LEVEL),
        Some(frontend::HEADROOM),
    );
    if agc != our_agc {
        return Err(err(format!(
            "frontend (agc_tau_s, agc_min_level, headroom) = {agc:?}, this daemon uses {our_agc:?}"
        )));
    }
    if fe.filterbank_bins != frontend::filterbank_bins()[..frontend::N_BANDS + 2] {
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
    let sigmoid = match h.activation.as_str() {
        "linear" => false,
        "sigmoid" => true,
        other => {
            return Err(err(format!(
                "head.activation is {other:?}, this daemon knows \"linear\" and \"sigmoid\""
            )))
        }
    };
    let novelty = match &meta.novelty {
        None => None,
        Some(n) => {
            if n.mean.len() != dim
                || n.whiten.len() != dim
                || n.whiten.iter().any(|r| r.len() != dim)
                || n.threshold.is_nan()
                || n.threshold <= 0.0
            {
                return Err(err(format!(
                    "novelty.mean must have {dim} values, novelty.whiten be [{dim}][{dim}] \
                     and novelty.threshold > 0"
                )));
            }
            Some(Novelty {
                mean: n.mean.clone(),
                whiten: n.whiten.clone(),
                threshold: n.threshold,
            })
        }
    };
    let head = Head {
        weight: (0..dim)
            .map(|j| std::array::from_fn(|m| h.mid_weight[m][j]))
            .collect(),
        bias: std::array::from_fn(|m| h.mid_bias[m]),
        sigmoid,
        novelty,
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
