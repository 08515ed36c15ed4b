"""Consistency training: each captured crop comes with the same crop read clean, and targets line up."""

import numpy as np
import pytest

# The training stack (requirements.txt); CI installs only requirements-ci.txt, without torch.
torch = pytest.importorskip("torch", reason="training tests need torch (models/train/requirements.txt)")

from earshot_train import frontend  # noqa: E402
from earshot_train.train import AGC_CONTEXT, CONFIGS, crop_maker, dataset  # noqa: E402

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
