"""The encoders stream: every output frame depends only on its receptive field (what the
daemon relies on to compute only new frames), with the pitch-class branch too."""

import numpy as np
import pytest

# The training stack (requirements.txt); CI installs only requirements-ci.txt, without torch.
torch = pytest.importorskip("torch", reason="training tests need torch (models/train/requirements.txt)")

from earshot_train.frontend import FRAME_SIZE, SAMPLE_RATE, filterbank_bins  # noqa: E402
from earshot_train.model import PlaneEncoder, chroma_matrix  # noqa: E402

N_BANDS = 137


def test_chroma_names_the_pitch_class_that_stands_out_whatever_the_level():
    m = chroma_matrix(N_BANDS).numpy()
    centres = filterbank_bins()[1:N_BANDS + 1] * SAMPLE_RATE / FRAME_SIZE
    pitch = np.round(12 * np.log2(centres / 440.0)) % 12
    frame = np.where((pitch == 7) & (centres > 100) & (centres < 2000), 3.0, 0.0)  # E, A = 0
    chroma = frame @ m
    assert int(np.argmax(chroma)) == 7
    np.testing.assert_allclose((frame + 5.0) @ m, chroma, atol=1e-5)


def test_plane_encoder_with_chroma_streams():
    torch.manual_seed(0)
    enc = PlaneEncoder(N_BANDS, planes=(16, 32, 64), pools=(2, 3, 2), channels=(32, 32), chroma=8).eval()
    spec = torch.randn(1, 200, N_BANDS)
    tail = 10
    with torch.no_grad():
        whole = enc(spec)
        part = enc(spec[:, -(enc.receptive_field + tail - 1):])
    assert part.shape[-1] == tail
    torch.testing.assert_close(part, whole[..., -tail:], atol=1e-5, rtol=1e-5)
