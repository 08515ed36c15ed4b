"""Command line of the training pipeline; each step caches its result so `all` resumes."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import data as D


def cmd_descriptors(args) -> None:
    from . import proxies

    out = D.TRAIN_DIR / "descriptors.csv"
    paths = D.audio_paths(args.data)
    proxies.compute_descriptors(paths, out, jobs=args.jobs)
    table = proxies.read_table(out)
    ids, targets = proxies.proxy_table(table)
    with open(D.MODELS_DIR / "train" / "proxies.csv", "w") as f:
        f.write("id," + ",".join(proxies.MID_LEVEL) + "\n")
        for i, row in zip(ids, targets):
            f.write(f"{i}," + ",".join(f"{v:.6f}" for v in row) + "\n")
    print(f"wrote {out} and proxies.csv ({len(ids)} clips)")
    # the same descriptors on every 5 s window: per-window targets (train.load_window_targets)
    windows = D.TRAIN_DIR / "window_descriptors.csv"
    proxies.compute_window_descriptors(paths, windows, jobs=args.jobs)
    print(f"wrote {windows}")


def cmd_cache(args) -> None:
    specs = D.spectrograms(args.data)
    print(f"{len(specs)} spectrograms cached in {D.CACHE_DIR}")


MODEL_ID = "edge-v4"


def cmd_export(args) -> None:
    """Trains the shipped model on all 360 clips and writes models/<id>/."""
    import json

    import numpy as np
    import torch

    from . import export as X
    from . import train as T

    torch.set_num_threads(2)
    ids, emo, mid = T.load_targets(args.data)
    specs = D.spectrograms(args.data)
    cfg = T.CONFIGS["edge"]
    if args.epochs is not None:
        cfg.epochs = args.epochs
    mean, std = T.band_stats(specs, ids)
    model = T.fit(cfg, T.dataset(cfg, specs, ids, emo, mid), specs[ids[0]].shape[1], mean, std, seed=0)
    out = D.MODELS_DIR / MODEL_ID
    out.mkdir(exist_ok=True)
    X.export_onnx(model, out / "model.onnx")
    rng = np.random.default_rng(0)
    calib = [T.windows(specs[i])[0] for i in rng.choice(ids, 64, replace=False)]
    X.quantize(out / "model.onnx", out / "model.int8.onnx", calib)
    # checks: ONNX against torch, int8 against f32, on every clip's first window
    diffs, f32, q8 = [], [], []
    with torch.no_grad():
        for i in ids:
            w = T.windows(specs[i])[0]
            mt, et, _ = model(torch.from_numpy(w)[None])
            _, m32, e32 = X.run_onnx(out / "model.onnx", w)
            _, m8, e8 = X.run_onnx(out / "model.int8.onnx", w)
            diffs.append(max(np.abs(m32 - mt[0].numpy()).max(), np.abs(e32 - et[0].numpy()).max()))
            f32.append(np.concatenate([m32, e32]))
            q8.append(np.concatenate([m8, e8]))
    f32, q8 = np.array(f32), np.array(q8)
    r_int8 = T.pearson(q8, f32)
    checks = {
        "onnx_vs_torch_max_abs": float(max(diffs)),
        "int8_vs_f32_r_per_output": [round(float(v), 4) for v in r_int8],
        "int8_vs_f32_max_abs": float(np.abs(q8 - f32).max()),
    }
    print(json.dumps(checks))
    if checks["onnx_vs_torch_max_abs"] > 1e-4:
        raise SystemExit(f"ONNX export differs from torch by {checks['onnx_vs_torch_max_abs']}")
    mid_means = np.mean([mid[i] for i in ids], axis=0)
    meta = X.metadata(model, MODEL_ID, out, mid_means, {
        "training": {"clips": len(ids), "seed": 0, "config": T.asdict(cfg), "proxies": T.PROXIES_VERSION,
                     "data": "Soundtracks Set 1 (360 clips)"},
        "checks": checks,
    })
    (out / "metadata.json").write_text(json.dumps(meta, indent=1) + "\n")
    torch.save(model.state_dict(), D.CACHE_DIR / f"{MODEL_ID}.pt")
    print(f"wrote {out}")


def cmd_golden(args) -> None:
    from . import golden

    model_dir = D.MODELS_DIR / MODEL_ID
    golden.write(model_dir if (model_dir / "model.onnx").exists() else None)
    print(f"wrote {golden.TESTDATA}")


def cmd_sanity(args) -> None:
    from . import report

    text = report.sanity(args.data) + "\n\n" + report.spectrogram_baseline(args.data)
    (D.TRAIN_DIR / "results").mkdir(exist_ok=True)
    (D.TRAIN_DIR / "results" / "sanity.md").write_text(text + "\n")
    print(text)


def cmd_cv(args) -> None:
    from . import train

    worker, workers = (int(v) for v in args.worker.split("/"))
    train.run_cv(args.data, args.models.split(","), args.seeds, worker, workers)


# what `all` trains: every row of the model card (in this order: the shipped model's runs first)
CV_MODELS = ["edge", "direct", "edge-mid1-2d", "edge-mid10", "edge-win-2d", "edge-v2", "edge-x1", "edge-mid1",
             "direct-1d", "edge-x3", "edge-win", "edge-aug", "edge-w192", "edge-aux", "reference"]
# variants compared run by run with a base (configs in train.CONFIGS; *-v1 and edge-v3: proxies version 1)
SCREENED = ["edge-aug", "edge-w192", "edge-aux", "edge-win", "edge-x3", "edge-v2", "edge-v3", "edge"]  # vs edge-x1
SCREENED_V3 = ["edge-mid1-2d-v1", "edge-win-2d"]  # vs edge-v3
SCREENED_V4 = ["edge-mid1-2d", "edge-mid10", "edge-v3"]  # vs edge (edge-v4)


def cmd_report(args) -> None:
    from . import report

    text = report.cv_table(args.data)
    text += "\n\nSeeds of one fold averaged (an ensemble; the shipped model is one network):\n\n"
    text += report.seed_ensembles(args.data, ["edge", "direct", "edge-v3", "edge-v2", "edge-x3", "edge-x1",
                                               "edge-mid1", "direct-1d"])
    text += "\n\nVariants against edge-x1 (edge-v1) on the same folds and seeds (difference: mean +- standard error):\n\n"
    text += report.screening_table(args.data, "edge-x1", SCREENED)
    text += "\n\nVariants of edge-v3 against it on the same folds and seeds (proxies version 1):\n\n"
    text += report.screening_table(args.data, "edge-v3", SCREENED_V3)
    text += "\n\nVariants of edge (edge-v4) against it on the same folds and seeds (mid-level r: each against "
    text += "the proxies it was trained on):\n\n"
    text += report.screening_table(args.data, "edge", SCREENED_V4)
    (D.TRAIN_DIR / "results" / "cv.md").write_text(text + "\n")
    print(text)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="earshot_train", description=__doc__)
    p.add_argument("step", choices=["descriptors", "cache", "sanity", "cv", "export", "golden", "report", "all"])
    p.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[4] / "shared" / "data")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--models", default=",".join(CV_MODELS), help="comma list for cv")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--worker", default="0/1", help="i/n: this process takes every n-th run (parallel cv)")
    p.add_argument("--epochs", type=int, default=None, help="override (quick checks only)")
    args = p.parse_args(argv)
    steps = {
        "descriptors": cmd_descriptors,
        "cache": cmd_cache,
        "export": cmd_export,
        "sanity": cmd_sanity,
        "cv": cmd_cv,
        "report": cmd_report,
        "golden": cmd_golden,
    }
    if args.step == "all":
        for name in ["descriptors", "cache", "sanity", "cv", "export", "golden", "report"]:
            print(f"== {name}", flush=True)
            steps[name](args)
    else:
        steps[args.step](args)
