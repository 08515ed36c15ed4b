"""Simulated capture for training: what a room and a microphone do to the music, applied to
linear band magnitudes (frontend.band_magnitudes) so that it costs microseconds per crop.

Order as in a room: reverberation, the microphone's response (high-pass, tilt, resonances,
low-pass), an unknown gain, then the noise floor, added in power (music and noise are
uncorrelated). The proxy targets stay those of the clean clip: the music did not change,
only how it was heard. The audio-domain versions of the same conditions, run through the
real front end, are in robustness.py; they measure what this teaches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from . import frontend

FPS = frontend.SAMPLE_RATE / frontend.HOP_SIZE


def band_centres_hz(n_bands: int) -> np.ndarray:
    bins = frontend.filterbank_bins()
    return bins[1:n_bands + 1] * frontend.SAMPLE_RATE / frontend.FRAME_SIZE


def _noise_audio(kind: str, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Noise at 0 dBFS RMS: white, pink (1/f), brown (1/f^2), or hum (mains + harmonics) with hiss."""
    n = int(seconds * frontend.SAMPLE_RATE)
    w = rng.standard_normal(n)
    if kind == "white":
        x = w
    elif kind in ("pink", "brown"):
        f = np.fft.rfftfreq(n, 1 / frontend.SAMPLE_RATE)
        f[0] = f[1]
        spec = np.fft.rfft(w) / (np.sqrt(f) if kind == "pink" else f)
        x = np.fft.irfft(spec, n)
    elif kind == "hum":
        t = np.arange(n) / frontend.SAMPLE_RATE
        x = sum(np.sin(2 * np.pi * 50 * h * t) / h for h in (1, 2, 3, 5)) + 0.3 * w
    else:
        raise ValueError(kind)
    return x / np.sqrt(np.mean(x ** 2))


NOISE_KINDS = ("white", "pink", "brown", "hum")


@dataclass
class CaptureAug:
    """Probabilities and ranges of each simulated condition (one draw per crop)."""

    gain_db: tuple = (-30.0, 6.0)
    p_noise: float = 0.7
    noise_dbfs: tuple = (-90.0, -45.0)
    p_reverb: float = 0.4
    rt60_s: tuple = (0.3, 2.0)
    wet_db: tuple = (-12.0, 3.0)  # reverberant tail relative to the direct sound
    p_mic: float = 0.5
    highpass_hz: tuple = (60.0, 300.0)
    tilt_db_per_octave: tuple = (-2.0, 2.0)
    p_lowpass: float = 0.4
    lowpass_hz: tuple = (4000.0, 11000.0)
    # the tail interferes with the direct sound and with itself, bin by bin: a real tail keeps the
    # spectrogram's frame-to-frame texture (and colours it with the room's fixed response), where the
    # expected tail power alone smooths it (mean abs frame-to-frame change of the model input: clean
    # 0.163, audio-domain RT60 1.5 s 0.153, expected power 0.064, with interference 0.137)
    interference: bool = False


