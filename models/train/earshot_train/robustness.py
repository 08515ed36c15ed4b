"""Robustness suite: how much readings move when the same music is captured differently.

Each condition changes a held-out clip's audio the way a file format, a microphone, a room
or a noise floor would (in the audio domain, unlike capture.py's training simulation), then
the clip is read as the daemon reads it: front end, 10 s windows every second, one reading
per window. Per condition: the mean absolute change of the 8 emotions and the 7 mid-level
values against the clean reading (per window, then averaged), and Pearson r of the clip
means against the ratings. `python -m earshot_train robustness` writes
results/robustness.md; the model card quotes it.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Callable

import numpy as np
from scipy.signal import butter, fftconvolve, sosfilt

from . import data as D
from . import frontend

SR = frontend.SAMPLE_RATE


def _noise(x, dbfs, kind="white", seed=1):
    from .capture import _noise_audio

    n = _noise_audio(kind, len(x) / SR + 0.1, np.random.default_rng(seed))[:len(x)]
    return x + n * 10 ** (dbfs / 20)


def _gain(x, db):
    return np.clip(x * 10 ** (db / 20), -1.0, 1.0)  # clipping, as a converter would


def _quantise(x, bits, dither=False, seed=2):
    q = 2.0 ** (bits - 1)
    if dither:  # TPDF, one LSB peak each
        rng = np.random.default_rng(seed)
        x = x + (rng.random(len(x)) - rng.random(len(x))) / q
    return np.clip(np.round(x * q), -q, q - 1) / q


def _filter(x, kind, hz, order=8):
    return sosfilt(butter(order, hz, kind, fs=SR, output="sos"), x)


def _reverb(x, rt60, wet_db=-3.0, seed=3):
    """Synthetic room: direct sound plus exponentially decaying noise (a diffuse tail)."""
    rng = np.random.default_rng(seed)
    n = int(rt60 * SR)
    t = np.arange(n) / SR
    tail = rng.standard_normal(n) * 10 ** (-3 * t / rt60)  # amplitude -60 dB at rt60
    tail[: int(0.005 * SR)] = 0.0  # 5 ms before the first reflections
    tail *= 10 ** (wet_db / 20) / np.sqrt(np.sum(tail ** 2))
    tail[0] = 1.0
    return fftconvolve(x, tail)[: len(x)]


def _cheap_mic(x):
    """A small electret capsule: weak bass, a presence bump, rolled-off top."""
    y = _filter(x, "highpass", 150, order=2)
    bump = _filter(y, "bandpass", [2000, 4500], order=2)
    return _filter(y + bump, "lowpass", 9000, order=4)


def _encode(x, fmt, subtype, **kw):
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.clip(x, -1, 1), SR, format=fmt, subtype=subtype, **kw)
    buf.seek(0)
    y, _ = sf.read(buf, dtype="float64")
    out = np.zeros(len(x))
    m = min(len(x), len(y))
    out[:m] = y[:m]
    return out


def _room(x):
    """A realistic capture: reverberant room, cheap microphone, low gain, a noise floor."""
    return _noise(_gain(_cheap_mic(_reverb(x, 0.8)), -20), -65, "pink")


CONDITIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "float32": lambda x: x.astype(np.float32).astype(np.float64),
    "16-bit": lambda x: _quantise(x, 16),
    "16-bit dithered": lambda x: _quantise(x, 16, dither=True),
    "24-bit": lambda x: _quantise(x, 24),
    "noise -90 dBFS": lambda x: _noise(x, -90),
    "noise -70 dBFS": lambda x: _noise(x, -70),
    "noise -60 dBFS": lambda x: _noise(x, -60),
    "noise -50 dBFS": lambda x: _noise(x, -50),
    "noise -45 dBFS": lambda x: _noise(x, -45),
    "pink noise -50 dBFS": lambda x: _noise(x, -50, "pink"),
    "hum -50 dBFS": lambda x: _noise(x, -50, "hum"),
    "gain -30 dB": lambda x: _gain(x, -30),
    "gain -20 dB": lambda x: _gain(x, -20),
    "gain -10 dB": lambda x: _gain(x, -10),
    "gain +6 dB (clipping)": lambda x: _gain(x, 6),
    "lowpass 5 kHz": lambda x: _filter(x, "lowpass", 5000),
    "lowpass 8 kHz": lambda x: _filter(x, "lowpass", 8000),
    "lowpass 10 kHz": lambda x: _filter(x, "lowpass", 10000),
    "band 200 Hz - 4 kHz": lambda x: _filter(_filter(x, "highpass", 200, 4), "lowpass", 4000),
    "reverb RT60 0.5 s": lambda x: _reverb(x, 0.5),
    "reverb RT60 1.5 s": lambda x: _reverb(x, 1.5, wet_db=0.0),
    "cheap microphone": _cheap_mic,
    "mp3 re-encode": lambda x: _encode(x, "MP3", "MPEG_LAYER_III", compression_level=0.7),
    "ogg re-encode": lambda x: _encode(x, "OGG", "VORBIS", compression_level=0.6),
    "room (reverb + mic + -20 dB + pink -65 dBFS)": _room,
}
# the conditions the targets apply to: everything down to a -50 dBFS floor and -30 dB gain
TARGET_CONDITIONS = [c for c in CONDITIONS if c not in ("noise -45 dBFS",)]


def _window_readings(predict, spec: np.ndarray) -> np.ndarray:
    from .train import windows

    return predict(windows(spec))


def evaluate(predict, to_spec, clips: dict[int, np.ndarray], conditions=CONDITIONS, log=print) -> dict:
    """predict(windows [n, T, bands]) -> [n, 15] (7 mid-level, 8 emotions); to_spec(audio) -> spectrogram.

    Returns per condition: per-clip mean readings and the mean abs change per window against clean.
    """
    clean = {i: _window_readings(predict, to_spec(a)) for i, a in clips.items()}
    out = {"clean": {"clip_means": {i: r.mean(0).tolist() for i, r in clean.items()}}}
    for name, fn in conditions.items():
        change, means = [], {}
        for i, a in clips.items():
            r = _window_readings(predict, to_spec(fn(a)))
            n = min(len(r), len(clean[i]))
            change.append(np.abs(r[:n] - clean[i][:n]).mean(0))
            means[i] = r.mean(0).tolist()
        change = np.mean(change, axis=0)
        out[name] = {"mid_change": float(change[:7].mean()), "emo_change": float(change[7:].mean()),
                     "clip_means": means}
        log(f"  {name}: emotions {change[7:].mean():.3f}, mid-level {change[:7].mean():.3f}")
    return out


def torch_predictor(model):
    import torch

    @torch.no_grad()
    def predict(w):
        mid, emo, _ = model(torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32)))
        return np.concatenate([mid.numpy(), emo.numpy()], axis=1)

    return predict


def onnx_predictor(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def predict(w):
        rows = []
        for x in w:
            _, mid, emo = sess.run(None, {"spectrogram": x[None].astype(np.float32)})
            rows.append(np.concatenate([mid[0], emo[0]]))
        return np.array(rows)

    return predict


def load_fold_model(arch: str, fold: int, seed: int):
    import torch

    from . import train as T

    state = torch.load(D.CACHE_DIR / "models" / f"{arch}-f{fold}-s{seed}.pt", weights_only=False)
    cfg = T.Config(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in state["config"].items()})
    n = state["n_bands"]
    model = T.build(cfg, n, np.zeros(n), np.ones(n))
    model.load_state_dict(state["model"])
    return model.eval(), cfg


def run(data: Path, arch: str, seed: int = 0, per_fold: int = 6, fourq_per_fold: int = 6, log=print) -> dict:
    """Every fold's model on its own held-out clips (Soundtracks and, where trained with it, 4q-dev)."""
    from . import train as T

    ids, emo, _ = T.load_targets(data)
    folds = D.load_splits(ids)
    paths = D.audio_paths(data)
    fq = D.fourq(data)
    fq_folds = D.fourq_folds(fq)
    fq_path = {c["id"]: c["path"] for c in fq}
    result = {"arch": arch, "seed": seed, "folds": {}}
    for k, test in enumerate(folds):
        model, cfg = load_fold_model(arch, k, seed)
        to_spec = frontend.spectrogram if cfg.frontend == 2 else frontend.spectrogram_v1
        rng = np.random.default_rng(k)
        chosen = [int(i) for i in rng.choice(test, per_fold, replace=False)]
        chosen += [int(i) for i in rng.choice(fq_folds[k], fourq_per_fold, replace=False)]
        clips = {i: frontend.load_audio(paths[i] if i in paths else fq_path[i]) for i in chosen}
        log(f"{arch} fold {k}: {len(clips)} held-out clips")
        result["folds"][k] = evaluate(torch_predictor(model), to_spec, clips, log=log)
    path = D.TRAIN_DIR / "results" / "robustness" / f"{arch}-s{seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result) + "\n")
    return result


