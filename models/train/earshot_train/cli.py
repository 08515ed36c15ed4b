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


def cmd_descriptors_4q(args) -> None:
    """Raw descriptors of the 564 4q-dev clips (no ratings needed: the proxies are audio-only)."""
    from . import proxies

    out = D.TRAIN_DIR / "descriptors_4q.csv"
    proxies.compute_descriptors({c["id"]: c["path"] for c in D.fourq(args.data)}, out, jobs=args.jobs)
    print(f"wrote {out}")


def cmd_cache(args) -> None:
    specs = D.spectrograms(args.data)
    print(f"{len(specs)} spectrograms cached in {D.CACHE_DIR}")


def cmd_export(args) -> None:
    """Trains the shipped model on every clip and writes models/<id>/ (id: models/SHIPPED)."""
    import json

    import numpy as np
    import torch

    from . import export as X
    from . import train as T

    torch.set_num_threads(int(__import__("os").environ.get("EARSHOT_THREADS", "2")))
    model_id = D.shipped_id()
    cfg = T.CONFIGS[SHIPPED_CONFIG]
    if args.epochs is not None:
        cfg.epochs = args.epochs
    ids, emo, mid = T.load_targets(args.data)
    specs, bands = T.inputs(cfg, args.data)
    fit_ids, fit_mid, signs = ids, mid, None
    if cfg.fourq > 0:
        fq_mid, signs = T.load_fourq_targets(args.data, ids)
        fit_ids, fit_mid = ids + sorted(fq_mid), {**mid, **fq_mid}
    mean, std = T.band_stats(specs, ids)
    n_bands = next(iter(specs.values())).shape[1]
    rooms = D.room_bands(args.data) if cfg.rooms > 0 else None
    transposed = D.transposed_bands(args.data) if cfg.transpose > 0 else None
    model = T.fit(cfg, T.dataset(cfg, specs, fit_ids, emo, fit_mid, None, bands, signs, rooms, transposed), n_bands,
                  mean, std, seed=0,
                  checkpoint=D.CACHE_DIR / "checkpoints" / f"export-{model_id}-{SHIPPED_CONFIG}.pt")
    out = D.MODELS_DIR / model_id
    out.mkdir(exist_ok=True)
    X.export_onnx(model, out / "model.onnx")
    X.quantize(out / "model.onnx", out / "model.int8.onnx", X.calibration_windows(cfg, specs, bands, fit_ids))
    # checks: ONNX against torch, int8 against f32, on every rated clip's first window
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
    data_text = "Soundtracks Set 1 (360 clips)" + (" + 4q-dev (564 clips: proxies, valence and arousal signs)"
                                                   if cfg.fourq > 0 else "")
    meta = X.metadata(model, model_id, out, mid_means, {
        "training": {"clips": len(fit_ids), "seed": 0, "config": T.asdict(cfg), "proxies": T.PROXIES_VERSION,
                     "data": data_text},
        "int8_faster_on": list(cfg.int8_faster_on),
        "novelty": X.novelty(model, X.calibration_windows(cfg, specs, bands, fit_ids, n=len(fit_ids), seed=1)),
        "checks": checks,
    })
    (out / "metadata.json").write_text(json.dumps(meta, indent=1) + "\n")
    torch.save(model.state_dict(), D.CACHE_DIR / f"{model_id}.pt")
    print(f"wrote {out}")


# the configuration (train.CONFIGS) that `export` trains as the shipped model
SHIPPED_CONFIG = "robust-4q-m1p-consq"


def cmd_golden(args) -> None:
    from . import golden

    model_dir = D.MODELS_DIR / D.shipped_id()
    golden.write(model_dir if (model_dir / "model.onnx").exists() else None)
    print(f"wrote {golden.TESTDATA}")


def cmd_sanity(args) -> None:
    from . import report

    text = report.sanity(args.data) + "\n\n" + report.spectrogram_baseline(args.data)
    text += "\n\n" + report.proxy_reliability()
    (D.TRAIN_DIR / "results").mkdir(exist_ok=True)
    (D.TRAIN_DIR / "results" / "sanity.md").write_text(text + "\n")
    print(text)


def cmd_cv(args) -> None:
    from . import train

    worker, workers = (int(v) for v in args.worker.split("/"))
    train.run_cv(args.data, args.models.split(","), args.seeds, worker, workers)


