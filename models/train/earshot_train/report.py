"""Sanity of the proxies and the metrics tables (numpy only: reads committed results)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from . import data as D
from .proxies import MID_LEVEL, PROXIES_VERSION, read_table

PAPER = {
    "A2E direct (paper, one split)": [.81, .79, .84, .82, .81, .66, .60, .75],
    "A2Mid2E joint (paper, one split)": [.82, .78, .82, .76, .79, .65, .64, .72],
    "essentia 518 descriptors + ridge (paper.md, 5x3)": [.79, .71, .72, .69, .60, .52, .53, .67],
    "7 single proxies, linear (paper.md, 5x3)": [.66, .77, .71, .67, .70, .55, .56, .62],
}

# Expected sign of r(proxy, emotion) from the definitions and paper.md; 0 = no clear expectation.
EXPECTED = {
    "melodiousness": {"valence": +1, "tender": +1, "tension": -1, "anger": -1},
    "articulation": {"energy": +1, "tender": -1},
    "rhythm_stability": {"energy": +1, "happy": +1, "tension": -1, "fear": -1},
    "rhythm_complexity": {"energy": +1, "tender": -1},
    "dissonance": {"tension": +1, "anger": +1, "fear": +1, "valence": -1, "tender": -1},
    "tonal_stability": {"valence": +1, "happy": +1, "tension": -1, "fear": -1},
    "minorness": {"valence": -1, "happy": -1, "sad": +1},
}


def pearson(a, b):
    a = a - a.mean(0)
    b = b - b.mean(0)
    return (a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0))


def ridge_cv(x: np.ndarray, y: np.ndarray, ids: list[int], folds, lam: float) -> np.ndarray:
    """Per-emotion r of standardised ridge regression over the fixed folds (deterministic: 1 'seed')."""
    pos = {i: k for k, i in enumerate(ids)}
    preds = np.zeros_like(y)
    for test in folds:
        te = np.array([pos[i] for i in test])
        tr = np.setdiff1d(np.arange(len(ids)), te)
        mu, sd = x[tr].mean(0), x[tr].std(0) + 1e-12
        a = (x[tr] - mu) / sd
        w = np.linalg.solve(a.T @ a + lam * np.eye(a.shape[1]), a.T @ (y[tr] - y[tr].mean(0)))
        preds[te] = (x[te] - mu) / sd @ w + y[tr].mean(0)
    return np.array([pearson(preds[[pos[i] for i in f]], y[[pos[i] for i in f]]) for f in folds])


def sanity(data: Path) -> str:
    ids, y = D.ratings(data)
    prox = read_table(D.TRAIN_DIR / "proxies.csv")
    desc = read_table(D.TRAIN_DIR / "descriptors.csv")
    p = np.array([[prox[i][m] for m in MID_LEVEL] for i in ids])
    lines = ["| proxy | " + " | ".join(D.EMOTIONS) + " | expected sign agrees |", "|---" * 10 + "|"]
    for j, m in enumerate(MID_LEVEL):
        r = [float(np.corrcoef(p[:, j], y[:, e])[0, 1]) for e in range(8)]
        exp = EXPECTED[m]
        agree = [np.sign(r[D.EMOTIONS.index(e)]) == s for e, s in exp.items()]
        cells = []
        for e, v in zip(D.EMOTIONS, r):
            mark = "" if e not in exp else ("" if np.sign(v) == exp[e] else " (!)")
            cells.append(f"{v:+.2f}{mark}")
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {sum(agree)}/{len(agree)} |")
    folds = D.load_splits(ids)
    base = ridge_cv(p, y, ids, folds, lam=1.0)
    dnames = sorted(next(iter(desc.values())))
    dx = np.array([[desc[i][d] for d in dnames] for i in ids])
    base_d = ridge_cv(dx, y, ids, folds, lam=10.0)
    lines += ["", "Linear baselines on our folds (ridge, per-fold r, mean +- sd over 5 folds):", "",
              "| inputs | " + " | ".join(D.EMOTIONS) + " | avg |", "|---" * 10 + "|"]
    for name, r in [("7 proxy targets (ridge 1)", base), (f"{len(dnames)} raw descriptors (ridge 10)", base_d)]:
        lines.append(f"| {name} | " + " | ".join(f"{m:.2f}" for m in r.mean(0)) +
                     f" | {r.mean(1).mean():.3f} +- {r.mean(1).std():.3f} |")
    return "\n".join(lines)


def proxy_reliability() -> str:
    """How well each proxy agrees with itself within a Soundtracks clip (window_descriptors.csv, 5 s
    windows): a model cannot agree with a proxy better than the proxy agrees with itself."""
    from .proxies import proxy_table, read_windows

    keys, rows = proxy_table(read_windows(D.TRAIN_DIR / "window_descriptors.csv"))
    by_clip: dict[int, list] = {}
    for (clip, _), row in zip(keys, rows):  # keys are sorted: windows in time order
        by_clip.setdefault(clip, []).append(row)
    clips = [w for _, w in sorted(by_clip.items()) if len(w) >= 2]
    half = pearson(np.array([np.mean(w[0::2], 0) for w in clips]), np.array([np.mean(w[1::2], 0) for w in clips]))
    ends = pearson(np.array([w[0] for w in clips]), np.array([w[-1] for w in clips]))
    lines = [f"Each proxy against itself on {len(clips)} Soundtracks clips (5 s windows): odd against even windows "
             "(split-half r, and Spearman-Brown's estimate for the whole clip), and the first window against the "
             "last. The rhythm proxies' window values are unreliable by construction (a 5 s window holds too few "
             "beats; training keeps their clip targets):", "",
             "| proxy | split-half r | whole clip (Spearman-Brown) | first against last window |", "|---" * 4 + "|"]
    for j, m in enumerate(MID_LEVEL):
        lines.append(f"| {m} | {half[j]:.2f} | {2 * half[j] / (1 + half[j]):.2f} | {ends[j]:.2f} |")
    return "\n".join(lines)


@lru_cache
def _proxies(version: int) -> dict[int, dict[str, float]]:
    name = "proxies.csv" if version == PROXIES_VERSION else f"results/proxies-v{version}.csv"
    return read_table(D.TRAIN_DIR / name)


def proxy_version(r: dict) -> int:
    """The proxy recipes a run was trained on (runs before version 2 did not record it)."""
    return r.get("proxies", 1)


def mid_r(r: dict) -> np.ndarray:
    """Per-feature r of one run's mid-level outputs against the proxies it was trained on."""
    table = _proxies(proxy_version(r))
    return pearson(np.array(r["mid_level"]), np.array([[table[i][m] for m in MID_LEVEL] for i in r["ids"]]))


