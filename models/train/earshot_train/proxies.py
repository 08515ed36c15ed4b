"""Mid-level proxy targets from established music DSP (essentia).

No human mid-level ratings exist for our data, so each of the 7 mid-level
outputs is trained toward a proxy built from essentia descriptors that the
music-information-retrieval literature ties to the Aljanaki & Soleymani (2018)
definition. `describe()` computes the raw descriptors of one clip;
`proxy_table()` combines them into the 7 targets (z-scores averaged, then
mapped to their quantile over the 360 clips, so every target is 0..1 and
"0.8" reads "more than 80 % of the film-music clips").

The choice per feature, and why, is documented in models/README.md.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from . import frontend

MID_LEVEL = [
    "melodiousness",
    "articulation",
    "rhythm_stability",
    "rhythm_complexity",
    "dissonance",
    "tonal_stability",
    "minorness",
]

# Recorded with every training run. Version 1 (up to git 06d6453) had rhythm_complexity =
# ioi_cv + onset_rate - bpm_peak_weight and minorness = minor_minus_major; its targets are kept
# in results/proxies-v1.csv so the runs trained on them are still scored against them.
PROXIES_VERSION = 2

# proxy = mean of sign * zscore(descriptor [with the named descriptors regressed out])
RECIPES = {
    # melody confidence rises with loudness and note density alone; only the rest says "singable line"
    "melodiousness": [(+1, "melody_confidence", ("loudness", "transientness"))],
    "articulation": [(+1, "onset_rate"), (+1, "transientness")],
    "rhythm_stability": [(+1, "danceability"), (+1, "beat_confidence"), (+1, "bpm_peak_weight")],
    # off-beat accents of a pulse; a clip with no pulse has "off-beat" onsets by chance, not syncopation
    "rhythm_complexity": [(+1, "syncopation", ("beat_confidence",))],
    "dissonance": [(+1, "dissonance")],
    "tonal_stability": [(+1, "key_strength"), (-1, "hpcp_entropy")],
    # three estimators of one thing, averaged: key-mode evidence of one clip is noisy
    "minorness": [(+1, "minor_temperley"), (+1, "minor_local"), (+1, "minor_votes")],
}

# Krumhansl & Kessler (1982) key profiles, tonic first.
KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
# Temperley (1999), tonic first: the same idea fitted to score statistics, less weight on the tonic.
TEMPERLEY_MAJOR = np.array([5.0, 2.0, 3.5, 2.0, 4.5, 4.0, 2.0, 4.5, 2.0, 3.5, 1.5, 4.0])
TEMPERLEY_MINOR = np.array([5.0, 2.0, 3.5, 4.5, 2.0, 4.0, 2.0, 4.5, 3.5, 2.0, 1.5, 4.0])

DESCRIPTORS = [
    "pitch_salience",
    "melody_confidence",
    "onset_rate",
    "transientness",
    "danceability",
    "beat_confidence",
    "bpm_peak_weight",
    "ioi_cv",
    "dissonance",
    "key_strength",
    "hpcp_entropy",
    "minor_minus_major",
    "loudness",
    "bpm",
    "minor_temperley",
    "minor_local",
    "minor_votes",
    "syncopation",
]


def _key_correlations(hpcp: np.ndarray, major=KK_MAJOR, minor=KK_MINOR) -> tuple[float, float]:
    """Best correlation of a 12-bin chroma (A-based, as essentia) with any major / minor key."""
    best_major = max(np.corrcoef(hpcp, np.roll(major, k))[0, 1] for k in range(12))
    best_minor = max(np.corrcoef(hpcp, np.roll(minor, k))[0, 1] for k in range(12))
    return float(best_major), float(best_minor)


def _mode_evidence(audio) -> dict[str, float]:
    """Minor-over-major evidence three ways, from a chroma finer than describe_audio's (36 bins,
    8 harmonics, 4096-sample frames): Temperley profiles on the whole clip, Krumhansl-Kessler
    profiles per 3 s segment (film music modulates), and essentia's Key over five profiles."""
    import essentia.standard as es

    sr = 22050
    window, spectrum, rms = es.Windowing(type="blackmanharris62"), es.Spectrum(), es.RMS()
    peaks = es.SpectralPeaks(orderBy="magnitude", minFrequency=40, maxFrequency=5000,
                             maxPeaks=100, sampleRate=sr, magnitudeThreshold=1e-5)
    hpcp_alg = es.HPCP(size=36, sampleRate=sr, referenceFrequency=440, harmonics=8, bandPreset=True,
                       weightType="cosine", nonLinear=True, normalized="unitMax")
    chroma, level = [], []
    for frame in es.FrameGenerator(audio, frameSize=4096, hopSize=2048, startFromZero=True):
        freqs, mags = peaks(spectrum(window(frame)))
        lv = rms(frame)
        if lv < 1e-3 or len(freqs) < 2:  # silence says nothing about mode
            continue
        # bin 3k is pitch class k (A-based), bins 3k +- 1 its neighbours
        chroma.append(np.roll(hpcp_alg(freqs, mags), 1).reshape(12, 3).sum(1))
        level.append(lv)
    if not chroma:
        return {"minor_temperley": 0.0, "minor_local": 0.0, "minor_votes": 0.0}
    chroma, level = np.array(chroma), np.array(level)
    mean = (chroma * level[:, None]).sum(0) / level.sum()
    major, minor = _key_correlations(mean, TEMPERLEY_MAJOR, TEMPERLEY_MINOR)
    seg = int(3 * sr / 2048)
    local, weight = [], []
    for k in range(0, len(chroma), seg):
        c = (chroma[k:k + seg] * level[k:k + seg, None]).sum(0)
        if c.std() > 0:
            ma, mi = _key_correlations(c)
            local.append(mi - ma)
            weight.append(level[k:k + seg].sum())
    votes = []
    for profile in ["temperley", "krumhansl", "edma", "bgate", "shaath"]:
        _, scale, strength, _ = es.Key(profileType=profile, pcpSize=12)(mean.astype(np.float32))
        votes.append(strength if scale == "minor" else -strength)
    return {
        "minor_temperley": minor - major,
        "minor_local": float(np.average(local, weights=weight)) if local else 0.0,
        "minor_votes": float(np.mean(votes)),
    }


