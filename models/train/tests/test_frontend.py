"""The reference front end does what models/FRONTEND.md says."""

import json
from pathlib import Path

import numpy as np

from earshot_train import frontend as F

TESTDATA = Path(__file__).resolve().parents[2] / "testdata"


def test_paper_band_count_and_unit_area():
    fb = F.filterbank()
    assert fb.shape == (1025, 149)
    np.testing.assert_allclose(fb.sum(axis=0), 1.0, rtol=1e-12)
    assert len(F.filterbank_bins()) == 151
    assert F.filterbank_bins()[-1] == 1024  # everything above Nyquist collapsed


def test_frame_count_needs_whole_frames():
    assert F.n_frames(2047) == 0
    assert F.n_frames(2048) == 1
    assert F.n_frames(2048 + 703) == 1
    assert F.n_frames(2048 + 704) == 2
    assert F.spectrogram(np.zeros(22050)).shape == (F.n_frames(22050), 149)


def test_silence_is_zero_and_loud_is_large():
    assert np.all(F.spectrogram(np.zeros(10000)) == 0)
    loud = F.spectrogram(0.5 * np.sin(2 * np.pi * 440 * np.arange(22050) / 22050))
    assert loud.max() > 4  # log10 of a 16-bit-scale magnitude


def test_sine_lands_in_its_band():
    fb = F.filterbank()
    centres = np.arange(1025) * 22050 / 2048 @ fb  # weighted centre frequency per band
    for hz in [110.0, 1000.0, 5000.0]:
        s = F.spectrogram(0.5 * np.sin(2 * np.pi * hz * np.arange(22050) / 22050))
        band = s.mean(axis=0).argmax()
        assert abs(np.log2(centres[band] / hz)) < 1 / 12, (hz, centres[band])


def test_golden_vectors_are_current():
    index = json.loads((TESTDATA / "golden.json").read_text())["frontend"]
    pcm = np.fromfile(TESTDATA / index["pcm"]["file"], dtype="<f4")
    spec = np.fromfile(TESTDATA / index["spectrogram"]["file"], dtype="<f4").reshape(index["spectrogram"]["shape"])
    assert pcm.shape == tuple(index["pcm"]["shape"])
    np.testing.assert_allclose(F.spectrogram(pcm.astype(np.float64)), spec, atol=1e-5)


def test_golden_signal_is_synthetic_not_dataset_audio():
    from earshot_train.golden import synth

    index = json.loads((TESTDATA / "golden.json").read_text())["frontend"]
    pcm = np.fromfile(TESTDATA / index["pcm"]["file"], dtype="<f4")
    np.testing.assert_allclose(pcm, synth(4.0).astype(np.float32))


def test_window_targets_tile_the_clip():
    from earshot_train.proxies import WINDOW_FRAMES, WINDOW_HOP, window_starts

    for seconds in (10, 16.4, 37):
        n = int(seconds * F.SAMPLE_RATE)
        starts = window_starts(n)
        assert starts[0] == 0 and all(b - a == WINDOW_HOP for a, b in zip(starts, starts[1:]))
        # every window is whole, and no whole window is left out
        assert starts[-1] + WINDOW_FRAMES <= F.n_frames(n) < starts[-1] + WINDOW_HOP + WINDOW_FRAMES