def avg_r(r: dict, emo: dict, key: str = "emotions") -> float:
    """Average over emotions of one run's Pearson r on its held-out clips."""
    return pearson(np.array(r[key]), np.stack([emo[i] for i in r["ids"]])).mean()


def load_results(arch: str) -> list[dict]:
    d = D.TRAIN_DIR / "results" / arch
    return [json.loads(p.read_text()) for p in sorted(d.glob("*.json"))] if d.exists() else []


# results/edge-v3 and results/*-v1: runs on proxies version 1 that no current config reproduces
CV_ROWS = ("robust-4q-m1p", "robust-4q-m1", "robust-4q-direct", "robust", "robust-4q", "robust-4q-f03", "robust-4q-f03m1", "robust-clean", "edge", "direct", "edge-mid1-2d", "edge-mid10", "edge-v3", "edge-mid1-2d-v1", "edge-v2", "edge-x1",
           "edge-mid1", "direct-1d", "reference")


def cv_table(data: Path, archs=CV_ROWS) -> str:
    ids, y = D.ratings(data)
    emo = dict(zip(ids, y))
    rows = ["| model | runs | " + " | ".join(D.EMOTIONS) + " | avg | mid-level r vs proxies |", "|---" * 12 + "|"]
    mid_rows = []
    for arch in archs:
        res = load_results(arch)
        if not res:
            continue
        for variant, key in [("", "emotions"), (" int8 (ORT)", "emotions_int8")]:
            rs = [pearson(np.array(r[key]), np.stack([emo[i] for i in r["ids"]])) for r in res if r.get(key)]
            if not rs:
                continue
            rs = np.array(rs)
            avg = rs.mean(1)
            mids = [mid_r(r) for r in res if r.get("mid_level")] if not variant else []
            version = proxy_version(res[0])
            mark = f" (proxies v{version})" if version != PROXIES_VERSION else ""
            mid_txt = f"{np.mean(mids):.3f} +- {np.std([m.mean() for m in mids]):.3f}{mark}" if mids else ""
            rows.append(f"| {arch}{variant} | {len(rs)} | " + " | ".join(
                f"{m:.2f}+-{s:.2f}" for m, s in zip(rs.mean(0), rs.std(0))) +
                f" | **{avg.mean():.3f} +- {avg.std():.3f}** | {mid_txt} |")
            if mids:
                mids = np.array(mids)
                mid_rows.append(f"| {arch} | v{version} | " +
                                " | ".join(f"{m:.2f}" for m in mids.mean(0)) + f" | {mids.mean():.3f} |")
    for name, r in PAPER.items():
        rows.append(f"| {name} | | " + " | ".join(f"{v:.2f}" for v in r) + f" | {np.mean(r):.3f} | |")
    out = "\n".join(rows)
    for arch in archs:
        res = [r for r in load_results(arch) if r.get("emotions_int8")]
        if res:
            loss = np.array([avg_r(r, emo) - avg_r(r, emo, "emotions_int8") for r in res])
            onnx = np.array([abs(avg_r(r, emo) - avg_r(r, emo, "emotions_onnx")) for r in res])
            out += (f"\n\n{arch}: int8 (onnxruntime) loses {loss.mean():+.4f} +- {loss.std():.4f} avg r against f32 "
                    f"(max {loss.max():+.4f} over {len(res)} runs); ONNX f32 vs PyTorch differ by at most {onnx.max():.1e} avg r")
    base = load_results("edge")
    for arch in archs:  # a model with fewer runs (folds or seeds) is compared with edge on its folds
        res = load_results(arch)
        folds = sorted({r["fold"] for r in res})
        if arch == "edge" or not res or len(res) == len(base):
            continue
        same = [avg_r(r, emo) for r in base if r["fold"] in folds]
        out += (f"\n\n{arch}: {len(res)} run(s) on fold(s) {', '.join(map(str, folds))}, avg r "
                f"{np.mean([avg_r(r, emo) for r in res]):.3f}; edge on the same fold(s): {np.mean(same):.3f} "
                f"over {len(same)} runs")
    if mid_rows:
        out += ("\n\nMid-level outputs against the proxy targets they were trained on, held-out clips "
                f"(Pearson r, mean over runs; current proxies: v{PROXIES_VERSION}):\n\n"
                "| model | proxies | " + " | ".join(MID_LEVEL) + " | avg |\n" + "|---" * 10 + "|\n" +
                "\n".join(mid_rows))
    return out


