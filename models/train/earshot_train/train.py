"""Training and cross-validated evaluation.

Every (model, fold, seed) run writes its held-out predictions to
models/train/results/<model>/f<fold>-s<seed>.json as soon as it finishes, so
an interrupted `cv` resumes where it stopped and the report needs no torch.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import data as D
from .model import ARCHS

RESULTS_DIR = D.TRAIN_DIR / "results"
WINDOW = 313  # 10 s of frames, the paper's training crop and the daemon's window
EVAL_HOP = 31  # 1 s: held-out clips are read like the daemon reads a file


@dataclass
class Config:
    arch: str = "edge"
    epochs: int = 40
    batch: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-3
    mid_weight: float = 1.0  # loss weight of the proxy targets against the emotions
    mixup: float = 0.0
    crop: int = WINDOW  # training crop in frames; evaluation always uses WINDOW
    width: int = 96  # channels of the time encoder
    dropout: float = 0.1
    depth: int = 5  # dilated layers; receptive field 1 + 2 * (2^depth - 1) frames


# Chosen on fold 0, seed 0 (see models/README.md, "How the configuration was chosen").
_EDGE = dict(width=128, crop=157, batch=16, lr=3e-3, epochs=60, dropout=0.0, depth=5)
CONFIGS = {
    "edge": Config(arch="edge", mid_weight=0.3, **_EDGE),
    "edge-mid1": Config(arch="edge", mid_weight=1.0, **_EDGE),
    "direct": Config(arch="direct", **_EDGE),
    "reference": Config(arch="reference", epochs=40, batch=8, lr=5e-4),
}


class Dataset:
    def __init__(self, specs: dict[int, np.ndarray], ids, emo: dict[int, np.ndarray], mid: dict[int, np.ndarray]):
        self.ids = list(ids)
        self.specs = [torch.from_numpy(specs[i]) for i in self.ids]
        self.emo = torch.tensor(np.stack([emo[i] for i in self.ids]), dtype=torch.float32)
        self.mid = torch.tensor(np.stack([mid[i] for i in self.ids]), dtype=torch.float32)

    def batches(self, batch: int, rng: np.random.Generator, crop: int = WINDOW):
        order = rng.permutation(len(self.ids))
        for start in range(0, len(order) - batch + 1, batch):
            idx = order[start:start + batch]
            crops = []
            for i in idx:
                s = self.specs[i]
                t0 = rng.integers(0, max(len(s) - crop, 0) + 1)
                crops.append(s[t0:t0 + crop])
            yield torch.stack(crops), self.mid[idx], self.emo[idx]


def band_stats(specs: dict[int, np.ndarray], ids) -> tuple[np.ndarray, np.ndarray]:
    allf = np.concatenate([specs[i] for i in ids], axis=0).astype(np.float64)
    return allf.mean(axis=0), allf.std(axis=0) + 1e-3


def build(cfg: Config, n_bands: int, mean: np.ndarray, std: np.ndarray) -> nn.Module:
    if cfg.arch == "reference":
        model = ARCHS[cfg.arch](n_bands)
    else:
        w = cfg.width
        model = ARCHS[cfg.arch](n_bands, channels=(w,) * cfg.depth, dilations=tuple(2**i for i in range(cfg.depth)),
                                emb=w, dropout=cfg.dropout)
    norm = model.encoder.norm if hasattr(model, "encoder") else model.norm
    norm.mean.copy_(torch.tensor(mean, dtype=torch.float32))
    norm.std.copy_(torch.tensor(std, dtype=torch.float32))
    return model


def fit(cfg: Config, train: Dataset, n_bands: int, mean, std, seed: int, log=print) -> nn.Module:
    torch.manual_seed(seed)
    torch.set_num_threads(int(__import__('os').environ.get('EARSHOT_THREADS', '2')))
    rng = np.random.default_rng(seed)
    model = build(cfg, n_bands, mean, std)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * (len(train.ids) // cfg.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps, pct_start=0.2)
    # each target counts by its own spread, so the low-variance emotions are not drowned by the proxies
    emo_w = 1.0 / train.emo.var(0)
    mid_w = 1.0 / train.mid.var(0)
    model.train()
    for epoch in range(cfg.epochs):
        total, n = 0.0, 0
        for x, mid_t, emo_t in train.batches(cfg.batch, rng, cfg.crop):
            if cfg.mixup > 0:
                lam = float(rng.beta(cfg.mixup, cfg.mixup))
                perm = torch.from_numpy(rng.permutation(len(x)))
                # mix in the magnitude domain, where sounds add
                x = torch.log10(lam * (10 ** x - 1) + (1 - lam) * (10 ** x[perm] - 1) + 1)
                mid_t = lam * mid_t + (1 - lam) * mid_t[perm]
                emo_t = lam * emo_t + (1 - lam) * emo_t[perm]
            mid, emo, _ = model(x)
            loss = ((emo - emo_t) ** 2 * emo_w).mean()
            if mid is not None:
                loss = loss + cfg.mid_weight * ((mid - mid_t) ** 2 * mid_w).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(x)
            n += len(x)
        if epoch % 10 == 9 or epoch == cfg.epochs - 1:
            log(f"    epoch {epoch + 1}/{cfg.epochs} loss {total / max(n, 1):.4f}")
    model.eval()
    return model


def windows(spec: np.ndarray, window: int = WINDOW, hop: int = EVAL_HOP) -> np.ndarray:
    """All full windows of a clip, hop apart, [n, window, bands] (one window if the clip is short)."""
    if len(spec) <= window:
        return spec[None]
    starts = range(0, len(spec) - window + 1, hop)
    return np.stack([spec[s:s + window] for s in starts])


@torch.no_grad()
def predict_clip(model: nn.Module, spec: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    """Mean over the clip's 10 s windows, as `earshotd analyze` summarises a file."""
    mid, emo, _ = model(torch.from_numpy(windows(spec)))
    return (None if mid is None else mid.mean(0).numpy()), emo.mean(0).numpy()


def pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Column-wise Pearson r."""
    a = a - a.mean(0)
    b = b - b.mean(0)
    return (a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0))


def load_targets(data: Path):
    from .proxies import read_table

    ids, y = D.ratings(data)
    emo = dict(zip(ids, y))
    prox = read_table(D.TRAIN_DIR / "proxies.csv")
    from .proxies import MID_LEVEL

    mid = {i: np.array([prox[i][m] for m in MID_LEVEL]) for i in ids}
    return ids, emo, mid


def int8_predictions(model: nn.Module, specs, train_ids, test_ids, tmp: Path) -> dict:
    """Exports a fold's model, quantises it on training windows, runs held-out clips in onnxruntime."""
    import copy

    from . import export as X

    rng = np.random.default_rng(0)
    f32, q8 = tmp / "m.onnx", tmp / "m8.onnx"
    X.export_onnx(copy.deepcopy(model), f32)
    X.quantize(f32, q8, [windows(specs[i])[0] for i in rng.choice(train_ids, 64, replace=False)])
    out = {}
    for name, path in [("onnx", f32), ("int8", q8)]:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        mids, emos = [], []
        for i in test_ids:
            res = [sess.run(None, {"spectrogram": w[None]}) for w in windows(specs[i])]
            mids.append(np.mean([r[1][0] for r in res], axis=0).tolist())
            emos.append(np.mean([r[2][0] for r in res], axis=0).tolist())
        out[f"mid_level_{name}"], out[f"emotions_{name}"] = mids, emos
    return out


def run_cv(data: Path, archs: list[str], seeds: int, worker: int = 0, workers: int = 1, log=print) -> None:
    import tempfile

    ids, emo, mid = load_targets(data)
    specs = D.spectrograms(data)
    folds = D.load_splits(ids)
    n_bands = next(iter(specs.values())).shape[1]
    runs = [(seed, arch, k) for seed in range(seeds) for arch in archs for k in range(len(folds))]
    for n, (seed, arch, k) in enumerate(runs):
        test_ids = folds[k]
        if n % workers != worker:
            continue
        out = RESULTS_DIR / arch / f"f{k}-s{seed}.json"
        if out.exists():
            continue
        cfg = CONFIGS[arch]
        train_ids = [i for i in ids if i not in set(test_ids)]
        mean, std = band_stats(specs, train_ids)
        t0 = time.time()
        log(f"  {arch} fold {k} seed {seed}")
        model = fit(cfg, Dataset(specs, train_ids, emo, mid), n_bands, mean, std, seed, log)
        preds = {i: predict_clip(model, specs[i]) for i in test_ids}
        out.parent.mkdir(parents=True, exist_ok=True)
        result = {
            "arch": arch, "fold": k, "seed": seed, "config": asdict(cfg),
            "train_seconds": round(time.time() - t0, 1),
            "ids": list(test_ids),
            "emotions": [preds[i][1].tolist() for i in test_ids],
            "mid_level": None if preds[test_ids[0]][0] is None else [preds[i][0].tolist() for i in test_ids],
        }
        if ARCHS[cfg.arch].bottleneck and cfg.arch != "reference":
            with tempfile.TemporaryDirectory() as tmp:
                result.update(int8_predictions(model, specs, train_ids, test_ids, Path(tmp)))
        out.write_text(json.dumps(result) + "\n")
        r = pearson(np.array(result["emotions"]), np.stack([emo[i] for i in test_ids]))
        log(f"    -> avg r {r.mean():.3f} ({time.time() - t0:.0f} s)")
