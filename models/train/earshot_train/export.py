"""Export for tract: ONNX f32, ONNX int8 (QOperator, convolutions only), metadata.json.

int8 follows ../shared/docs/int8.md: tract runs real int8 kernels only for
QOperator QLinearConv with per-tensor weights, so only Conv/Relu are quantised
(all but the first convolution, `quantize`);
pooling and both linear layers stay f32 (the 7 -> 8 layer is the explanation
and must stay exactly linear and readable).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import data as D
from . import frontend
from .model import count_macs, fold_batchnorm
from .proxies import MID_LEVEL

OPSET = 13


class Exported(nn.Module):
    """The graph the daemon runs: spectrogram -> (embedding, mid_level, emotions)."""

    def __init__(self, edge: nn.Module):
        super().__init__()
        self.encoder = edge.encoder
        self.mid = edge.mid
        self.emo = edge.emo
        self.sigmoid = getattr(edge, "mid_act", "linear") == "sigmoid"

    def forward(self, spectrogram):
        e = self.encoder(spectrogram).transpose(1, 2)
        mid = self.mid(e.mean(dim=1))
        if self.sigmoid:
            mid = torch.sigmoid(mid)
        return e, mid, self.emo(mid)


def export_onnx(edge: nn.Module, path: Path, frames: int = 313) -> None:
    model = fold_batchnorm(Exported(edge).eval())
    dummy = torch.zeros(1, frames, n_bands(edge))
    torch.onnx.export(
        model, (dummy,), str(path), opset_version=OPSET, dynamo=False,
        input_names=["spectrogram"], output_names=["embedding", "mid_level", "emotions"],
        dynamic_axes={"spectrogram": {1: "T"}, "embedding": {1: "P"}},
    )
    _inline_identities(path)


def n_bands(edge: nn.Module) -> int:
    """The model's input width (the front end's band count it was trained on)."""
    return int(edge.encoder.norm.mean.shape[0])


def _inline_identities(path: Path) -> None:
    """Replaces Identity-of-initializer nodes (the exporter's deduplication) by copies.

    The quantiser needs each Conv's bias to be an initializer of its own.
    """
    import onnx

    g = onnx.load(str(path))
    inits = {i.name: i for i in g.graph.initializer}
    keep = []
    for node in g.graph.node:
        if node.op_type == "Identity" and node.input[0] in inits:
            copy = onnx.TensorProto()
            copy.CopyFrom(inits[node.input[0]])
            copy.name = node.output[0]
            g.graph.initializer.append(copy)
        else:
            keep.append(node)
    del g.graph.node[:]
    g.graph.node.extend(keep)
    onnx.checker.check_model(g)
    onnx.save(g, str(path))


class _Calibration:
    """onnxruntime CalibrationDataReader over windows of training clips."""

    def __init__(self, windows: list[np.ndarray]):
        self.it = iter([{"spectrogram": w[None].astype(np.float32)} for w in windows])

    def get_next(self):
        return next(self.it, None)

    def rewind(self):  # pragma: no cover - required by some ORT versions
        pass


def quantize(f32_path: Path, int8_path: Path, calib: list[np.ndarray]) -> None:
    """Every convolution but the first int8. The first reads the normalised spectrogram, whose
    range one uint8 scale covers worst: quantised, it was half of edge-v7's int8 error (largest
    0.017 against 0.006 over 200 windows), for 4 % of the multiply-accumulates."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    first = next(n.name for n in onnx.load(str(f32_path)).graph.node if n.op_type == "Conv")
    quantize_static(
        str(f32_path), str(int8_path), _Calibration(calib),
        quant_format=QuantFormat.QOperator, op_types_to_quantize=["Conv", "Relu"],
        per_channel=False, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=[first],
    )