# what `all` trains: every row of the model card (in this order: the shipped model's runs first)
CV_MODELS = ["robust-4q-m1p", "robust-4q-m1", "robust-4q", "robust", "robust-clean", "edge", "direct", "edge-mid1-2d", "edge-mid10", "edge-win-2d", "edge-v2", "edge-x1", "edge-mid1",
             "direct-1d", "edge-x3", "edge-win", "edge-aug", "edge-w192", "edge-aux", "reference"]
# variants compared run by run with a base (configs in train.CONFIGS; *-v1 and edge-v3: proxies version 1)
SCREENED = ["edge-aug", "edge-w192", "edge-aux", "edge-win", "edge-x3", "edge-v2", "edge-v3", "edge"]  # vs edge-x1
SCREENED_V3 = ["edge-mid1-2d-v1", "edge-win-2d"]  # vs edge-v3
SCREENED_V4 = ["edge-mid1-2d", "edge-mid10", "edge-v3"]  # vs edge (edge-v4)


# fold models measured by `robustness` (train/results/robustness.md) unless --models names others
# ("arch:seed"; robust-4q's seed-0 fold models were not kept, so its seed 1)
ROBUSTNESS_MODELS = ["robust", "robust-4q:1", "robust-4q-m1", "robust-4q-m1p", "robust-4q-m1p-cons",
                     "robust-4q-m1p-consr", "robust-4q-m1p-consq", "robust-4q-m1p-consi"]
# read through capture on every held-out clip (robustness.held_out_accuracy); edge-v7's own fold models
# were not kept, its recipe trained again (robust-4q-m1p-again) stands for it
ACCURACY_MODELS = ["robust-4q-m1p-again", "robust-4q-m1p-cons", "robust-4q-m1p-consq", "robust-4q-m1p-consi"]


