"""Consistency training: each captured crop comes with the same crop read clean, and targets line up."""

import numpy as np
import pytest

# The training stack (requirements.txt); CI installs only requirements-ci.txt, without torch.
torch = pytest.importorskip("torch", reason="training tests need torch (models/train/requirements.txt)")

from earshot_train import frontend  # noqa: E402
from earshot_train.train import AGC_CONTEXT, CONFIGS, Dataset, crop_maker, dataset  # noqa: E402

N_BANDS = 137
CROP = 157


def test_paired_batches_hold_each_crop_captured_then_clean():
    cfg = CONFIGS["robust-4q-m1p-cons"]
    rng = np.random.default_rng(0)
    # clips 3 frames longer than a crop: 4 places for it
    bands = {i: rng.uniform(0.0, 50.0, (CROP + 3, N_BANDS)).astype(np.float32) for i in (1, 2, 3, 4)}
    emo = {i: np.full(8, 0.1 * i) for i in bands}
    mid = {i: np.full(7, 0.2 * i) for i in bands}
    train = dataset(cfg, None, list(bands), emo, mid, bands=bands)
    x, mid_t, emo_t, _, signs = next(train.batches(4, np.random.default_rng(1), crop=CROP))
    assert x.shape == (8, CROP, N_BANDS) and len(mid_t) == len(emo_t) == len(signs) == 8
    torch.testing.assert_close(emo_t[:4], emo_t[4:])
    torch.testing.assert_close(mid_t[:4], mid_t[4:])
    # the clean half is the real front end on the clean bands: one of the clips' crops, exactly
    clean = crop_maker(cfg, N_BANDS)
    for b in range(4, 8):
        clip = int(round(emo_t[b, 0].item() / 0.1))
        readings = [clean(bands[clip][max(t0 - AGC_CONTEXT, 0):t0 + CROP], t0 - max(t0 - AGC_CONTEXT, 0), rng,
                          capture=False) for t0 in range(4)]
        assert any(np.allclose(x[b].numpy(), r, atol=1e-5) for r in readings), f"crop {b}: not clip {clip} read clean"
    # and the captured half differs from it (the simulated room and microphone)
    assert (x[:4] - x[4:]).abs().mean() > 1e-3



class _Midpoint:
    """A stand-in for the training rng: every draw takes the middle of its range, every coin comes up heads."""

    def permutation(self, n):
        return np.arange(n)

    def integers(self, low, high=None):
        return 0 if high is None else (low + high - 1) // 2

    def random(self):
        return 0.0


def test_a_transposed_crop_comes_from_the_copy_at_the_same_place_in_the_music_and_so_does_its_clean_pair():
    frames = 700
    bands = {1: np.tile(np.arange(frames, dtype=np.float32)[:, None], (1, N_BANDS))}  # each frame holds its index
    copy = np.tile(1000.0 + np.arange(int(frames / 1.12), dtype=np.float32)[:, None], (1, N_BANDS))
    train = Dataset(bands, [1], {1: np.zeros(8)}, {1: np.zeros(7)}, crop_input=lambda b, context, rng, reverb=True,
                    capture=True: b[context:], paired=True, transposed=[{1: copy}], p_transpose=1.0)
    x, *_ = next(train.batches(1, _Midpoint(), crop=CROP))
    t0 = (0 + frames - CROP) // 2  # where the crop starts in the clip
    t = round(t0 * len(copy) / frames)  # the same moment of the faster copy
    np.testing.assert_array_equal(x[0, :, 0].numpy(), 1000.0 + np.arange(t, t + CROP))
    np.testing.assert_array_equal(x[1].numpy(), x[0].numpy())