def _syncopation(audio44, ticks) -> float:
    """Onset strength on the 16th-note off-beats over that on the beats (beat times from the
    tracker). Above 1: accents fall between beats."""
    import essentia.standard as es

    if len(ticks) < 5:
        return 0.0
    hop, fps = 512, 44100 / 512
    window, fft, polar = es.Windowing(type="hann"), es.FFT(), es.CartesianToPolar()
    detect = es.OnsetDetection(method="complex")
    env = np.array([detect(*polar(fft(window(f))))
                    for f in es.FrameGenerator(audio44, frameSize=1024, hopSize=hop, startFromZero=True)])
    ticks = np.asarray(ticks)
    ibi = float(np.median(np.diff(ticks)))
    reach = int(0.03 * fps) + 1  # beat times are +- 30 ms off

    def strength(times):
        idx = np.clip((times * fps).astype(int), 0, len(env) - 1)
        return np.mean([env[max(0, i - reach): i + reach + 1].max() for i in idx])

    off = np.concatenate([ticks[:-1] + ibi / 4, ticks[:-1] + 3 * ibi / 4])
    return float(strength(off) / (strength(ticks) + 1e-9))


def load(path: str | Path):
    import essentia
    import essentia.standard as es

    essentia.log.infoActive = False
    essentia.log.warningActive = False
    return es.MonoLoader(filename=str(path), sampleRate=22050)()


def describe(path: str | Path) -> dict[str, float]:
    """Raw descriptors of one clip (mono 22050 Hz file)."""
    return describe_audio(load(path))