def _clips_of_both(data: Path, n_clips: int) -> dict[int, np.ndarray]:
    """n_clips / 2 Soundtracks and n_clips / 2 4q-dev clips, the same ones every time."""
    ids, _ = D.ratings(data)
    rng = np.random.default_rng(0)
    paths = D.audio_paths(data)
    fq = D.fourq(data)
    chosen = {int(i): paths[int(i)] for i in rng.choice(ids, n_clips // 2, replace=False)}
    chosen.update({c["id"]: c["path"] for c in rng.choice(fq, n_clips // 2, replace=False)})
    return {i: frontend.load_audio(p) for i, p in chosen.items()}


def run_shipped(data: Path, model_dir: Path, spectrogram, n_clips: int = 60, log=print) -> dict:
    """A shipped ONNX model (trained on every Soundtracks clip) on clips of both data sets."""
    clips = _clips_of_both(data, n_clips)
    result = {"model": model_dir.name, "folds": {0: evaluate(onnx_predictor(model_dir / "model.onnx"), spectrogram,
                                                                  clips, log=log)}}
    path = D.TRAIN_DIR / "results" / "robustness" / f"{model_dir.name}-shipped.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result) + "\n")
    return result


def int8_agreement(data: Path, model_dir: Path, n_clips: int = 30, conditions=CONDITIONS, log=print) -> dict:
    """The shipped int8 model against its f32 model (onnxruntime) on the same windows, under every
    condition: per window, the absolute difference of the 7 mid-level and 8 emotion values."""
    from .train import windows

    f32 = onnx_predictor(model_dir / "model.onnx")
    q8 = onnx_predictor(model_dir / "model.int8.onnx")
    clips = _clips_of_both(data, n_clips)
    result = {"model": model_dir.name, "clips": len(clips), "conditions": {}}
    for name, fn in {"clean": lambda a: a, **conditions}.items():
        diff = np.concatenate([np.abs(q8(w) - f32(w)) for w in
                               (windows(frontend.spectrogram(fn(a))) for a in clips.values())])
        row = {"windows": len(diff),
               "emo_mean": float(diff[:, 7:].mean()), "mid_mean": float(diff[:, :7].mean()),
               "emo_p99": float(np.quantile(diff[:, 7:], 0.99)), "mid_p99": float(np.quantile(diff[:, :7], 0.99)),
               "max": float(diff.max())}
        result["conditions"][name] = row
        log(f"  {name}: int8 - f32 mean {row['emo_mean']:.4f} / {row['mid_mean']:.4f}, max {row['max']:.3f}")
    path = D.TRAIN_DIR / "results" / "robustness" / f"{model_dir.name}-int8.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result) + "\n")
    return result


def int8_table(result: dict) -> str:
    """Markdown: int8 against f32 per condition."""
    lines = [f"int8 against f32, {result['model']} (onnxruntime), {result['clips']} clips of both data sets, "
             "every window: mean (99th percentile) absolute difference of the values, and the largest one",
             "", "| condition | windows | emotions | mid-level | largest |", "|---|---|---|---|---|"]
    for name, r in result["conditions"].items():
        lines.append(f"| {name} | {r['windows']} | {r['emo_mean']:.4f} ({r['emo_p99']:.3f}) | "
                     f"{r['mid_mean']:.4f} ({r['mid_p99']:.3f}) | {r['max']:.3f} |")
    return "\n".join(lines)


def table(results: list[dict], data: Path) -> str:
    """Markdown: per condition, per model, mean abs change (emotions / mid-level) and r vs ratings."""
    from .train import pearson

    _, y = D.ratings(data)
    rating = {i + 1: y[i] for i in range(len(y))}  # ids are 1..360 in order
    names = [r.get("arch") or r.get("model") for r in results]
    head = "| condition | " + " | ".join(f"{n}: change emo / mid | {n}: r (Soundtracks clips)" for n in names) + " |"
    lines = [head, "|---" * (1 + 2 * len(names)) + "|"]
    for cond in ["clean", *CONDITIONS]:
        cells = [cond]
        for r in results:
            folds = r["folds"].values()
            if cond == "clean":
                cells.append("-")
            else:
                emo_c = np.mean([f[cond]["emo_change"] for f in folds])
                mid_c = np.mean([f[cond]["mid_change"] for f in folds])
                mark = " (!)" if cond in TARGET_CONDITIONS and (emo_c > 0.03 or mid_c > 0.05) else ""
                cells.append(f"{emo_c:.3f} / {mid_c:.3f}{mark}")
            pairs = [(v, rating[int(i)]) for f in folds for i, v in f[cond]["clip_means"].items()
                     if int(i) in rating]
            if len(pairs) > 2:
                pred = np.array([p[0][7:] for p in pairs])
                cells.append(f"{pearson(pred, np.array([p[1] for p in pairs])).mean():.3f}")
            else:
                cells.append("-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# Accuracy through capture on every held-out clip (not only the 60 above): the ratings' r and the
# 4q-dev signs, clean and through the two conditions nearest a venue. r is blind to a shift that every
# clip shares; a balanced accuracy at the scale's midpoint is not, and a venue reads absolute values.
# cache name -> condition of CONDITIONS ("clean": none)
ACCURACY_CONDITIONS = {"clean": "clean", "room": "room (reverb + mic + -20 dB + pink -65 dBFS)",
                       "rt60": "reverb RT60 1.5 s"}
ACCURACY_HOP = 156  # windows 5 s apart: clips of 10-37 s give 1-6 readings each


def _capture_specs(path: Path, clip: int) -> dict[str, np.ndarray]:
    """The front end's spectrogram of a clip through each accuracy condition, cached (they do not depend
    on the model); the audio is decoded once, and only when a condition is missing."""
    cache = {cond: D.CACHE_DIR / "capture_specs" / f"{cond}-{clip}.npy" for cond in ACCURACY_CONDITIONS}
    missing = [cond for cond, f in cache.items() if not f.exists()]
    if missing:
        audio = frontend.load_audio(path)
        cache["clean"].parent.mkdir(parents=True, exist_ok=True)
        for cond in missing:
            name = ACCURACY_CONDITIONS[cond]
            spec = frontend.spectrogram(audio if name == "clean" else CONDITIONS[name](audio))
            np.save(cache[cond], spec.astype(np.float16))
    return {cond: np.load(f).astype(np.float32) for cond, f in cache.items()}


def _shift(means: dict, clean: dict, clips: list[int]) -> list[float]:
    """Mean valence and energy change against the clean reading."""
    return np.mean([means[i][7:9] - clean[i][7:9] for i in clips], 0).tolist()


def held_out_accuracy(data: Path, arch: str, seed: int = 0, log=print) -> dict:
    """Every fold model of arch on all its held-out clips, per condition of ACCURACY_CONDITIONS: r per
    emotion on Soundtracks, valence / arousal sign balanced accuracy and AUC on 4q-dev, and the mean
    valence and energy shift against clean (clip means of windows 5 s apart)."""
    from . import report
    from . import train as T

    ids, emo, _ = T.load_targets(data)
    folds = D.load_splits(ids)
    fq = D.fourq(data)
    fq_folds = D.fourq_folds(fq)
    by_id = {c["id"]: c for c in fq}
    paths = D.all_audio_paths(data)
    result = {"arch": arch, "seed": seed, "folds": {}}
    for k, test in enumerate(folds):
        predict = torch_predictor(load_fold_model(arch, k, seed)[0])
        means = {cond: {} for cond in ACCURACY_CONDITIONS}
        for i in [*test, *fq_folds[k]]:
            for cond, spec in _capture_specs(paths[i], i).items():
                means[cond][i] = predict(T.windows(spec, hop=ACCURACY_HOP)).mean(0)
        rows = {}
        for cond, m in means.items():
            st = np.stack([m[i][7:] for i in test])
            q = np.stack([m[i][7:] for i in fq_folds[k]])
            signs = report.sign_scores(q[:, 0], q[:, 1], [by_id[i] for i in fq_folds[k]])
            rows[cond] = {"r": T.pearson(st, np.stack([emo[i] for i in test])).tolist(), **signs,
                          "shift_soundtracks": _shift(m, means["clean"], test),
                          "shift_4q": _shift(m, means["clean"], fq_folds[k])}
        result["folds"][k] = rows
        log(f"{arch} fold {k}: " + ", ".join(f"{c} r {np.mean(v['r']):.3f} valence {v['valence_bacc']:.3f}"
                                             for c, v in rows.items()))
    path = D.TRAIN_DIR / "results" / "robustness" / f"{arch}-s{seed}-accuracy.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result) + "\n")
    return result


def _mean_spread(values: list[float]) -> str:
    return f"{np.mean(values):.3f} +- {np.std(values):.3f}"


def accuracy_table(results: list[dict]) -> str:
    """Markdown: per model and condition, the held-out accuracy (mean +- spread over folds)."""
    lines = ["Accuracy through capture on every held-out clip (360 Soundtracks, 564 4q-dev; each fold model on "
             "its own fold, seed 0): Soundtracks r, 4q-dev valence / arousal sign balanced accuracy at 0.5 and "
             "AUC, and the mean shift of valence / energy against the clean reading",
             "", "| model | condition | Soundtracks avg r | valence BA | valence AUC | arousal BA | arousal AUC | "
             "shift 4q-dev valence / energy | shift Soundtracks valence / energy |", "|---" * 9 + "|"]
    for res in results:
        for cond, name in ACCURACY_CONDITIONS.items():
            f = [v[cond] for v in res["folds"].values()]
            cell = {key: _mean_spread([np.mean(x[key]) for x in f])
                    for key in ("r", "valence_bacc", "valence_auc", "arousal_bacc", "arousal_auc")}
            s4, ss = np.mean([x["shift_4q"] for x in f], 0), np.mean([x["shift_soundtracks"] for x in f], 0)
            lines.append(f"| {res['arch']} | {name} | {cell['r']} | {cell['valence_bacc']} | "
                         f"{cell['valence_auc']} | {cell['arousal_bacc']} | {cell['arousal_auc']} | "
                         f"{s4[0]:+.3f} / {s4[1]:+.3f} | {ss[0]:+.3f} / {ss[1]:+.3f} |")
    return "\n".join(lines)
