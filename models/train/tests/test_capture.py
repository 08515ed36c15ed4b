"""The training-time capture simulation does what capture.py says."""

import numpy as np

from earshot_train import capture as C
from earshot_train import data as D
from earshot_train import frontend as F

SR = F.SAMPLE_RATE


def _click_bands(seconds=4.0, at=1.0):
    x = np.zeros(int(seconds * SR))
    x[int(at * SR)] = 0.5
    return F.band_magnitudes(x)


def test_room_impulse_decays_sixty_db_and_faster_at_high_frequencies():
    for seed in range(5):
        h = C.room_impulse(np.random.default_rng(seed))
        assert np.argmax(np.abs(h)) == 0 and h[0] >= 0.9  # the direct sound arrives first and loudest
        tail = h[int(0.05 * SR):]
        # energy envelope in 50 ms blocks: the last block lies >= 40 dB under the first
        blocks = [np.sum(b ** 2) for b in np.array_split(tail, max(len(tail) // int(0.05 * SR), 2))]
        assert 10 * np.log10(blocks[-1] / blocks[0]) < -40
        spec = np.abs(np.fft.rfft(tail[len(tail) // 2:])) ** 2
        f = np.fft.rfftfreq(len(tail) - len(tail) // 2, 1 / SR)
        late_low, late_high = spec[(f > 200) & (f < 800)].mean(), spec[(f > 5000) & (f < 10000)].mean()
        early = np.abs(np.fft.rfft(tail[: len(tail) // 4])) ** 2
        fe = np.fft.rfftfreq(len(tail[: len(tail) // 4]), 1 / SR)
        early_low, early_high = early[(fe > 200) & (fe < 800)].mean(), early[(fe > 5000) & (fe < 10000)].mean()
        assert late_high / late_low < early_high / early_low  # the top dies first


def test_room_copies_spread_a_click_over_time_and_keep_the_shape():
    x = np.zeros(4 * SR)
    x[SR] = 0.5
    clean = F.band_magnitudes(x)
    rooms = C.room_copies(x, 2, seed=3)
    assert rooms.shape == (2,) + clean.shape
    after = slice(int(1.3 * SR / F.HOP_SIZE), int(1.5 * SR / F.HOP_SIZE))  # 0.3-0.5 s after the click
    assert clean[after].max() == 0.0
    assert (rooms[:, after].max(axis=(1, 2)) > 0).all()
    assert not np.allclose(rooms[0], rooms[1])  # two different rooms


def test_simulator_without_reverb_adds_no_tail():
    bands = _click_bands()
    sim = C.Simulator(bands.shape[1], C.CaptureAug(p_noise=0.0, p_reverb=1.0))
    rng = np.random.default_rng(0)
    after = slice(int(1.3 * SR / F.HOP_SIZE), int(1.5 * SR / F.HOP_SIZE))
    assert sim(bands, rng, reverb=False)[after].max() == 0.0
    assert sim(bands, rng)[after].max() > 0.0  # p_reverb=1: a tail


def test_simulator_gain_and_noise_stay_in_range():
    rng = np.random.default_rng(1)
    bands = np.abs(rng.standard_normal((300, 137))) * 1e4
    for aug in (C.CaptureAug(), C.CaptureAug(interference=True)):
        sim = C.Simulator(137, aug)
        for _ in range(20):
            out = sim(bands, rng)
            assert out.shape == bands.shape and np.isfinite(out).all() and (out >= 0).all()


def test_transpose_moves_a_tone_by_semitones_and_the_tempo_with_it():
    sr = SR
    tone = np.sin(2 * np.pi * 440.0 * np.arange(4 * sr) / sr)
    for k in (-2, -1, 1, 2):
        out = D.transpose(tone, k)
        assert abs(len(out) / len(tone) - 2.0 ** (-k / 12)) < 1e-3  # a tape at another speed
        spectrum = np.abs(np.fft.rfft(out[sr:3 * sr] * np.hanning(2 * sr)))
        peak = np.argmax(spectrum) * sr / (2 * sr)
        assert abs(12 * np.log2(peak / 440.0) - k) < 0.05, f"{k:+d} semitones: peak at {peak:.1f} Hz"


def _melody(seconds=8.0, note_s=0.25, seed=0):
    """Plucked three-partial notes, a new pitch every `note_s`."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(note_s * SR)) / SR
    env = np.minimum(1.0, t / 0.01) * np.exp(-t / 0.3)
    notes = [env * sum(np.sin(2 * np.pi * h * 220.0 * 2 ** (rng.integers(0, 24) / 12) * t) / h for h in (1, 2, 3))
             for _ in range(int(seconds / note_s))]
    return 0.2 * np.concatenate(notes)


def test_interfering_tail_keeps_the_texture_a_real_tail_keeps():
    from earshot_train.robustness import _reverb

    def texture(bands):  # mean frame-to-frame change of the model's input, once its level has settled
        return np.abs(np.diff(F.compress(bands)[0][60:], axis=0)).mean()

    x = _melody()
    clean = F.band_magnitudes(x)
    room = dict(p_reverb=1.0, rt60_s=(1.5, 1.5), wet_db=(0.0, 0.0), p_mic=0.0, p_lowpass=0.0, gain_db=(0.0, 0.0),
                p_noise=0.0)
    smooth = C.Simulator(clean.shape[1], C.CaptureAug(**room))
    interfering = C.Simulator(clean.shape[1], C.CaptureAug(interference=True, **room))
    for seed in range(2):
        real = texture(F.band_magnitudes(_reverb(x, 1.5, wet_db=0.0, seed=seed)))
        assert real < 0.5 * texture(clean)  # a tail does fill the gaps between notes
        assert texture(smooth(clean, np.random.default_rng(seed))) < 0.7 * real  # expected power: too smooth
        assert abs(texture(interfering(clean, np.random.default_rng(seed))) / real - 1) < 0.15
