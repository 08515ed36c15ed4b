"""Golden vectors for the Rust front end and model tests (models/testdata/).

The audio is synthesised here (no dataset audio leaves ../shared): a chord
with vibrato, a noise burst and clicks, at several levels, so that every band
and both ends of the log curve are exercised.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import frontend

TESTDATA = Path(__file__).resolve().parents[2] / "testdata"


def synth(seconds: float, seed: int = 7) -> np.ndarray:
    sr = frontend.SAMPLE_RATE
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(seed)
    x = np.zeros_like(t)
    for k, f0 in enumerate([220.0, 261.63, 329.63, 55.0]):  # A minor over a low A
        vib = 1 + 0.003 * np.sin(2 * np.pi * 5 * t + k)
        for h in range(1, 8):
            x += 0.08 / h * np.sin(2 * np.pi * f0 * h * vib * t + k * h)
    x *= 0.5 + 0.5 * np.sin(2 * np.pi * 0.25 * t) ** 2  # slow swell, -inf..0 dB
    burst = (t % 2.0 > 1.2) & (t % 2.0 < 1.5)
    x += burst * 0.2 * rng.standard_normal(len(t))
    x[(np.arange(len(t)) % (sr // 2)) == 0] += 0.9  # clicks, twice a second
    return np.clip(x, -1.0, 1.0)


def _write(name: str, arr: np.ndarray) -> dict:
    arr = np.ascontiguousarray(arr, dtype="<f4")
    (TESTDATA / name).write_bytes(arr.tobytes())
    return {"file": name, "shape": list(arr.shape), "dtype": "float32-le"}


def write(model_dir: Path | None) -> None:
    TESTDATA.mkdir(parents=True, exist_ok=True)
    pcm = synth(4.0).astype(np.float32)
    spec = frontend.spectrogram(pcm.astype(np.float64))
    index = {
        "frontend": {"pcm": _write("frontend_pcm.f32", pcm), "spectrogram": _write("frontend_spec.f32", spec),
                     "sample_rate_hz": frontend.SAMPLE_RATE, "tolerance_abs": 1e-4},
    }
    if model_dir is not None:
        from .export import run_onnx

        long = frontend.spectrogram(synth(11.0, seed=8))[:313]
        emb, mid, emo = run_onnx(model_dir / "model.onnx", long)
        emb8, mid8, emo8 = run_onnx(model_dir / "model.int8.onnx", long)
        index["model"] = {"model_id": model_dir.name, "input": _write("model_input.f32", long),
                          "output": "model_output.json", "tolerance_abs": 1e-4}
        (TESTDATA / "model_output.json").write_text(json.dumps({
            "mid_level": mid.tolist(), "emotions": emo.tolist(),
            "embedding_first": emb[0].tolist(), "embedding_last": emb[-1].tolist(),
            "embedding_rows": len(emb),
            "int8": {"mid_level": mid8.tolist(), "emotions": emo8.tolist()},
        }, indent=1) + "\n")
    (TESTDATA / "golden.json").write_text(json.dumps(index, indent=1) + "\n")
