"""The Soundtracks data: ratings, audio paths, cached spectrograms, fixed folds."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from . import frontend

EMOTIONS = ["valence", "energy", "tension", "anger", "fear", "happy", "sad", "tender"]
N_FOLDS = 5
RATING_MIN, RATING_MAX = 1.0, 9.0  # the Soundtracks rating scale

MODELS_DIR = Path(__file__).resolve().parents[2]  # models/
TRAIN_DIR = MODELS_DIR / "train"
CACHE_DIR = TRAIN_DIR / "cache"
SPLITS_PATH = MODELS_DIR / "splits.json"


def audio_paths(data: Path) -> dict[int, Path]:
    audio = data / "soundtracks" / "audio"
    paths = {int(p.stem): p for p in sorted(audio.glob("*.mp3"))}
    if len(paths) != 360:
        raise SystemExit(f"{audio}: expected 360 mp3 files, found {len(paths)}; pass --data pointing at shared/data")
    return paths


def ratings(data: Path) -> tuple[list[int], np.ndarray]:
    """Clip ids and [360, 8] mean ratings scaled to 0..1 ((r - 1) / 8)."""
    path = data / "soundtracks" / "mean_ratings_set1.csv"
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    ids = [int(r["id"]) for r in rows]
    y = np.array([[float(r[e]) for e in EMOTIONS] for r in rows])
    return ids, (y - RATING_MIN) / (RATING_MAX - RATING_MIN)


def make_splits(ids: list[int], seed: int = 20261125) -> dict:
    """5 folds stratified by the 12 target categories (blocks of 30 consecutive ids)."""
    rng = np.random.default_rng(seed)
    fold = {}
    for block in range(12):
        members = [i for i in ids if (i - 1) // 30 == block]
        rng.shuffle(members)
        for k, i in enumerate(members):
            fold[i] = k % N_FOLDS
    return {
        "seed": seed,
        "method": "5 folds; each of the 12 target-category blocks of 30 clips split 6 per fold",
        "folds": [sorted(i for i in ids if fold[i] == k) for k in range(N_FOLDS)],
    }


def load_splits(ids: list[int]) -> list[list[int]]:
    if not SPLITS_PATH.exists():
        SPLITS_PATH.write_text(json.dumps(make_splits(ids), indent=1) + "\n")
    return json.loads(SPLITS_PATH.read_text())["folds"]


def spectrograms(data: Path) -> dict[int, np.ndarray]:
    """Log spectrogram of every clip, [frames, bands] float32, cached on disk."""
    cache = CACHE_DIR / "spectrograms.npz"
    if cache.exists():
        with np.load(cache) as z:
            return {int(k): z[k] for k in z.files}
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    specs = {}
    for i, path in audio_paths(data).items():
        specs[i] = frontend.spectrogram(frontend.load_audio(path))
    np.savez(cache, **{str(k): v for k, v in specs.items()})
    return specs
