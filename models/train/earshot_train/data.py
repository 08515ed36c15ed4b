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


def shipped_id() -> str:
    """The shipped model's id: the one line of models/SHIPPED (also read by device/build.rs)."""
    return (MODELS_DIR / "SHIPPED").read_text().strip()


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


def _cached(name: str, paths: dict[int, Path], compute) -> dict[int, np.ndarray]:
    """compute(clip id, audio) of every clip, float32, cached in CACHE_DIR/name (an .npz keyed by clip id)."""
    cache = CACHE_DIR / name
    if cache.exists():
        with np.load(cache) as z:
            return {int(k): z[k] for k in z.files}
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    out = {i: compute(i, frontend.load_audio(p)).astype(np.float32) for i, p in paths.items()}
    tmp = cache.with_suffix(".tmp.npz")  # an interrupted run leaves no half cache
    np.savez(tmp, **{str(k): v for k, v in out.items()})
    tmp.replace(cache)
    return out


def spectrograms(data: Path) -> dict[int, np.ndarray]:
    """Front end version 1 spectrogram of every Soundtracks clip, [frames, 149], cached."""
    return _cached("spectrograms.npz", audio_paths(data), lambda _, audio: frontend.spectrogram_v1(audio))


FOURQ_ID_BASE = 1000  # 4q-dev clip k (labels.csv order) has id 1000 + k, apart from Soundtracks' 1..360


def fourq(data: Path) -> list[dict]:
    """4q-dev clips in labels.csv order: id, path, quadrant, valence and arousal sign (+1/-1), artist."""
    root = data / "4q-dev"
    with open(root / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    if len(rows) != 564:
        raise SystemExit(f"{root}/labels.csv: expected 564 clips, found {len(rows)}; pass --data pointing at shared/data")
    return [{"id": FOURQ_ID_BASE + k, "path": root / "audio" / r["file"], "quadrant": r["quadrant"],
             "valence": int(r["valence_sign"]), "arousal": int(r["arousal_sign"]), "artist": r["artist"]}
            for k, r in enumerate(rows)]


def fourq_folds(clips: list[dict], n_folds: int = N_FOLDS, seed: int = 20261201) -> list[list[int]]:
    """Folds grouped by artist (no artist on both sides), balanced in clip count."""
    rng = np.random.default_rng(seed)
    by_artist: dict[str, list[int]] = {}
    for c in clips:
        by_artist.setdefault(c["artist"], []).append(c["id"])
    artists = sorted(by_artist)
    rng.shuffle(artists)
    artists.sort(key=lambda a: -len(by_artist[a]))  # largest first, each to the smallest fold
    folds: list[list[int]] = [[] for _ in range(n_folds)]
    for a in artists:
        min(folds, key=len).extend(by_artist[a])
    return [sorted(f) for f in folds]


def all_audio_paths(data: Path) -> dict[int, Path]:
    """Every Soundtracks and 4q-dev clip's audio, by clip id."""
    paths = dict(audio_paths(data))
    paths.update({c["id"]: c["path"] for c in fourq(data)})
    return paths


def band_magnitudes(data: Path) -> dict[int, np.ndarray]:
    """Linear band magnitudes (front end version 2) of every Soundtracks and 4q-dev clip, cached."""
    return _cached("bands_v2.npz", all_audio_paths(data), lambda _, audio: frontend.band_magnitudes(audio))


ROOM_COPIES = 2  # reverberant copies per clip (capture.room_copies)
TRANSPOSE_SEMITONES = (-2, -1, 1, 2)  # data.transposed_bands: one copy of every clip per shift


def transpose(audio: np.ndarray, semitones: int) -> np.ndarray:
    """The audio played `semitones` higher (lower if negative), as a tape at another speed: the tempo
    moves with it, 6 % per semitone, and a key-mode detector must then work in every key."""
    from fractions import Fraction

    from scipy.signal import resample_poly

    speed = Fraction(2.0 ** (-semitones / 12)).limit_denominator(200)  # output samples per input sample
    return resample_poly(audio, speed.numerator, speed.denominator)


def transposed_bands(data: Path) -> list[dict[int, np.ndarray]]:
    """Band magnitudes of every Soundtracks and 4q-dev clip transposed by each of TRANSPOSE_SEMITONES,
    one cache per shift (about a minute and 400 MB each); the frame counts follow the tempo."""
    return [_cached(f"transposed{k:+d}_v2.npz", all_audio_paths(data),
                    lambda _, audio, k=k: frontend.band_magnitudes(transpose(audio, k)))
            for k in TRANSPOSE_SEMITONES]


def room_bands(data: Path) -> dict[int, np.ndarray]:
    """capture.room_copies of every Soundtracks and 4q-dev clip, [copies, frames, bands] float32, cached
    (about 5 minutes on one core the first time, 790 MB)."""
    from .capture import room_copies

    # the clip id seeds its rooms, so the cache does not depend on the order of the clips
    return _cached(f"rooms{ROOM_COPIES}_v2.npz", all_audio_paths(data),
                   lambda i, audio: room_copies(audio, ROOM_COPIES, 7919 * i + 17))
