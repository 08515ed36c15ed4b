"""Random-weight candidate architectures for the int8 study (issue 20).

Builds each candidate with the training package's own classes (earshot_train.model),
gives its BatchNorms realistic statistics (measured on real windows, affine parameters
near 1 and 0), folds and exports it exactly as the shipped model is exported
(export.export_onnx, export.quantize: QOperator, Conv/Relu only, per-tensor), and
writes a model directory per candidate that `earshotd --model DIR [--int8]` loads.

The weights are random: instruction counts of tract's kernels do not depend on the
weight values, so these models are for cost measurements only (metadata says so).

Usage (from the repository root):
    OMP_NUM_THREADS=1 .venv/bin/python bench/int8_archs.py [OUT_DIR] [--only NAME,...]
    OMP_NUM_THREADS=1 .venv/bin/python bench/int8_archs.py --layers   (per-layer MACs and packing, no files)
OUT_DIR defaults to ../int8-archs; writes OUT_DIR/<name>/{model.onnx,model.int8.onnx,metadata.json}
and OUT_DIR/candidates.json (MACs, parameters, layers).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "models" / "train"))

from earshot_train import export as X  # noqa: E402
from earshot_train import frontend  # noqa: E402
from earshot_train.model import ARCHS, count_macs, dilated  # noqa: E402

N_BANDS = 137  # front end version 2
WINDOW = 313
HOP = 282  # 313 - 31: one 1 s reading
DIL = (1, 2, 4, 8, 16)  # every candidate keeps the shipped receptive field, 63 frames
_EDGE = dict(emb=128, dropout=0.0, mid_act="sigmoid")  # train.py: _EDGE width 128, depth 5, robust-4q


def edge_plane(planes=(16, 32, 48), pools=(1, 3, 3), chroma=0):
    """train.build() for robust-4q: 3 plane layers + (depth - 3) dilated 1-D of width 128."""
    return ARCHS["edge"](N_BANDS, channels=(128,) * (5 - len(planes)), dilations=DIL, plane=True,
                         planes=planes, pools=pools, chroma=chroma, **_EDGE)


def edge_1d():
    """train.build() without `plane`: TimeEncoder, bands as channels, width 128, depth 5."""
    return ARCHS["edge"](N_BANDS, channels=(128,) * 5, dilations=DIL, **_EDGE)


def edge_custom(planes: nn.Sequential, plane_out: int, n_1d: int):
    """A PlaneEncoder with its 2-D stack replaced: `planes` ends with `plane_out` = channels x bands
    features per frame; then `n_1d` dilated 1-D layers (the rest of DIL) and the 1x1 to 128."""
    model = edge_plane()
    enc = model.encoder
    enc.planes = planes
    enc.convs = dilated(plane_out, (128,) * n_1d, DIL[len(DIL) - n_1d:], 128, 0.0)
    return model


def plane2w():
    """Two 2-D layers, few positions and more output channels: first layer strided 3 in frequency
    and pooled at once (137 -> 46 -> 15 bands), then 32 -> 96 channels, pool to 5 bands.
    Packing per MAC of a convolution is ~1/(output channels): 1/96 instead of 1/32 and 1/48."""
    planes = nn.Sequential(
        nn.Conv2d(1, 32, (3, 7), stride=(1, 3), padding=(0, 3), dilation=(DIL[0], 1), bias=False),
        nn.BatchNorm2d(32), nn.ReLU(),
        nn.MaxPool2d((1, 3)),
        nn.Conv2d(32, 96, 3, padding=(0, 1), dilation=(DIL[1], 1), bias=False), nn.BatchNorm2d(96), nn.ReLU(),
        nn.MaxPool2d((1, 3)),
    )
    return edge_custom(planes, 96 * 5, 3)


def plane1():
    """One 2-D layer (the shipped first layer, 32 channels), pooled 69 -> 23 bands, then
    bands x channels (736) as channels of four dilated 1-D layers of 128."""
    planes = nn.Sequential(
        nn.Conv2d(1, 32, (3, 7), stride=(1, 2), padding=(0, 3), dilation=(DIL[0], 1), bias=False),
        nn.BatchNorm2d(32), nn.ReLU(),
        nn.MaxPool2d((1, 3)),
    )
    return edge_custom(planes, 32 * 23, 4)


CANDIDATES = {
    "ref-plane3": (edge_plane, "shipped edge-v5 architecture (2-D 16,32,48, then 1-D 128,128, 1x1 128)"),
    "oned-128x5": (edge_1d, "1-D only: bands as channels, 5 dilated layers of 128, 1x1 128"),
    "plane2w": (plane2w, "2-D 32 (stride 3, pool 3) and 96 (pool 3), then 1-D 128 x3, 1x1 128"),
    "plane1": (plane1, "one 2-D layer 32 (stride 2, pool 3), then 1-D 128 x4, 1x1 128"),
    "plane3n": (lambda: edge_plane((16, 24, 32)), "robust-4q-m1n: 2-D 16,24,32 (pools 1,3,3), then 1-D 128,128, 1x1 128"),
    "plane3p": (lambda: edge_plane((16, 32, 64), (2, 3, 2)),
                "robust-4q-m1p: 2-D 16,32,64 (pools 2,3,2), then 1-D 128,128, 1x1 128"),
    "plane3pc": (lambda: edge_plane((16, 32, 64), (2, 3, 2), chroma=32),
                 "robust-4q-m1pc: plane3p and a 12-pitch-class chroma branch of 32 channels"),
}


def real_windows(n: int, seed: int = 0) -> list[np.ndarray]:
    """n model-input windows of 313 frames from n different training clips (cached band magnitudes,
    front end version 2); loads only the chosen keys of the npz."""
    z = np.load(ROOT / "models" / "train" / "cache" / "bands_v2.npz")
    keys = z.files
    rng = np.random.default_rng(seed)
    out = []
    for k in rng.permutation(len(keys)):
        spec = frontend.compress(z[keys[k]])[0]
        if len(spec) < WINDOW:
            continue
        t0 = min(94, len(spec) - WINDOW)  # past one AGC time constant when the clip allows
        out.append(np.ascontiguousarray(spec[t0:t0 + WINDOW]))
        if len(out) == n:
            break
    return out


def realistic(model: nn.Module, windows: list[np.ndarray], seed: int) -> nn.Module:
    """Random weights with trained-like activations: BandNorm from the windows' statistics, every
    BatchNorm's running statistics measured on the windows (as after training), its affine
    parameters near (1, 0); the head random."""
    torch.manual_seed(seed)
    allf = np.concatenate(windows).astype(np.float64)
    norm = model.encoder.norm
    norm.mean.copy_(torch.tensor(allf.mean(0), dtype=torch.float32))
    norm.std.copy_(torch.tensor(allf.std(0) + 1e-3, dtype=torch.float32))
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average over the batch
            bn.weight.copy_(1.0 + 0.2 * torch.randn_like(bn.weight))
            bn.bias.copy_(0.1 * torch.randn_like(bn.bias))
        model.train()
        model(torch.from_numpy(np.stack(windows)))
        model.eval()
        for bn in bns:
            bn.momentum = 0.1
    return model


def build_one(name: str, out_root: Path, calib: list[np.ndarray], stats: list[np.ndarray]) -> dict:
    import onnxruntime as ort

    make, text = CANDIDATES[name]
    model = realistic(make(), stats, seed=0)
    macs_window = count_macs(model, WINDOW, N_BANDS)
    macs_reading = macs_window - count_macs(model, HOP, N_BANDS)
    out = out_root / name
    out.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        ref = [model(torch.from_numpy(w)[None]) for w in calib[:4]]
    X.export_onnx(model, out / "model.onnx")  # folds the BatchNorms (in `model` too)
    X.quantize(out / "model.onnx", out / "model.int8.onnx", calib)
    # checks: ONNX f32 against torch, int8 against f32 (mid-level and emotions)
    sessions = {p: ort.InferenceSession(str(out / f), providers=["CPUExecutionProvider"])
                for p, f in [("f32", "model.onnx"), ("int8", "model.int8.onnx")]}
    d_onnx, d_int8 = 0.0, 0.0
    for w, (mid, emo, _) in zip(calib[:4], ref):
        f = sessions["f32"].run(None, {"spectrogram": w[None]})
        q = sessions["int8"].run(None, {"spectrogram": w[None]})
        t = np.concatenate([mid[0].numpy(), emo[0].numpy()])
        a = np.concatenate([f[1][0], f[2][0]])
        b = np.concatenate([q[1][0], q[2][0]])
        d_onnx = max(d_onnx, float(np.abs(a - t).max()))
        d_int8 = max(d_int8, float(np.abs(b - a).max()))
    with torch.no_grad():
        mids = np.stack([model(torch.from_numpy(w)[None])[0][0].numpy() for w in stats])
    meta = X.metadata(model, f"int8-arch-{name}", out, mids.mean(0), {
        "training": {"random_weights": True, "trained": False,
                     "note": "issue 20 cost study: random weights, BatchNorm statistics measured on "
                             f"{len(stats)} real windows; readings are meaningless, instruction counts are not",
                     "candidate": name, "description": text, "calibration_windows": len(calib)},
        "novelty": X.novelty(model, stats),
        "checks": {"random_weights": True, "onnx_vs_torch_max_abs": d_onnx, "int8_vs_f32_max_abs": d_int8},
    })
    (out / "metadata.json").write_text(json.dumps(meta, indent=1) + "\n")
    conv_layers = [f"{type(m).__name__}({m.in_channels}->{m.out_channels}, k={tuple(m.kernel_size)}, "
                   f"s={tuple(m.stride)})" for m in model.encoder.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d))]
    info = {"name": name, "description": text, "architecture": meta["architecture"],
            "macs_per_window": macs_window, "macs_per_reading": macs_reading,
            "parameters": meta["parameters"], "convolutions": conv_layers, "layers": layer_costs(model),
            "checks": meta["checks"], "dir": str(out)}
    print(json.dumps(info), flush=True)
    return info


def layer_costs(model: nn.Module) -> list[dict]:
    """Per convolution, per 1 s reading (313 minus 282 frames): MACs, and the elements of the
    matmul's activation operand (K = in_channels x kernel, N = output positions), which is
    what im2col / packing writes: MAC / out_channels."""
    rows = []

    def run(frames):
        out = {}
        hooks = [m.register_forward_hook(lambda m, i, o, n=n: out.__setitem__(n, o.shape))
                 for n, m in model.named_modules() if isinstance(m, (nn.Conv1d, nn.Conv2d))]
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, frames, N_BANDS))
        for h in hooks:
            h.remove()
        return out

    a, b = run(WINDOW), run(HOP)
    mods = dict(model.named_modules())
    for n, shape in a.items():
        m = mods[n]
        k = int(np.prod(m.kernel_size)) * m.in_channels // m.groups
        pos = int(np.prod(shape[2:])) - int(np.prod(b[n][2:]))
        rows.append({"layer": n, "conv": f"{type(m).__name__}({m.in_channels}->{m.out_channels}, "
                     f"k={tuple(m.kernel_size)}, s={tuple(m.stride)})", "out_channels": m.out_channels,
                     "K": k, "positions_per_reading": pos, "macs_per_reading": m.out_channels * k * pos,
                     "packed_elements_per_reading": k * pos})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", nargs="?", default=str(ROOT.parent / "int8-archs"))
    ap.add_argument("--only", default="")
    ap.add_argument("--calib", type=int, default=16)
    ap.add_argument("--stats", type=int, default=48)
    ap.add_argument("--layers", action="store_true", help="only print per-layer costs (JSON), write nothing")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.layers:
        names = [n for n in args.only.split(",") if n] or list(CANDIDATES)
        print(json.dumps({n: layer_costs(CANDIDATES[n][0]()) for n in names}, indent=1))
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = [n for n in args.only.split(",") if n] or list(CANDIDATES)
    wins = real_windows(args.stats)
    calib = wins[:args.calib]
    infos = [build_one(n, out, calib, wins) for n in names]
    path = out / "candidates.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    old.update({i["name"]: i for i in infos})
    path.write_text(json.dumps(old, indent=1) + "\n")


if __name__ == "__main__":
    main()