def run_onnx(path: Path, spec: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    e, mid, emo = sess.run(None, {"spectrogram": spec[None].astype(np.float32)})
    return e[0], mid[0], emo[0]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def describe(edge: nn.Module) -> str:
    """One line for metadata.json: what the daemon is running."""
    from .model import PlaneEncoder

    enc = edge.encoder
    members = getattr(edge, "members", 1)
    one = enc if members == 1 else enc.members[0]
    n = sum(isinstance(m, nn.Conv1d) for m in one.convs) - 1  # the last is the 1x1
    if isinstance(one, PlaneEncoder):
        planes = sum(isinstance(m, nn.Conv2d) for m in one.planes)
        pools = [str(m.kernel_size[1]) for m in one.planes if isinstance(m, nn.MaxPool2d)]
        text = (f"{planes} 2-D convolutions over (time, frequency) unpadded in time, max-pooled over "
                f"frequency by {', '.join(pools)}, then {n} dilated 1-D over time and a 1x1 to {one.emb} channels")
        if one.chroma is not None:
            text += f"; beside the 2-D layers a 12-pitch-class chroma branch ({one.chroma[0].out_channels} channels)"
    else:
        text = f"{n} dilated 1-D convolutions over time (bands as channels)"
    if members > 1:
        text = f"{members} encoders side by side, embeddings concatenated, each: {text}"
    return f"edge: {text}; mean over time; 7-unit linear bottleneck; 7 -> 8 linear"


def metadata(edge: nn.Module, model_id: str, out_dir: Path, mid_means: np.ndarray, extra: dict) -> dict:
    enc = edge.encoder
    return {
        "model_id": model_id,
        "architecture": describe(edge),
        "mid_level_names": MID_LEVEL,
        "emotion_names": D.EMOTIONS,
        "scales": {
            "emotions": "(rating - 1) / 8: 0..1 over the 1..9 Soundtracks rating scale",
            "mid_level": "quantile of the DSP proxy target among the 360 Soundtracks clips, 0..1",
        },
        "input": {"name": "spectrogram", "shape": [1, "T", n_bands(edge)], "dtype": "float32",
                  "window_frames": 313, "receptive_field_frames": enc.receptive_field},
        "outputs": {"embedding": [1, "T - %d" % (enc.receptive_field - 1), enc.emb], "mid_level": [1, 7],
                    "emotions": [1, 8]},
        "frontend": frontend.params(),
        "normalisation": {"mean": enc.norm.mean.tolist(), "std": enc.norm.std.tolist(),
                          "where": "inside the model, after the input"},
        "head": {"mid_weight": edge.mid.weight.detach().tolist(), "mid_bias": edge.mid.bias.detach().tolist(),
                 "activation": getattr(edge, "mid_act", "linear")},
        "linear": {"weight": edge.emo.weight.detach().tolist(), "bias": edge.emo.bias.detach().tolist()},
        "mid_level_means": [float(v) for v in mid_means],
        "macs_per_window": count_macs(edge, 313, n_bands(edge)),
        "parameters": sum(p.numel() for m in (edge.encoder, edge.mid, edge.emo) for p in m.parameters()),
        "files": {name: {"sha256": sha256(out_dir / name), "bytes": (out_dir / name).stat().st_size}
                  for name in ["model.onnx", "model.int8.onnx"]},
        **extra,
    }


def calibration_windows(cfg, specs: dict, bands: dict | None, ids: list[int], n: int = 64, seed: int = 0):
    """`n` clean windows of training clips and, with simulated capture, `n` captured ones: int8
    calibration (so the quantisation ranges cover a room too) and novelty() statistics."""
    from . import train as T

    rng = np.random.default_rng(seed)
    chosen = [int(i) for i in rng.choice(ids, n, replace=False)]
    clean = [T.windows(specs[i])[0] for i in chosen]
    if bands is None or not cfg.capture:
        return clean
    crop = T.crop_maker(cfg, bands[chosen[0]].shape[1])
    captured = []
    for i in chosen:
        b = bands[i]
        t0 = int(rng.integers(0, max(len(b) - T.WINDOW, 0) + 1))
        c0 = max(t0 - T.AGC_CONTEXT, 0)
        captured.append(crop(b[c0:t0 + T.WINDOW], t0 - c0, rng))
    return clean + captured


def novelty(edge: nn.Module, windows: list[np.ndarray], shrink: float = 0.05) -> dict:
    """How far a window's mean embedding may lie from the training windows' before a reading is
    flagged `in_range: false`. Mahalanobis distance against the training windows (clean and
    captured), covariance shrunk towards its mean variance (`shrink`), stored as a whitening
    matrix W: distance = sqrt(|W (e - mean)|^2 / dim); threshold = its 99th percentile there."""
    with torch.no_grad():
        e = np.stack([edge.embed(torch.from_numpy(np.ascontiguousarray(w))[None])[0].mean(0).numpy()
                      for w in windows]).astype(np.float64)
    mean = e.mean(0)
    cov = np.cov(e.T)
    cov += shrink * np.trace(cov) / len(cov) * np.eye(len(cov))
    vals, vecs = np.linalg.eigh(cov)
    whiten = (vecs / np.sqrt(vals)) @ vecs.T  # symmetric inverse square root
    dist = np.sqrt((((e - mean) @ whiten.T) ** 2).mean(1))
    return {"mean": mean.tolist(), "whiten": [[float(f"{v:.6g}") for v in row] for row in whiten],
            "threshold": float(np.percentile(dist, 99)), "windows": len(e),
            "distance": "sqrt(mean((whiten @ (embedding_mean - mean))^2))"}
