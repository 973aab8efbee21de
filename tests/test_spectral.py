"""Tests of hmslib.spectral against librosa, scipy and direct computations."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from scipy import signal as sps

from hmslib import spectral as S

SFREQ = 200.0


# --------------------------------------------------------------------------------------------------
# building blocks
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(sr=200, n_fft=1024, n_mels=128, fmin=0.0, fmax=20.0),
        dict(sr=200, n_fft=1024, n_mels=64, fmin=0.53, fmax=30.0, htk=True, norm=None),
        dict(sr=22050, n_fft=2048, n_mels=128, fmin=0.0, fmax=11025.0),  # Slaney log part
    ],
)
def test_mel_filterbank_matches_librosa(kwargs):
    ref = librosa.filters.mel(**kwargs)
    ours = S.filterbank(
        sfreq=kwargs["sr"], n_fft=kwargs["n_fft"], n_bins=kwargs["n_mels"], fmin=kwargs["fmin"],
        fmax=kwargs["fmax"], htk=kwargs.get("htk", False), norm=kwargs.get("norm", "slaney"),
    )  # fmt: skip
    assert ours.dtype == np.float32
    assert_allclose(ours, ref, rtol=1e-5, atol=1e-9)


def test_linear_filterbank_hand_worked():
    # 1 Hz FFT bins and edges on whole Hz: filter i is the single bin at i + 1 Hz
    fb = S.filterbank(sfreq=200.0, n_fft=200, n_bins=10, fmin=0.0, fmax=11.0, scale="linear")
    expected = np.zeros((10, 101), dtype=np.float32)
    expected[np.arange(10), np.arange(1, 11)] = 1.0
    assert_allclose(fb, expected, atol=1e-6)


@pytest.mark.parametrize("pad_mode", ["constant", "reflect"])
@pytest.mark.parametrize(("n_fft", "hop", "win"), [(1024, 39, 128), (256, 50, 256), (512, 33, 200)])
def test_stft_power_matches_librosa(n_fft, hop, win, pad_mode):
    rng = np.random.default_rng(0)
    y = rng.standard_normal((2, 3000)).astype(np.float32) * 50
    power, freqs = S.stft_power(
        y, n_fft=n_fft, hop_length=hop, win_length=win, fmin=0.0, fmax=30.0, pad_mode=pad_mode
    )
    ref = np.abs(
        librosa.stft(y, n_fft=n_fft, hop_length=hop, win_length=win, pad_mode=pad_mode)
    ) ** 2  # fmt: skip
    keep = np.fft.rfftfreq(n_fft, 1 / SFREQ) <= 30.0
    assert_allclose(freqs, np.fft.rfftfreq(n_fft, 1 / SFREQ)[keep])
    assert power.shape == (2, keep.sum(), ref.shape[-1])
    assert_allclose(power.numpy(), ref[:, keep], rtol=1e-3, atol=1e-5 * ref.max())


def test_stft_pure_tone_against_scipy():
    t = np.arange(4000) / SFREQ
    x = 30.0 * np.sin(2 * np.pi * 12.5 * t)  # 12.5 Hz = bin 16 of a 256-point FFT
    f, _, z = sps.stft(x, fs=SFREQ, window="hann", nperseg=256, noverlap=256 - 64, boundary="zeros")
    power, freqs = S.stft_power(x, n_fft=256, hop_length=64)
    scipy_power = np.abs(z * sps.get_window("hann", 256).sum()) ** 2  # undo scipy's scaling
    frames = power.shape[-1]
    assert_allclose(freqs, f)
    assert_allclose(
        power.numpy(), scipy_power[:, :frames], rtol=1e-4, atol=1e-4 * power.max().item()
    )
    middle = power[:, 5:-5].argmax(dim=0).numpy()
    assert_array_equal(middle, 16)
    assert_array_equal(scipy_power[:, 5 : frames - 5].argmax(axis=0), 16)


def test_mel_spectrogram_matches_librosa_other_settings():
    rng = np.random.default_rng(1)
    y = rng.standard_normal(5000).astype(np.float32)
    kw = dict(n_fft=512, hop_length=50, win_length=256, n_mels=40, fmin=1.0, fmax=40.0)
    ref = librosa.feature.melspectrogram(y=y, sr=200, pad_mode="reflect", **kw)
    ours = S.spectrogram(
        y, n_fft=512, hop_length=50, win_length=256, n_bins=40, fmin=1.0, fmax=40.0,
        pad_mode="reflect",
    )  # fmt: skip
    assert_allclose(ours.numpy(), ref, rtol=1e-3, atol=1e-6 * ref.max())


@pytest.mark.parametrize(("ref", "top_db"), [("max", 80.0), (1.0, None), (3.5, 40.0)])
def test_power_to_db_matches_librosa(ref, top_db):
    rng = np.random.default_rng(2)
    power = (rng.random((3, 20, 30)) ** 8).astype(np.float32)
    power[0, :2] = 0.0
    ours = S.power_to_db(torch.from_numpy(power), ref=ref, top_db=top_db).numpy()
    lref = np.max if ref == "max" else ref
    expected = np.stack([librosa.power_to_db(p, ref=lref, top_db=top_db) for p in power])
    assert_allclose(ours, expected, atol=1e-4)


def test_log_spectrogram_width_and_errors():
    x = np.random.default_rng(3).standard_normal(1000)
    db = S.log_spectrogram(x, n_fft=256, hop_length=10, n_bins=32, fmax=50.0, width=64)
    assert db.shape == (32, 64)
    with pytest.raises(ValueError, match="width=500 frames.*101"):
        S.log_spectrogram(x, n_fft=256, hop_length=10, n_bins=32, fmax=50.0, width=500)
    with pytest.raises(ValueError, match="unknown window"):
        S.stft_power(x, hop_length=10, n_fft=256, window="kaiser")
    with pytest.raises(ValueError, match="win_length <= n_fft"):
        S.stft_power(x, hop_length=10, n_fft=256, win_length=300)


def _direct_morlet(x: np.ndarray, f: float, n_cycles: float, positions: np.ndarray) -> np.ndarray:
    """Time-domain convolution with the complex Morlet wavelet of the docstring (float64)."""
    sigma_t = n_cycles / (2 * np.pi * f)
    t = np.arange(-int(6 * sigma_t * SFREQ), int(6 * sigma_t * SFREQ) + 1) / SFREQ
    psi = 2 / (np.sqrt(2 * np.pi) * sigma_t) * np.exp(-(t**2) / (2 * sigma_t**2))
    psi = psi * np.exp(2j * np.pi * f * t) / SFREQ
    return np.convolve(x, psi, mode="same")[positions]


def test_morlet_cwt_matches_direct_convolution():
    rng = np.random.default_rng(4)
    x = rng.standard_normal(4000)
    freqs = [1.0, 5.0, 17.0]
    out = S.morlet_cwt(x, freqs, n_cycles=5.0).numpy()
    assert out.shape == (3, 4000) and out.dtype == np.complex64
    positions = np.arange(1500, 2500, 37)
    for i, f in enumerate(freqs):
        ref = _direct_morlet(x, f, 5.0, positions)
        assert_allclose(out[i, positions], ref, atol=2e-3 * np.abs(ref).max())
    decimated = S.morlet_cwt(x, freqs, n_cycles=5.0, decim=4).numpy()
    assert decimated.shape == (3, 1000)
    assert_allclose(decimated, out[:, ::4], atol=1e-3 * np.abs(out).max())
    with pytest.raises(ValueError, match="aliases"):
        S.morlet_cwt(x, [20.0], decim=8)


def test_morlet_cwt_pure_tone_amplitude():
    t = np.arange(6000) / SFREQ
    x = 3.0 * np.cos(2 * np.pi * 7.0 * t)
    amp = np.abs(S.morlet_cwt(x, [7.0], n_cycles=7.0).numpy()[0, 2000:4000])
    assert_allclose(amp, 3.0, rtol=1e-3)


# --------------------------------------------------------------------------------------------------
# the public-notebook preset on the real EEG
# --------------------------------------------------------------------------------------------------