def cmd_robustness(args) -> None:
    """Readings under simulated capture conditions: the shipped model and every fold model of --models."""
    import json

    from . import frontend
    from . import robustness as R

    out_dir = D.TRAIN_DIR / "results" / "robustness"
    results = []
    shipped = out_dir / "edge-v4-shipped.json"
    if (D.MODELS_DIR / "edge-v4" / "model.onnx").exists() and not shipped.exists():
        R.run_shipped(args.data, D.MODELS_DIR / "edge-v4", frontend.spectrogram_v1)
    if shipped.exists():
        results.append(json.loads(shipped.read_text()))
    archs = ROBUSTNESS_MODELS if args.models == ",".join(CV_MODELS) else args.models.split(",")
    for item in archs:  # "arch" (seed 0) or "arch:seed"
        arch, _, seed = item.partition(":")
        seed = int(seed or 0)
        path = out_dir / f"{arch}-s{seed}.json"
        if not path.exists():
            R.run(args.data, arch, seed=seed)
        result = json.loads(path.read_text())
        if seed:
            result["arch"] = f"{arch} (seed {seed})"
        results.append(result)
    text = R.table(results, args.data)
    accuracy = []
    for arch in ACCURACY_MODELS if args.models == ",".join(CV_MODELS) else []:
        path = out_dir / f"{arch}-s0-accuracy.json"
        accuracy.append(json.loads(path.read_text()) if path.exists() else R.held_out_accuracy(args.data, arch))
    if accuracy:
        text += "\n\n" + R.accuracy_table(accuracy)
    shipped_dir = D.MODELS_DIR / D.shipped_id()
    int8 = out_dir / f"{shipped_dir.name}-int8.json"
    if (shipped_dir / "model.int8.onnx").exists() and not int8.exists():
        R.int8_agreement(args.data, shipped_dir)
    if int8.exists():
        text += "\n\n" + R.int8_table(json.loads(int8.read_text()))
    (D.TRAIN_DIR / "results" / "robustness.md").write_text(text + "\n")
    print(text)


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
    text += "\n\nFront end version 2 (robust, edge-v5) against edge (edge-v4) on the same folds and seeds:\n\n"
    text += report.screening_table(args.data, "edge", ["robust", "robust-clean"])
    text += "\n\nVariants of robust-4q (edge-v5) against it on the same folds and seeds:\n\n"
    text += report.screening_table(args.data, "robust-4q", ["robust-4q-m1", "robust-4q-again", "robust-4q-f03",
                                                            "robust-4q-f03m1", "robust-4q-rooms", "robust-4q-p1",
                                                            "robust-4q-p1m1", "robust-4q-p2w"])
    text += ("\n\nFor the Pi 4's budget (issue 20), against robust-4q-m1 (edge-v6): one 2-D layer (p1m1), "
             "and three at 2/3 of the cost, narrower (m1n) or pooled after the first (m1p):\n\n")
    text += report.screening_table(args.data, "robust-4q-m1", ["robust-4q-p1m1", "robust-4q-m1n", "robust-4q-m1p"])
    text += "\n\nWhat edge-v6's explanation costs: its encoder with emotions straight from the embedding:\n\n"
    text += report.screening_table(args.data, "robust-4q-m1", ["robust-4q-direct"])
    text += "\n\nWhat edge-v7's explanation costs: its encoder with emotions straight from the embedding:\n\n"
    text += report.screening_table(args.data, "robust-4q-m1p", ["robust-4q-m1p-direct"])
    text += "\n\nA 12-pitch-class (chroma) branch beside edge-v7's 2-D layers, against edge-v7:\n\n"
    text += report.screening_table(args.data, "robust-4q-m1p", ["robust-4q-m1pc"])
    text += "\n\nedge-v7 trained to read a captured crop as it reads the clean one (consistency), against edge-v7:\n\n"
    text += report.screening_table(args.data, "robust-4q-m1p", ["robust-4q-m1p-cons", "robust-4q-m1p-consr",
                                                                "robust-4q-m1p-consr4", "robust-4q-m1p-consq",
                                                                "robust-4q-m1p-consi"])
    text += "\n\nedge-v7's recipe trained again, seed 0 (fold models kept), against its own seed-0 runs:\n\n"
    text += report.screening_table(args.data, "robust-4q-m1p", ["robust-4q-m1p-again"])
    text += "\n\nedge-v7 trained on crops transposed by 1 or 2 semitones (half of them), against edge-v7:\n\n"
    text += report.screening_table(args.data, "robust-4q-m1p", ["robust-4q-m1p-t"])
    text += ("\n\n4q-dev (popular music), held-out folds grouped by artist: signs of valence and arousal "
             "(balanced accuracy at the rating scale's midpoint, 0.5; AUC)\n\n")
    variants = ["robust-4q-m1", "robust-4q-f03", "robust-4q-f03m1", "robust-4q-rooms", "robust-4q-p1", "robust-4q-p1m1",
                "robust-4q-p2w", "robust-4q-m1n", "robust-4q-m1p", "robust-4q-m1pc", "robust-4q-m1p-cons",
                "robust-4q-m1p-consr", "robust-4q-m1p-consr4", "robust-4q-m1p-consq", "robust-4q-m1p-consi",
                "robust-4q-m1p-t", "robust-4q-m1p-again"]
    text += report.fourq_table(args.data, ["robust", "robust-4q", "robust-clean", *variants])
    mid = report.fourq_mid_table(args.data, ["robust", "robust-4q", "robust-clean", *variants])
    if mid:
        text += "\n\nMid-level outputs against the proxies, held-out clips of both data sets:\n\n" + mid
    (D.TRAIN_DIR / "results" / "cv.md").write_text(text + "\n")
    print(text)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="earshot_train", description=__doc__)
    p.add_argument("step", choices=["descriptors", "descriptors-4q", "cache", "sanity", "cv", "export", "golden", "report", "robustness", "all"])
    p.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[4] / "shared" / "data")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--models", default=",".join(CV_MODELS), help="comma list for cv")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--worker", default="0/1", help="i/n: this process takes every n-th run (parallel cv)")
    p.add_argument("--epochs", type=int, default=None, help="override (quick checks only)")
    args = p.parse_args(argv)
    steps = {
        "descriptors": cmd_descriptors,
        "descriptors-4q": cmd_descriptors_4q,
        "cache": cmd_cache,
        "export": cmd_export,
        "sanity": cmd_sanity,
        "cv": cmd_cv,
        "report": cmd_report,
        "robustness": cmd_robustness,
        "golden": cmd_golden,
    }
    if args.step == "all":
        for name in ["descriptors", "descriptors-4q", "cache", "sanity", "cv", "export", "golden", "report", "robustness"]:
            print(f"== {name}", flush=True)
            steps[name](args)
    else:
        steps[args.step](args)
