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
    assert F.spectrogram(np.zeros(22050)).shape == (F.n_frames(22050), 137)


def test_bands_end_below_8_khz():
    fb = F.filterbank_up_to(F.V2_FMAX_HZ)
    assert fb.shape == (1025, F.N_BANDS) == (1025, 137)
    assert np.nonzero(fb.sum(axis=1))[0].max() * F.SAMPLE_RATE / F.FRAME_SIZE <= 8000
    assert F.params()["filterbank_bins"] == [int(b) for b in F.filterbank_bins()[:139]]


def test_silence_is_zero_and_a_tone_stands_above_the_rest():
    assert np.all(F.spectrogram(np.zeros(10000)) == 0)
    tone = F.spectrogram(0.5 * np.sin(2 * np.pi * 440 * np.arange(22050) / 22050))
    assert tone.max() - np.median(tone) > 4  # 80 dB between the tone's band and the leakage elsewhere


def _music():
    """A real recording (film music from ../shared): the synthetic golden signal, with its swells
    from silence and its nearly empty spectrum, is no model of what a room hears."""
    path = Path(__file__).resolve().parents[4] / "shared/data/soundtracks/audio/001.mp3"
    return F.load_audio(path)[: 15 * F.SAMPLE_RATE]


def test_microphone_gain_does_not_move_the_input():
    x = _music()
    clean = F.spectrogram(x)
    for db in (-30.0, -10.0, 6.0):
        other = F.spectrogram(x * 10 ** (db / 20))
        assert np.abs(other - clean).mean() < 0.01, db
    v1 = F.spectrogram_v1(x)  # version 1 moved with the gain
    assert np.abs(F.spectrogram_v1(x * 10 ** (-30 / 20)) - v1).mean() > 1


def test_a_noise_floor_far_below_the_music_stays_near_zero():
    x = _music()
    noisy = x + 10 ** (-70 / 20) * np.random.default_rng(0).standard_normal(len(x))
    assert np.abs(F.spectrogram(noisy) - F.spectrogram(x)).mean() < 0.01


def test_chunks_of_a_stream_give_the_same_columns():
    bands = F.band_magnitudes(_music()[: 5 * F.SAMPLE_RATE])
    whole, _ = F.compress(bands)
    a, level = F.compress(bands[:57])
    b, _ = F.compress(bands[57:], level)
    np.testing.assert_array_equal(np.concatenate([a, b]), whole)


def test_sine_lands_in_its_band():
    fb = F.filterbank()
    centres = np.arange(1025) * 22050 / 2048 @ fb  # weighted centre frequency per band
    for hz in [110.0, 1000.0, 5000.0]:
        centres = centres[:F.N_BANDS]
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
