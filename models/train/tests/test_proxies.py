"""The two proxy recipes of version 2 on signals whose answer is known by construction."""

import numpy as np
import pytest

es = pytest.importorskip("essentia.standard")

from earshot_train import proxies  # noqa: E402

SR = 22050


def tone(freq: float, seconds: float, partials: int = 6) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return sum(np.sin(2 * np.pi * freq * k * t) / k for k in range(1, partials + 1))


def chords(semitone_sets, root_hz: float = 220.0, seconds: float = 1.5) -> np.ndarray:
    out = [sum(tone(root_hz * 2 ** (s / 12), seconds) for s in chord) for chord in semitone_sets]
    audio = np.concatenate(out)
    return (0.2 * audio / np.abs(audio).max()).astype(np.float32)


# i-iv-V-i (harmonic minor, as common practice writes it) and I-IV-V-I on the same tonic (A):
# only the thirds of i and iv differ
MINOR = [(0, 3, 7), (5, 8, 12), (7, 11, 14), (0, 3, 7)] * 3
MAJOR = [(0, 4, 7), (5, 9, 12), (7, 11, 14), (0, 4, 7)] * 3


def test_minor_progression_reads_minor_and_major_reads_major():
    minor = proxies._mode_evidence(chords(MINOR))
    major = proxies._mode_evidence(chords(MAJOR))
    for name in ["minor_temperley", "minor_local", "minor_votes"]:
        assert minor[name] > major[name] + 0.1, (name, minor[name], major[name])
    assert sum(minor.values()) > 0 > sum(major.values()), (minor, major)


def clicks(times: np.ndarray, seconds: float) -> np.ndarray:
    audio = np.zeros(int(seconds * 44100), dtype=np.float32)
    burst = (np.random.default_rng(0).standard_normal(441) * np.exp(-np.arange(441) / 60)).astype(np.float32)
    for t in times:
        i = int(t * 44100)
        audio[i:i + len(burst)] += 0.5 * burst[: len(audio) - i]
    return audio


def syncopation(times: np.ndarray, seconds: float = 12.0) -> float:
    audio = clicks(times, seconds)
    _, ticks, _, _, _ = es.RhythmExtractor2013(method="multifeature")(audio)
    return proxies._syncopation(audio, ticks)


def test_accents_between_the_beats_read_as_syncopation():
    beats = np.arange(0.25, 11.5, 0.5)  # 120 bpm
    straight = syncopation(beats)
    offbeat = syncopation(np.sort(np.concatenate([beats, beats[::2] + 0.375])))  # the last 16th of every other beat
    assert straight < 0.1 and offbeat > 0.2, (straight, offbeat)


def test_too_few_beats_is_no_syncopation():
    assert proxies._syncopation(np.zeros(44100, dtype=np.float32), np.array([0.5, 1.0])) == 0.0