class Simulator:
    def __init__(self, n_bands: int, aug: CaptureAug | None = None, seed: int = 0):
        self.aug = aug or CaptureAug()
        rng = np.random.default_rng(seed)
        fb = frontend.filterbank_up_to(frontend.V2_FMAX_HZ)[:, :n_bands]
        # noise spectrograms through the real front end, so their frame-to-frame spread is right
        self.noise = {k: frontend.band_magnitudes(_noise_audio(k, 30.0, rng))[:, :fb.shape[1]] for k in NOISE_KINDS}
        self.f = band_centres_hz(n_bands)
        # independent FFT bins under each band's triangle: how much a band averages the interference
        self.bins_per_band = np.maximum(np.round(fb.sum(0) ** 2 / (fb ** 2).sum(0)).astype(int), 1)
        self.octaves = np.log2(self.f / 1000.0)

    def __call__(self, bands: np.ndarray, rng: np.random.Generator, reverb: bool = True) -> np.ndarray:
        """One random capture of a crop [frames, bands] (linear magnitudes); returns a new array.
        `reverb=False`: the crop comes from a room already (room_copies), add none."""
        a = self.aug
        power = bands.astype(np.float64) ** 2
        if reverb and rng.random() < a.p_reverb:
            power = self._reverb(power, rng)
        resp_db = np.zeros(len(self.f))
        if rng.random() < a.p_mic:
            hp = rng.uniform(*a.highpass_hz)
            resp_db += 10 * np.log10(1 / (1 + (hp / self.f) ** 4))  # 2nd-order high-pass
            resp_db += rng.uniform(*a.tilt_db_per_octave) * self.octaves
            for _ in range(rng.integers(0, 3)):  # a cheap capsule's resonances
                fc, gain, width = np.exp(rng.uniform(np.log(300), np.log(7000))), rng.uniform(-6, 6), 0.3
                resp_db += gain * np.exp(-0.5 * (np.log2(self.f / fc) / width) ** 2)
        if rng.random() < a.p_lowpass:
            lp = rng.uniform(*a.lowpass_hz)
            resp_db += 10 * np.log10(1 / (1 + (self.f / lp) ** 8))  # 4th-order low-pass
        resp_db += rng.uniform(*a.gain_db)
        power = power * 10 ** (resp_db / 10)
        if rng.random() < a.p_noise:
            kind = NOISE_KINDS[rng.integers(len(NOISE_KINDS))]
            bank = self.noise[kind]
            t0 = rng.integers(0, len(bank) - len(power)) if len(bank) > len(power) else 0
            n = np.resize(bank[t0:], power.shape)  # repeats the noise if the crop is longer
            power = power + (n * 10 ** (rng.uniform(*a.noise_dbfs) / 20)) ** 2
        return np.sqrt(power)

    def _reverb(self, power: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Exponential decay per band in power (a diffuse tail), shorter at high frequencies."""
        rt60 = rng.uniform(*self.aug.rt60_s) * np.clip(1.2 - 0.1 * self.octaves, 0.5, 1.3)
        decay = 10 ** (-6.0 / (rt60 * FPS))  # power factor per frame: -60 dB over rt60
        wet = 10 ** (rng.uniform(*self.aug.wet_db) / 10)
        tail = np.empty_like(power)
        # lfilter per band: y[t] = x[t - 1] + d y[t - 1]; with interference half the first frame's share
        # arrives within the frame itself (its 93 ms window spans three hops)
        lag0 = 0.5 if self.aug.interference else 0.0
        for j, d in enumerate(decay):
            tail[:, j] = lfilter([lag0 * (1.0 - d), (1.0 - lag0) * (1.0 - d)], [1.0, -d], power[:, j])
        if not self.aug.interference:
            return power + wet * tail
        return self._interfere(power, wet * tail, rng) ** 2

    def _interfere(self, power: np.ndarray, tail: np.ndarray, rng: np.random.Generator,
                   overlap: int = 3) -> np.ndarray:
        """Band magnitudes of direct sound plus tail when each bin of a band adds the tail with its own
        random phase and the room's fixed random gain: every bin |a + s g z|, z complex Gaussian shared
        by `overlap` neighbouring frames (frames overlap), averaged over the band's bins."""
        k = self.bins_per_band[:power.shape[1]]
        starts = np.concatenate([[0], np.cumsum(k)[:-1]])
        n, frames = int(k.sum()), len(power)
        gain = np.abs(rng.standard_normal(n) + 1j * rng.standard_normal(n)) / np.sqrt(2)  # the room, per bin
        re, im = rng.standard_normal((2, frames + overlap - 1, n), dtype=np.float32)
        kernel = np.hanning(overlap + 2)[1:-1]
        kernel = (kernel / np.sqrt(2 * (kernel ** 2).sum())).astype(np.float32)
        zr = sum(c * re[i:i + frames] for i, c in enumerate(kernel))
        zi = sum(c * im[i:i + frames] for i, c in enumerate(kernel))
        s = np.repeat(np.sqrt(tail).astype(np.float32), k, axis=1) * gain.astype(np.float32)
        mag = np.hypot(np.repeat(np.sqrt(power).astype(np.float32), k, axis=1) + s * zr, s * zi)
        return np.add.reduceat(mag, starts, axis=1).astype(np.float64) / k


def room_impulse(rng: np.random.Generator) -> np.ndarray:
    """A random room's impulse response at SAMPLE_RATE: the direct sound, a few early reflections
    (2-40 ms), then a diffuse tail whose decay is shorter at high frequencies (RT60 0.3-2 s at
    1 kHz, tail -12..+3 dB against the direct sound). Audio domain, unlike Simulator._reverb: a
    real tail also smears pitch and onsets within a frame and colours the spectrum, which a per-band
    decay does not. Drawn from the training seed, never from robustness.py's fixed rooms."""
    from scipy.signal import butter, sosfilt

    sr = frontend.SAMPLE_RATE
    rt60 = rng.uniform(0.3, 2.0)
    n = int(min(rt60 * 1.3, 2.6) * sr)
    t = np.arange(n) / sr
    tail = np.zeros(n)
    edges = [0, 250, 500, 1000, 2000, 4000, sr / 2]  # octave bands, each with its own decay
    for lo, hi in zip(edges[:-1], edges[1:]):
        octave = np.log2(max(np.sqrt(max(lo, 125) * hi), 1.0) / 1000.0)
        band_rt = rt60 * np.clip(1.2 - 0.1 * octave, 0.5, 1.3)
        if lo == 0:
            sos = butter(4, hi, "lowpass", fs=sr, output="sos")
        elif hi >= sr / 2:
            sos = butter(4, lo, "highpass", fs=sr, output="sos")
        else:
            sos = butter(2, [lo, hi], "bandpass", fs=sr, output="sos")
        tail += sosfilt(sos, rng.standard_normal(n)) * 10 ** (-3 * t / band_rt)
    tail[: int(rng.uniform(0.005, 0.03) * sr)] = 0.0  # pre-delay of the diffuse part
    tail *= 10 ** (rng.uniform(-12.0, 3.0) / 20) / np.sqrt(np.sum(tail ** 2))
    h = tail
    h[0] += 1.0
    for _ in range(rng.integers(2, 9)):  # early reflections off walls, floor, ceiling
        k = int(rng.uniform(0.002, 0.04) * sr)
        h[k] += rng.choice([-1.0, 1.0]) * rng.uniform(0.1, 0.6)
    return h


def room_copies(audio: np.ndarray, copies: int, seed: int) -> np.ndarray:
    """`copies` reverberant versions of a clip as linear band magnitudes [copies, frames, bands]
    (front end version 2), each through its own room_impulse, same length as the clean clip."""
    from scipy.signal import fftconvolve

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(copies):
        y = fftconvolve(audio, room_impulse(rng))[: len(audio)]
        out.append(frontend.band_magnitudes(np.clip(y, -1.0, 1.0)))
    return np.stack(out)