def describe_audio(audio) -> dict[str, float]:
    """Raw descriptors of mono 22050 Hz audio (float32)."""
    import essentia.standard as es

    sr = 22050
    audio44 = es.Resample(inputSampleRate=sr, outputSampleRate=44100)(audio)

    window = es.Windowing(type="hann")
    spectrum = es.Spectrum()
    peaks = es.SpectralPeaks(orderBy="frequency", minFrequency=40, maxFrequency=5000,
                             maxPeaks=60, sampleRate=sr, magnitudeThreshold=1e-5)
    dissonance = es.Dissonance()
    hpcp_alg = es.HPCP(size=12, sampleRate=sr, referenceFrequency=440, harmonics=4,
                       weightType="cosine", nonLinear=False, normalized="unitMax")
    salience = es.PitchSalience(sampleRate=sr)
    flux = es.Flux()
    rms = es.RMS()

    diss, sal, hpcps, fluxes, rmss = [], [], [], [], []
    for frame in es.FrameGenerator(audio, frameSize=2048, hopSize=1024, startFromZero=True):
        spec = spectrum(window(frame))
        level = rms(frame)
        rmss.append(level)
        fluxes.append(flux(spec))
        if level < 1e-3:  # about -60 dBFS: silence says nothing about harmony
            continue
        freqs, mags = peaks(spec)
        if len(freqs) > 1:
            diss.append(dissonance(freqs, mags))
            hpcps.append(hpcp_alg(freqs, mags))
        sal.append(salience(spec))
    rmss = np.array(rmss)
    hpcp_mean = np.mean(hpcps, axis=0) if hpcps else np.ones(12)
    p = hpcp_mean / max(hpcp_mean.sum(), 1e-12)
    major, minor = _key_correlations(hpcp_mean)
    _, _, key_strength = es.Key(profileType="edma")(hpcp_mean.astype(np.float32))[:3]

    melodia = es.PredominantPitchMelodia(sampleRate=44100, hopSize=512, frameSize=2048)
    pitch, confidence = melodia(es.EqualLoudness(sampleRate=44100)(audio44))
    voiced = confidence[pitch > 0]

    onsets, onset_rate = es.OnsetRate()(audio44)
    iois = np.diff(onsets)
    ioi_cv = float(iois.std() / iois.mean()) if len(iois) > 2 else 0.0

    bpm, ticks, beat_conf, _, bpm_intervals = es.RhythmExtractor2013(method="multifeature")(audio44)
    if len(bpm_intervals) > 2:
        hist = es.BpmHistogramDescriptors()(bpm_intervals)
        peak_weight = float(hist[1])
    else:
        peak_weight = 0.0
    dance, _ = es.Danceability(sampleRate=44100)(audio44)

    return {
        "pitch_salience": float(np.mean(sal)) if sal else 0.0,
        "melody_confidence": float(voiced.mean() * len(voiced) / max(len(confidence), 1)),
        "onset_rate": float(onset_rate),
        "transientness": float(np.mean(fluxes) / max(np.mean(rmss), 1e-6)),
        "danceability": float(dance),
        "beat_confidence": float(beat_conf),
        "bpm_peak_weight": peak_weight,
        "ioi_cv": ioi_cv,
        "dissonance": float(np.mean(diss)) if diss else 0.0,
        "key_strength": float(key_strength),
        "hpcp_entropy": float(-(p * np.log2(np.maximum(p, 1e-12))).sum()),
        "minor_minus_major": minor - major,
        "loudness": float(20 * np.log10(max(np.sqrt(np.mean(rmss**2)), 1e-9))),
        "bpm": float(bpm),
        **_mode_evidence(audio),
        "syncopation": _syncopation(audio44, ticks),
    }


def _values(desc: dict[str, float]) -> list[str]:
    return [f"{desc[d]:.6g}" for d in DESCRIPTORS]


def _clip_rows(args):
    clip_id, path = args
    return [[clip_id, *_values(describe(path))]]


def _append_rows(audio_paths: dict[int, Path], out_csv: Path, header: list[str], work, jobs: int, label: str) -> None:
    """Runs `work` (clip -> CSV rows) on every clip not yet in out_csv and appends as they come (resumable)."""
    done = set()
    if out_csv.exists():
        with open(out_csv, newline="") as f:
            done = {int(r["id"]) for r in csv.DictReader(f)}
    todo = [(i, p) for i, p in sorted(audio_paths.items()) if i not in done]
    if not todo:
        return
    from multiprocessing import Pool

    with Pool(jobs) as pool, open(out_csv, "a", newline="") as f:
        w = csv.writer(f)
        if not done:
            w.writerow(header)
        for k, rows in enumerate(pool.imap_unordered(work, todo), 1):
            w.writerows(rows)
            f.flush()
            if k % 20 == 0:
                print(f"  {label}: {k}/{len(todo)}", flush=True)


def compute_descriptors(audio_paths: dict[int, Path], out_csv: Path, jobs: int = 2) -> None:
    """Describes every clip (cached: clips already in out_csv are skipped)."""
    _append_rows(audio_paths, out_csv, ["id", *DESCRIPTORS], _clip_rows, jobs, "descriptors")