def screening_table(data: Path, base: str, archs) -> str:
    """Variants tried with fewer runs, each against `base` on the same (fold, seed) runs."""
    ids, y = D.ratings(data)
    emo = dict(zip(ids, y))
    base_runs = {(r["fold"], r["seed"]): r for r in load_results(base)}

    def scores(r):  # a direct model has no mid-level outputs
        return avg_r(r, emo), mid_r(r).mean() if r.get("mid_level") else np.nan

    lines = [f"| variant | runs | avg r | {base} on the same runs | difference | mid-level r | {base} mid-level r |",
             "|---" * 7 + "|"]
    for arch in archs:
        pairs = [(scores(r), scores(base_runs[(r["fold"], r["seed"])])) for r in load_results(arch)
                 if (r["fold"], r["seed"]) in base_runs]
        if not pairs:
            continue
        (e, m), (be, bm) = (np.array(v).T for v in zip(*pairs))
        d = e - be
        lines.append(f"| {arch} | {len(pairs)} | {e.mean():.3f} | {be.mean():.3f} | "
                     f"{d.mean():+.3f} +- {d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else 0:.3f} | "
                     f"{'-' if np.isnan(m).all() else f'{m.mean():.3f}'} | {bm.mean():.3f} |")
    return "\n".join(lines)


