"""Reference front end: audio -> log-frequency magnitude spectrogram.

This file is the executable form of models/FRONTEND.md. The Rust daemon
(device/src/frontend) implements the same computation and is checked against
the golden vectors that `python -m earshot_train golden` writes from this code.
numpy only, so CI can run it without torch.
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 22050
FRAME_SIZE = 2048
HOP_SIZE = 704  # 22050 / 704 = 31.32 frames per second, as in the paper
BANDS_PER_OCTAVE = 24
FMIN_HZ = 20.0
FMAX_HZ = 16000.0  # clipped to Nyquist (11025 Hz) by construction
A4_HZ = 440.0
INPUT_SCALE = 32768.0  # samples in [-1, 1] are scaled to 16-bit range (madmom convention)


def hann_window(n: int = FRAME_SIZE) -> np.ndarray:
    """Periodic Hann window, w[i] = 0.5 - 0.5 cos(2 pi i / n)."""
    i = np.arange(n, dtype=np.float64)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * i / n)


def log_frequencies() -> np.ndarray:
    """Semitone-fraction grid aligned to A4, from FMIN_HZ to FMAX_HZ inclusive."""
    left = np.floor(np.log2(FMIN_HZ / A4_HZ) * BANDS_PER_OCTAVE)
    right = np.ceil(np.log2(FMAX_HZ / A4_HZ) * BANDS_PER_OCTAVE)
    freqs = A4_HZ * 2.0 ** (np.arange(left, right) / BANDS_PER_OCTAVE)
    return freqs[(freqs >= FMIN_HZ) & (freqs <= FMAX_HZ)]


def filterbank_bins(sample_rate: int = SAMPLE_RATE, frame_size: int = FRAME_SIZE) -> np.ndarray:
    """FFT bin of every grid frequency (nearest bin), duplicates removed."""
    n_bins = frame_size // 2 + 1
    bin_freqs = np.arange(n_bins) * sample_rate / frame_size
    freqs = log_frequencies()
    # nearest bin; frequencies above Nyquist collapse onto the last bin
    idx = np.clip(np.searchsorted(bin_freqs, freqs), 1, n_bins - 1)
    left = bin_freqs[idx - 1]
    right = bin_freqs[idx]
    idx = idx - (freqs - left < right - freqs)
    return np.unique(idx)


def filterbank(sample_rate: int = SAMPLE_RATE, frame_size: int = FRAME_SIZE) -> np.ndarray:
    """Triangular filters [n_fft_bins, n_bands], each normalised to unit sum.

    Band b spans bins (start, centre, stop) = (bins[b], bins[b+1], bins[b+2]):
    weights rise linearly from 0 at `start` to 1 at `centre` and fall towards 0
    at `stop` (stop itself excluded), then are divided by their sum.
    """
    n_bins = frame_size // 2 + 1
    bins = filterbank_bins(sample_rate, frame_size)
    n_bands = len(bins) - 2
    fb = np.zeros((n_bins, n_bands), dtype=np.float64)
    for b in range(n_bands):
        start, centre, stop = bins[b], bins[b + 1], bins[b + 2]
        rise = np.arange(centre - start, dtype=np.float64) / (centre - start)
        fall = 1.0 - np.arange(stop - centre, dtype=np.float64) / (stop - centre)
        fb[start:centre, b] = rise
        fb[centre:stop, b] = fall
        fb[:, b] /= fb[:, b].sum()
    return fb


N_BANDS_V1 = filterbank().shape[1]  # 149: version 1 used every band up to Nyquist


def n_frames(n_samples: int) -> int:
    """Frames that fit entirely in n_samples (no padding)."""
    return 0 if n_samples < FRAME_SIZE else 1 + (n_samples - FRAME_SIZE) // HOP_SIZE


def spectrogram_v1(audio: np.ndarray) -> np.ndarray:
    """Front end version 1 (models up to edge-v4): [frames, 149] log10(1 + filterbank(|STFT|))."""
    return np.log10(1.0 + band_magnitudes(audio, FMAX_HZ)).astype(np.float32)


# Version 2 (capture-robust): only the bands the training audio fills (up to 8 kHz;
# 64 kbit/s mp3s hold little above ~10 kHz and some 4q-dev clips nothing above
# ~8 kHz), and a level-relative compression. A slow automatic gain control divides
# the band magnitudes by the running level of the music, so an unknown microphone
# gain does not move the input, and components far below that level (a noise
# floor, the quiet top bands of a frame) compress towards 0 instead of being
# amplified by per-band normalisation.
V2_FMAX_HZ = 8000.0
AGC_TAU_S = 3.0  # time constant of the running level (frames weigh exp(-age / tau))
AGC_MIN_LEVEL = 1.5  # log10 units: quieter than any music; below it, no further gain (silence stays quiet)
HEADROOM = 2.5  # log10 units (50 dB): a band this far below the running level reads ~log10(2)


def band_magnitudes(audio: np.ndarray, fmax_hz: float = V2_FMAX_HZ) -> np.ndarray:
    """Mono audio at SAMPLE_RATE in [-1, 1] -> [frames, bands] filterbank(|STFT|), linear, 16-bit scale."""
    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim != 1:
        raise ValueError(f"expected mono audio, got shape {audio.shape}")
    fb = filterbank_up_to(fmax_hz)
    count = n_frames(len(audio))
    if count == 0:
        return np.zeros((0, fb.shape[1]))
    idx = np.arange(FRAME_SIZE)[None, :] + HOP_SIZE * np.arange(count)[:, None]
    frames = audio[idx] * (INPUT_SCALE * hann_window())[None, :]
    return np.abs(np.fft.rfft(frames, axis=1)) @ fb


def filterbank_up_to(fmax_hz: float) -> np.ndarray:
    """The same triangular bands, keeping those whose stop bin lies at or below fmax_hz."""
    bins = filterbank_bins()
    keep = int(np.sum(bins[2:] * SAMPLE_RATE / FRAME_SIZE <= fmax_hz))
    return filterbank()[:, :keep]


N_BANDS = filterbank_up_to(V2_FMAX_HZ).shape[1]  # 137: the model's input width


def agc_decay() -> float:
    return float(np.exp(-HOP_SIZE / (SAMPLE_RATE * AGC_TAU_S)))


def compress(bands: np.ndarray, level: float | None = None) -> tuple[np.ndarray, float]:
    """Band magnitudes [frames, bands] -> level-relative log spectrogram, and the running level after.

    level_t = a level_(t-1) + (1 - a) mean_j log10(1 + B[t, j]), started at the first frame's
    value (or `level`, carried over from the previous chunk of a stream);
    S[t, j] = log10(1 + B[t, j] * 10^(HEADROOM - max(level_t, AGC_MIN_LEVEL))).
    """
    bands = np.asarray(bands, dtype=np.float64)
    if len(bands) == 0:
        return np.zeros(bands.shape, dtype=np.float32), level
    a = agc_decay()
    m = np.log10(1.0 + bands).mean(axis=1)
    lev = np.empty(len(m))
    prev = m[0] if level is None else level
    for t, v in enumerate(m):  # a one-pole filter, in the daemon's order of operations
        prev = a * prev + (1.0 - a) * v
        lev[t] = prev
    gain = 10.0 ** (HEADROOM - np.maximum(lev, AGC_MIN_LEVEL))
    return np.log10(1.0 + bands * gain[:, None]).astype(np.float32), float(lev[-1])


def spectrogram(audio: np.ndarray) -> np.ndarray:
    """Mono audio at SAMPLE_RATE in [-1, 1] -> [frames, N_BANDS] model input (front end version 2)."""
    return compress(band_magnitudes(audio))[0]


def load_audio(path) -> np.ndarray:
    """Decodes a file to mono float64 at SAMPLE_RATE (the training data already is)."""
    import soundfile as sf

    audio, sr = sf.read(str(path), dtype="float64", always_2d=True)
    audio = audio.mean(axis=1)
    if sr != SAMPLE_RATE:
        raise ValueError(
            f"{path}: sample rate {sr} Hz, the reference front end expects {SAMPLE_RATE} Hz; "
            "resample first (the daemon does this itself)"
        )
    return audio


def params() -> dict:
    """Front-end parameters as recorded in metadata.json."""
    return {
        "version": 2,
        "sample_rate_hz": SAMPLE_RATE,
        "frame_size": FRAME_SIZE,
        "hop_size": HOP_SIZE,
        "window": "hann-periodic",
        "bands_per_octave": BANDS_PER_OCTAVE,
        "fmin_hz": FMIN_HZ,
        "fmax_hz": V2_FMAX_HZ,
        "a4_hz": A4_HZ,
        "input_scale": INPUT_SCALE,
        "n_bands": int(N_BANDS),
        "compression": "log10(1 + x * 10^(headroom - max(level, min_level))), level: running mean of "
                       "log10(1 + x) over bands, time constant agc_tau_s",
        "agc_tau_s": AGC_TAU_S,
        "agc_min_level": AGC_MIN_LEVEL,
        "headroom": HEADROOM,
        "filterbank_bins": [int(b) for b in filterbank_bins()[:N_BANDS + 2]],
    }