# Windows for per-window targets: the training crop (157 frames = 5 s), every 2.5 s.
WINDOW_FRAMES, WINDOW_HOP = 157, 78


def window_starts(n_samples: int) -> list[int]:
    """Start frames of every full window of a clip of n_samples (front-end framing)."""
    return list(range(0, max(frontend.n_frames(n_samples) - WINDOW_FRAMES, 0) + 1, WINDOW_HOP))


def _window_rows(args):
    clip_id, path = args
    audio = load(path)
    hop = frontend.HOP_SIZE
    rows = []
    for t0 in window_starts(len(audio)):
        a = audio[t0 * hop: t0 * hop + (WINDOW_FRAMES - 1) * hop + frontend.FRAME_SIZE]
        rows.append([clip_id, t0, *_values(describe_audio(a))])
    return rows


def compute_window_descriptors(audio_paths: dict[int, Path], out_csv: Path, jobs: int = 2) -> None:
    """Descriptors of every 5 s window (cached per clip like compute_descriptors)."""
    _append_rows(audio_paths, out_csv, ["id", "start_frame", *DESCRIPTORS], _window_rows, jobs, "window descriptors")


def read_windows(path: Path) -> dict[tuple[int, int], dict[str, float]]:
    """(clip id, start frame) -> descriptors."""
    with open(path, newline="") as f:
        return {(int(r["id"]), int(r["start_frame"])): {k: float(v) for k, v in r.items() if k not in ("id", "start_frame")}
                for r in csv.DictReader(f)}


def read_table(path: Path) -> dict[int, dict[str, float]]:
    with open(path, newline="") as f:
        return {int(r["id"]): {k: float(v) for k, v in r.items() if k != "id"} for r in csv.DictReader(f)}


def quantiles(x: np.ndarray) -> np.ndarray:
    """Rank of each value among all, mapped to 0..1 (ties share their mean rank)."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x))
    for v in np.unique(x):  # average ties so equal inputs get equal targets
        m = x == v
        ranks[m] = ranks[m].mean()
    return ranks / (len(x) - 1)


def _recipe_scores(descriptors: dict[int, dict[str, float]], ids: list[int], ref: np.ndarray):
    """Per feature, every clip's recipe score [n_clips], standardisation and regressions fitted on
    the clips at positions `ref`."""
    for name in MID_LEVEL:
        acc = np.zeros(len(ids))
        for sign, d, *controls in RECIPES[name]:
            x = np.array([descriptors[i][d] for i in ids])
            if controls:
                a = np.column_stack([np.ones(len(ids))] + [[descriptors[i][c] for i in ids] for c in controls[0]])
                x = x - a @ np.linalg.lstsq(a[ref], x[ref], rcond=None)[0]
            acc += sign * (x - x[ref].mean()) / (x[ref].std() + 1e-12)
        yield acc / len(RECIPES[name])


def proxy_table(descriptors: dict[int, dict[str, float]]) -> tuple[list[int], np.ndarray]:
    """[n_clips, 7] proxy targets in MID_LEVEL order, each 0..1."""
    ids = sorted(descriptors)
    scores = _recipe_scores(descriptors, ids, np.arange(len(ids)))
    return ids, np.column_stack([quantiles(acc) for acc in scores])


def proxy_scores(descriptors: dict[int, dict[str, float]], reference: list[int]) -> tuple[list[int], np.ndarray]:
    """[n_clips, 7] proxies of any clips, on the scale of the `reference` clips (Soundtracks).

    Every recipe's standardisation and regression is fitted on the reference clips only, and a
    clip's score maps to its quantile among the reference scores (interpolated, clipped to 0..1),
    so 0.8 keeps meaning "as high as the top 20 % of the film-music clips"; the reference clips
    themselves get proxy_table's targets up to ties (which proxy_table averages, at most 0.0014).
    """
    ids = sorted(descriptors)
    pos = {i: k for k, i in enumerate(ids)}
    ref = np.array([pos[i] for i in reference])
    rank = np.arange(len(ref)) / (len(ref) - 1)
    return ids, np.column_stack([np.interp(acc, np.sort(acc[ref]), rank)
                                 for acc in _recipe_scores(descriptors, ids, ref)])