def seed_ensembles(data: Path, archs) -> str:
    """Each fold's seeds averaged into one prediction: what an ensemble of runs would score."""
    ids, y = D.ratings(data)
    emo = dict(zip(ids, y))
    lines = ["| model | seeds averaged | avg r over folds | single runs |", "|---" * 4 + "|"]
    for arch in archs:
        res = load_results(arch)
        folds = sorted({r["fold"] for r in res})
        ens, single, n = [], [], 0
        for k in folds:
            runs = [r for r in res if r["fold"] == k]
            truth = np.stack([emo[i] for i in runs[0]["ids"]])
            ens.append(pearson(np.mean([r["emotions"] for r in runs], axis=0), truth).mean())
            single += [avg_r(r, emo) for r in runs]
            n = len(runs)
        if n > 1:
            lines.append(f"| {arch} | {n} | {np.mean(ens):.3f} +- {np.std(ens):.3f} | {np.mean(single):.3f} |")
    return "\n".join(lines)


def spectrogram_baseline(data: Path) -> str:
    """How far plain per-band statistics of the model's own input get: ridge to proxies and ratings."""
    ids, y = D.ratings(data)
    specs = D.spectrograms(data)
    prox = read_table(D.TRAIN_DIR / "proxies.csv")
    folds = D.load_splits(ids)
    x = np.array([np.concatenate([s.mean(0), s.std(0), np.abs(np.diff(s, axis=0)).mean(0)])
                  for s in (specs[i] for i in ids)])
    p = np.array([[prox[i][m] for m in MID_LEVEL] for i in ids])
    mid, emo = ridge_cv(x, p, ids, folds, lam=300.0), ridge_cv(x, y, ids, folds, lam=300.0)
    return "\n".join([
        f"Ridge (300) on per-band mean, sd and mean absolute change of the spectrogram ({x.shape[1]} features), "
        "per-fold r, mean over 5 folds:", "",
        "| target | " + " | ".join(MID_LEVEL) + " | avg |", "|---" * 9 + "|",
        "| proxies | " + " | ".join(f"{v:.2f}" for v in mid.mean(0)) + f" | {mid.mean():.3f} |", "",
        "| target | " + " | ".join(D.EMOTIONS) + " | avg |", "|---" * 10 + "|",
        "| ratings | " + " | ".join(f"{v:.2f}" for v in emo.mean(0)) + f" | {emo.mean():.3f} |",
    ])


def _auc(score: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve: the chance that a random positive scores above a random negative."""
    from scipy.stats import rankdata

    r = rankdata(score)
    n_pos, n_neg = positive.sum(), (~positive).sum()
    return float((r[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _balanced_accuracy(score: np.ndarray, positive: np.ndarray, threshold: float) -> float:
    pred = score > threshold
    return float(((pred & positive).sum() / positive.sum() + (~pred & ~positive).sum() / (~positive).sum()) / 2)


def sign_scores(valence: np.ndarray, energy: np.ndarray, clips: list[dict]) -> dict:
    """Balanced accuracy (threshold: the rating scale's midpoint, 0.5) and AUC of valence and
    energy against the valence and arousal signs of 4q-dev clips."""
    v = np.array([c["valence"] > 0 for c in clips])
    a = np.array([c["arousal"] > 0 for c in clips])
    return {"valence_bacc": _balanced_accuracy(valence, v, 0.5), "valence_auc": _auc(valence, v),
            "arousal_bacc": _balanced_accuracy(energy, a, 0.5), "arousal_auc": _auc(energy, a)}


def _ridge_fit(x, y, lam):
    mu, sd = x.mean(0), x.std(0) + 1e-12
    a = (x - mu) / sd
    w = np.linalg.solve(a.T @ a + lam * np.eye(a.shape[1]), a.T @ (y - y.mean(0)))
    return lambda z: (z - mu) / sd @ w + y.mean(0)


def fourq_baselines(data: Path) -> dict[str, list[dict]]:
    """Essentia descriptors + ridge on the same artist-grouped 4q-dev folds: trained on the
    Soundtracks ratings only (zero-shot), and on the 4q-dev signs of the other folds (+1/-1 targets)."""
    path = D.TRAIN_DIR / "descriptors_4q.csv"
    if not path.exists():
        return {}
    ids, y = D.ratings(data)
    desc = read_table(D.TRAIN_DIR / "descriptors.csv")
    fq_desc = read_table(path)
    clips = [c for c in D.fourq(data) if c["id"] in fq_desc]
    if len(clips) < 564:
        return {}
    names = sorted(next(iter(desc.values())))
    xs = np.array([[desc[i][d] for d in names] for i in ids])
    zero = _ridge_fit(xs, y[:, :2], 10.0)
    by_id = {c["id"]: c for c in clips}
    out: dict[str, list[dict]] = {"essentia ridge, Soundtracks only (zero-shot)": [],
                                  "essentia ridge, trained on 4q-dev signs": []}
    folds = D.fourq_folds(D.fourq(data))
    for k, test in enumerate(folds):
        xt = np.array([[fq_desc[i][d] for d in names] for i in test])
        tc = [by_id[i] for i in test]
        p = zero(xt)
        out["essentia ridge, Soundtracks only (zero-shot)"].append(sign_scores(p[:, 0], p[:, 1], tc))
        train = [i for f, fold in enumerate(folds) if f != k for i in fold]
        xr = np.array([[fq_desc[i][d] for d in names] for i in train])
        yr = np.array([[by_id[i]["valence"], by_id[i]["arousal"]] for i in train], dtype=float)
        q = _ridge_fit(xr, yr, 10.0)(xt) / 2 + 0.5  # signs -1..1 onto the 0..1 scale, midpoint 0.5
        out["essentia ridge, trained on 4q-dev signs"].append(sign_scores(q[:, 0], q[:, 1], tc))
    return out


def fourq_table(data: Path, archs) -> str:
    """Valence and arousal signs of held-out 4q-dev clips (folds grouped by artist)."""
    clips = {c["id"]: c for c in D.fourq(data)}
    rows = {}
    for arch in archs:
        runs = [r for r in load_results(arch) if r.get("fourq")]
        if runs:
            rows[arch] = [sign_scores(np.array(r["fourq"]["emotions"])[:, 0], np.array(r["fourq"]["emotions"])[:, 1],
                                      [clips[i] for i in r["fourq"]["ids"]]) for r in runs]
    rows.update(fourq_baselines(data))
    keys = ["valence_bacc", "valence_auc", "arousal_bacc", "arousal_auc"]
    lines = ["| model | runs | valence balanced accuracy | valence AUC | arousal balanced accuracy | arousal AUC |",
             "|---" * 6 + "|"]
    for name, scores in rows.items():
        cells = [f"{np.mean([s[k] for s in scores]):.3f} +- {np.std([s[k] for s in scores]):.3f}" for k in keys]
        lines.append(f"| {name} | {len(scores)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def fourq_mid_table(data: Path, archs) -> str:
    """Mid-level outputs against the proxies on held-out clips of both data sets (924 clips in all)."""
    from .train import load_fourq_targets

    ids, _ = D.ratings(data)
    try:
        fq_mid, _ = load_fourq_targets(data, ids)
    except SystemExit:
        return ""
    sound = _proxies(PROXIES_VERSION)
    lines = ["| model | clips | " + " | ".join(MID_LEVEL) + " | avg |", "|---" * 10 + "|"]
    for arch in archs:
        rs = []
        for r in load_results(arch):
            if not r.get("fourq") or not r.get("mid_level"):
                continue
            pred = np.array(r["mid_level"] + r["fourq"]["mid_level"])
            truth = np.array([[sound[i][m] for m in MID_LEVEL] for i in r["ids"]] +
                             [fq_mid[i] for i in r["fourq"]["ids"]])
            rs.append(pearson(pred, truth))
        if rs:
            m = np.mean(rs, axis=0)
            lines.append(f"| {arch} | Soundtracks + 4q-dev, {len(rs)} runs | " + " | ".join(f"{v:.2f}" for v in m) +
                         f" | {m.mean():.3f} |")
    return "\n".join(lines)
