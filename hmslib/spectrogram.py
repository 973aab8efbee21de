"""Spectrograms and model input representations in torch, batched over windows and channels.

Low level (any ``(..., samples)`` tensor, CPU or GPU): :func:`stft_power`, :func:`filterbank`,
:func:`spectrogram`, :func:`power_to_db`, :func:`log_spectrogram`, :func:`morlet_cwt`; and
:func:`scaled_bipolar`, the filtered, clipped montage most representations start from.

The STFT is one strided convolution (a matrix product on GPU) of the signal with a windowed DFT
basis restricted to the frequency bins a spectrogram needs (EEG spectrograms use 0-30 Hz of a
0-100 Hz band) and to the non-zero part of the window: exact, and several times faster than a full
FFT of every frame. Power values match ``librosa`` (``center=True``, ``pad_mode="constant"``,
periodic Hann window, Slaney or HTK mel filters) to float32 precision.

Model inputs are named representations: ``REPRESENTATIONS[name]`` describes one (:class:`ReprInfo`)
and :func:`compute_representation` computes it from raw 50 s EEG windows ``(batch, 20, 10000)`` in
microvolts (NaN allowed) and, where needed, Kaggle spectrogram windows ``(batch, 4, 100, 300)``.
:func:`swap_hemispheres` mirrors left and right for every representation.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.fft
import torch
import torch.nn.functional as F

from hmslib import signal as hsignal
from hmslib.constants import EEG_CHANNELS, SFREQ, SPEC_N_FREQS, SPEC_REGIONS

#: Samples of a labelled EEG window (50 s at 200 Hz).
WINDOW_SAMPLES = 10_000
#: Kaggle spectrogram columns of a labelled window (600 s, one column per 2 s).
SPEC_WINDOW_COLUMNS = 300
#: Input scaling of the top solutions: clip to +-1024 uV, then divide by 32 (no standardisation).
CLIP_UV = 1024.0
SCALE_UV = 32.0

_WINDOWS = ("hann", "hamming", "blackman")


def _as_float_tensor(x, device=None) -> torch.Tensor:
    """``x`` (array or tensor) as a float32 tensor on ``device`` (default: where it is)."""
    if isinstance(x, np.ndarray) and not x.flags.writeable:
        x = x.copy()  # e.g. read-only parquet buffers; torch cannot wrap those
    t = torch.as_tensor(x)
    if not (t.is_floating_point() or t.dtype in (torch.int16, torch.int32, torch.int64)):
        raise ValueError(f"expected a real numeric array, got dtype {t.dtype}")
    return t.to(device=device if device is not None else t.device, dtype=torch.float32)


# --------------------------------------------------------------------------------------------------
# STFT and filter banks
# --------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=32)
def _dft_basis(
    n_fft: int, win_length: int, window: str, k0: int, k1: int, device: str
) -> torch.Tensor:
    """Windowed real DFT basis as conv1d weights ``(2 * (k1 - k0), 1, win_length)``: cos then -sin."""
    win = getattr(torch, f"{window}_window")(win_length, periodic=True, dtype=torch.float64)
    n = torch.arange(win_length, dtype=torch.int64) + (n_fft - win_length) // 2
    k = torch.arange(k0, k1, dtype=torch.int64)
    # exact phase: reduce n*k modulo n_fft in integers before scaling
    angle = (2.0 * math.pi / n_fft) * ((k[:, None] * n[None, :]) % n_fft).to(torch.float64)
    basis = torch.cat([torch.cos(angle), -torch.sin(angle)]) * win[None, :]
    return basis[:, None, :].to(device=device, dtype=torch.float32)


def _stft_bins(
    x: torch.Tensor,
    *,
    n_fft: int,
    hop_length: int,
    win_length: int,
    window: str,
    center: bool,
    pad_mode: str,
    k0: int,
    k1: int,
) -> torch.Tensor:
    """Power ``|STFT|^2`` of bins ``k0:k1``: ``(..., k1 - k0, n_frames)``.

    One strided convolution of the signal with the windowed DFT basis (the non-zero part of each
    frame only), squared in place: no frame copies and few large allocations.
    """
    n = x.shape[-1]
    lead = x.shape[:-1]
    flat = x.reshape(-1, n)
    if center:
        pad = n_fft // 2
        if pad_mode == "reflect" and n <= pad:
            raise ValueError(f"pad_mode='reflect' needs more than {pad} samples, got {n}")
        flat = F.pad(flat[:, None, :], (pad, pad), mode=pad_mode)[:, 0, :]
    if flat.shape[-1] < n_fft:
        raise ValueError(f"window too short: {n} samples for n_fft={n_fft} with center={center}")
    n_frames = 1 + (flat.shape[-1] - n_fft) // hop_length
    lpad = (n_fft - win_length) // 2
    segment = flat[:, None, lpad : lpad + (n_frames - 1) * hop_length + win_length]
    basis = _dft_basis(n_fft, win_length, window, k0, k1, str(x.device))
    if x.device.type == "cpu":
        spec = F.conv1d(segment, basis, stride=hop_length)  # (rows, 2k, n_frames)
    else:
        # cuDNN convolutions default to TF32, too coarse for the DFT's cancellations; a float32
        # matmul is IEEE unless the user lowered torch's matmul precision
        frames = segment[:, 0].unfold(-1, win_length, hop_length)
        spec = (frames @ basis[:, 0, :].T).transpose(1, 2)
    spec.square_()
    k = k1 - k0
    return spec[:, :k].add_(spec[:, k:]).reshape(*lead, k, n_frames)


def _check_stft_args(
    n_fft: int, hop_length: int, win_length: int | None, window: str, pad_mode: str
) -> int:
    """Validate STFT arguments; return the effective ``win_length``."""
    win_length = n_fft if win_length is None else win_length
    if n_fft < 2 or hop_length < 1 or not 1 <= win_length <= n_fft:
        raise ValueError(
            f"expected n_fft >= 2, hop_length >= 1 and 1 <= win_length <= n_fft, got "
            f"n_fft={n_fft}, hop_length={hop_length}, win_length={win_length}"
        )
    if window not in _WINDOWS:
        raise ValueError(f"unknown window {window!r}; expected one of {list(_WINDOWS)}")
    if pad_mode not in ("constant", "reflect"):
        raise ValueError(f"pad_mode must be 'constant' or 'reflect', got {pad_mode!r}")
    return win_length


def stft_power(
    x,
    *,
    sfreq: float = SFREQ,
    n_fft: int = 1024,
    hop_length: int,
    win_length: int | None = None,
    window: str = "hann",
    center: bool = True,
    pad_mode: str = "constant",
    fmin: float = 0.0,
    fmax: float | None = None,
) -> tuple[torch.Tensor, np.ndarray]:
    """Short-time Fourier power spectrogram, keeping the bins in ``[fmin, fmax]``.

    Parameters
    ----------
    x : torch.Tensor or numpy.ndarray
        Signals ``(..., samples)`` at ``sfreq``; computed on ``x``'s device.
    sfreq : float
        Sampling rate, Hz.
    n_fft : int
        FFT length; bins are spaced ``sfreq / n_fft`` Hz.
    hop_length : int
        Samples between frames.
    win_length : int or None
        Window length (``<= n_fft``, centred in the frame and zero-padded); default ``n_fft``.
    window : {"hann", "hamming", "blackman"}
        Periodic window, as ``scipy.signal.get_window(..., fftbins=True)``.
    center : bool
        Pad ``n_fft // 2`` samples at both ends so frame ``t`` is centred on sample ``t * hop``.
    pad_mode : {"constant", "reflect"}
        Padding used when ``center`` (``"constant"`` = zeros, librosa's default).
    fmin, fmax : float
        Frequency range kept, Hz (``fmax`` default Nyquist).

    Returns
    -------
    power : torch.Tensor
        float32 ``(..., n_bins, n_frames)``, ``|X|^2`` of the windowed DFT (unnormalised, as librosa).
    freqs : numpy.ndarray
        float64 ``(n_bins,)``, centre frequency of each kept bin, Hz.

    Raises
    ------
    ValueError
        Invalid STFT arguments, an empty frequency range or a too short signal.
    """
    win_length = _check_stft_args(n_fft, hop_length, win_length, window, pad_mode)
    all_freqs = np.fft.rfftfreq(n_fft, d=1.0 / sfreq)
    fmax = sfreq / 2.0 if fmax is None else fmax
    keep = np.flatnonzero((all_freqs >= fmin) & (all_freqs <= fmax))
    if keep.size == 0:
        raise ValueError(f"no FFT bin in [{fmin}, {fmax}] Hz for sfreq={sfreq}, n_fft={n_fft}")
    k0, k1 = int(keep[0]), int(keep[-1]) + 1
    power = _stft_bins(
        _as_float_tensor(x),
        n_fft=n_fft,
        hop_length=hop_length,
        win_length=win_length,
        window=window,
        center=center,
        pad_mode=pad_mode,
        k0=k0,
        k1=k1,
    )
    return power, all_freqs[k0:k1]


def _hz_to_mel(f: np.ndarray, htk: bool) -> np.ndarray:
    """Hz -> mel (HTK formula, or Slaney's: linear below 1 kHz, logarithmic above)."""
    f = np.asarray(f, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    logstep = np.log(6.4) / 27.0
    log_part = min_log_hz / f_sp + np.log(np.maximum(f, min_log_hz) / min_log_hz) / logstep
    return np.where(f >= min_log_hz, log_part, f / f_sp)


def _mel_to_hz(m: np.ndarray, htk: bool) -> np.ndarray:
    """Inverse of :func:`_hz_to_mel`."""
    m = np.asarray(m, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    log_part = min_log_hz * np.exp(logstep * (np.maximum(m, min_log_mel) - min_log_mel))
    return np.where(m >= min_log_mel, log_part, f_sp * m)


@functools.lru_cache(maxsize=32)
def _filterbank_cached(
    sfreq: float, n_fft: int, n_bins: int, fmin: float, fmax: float, scale: str, htk: bool, norm
) -> np.ndarray:
    if scale == "mel":
        edges = _mel_to_hz(
            np.linspace(_hz_to_mel(fmin, htk), _hz_to_mel(fmax, htk), n_bins + 2), htk
        )
    else:
        edges = np.linspace(fmin, fmax, n_bins + 2)
    fdiff = np.diff(edges)
    ramps = edges[:, None] - np.fft.rfftfreq(n_fft, d=1.0 / sfreq)[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper)).astype(np.float32)
    if norm == "slaney":
        # same order of operations as librosa (float32 weights times float64 factors)
        weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    weights.setflags(write=False)
    return weights


def filterbank(
    *,
    sfreq: float = SFREQ,
    n_fft: int = 1024,
    n_bins: int = 128,
    fmin: float = 0.0,
    fmax: float | None = None,
    scale: str = "mel",
    htk: bool = False,
    norm: str | None = "slaney",
) -> np.ndarray:
    """Triangular filter bank on the bins of an ``n_fft`` real FFT.

    With ``scale="mel"`` this equals ``librosa.filters.mel`` (Slaney mel scale, or HTK with
    ``htk=True``; ``norm="slaney"`` scales each triangle to unit area) and, with ``htk=True,
    norm=None``, ``torchaudio.functional.melscale_fbanks``. ``scale="linear"`` spaces the triangles
    evenly in Hz (a linear-frequency spectrogram with ``n_bins`` bins).

    Parameters
    ----------
    sfreq : float
        Sampling rate, Hz.
    n_fft : int
        FFT length (``n_fft // 2 + 1`` bins).
    n_bins : int
        Number of triangular filters.
    fmin, fmax : float
        Lowest and highest edge, Hz (``fmax`` default Nyquist).
    scale : {"mel", "linear"}
        Spacing of the filter edges.
    htk : bool
        HTK mel formula instead of Slaney's (mel scale only).
    norm : {"slaney", None}
        Area normalisation of each triangle.

    Returns
    -------
    numpy.ndarray
        float32 ``(n_bins, n_fft // 2 + 1)``, read-only.

    Raises
    ------
    ValueError
        Unknown ``scale`` or ``norm``, or a frequency range outside ``[0, sfreq / 2]``.
    """
    fmax = sfreq / 2.0 if fmax is None else fmax
    if scale not in ("mel", "linear"):
        raise ValueError(f"scale must be 'mel' or 'linear', got {scale!r}")
    if norm not in ("slaney", None):
        raise ValueError(f"norm must be 'slaney' or None, got {norm!r}")
    if not 0.0 <= fmin < fmax <= sfreq / 2.0 or n_bins < 1:
        raise ValueError(
            f"expected 0 <= fmin < fmax <= {sfreq / 2.0:g} Hz and n_bins >= 1, got fmin={fmin}, "
            f"fmax={fmax}, n_bins={n_bins}"
        )
    return _filterbank_cached(
        float(sfreq), int(n_fft), int(n_bins), float(fmin), float(fmax), scale, htk, norm
    )


def spectrogram(
    x,
    *,
    sfreq: float = SFREQ,
    n_fft: int = 1024,
    hop_length: int,
    win_length: int | None = None,
    window: str = "hann",
    n_bins: int = 128,
    fmin: float = 0.0,
    fmax: float | None = None,
    scale: str = "mel",
    htk: bool = False,
    norm: str | None = "slaney",
    center: bool = True,
    pad_mode: str = "constant",
) -> torch.Tensor:
    """Filter-bank (mel or linear-frequency) power spectrogram, as ``librosa.feature.melspectrogram``.

    Parameters
    ----------
    x : torch.Tensor or numpy.ndarray
        Signals ``(..., samples)`` at ``sfreq``; computed on ``x``'s device.
    sfreq, n_fft, hop_length, win_length, window, center, pad_mode
        STFT settings, see :func:`stft_power`.
    n_bins, fmin, fmax, scale, htk, norm
        Filter bank, see :func:`filterbank`.

    Returns
    -------
    torch.Tensor
        float32 ``(..., n_bins, n_frames)`` power (signal unit squared).

    Raises
    ------
    ValueError
        Invalid STFT or filter-bank arguments, or a too short signal.
    """
    win_length = _check_stft_args(n_fft, hop_length, win_length, window, pad_mode)
    fb = filterbank(
        sfreq=sfreq, n_fft=n_fft, n_bins=n_bins, fmin=fmin, fmax=fmax, scale=scale, htk=htk,
        norm=norm,
    )  # fmt: skip
    used = np.flatnonzero(fb.any(axis=0))
    k0, k1 = (int(used[0]), int(used[-1]) + 1) if used.size else (0, 1)
    t = _as_float_tensor(x)
    power = _stft_bins(
        t,
        n_fft=n_fft,
        hop_length=hop_length,
        win_length=win_length,
        window=window,
        center=center,
        pad_mode=pad_mode,
        k0=k0,
        k1=k1,
    )
    return torch.tensor(fb[:, k0:k1], device=t.device) @ power


def power_to_db(
    power: torch.Tensor, *, ref: float | str = 1.0, amin: float = 1e-10, top_db: float | None = 80.0
) -> torch.Tensor:
    """Power to decibels, as ``librosa.power_to_db``, per spectrogram (the last two axes).

    Parameters
    ----------
    power : torch.Tensor
        Non-negative ``(..., n_bins, n_frames)``.
    ref : float or "max"
        Reference power (0 dB); ``"max"`` uses the maximum of each spectrogram.
    amin : float
        Floor applied to ``power`` and ``ref`` before the logarithm.
    top_db : float or None
        Clamp each spectrogram to at least its maximum minus ``top_db`` dB.

    Returns
    -------
    torch.Tensor
        Same shape, dB.

    Raises
    ------
    ValueError
        ``amin <= 0``, a negative ``top_db`` or a ``ref`` that is neither positive nor ``"max"``.
    """
    _check_db_args(ref, amin, top_db)
    return _power_to_db_(power.clamp_min(amin), ref=ref, amin=amin, top_db=top_db)


def _check_db_args(ref: float | str, amin: float, top_db: float | None) -> None:
    if amin <= 0:
        raise ValueError(f"amin must be > 0, got {amin}")
    if top_db is not None and top_db < 0:
        raise ValueError(f"top_db must be >= 0 or None, got {top_db}")
    if not (ref == "max" or (isinstance(ref, int | float) and ref > 0)):
        raise ValueError(f"ref must be a positive number or 'max', got {ref!r}")


def _power_to_db_(
    power: torch.Tensor, *, ref: float | str, amin: float, top_db: float | None
) -> torch.Tensor:
    """:func:`power_to_db` computed in place in ``power`` (large temporaries are slow to allocate)."""
    db = power.clamp_min_(amin).log10_().mul_(10.0)
    if ref == "max":  # max(amin, max power) in dB, as librosa
        db.sub_(db.amax(dim=(-2, -1), keepdim=True))
    else:
        db.sub_(10.0 * math.log10(max(amin, float(ref))))
    if top_db is not None:
        torch.maximum(db, db.amax(dim=(-2, -1), keepdim=True) - top_db, out=db)
    return db


def log_spectrogram(
    x,
    *,
    sfreq: float = SFREQ,
    n_fft: int = 1024,
    hop_length: int,
    win_length: int | None = None,
    window: str = "hann",
    n_bins: int = 128,
    fmin: float = 0.0,
    fmax: float | None = None,
    scale: str = "mel",
    htk: bool = False,
    norm: str | None = "slaney",
    center: bool = True,
    pad_mode: str = "constant",
    ref: float | str = 1.0,
    amin: float = 1e-10,
    top_db: float | None = 80.0,
    width: int | None = None,
) -> torch.Tensor:
    """Log-power (dB) mel or linear-frequency spectrogram, optionally cut to ``width`` frames.

    ``power_to_db(spectrogram(x, ...))`` followed by keeping the first ``width`` frames; the dB
    reference and ``top_db`` clamp see all frames, as in the public notebooks.

    Parameters
    ----------
    x : torch.Tensor or numpy.ndarray
        Signals ``(..., samples)``.
    sfreq, n_fft, hop_length, win_length, window, n_bins, fmin, fmax, scale, htk, norm, center, pad_mode
        See :func:`spectrogram`.
    ref, amin, top_db
        See :func:`power_to_db`.
    width : int or None
        Number of frames kept (all when None).

    Returns
    -------
    torch.Tensor
        float32 ``(..., n_bins, width or n_frames)`` dB.

    Raises
    ------
    ValueError
        Invalid arguments, or fewer than ``width`` frames.
    """
    power = spectrogram(
        x, sfreq=sfreq, n_fft=n_fft, hop_length=hop_length, win_length=win_length, window=window,
        n_bins=n_bins, fmin=fmin, fmax=fmax, scale=scale, htk=htk, norm=norm, center=center,
        pad_mode=pad_mode,
    )  # fmt: skip
    _check_db_args(ref, amin, top_db)
    db = _power_to_db_(power, ref=ref, amin=amin, top_db=top_db)
    if width is None:
        return db
    if db.shape[-1] < width:
        raise ValueError(f"width={width} frames requested but the spectrogram has {db.shape[-1]}")
    return db[..., :width]


def morlet_cwt(
    x,
    freqs,
    *,
    sfreq: float = SFREQ,
    n_cycles: float = 5.0,
    decim: int = 1,
) -> torch.Tensor:
    """Continuous wavelet transform with complex Morlet wavelets (computed by FFT).

    The wavelet at frequency ``f`` is a Gaussian-windowed complex exponential with
    ``sigma_t = n_cycles / (2 pi f)``; in frequency it is ``2 exp(-(nu - f)^2 / (2 sigma_f^2))`` on
    positive frequencies only (``sigma_f = f / n_cycles``), so a sine of amplitude ``A`` at ``f``
    gives ``|w| = A``. The signal is zero-padded to avoid circular wrap-around.

    Parameters
    ----------
    x : torch.Tensor or numpy.ndarray
        Real signals ``(..., samples)``.
    freqs : sequence of float
        Wavelet centre frequencies, Hz, each in ``(0, sfreq / 2)``.
    sfreq : float
        Sampling rate, Hz.
    n_cycles : float
        Cycles per wavelet (time-frequency trade-off).
    decim : int
        Keep every ``decim``-th output sample (computed on a shortened inverse FFT, not by
        discarding samples); needs ``max(freqs) * (1 + 5 / n_cycles) <= sfreq / decim``.

    Returns
    -------
    torch.Tensor
        complex64 ``(..., n_freqs, ceil(samples / decim))``.

    Raises
    ------
    ValueError
        Frequencies outside ``(0, sfreq / 2)``, ``n_cycles <= 0``, ``decim < 1`` or a ``decim``
        so large that the wavelets would alias.
    """
    freqs = np.asarray(freqs, dtype=np.float64)
    if freqs.ndim != 1 or freqs.size == 0 or not np.all((freqs > 0) & (freqs < sfreq / 2.0)):
        raise ValueError(f"freqs must be a 1-D sequence in (0, {sfreq / 2.0:g}) Hz, got {freqs}")
    if n_cycles <= 0 or decim < 1:
        raise ValueError(f"expected n_cycles > 0 and decim >= 1, got {n_cycles}, {decim}")
    top = freqs.max() * (1.0 + 5.0 / n_cycles)
    if top > sfreq / decim:
        raise ValueError(
            f"decim={decim} aliases the wavelets (they reach {top:.1f} Hz > sfreq / decim = "
            f"{sfreq / decim:g} Hz); use decim <= {int(sfreq // top)}"
        )
    t = _as_float_tensor(x)
    n = t.shape[-1]
    half_support = int(math.ceil(5.0 * n_cycles / (2.0 * math.pi * freqs.min()) * sfreq))
    m = scipy.fft.next_fast_len(-(-(n + half_support) // decim))
    n_pad = m * decim
    spec = torch.fft.rfft(t, n=n_pad)[..., :m]
    if spec.shape[-1] < m:  # decim 1: the negative frequencies of the analytic signal are zero
        spec = torch.cat([spec, spec.new_zeros(*spec.shape[:-1], m - spec.shape[-1])], dim=-1)
    nu = np.arange(m) * sfreq / n_pad
    sigma_f = freqs / n_cycles
    psi = 2.0 * np.exp(-0.5 * ((nu[None, :] - freqs[:, None]) / sigma_f[:, None]) ** 2)
    psi[:, nu > sfreq / 2.0] = 0.0
    psi_t = torch.from_numpy(psi.astype(np.float32)).to(t.device)
    out = torch.fft.ifft(spec[..., None, :] * psi_t, dim=-1) * (m / n_pad)
    return out[..., : -(-n // decim)]


# --------------------------------------------------------------------------------------------------
# the public-notebook preset
# --------------------------------------------------------------------------------------------------


def _check_eeg(eeg, sfreq: float, what: str) -> torch.Tensor:
    """Validate raw EEG windows ``(batch, 20, 10000)`` at 200 Hz; return them as a float tensor."""
    if sfreq != SFREQ:
        raise ValueError(
            f"{what}: expected EEG sampled at {SFREQ:g} Hz, got sfreq={sfreq:g} Hz; resample first"
        )
    if eeg is None:
        raise ValueError(f"{what}: needs raw EEG windows (batch, 20, {WINDOW_SAMPLES}), got None")
    t = _as_float_tensor(eeg)
    shape = tuple(t.shape)
    if t.ndim != 3 or shape[1] != len(EEG_CHANNELS):
        raise ValueError(
            f"{what}: expected EEG windows of shape (batch, {len(EEG_CHANNELS)}, {WINDOW_SAMPLES}) "
            f"(channels {', '.join(EEG_CHANNELS)}), found shape {shape}"
        )
    if shape[2] != WINDOW_SAMPLES:
        raise ValueError(
            f"{what}: expected {WINDOW_SAMPLES} samples per window (50 s at {SFREQ:g} Hz), "
            f"found {shape[2]}"
        )
    return t


def public_notebook_images(eeg, *, device: str | torch.device | None = None) -> torch.Tensor:
    """EEG spectrogram images of the public Kaggle notebook recipe, batched.

    For every double-banana pair ``x = eeg[a] - eeg[b]`` (NaN -> the pair's mean over the window,
    or 0 when the pair is all NaN, as the notebook does): a mel spectrogram with ``sr=200,
    n_fft=1024, win_length=128, hop_length=10000 // 256, n_mels=128, fmin=0, fmax=20``, power to
    dB with ``ref=max`` and ``top_db=80``, ``(dB + 40) / 40``, the first 256 frames; then the
    mean of the 4 pairs of each chain. Matches the librosa loop to float32 precision (no filter,
    no clipping: the recipe as published).

    Parameters
    ----------
    eeg : torch.Tensor or numpy.ndarray
        Raw windows ``(batch, 20, 10000)`` in microvolts, channels in ``EEG_CHANNELS`` order.
    device : str or torch.device, optional
        Where to compute (default: where ``eeg`` is).

    Returns
    -------
    torch.Tensor
        float32 ``(batch, 4, 128, 256)``: chains LL, LP, RP, RL; mel bins low to high frequency.

    Raises
    ------
    ValueError
        Wrong shape or number of samples.
    """
    t = _check_eeg(eeg, SFREQ, "public_notebook_images")
    t = t.to(device or t.device)
    if len(t) == 0:
        return t.new_zeros(0, 4, 128, 256)
    return _chunked(_public_notebook, t, None, 16)


def _public_notebook(eeg: torch.Tensor, spec: torch.Tensor | None) -> torch.Tensor:
    x, _ = hsignal.montage(eeg, "double_banana")
    nan = torch.isnan(x)
    if nan.any():
        mean = torch.nanmean(x, dim=-1, keepdim=True)
        x = torch.where(nan, torch.nan_to_num(mean, nan=0.0), x)
    db = log_spectrogram(
        x, n_fft=1024, hop_length=x.shape[-1] // 256, win_length=128, n_bins=128, fmin=0.0,
        fmax=20.0, ref="max", top_db=80.0, width=256,
    )  # fmt: skip
    return db.unflatten(1, (4, 4)).mean(dim=2).add_(40.0).div_(40.0)


def _chunked(
    fn: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor],
    eeg: torch.Tensor | None,
    spec: torch.Tensor | None,
    size: int,
) -> torch.Tensor:
    """Apply ``fn`` to batches of at most ``size`` windows (bounds the memory of intermediates)."""
    n = (eeg if eeg is not None else spec).shape[0]
    parts = [
        fn(
            None if eeg is None else eeg[i : i + size],
            None if spec is None else spec[i : i + size],
        )
        for i in range(0, n, size)
    ]
    return torch.cat(parts)


# --------------------------------------------------------------------------------------------------
# representations
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReprInfo:
    """Description of a named model input representation.

    Attributes
    ----------
    name : str
        Registry name.
    shape : tuple of int
        Shape of one window's representation: ``(C, H, W)`` images or ``(C, T)`` raw signals.
    kind : {"image", "raw"}
        2-D image for a CNN, or 1-D signals.
    uses_eeg : bool
        Needs the raw EEG windows.
    uses_kaggle_spectrogram : bool
        Needs the Kaggle spectrogram windows ``(batch, 4, 100, 300)``.
    lr_swap : tuple of int or None
        Channel permutation that mirrors left and right hemispheres (``x[:, lr_swap]``), or None
        when the hemispheres are tiled inside one image; then ``lr_swap_rows`` applies.
    lr_swap_rows : tuple of int or None
        Permutation of image rows (axis -2) that mirrors a tiled image, or None.
    description : str
        What it is and where it comes from.
    version : int
        Bumped when the definition changes (part of a feature cache's configuration).
    """

    name: str
    shape: tuple[int, ...]
    kind: str
    uses_eeg: bool
    uses_kaggle_spectrogram: bool
    lr_swap: tuple[int, ...] | None
    lr_swap_rows: tuple[int, ...] | None
    description: str
    version: int = 1

    def swap(self, x):
        """Mirror left and right hemispheres of ``x`` (batched); see :func:`swap_hemispheres`."""
        return swap_hemispheres(x, self.name)


#: Double-banana pairs in chain order (LL, LP, RP, RL x 4), the order of ``montage``.
BANANA_NAMES: tuple[str, ...] = tuple(hsignal.montage_names("double_banana"))
_BANANA_SWAP = hsignal.mirror_permutation(BANANA_NAMES)
#: Pair order of the 3rd-place 2-D models: left/right homologues adjacent (Fp1-F7, Fp2-F8, ...),
#: as indices into ``BANANA_NAMES``.
INTERLEAVED_ORDER: tuple[int, ...] = tuple(j for i in range(4) for j in (i, 12 + i)) + tuple(
    j for i in range(4) for j in (4 + i, 8 + i)
)
_CHAIN_SWAP = (3, 2, 1, 0)
# Kaggle regions are stored LL, RL, LP, RP; representations use the chain order LL, LP, RP, RL.
_KAGGLE_TO_CHAIN = tuple(SPEC_REGIONS.index(r) for r in ("LL", "LP", "RP", "RL"))


def _rows_perm(block_perm: tuple[int, ...], block: int) -> tuple[int, ...]:
    """Row permutation moving whole blocks of ``block`` rows by ``block_perm``."""
    return tuple(b * block + r for b in block_perm for r in range(block))


def _reordered_swap(order: tuple[int, ...]) -> tuple[int, ...]:
    """Mirror permutation of the pairs ``BANANA_NAMES[i] for i in order``."""
    return tuple(order.index(_BANANA_SWAP[i]) for i in order)


def scaled_bipolar(
    eeg,
    *,
    low: float = 0.5,
    high: float = 20.0,
    order: int = 4,
    clip_uv: float = CLIP_UV,
    divisor: float = SCALE_UV,
    pairs: tuple[int, ...] | None = None,
) -> torch.Tensor:
    """The input of the filtered representations: repaired, band-passed, clipped bipolar signals.

    NaN repair (:func:`hmslib.signal.repair_nans`), double banana, zero-phase Butterworth band-pass,
    clip to ``+-clip_uv`` and divide by ``divisor`` -- the scaling the top solutions found best
    (no per-window standardisation).

    Parameters
    ----------
    eeg : torch.Tensor or numpy.ndarray
        Raw windows ``(batch, 20, samples)`` in microvolts (NaN allowed).
    low, high, order
        Band-pass (see :func:`hmslib.signal.bandpass`).
    clip_uv : float
        Clipping bound, microvolts.
    divisor : float
        Scale of the result (1024 uV / 32 = +-32 units).
    pairs : tuple of int, optional
        Order of the pairs as indices into ``BANANA_NAMES`` (default: chain order).

    Returns
    -------
    torch.Tensor
        float32 ``(batch, len(pairs) or 16, samples)`` on ``eeg``'s device (filtering runs on CPU).
    """
    t = _as_float_tensor(eeg)
    raw, _ = hsignal.repair_nans(t.detach().cpu().numpy())
    x, _ = hsignal.montage(raw, "double_banana")
    x = hsignal.clip(hsignal.bandpass(x, low, high, SFREQ, order), clip_uv) / divisor
    if pairs is not None:
        x = x[:, list(pairs)]
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(t.device)


def _scaled_db_(power: torch.Tensor, offset: float, scale: float) -> torch.Tensor:
    """Absolute log power with fixed affine scaling (no per-window standardisation), in place."""
    return power.clamp_min_(1e-10).log10_().mul_(10.0 / scale).sub_(offset / scale)


# Fixed dB offsets and scales, chosen so that the real sample EEGs give values of mean ~0 and
# standard deviation ~1; fixed (not per window) so that amplitude stays informative.
_CHAIN_MEL_DB = (20.0, 8.0)
_MEL16_DB = (0.0, 15.0)
_CWT_DB = (-20.0, 5.0)


def _chain_mel(eeg: torch.Tensor, spec: torch.Tensor | None) -> torch.Tensor:
    x = scaled_bipolar(eeg)
    power = spectrogram(
        x, n_fft=1024, hop_length=78, win_length=256, n_bins=64, fmin=0.5, fmax=20.0
    )[..., :128]
    return _scaled_db_(power.unflatten(1, (4, 4)).mean(dim=2), *_CHAIN_MEL_DB)


def _mel16_views(x: torch.Tensor, zoom: bool) -> torch.Tensor:
    kwargs = dict(n_fft=1024, win_length=128, n_bins=64, fmin=0.53, fmax=30.0, htk=True, norm=None)
    views = [spectrogram(x, hop_length=39, **kwargs)[..., :256]]
    if zoom:
        # 256 frames every 8 samples, centred on the middle 10 s (3980 ... 6020), real context
        centre0, hop = (WINDOW_SAMPLES - 255 * 8) // 2, 8
        seg = x[..., centre0 - 512 : centre0 + 255 * hop + 512]
        views.append(spectrogram(seg, hop_length=hop, center=False, **kwargs))
    db = _scaled_db_(torch.cat(views, dim=-1), *_MEL16_DB)
    b, c, h, w = db.shape
    return db.reshape(b, 1, c * h, w)


def _mel16(eeg: torch.Tensor, spec: torch.Tensor | None) -> torch.Tensor:
    return _mel16_views(scaled_bipolar(eeg, pairs=INTERLEAVED_ORDER), zoom=False)


def _mel16_zoom(eeg: torch.Tensor, spec: torch.Tensor | None) -> torch.Tensor:
    return _mel16_views(scaled_bipolar(eeg, pairs=INTERLEAVED_ORDER), zoom=True)


_CWT_FREQS = np.geomspace(0.5, 20.0, 64)


def _cwt(eeg: torch.Tensor, spec: torch.Tensor | None) -> torch.Tensor:
    x = scaled_bipolar(eeg)
    w = morlet_cwt(x, _CWT_FREQS, n_cycles=5.0, decim=4)
    power = torch.view_as_real(w).square_().sum(dim=-1).unflatten(1, (4, 4)).mean(dim=2)
    pooled = F.adaptive_avg_pool1d(power.flatten(0, 2), 256).reshape(x.shape[0], 4, 64, 256)
    return _scaled_db_(pooled, *_CWT_DB)


def _raw_image(eeg: torch.Tensor, spec: torch.Tensor | None) -> torch.Tensor:
    x = scaled_bipolar(eeg)
    b = x.shape[0]
    # rows: 10 segments of 5 s, each holding the 16 pairs (read like pages of an EEG)
    return x.reshape(b, 16, 10, 1000).permute(0, 2, 1, 3).reshape(b, 1, 160, 1000)


def _bipolar_raw(eeg: torch.Tensor, spec: torch.Tensor | None) -> torch.Tensor:
    return scaled_bipolar(eeg)


def _kaggle_standardised(spec: torch.Tensor) -> torch.Tensor:
    """log(clip(x, e^-4, e^8)), standardised per window and region, NaN -> 0; chain order."""
    x = torch.log(spec[:, list(_KAGGLE_TO_CHAIN)].clamp(math.exp(-4.0), math.exp(8.0)))
    valid = ~torch.isnan(x)
    count = valid.sum(dim=(-2, -1), keepdim=True).clamp_min(1)
    filled = torch.where(valid, x, 0.0)
    mean = filled.sum(dim=(-2, -1), keepdim=True) / count
    var = torch.where(valid, (x - mean).square(), 0.0).sum(dim=(-2, -1), keepdim=True) / count
    return torch.where(valid, (x - mean) / (var.sqrt() + 1e-6), 0.0)


def _kaggle(eeg: torch.Tensor | None, spec: torch.Tensor) -> torch.Tensor:
    return _kaggle_standardised(spec)


def _tiles(eeg: torch.Tensor, spec: torch.Tensor) -> torch.Tensor:
    b = eeg.shape[0]
    kaggle = torch.zeros(b, 4, 128, 256, device=eeg.device)
    kaggle[:, :, 14:114, :] = _kaggle_standardised(spec)[..., 22:278] / 2.0
    images = _public_notebook(eeg, None)
    return torch.cat([kaggle.reshape(b, 512, 256), images.reshape(b, 512, 256)], dim=-1)[:, None]


_REGISTRY: dict[str, tuple[ReprInfo, Callable, int]] = {}


def _register(info: ReprInfo, fn: Callable, batch: int) -> None:
    _REGISTRY[info.name] = (info, fn, batch)


_register(
    ReprInfo(
        name="chain_mel",
        shape=(4, 64, 128),
        kind="image",
        uses_eeg=True,
        uses_kaggle_spectrogram=False,
        lr_swap=_CHAIN_SWAP,
        lr_swap_rows=None,
        description=(
            "Project default: filtered double banana (0.5-20 Hz, clip +-1024 uV, /32), mel power "
            "(64 bins 0.5-20 Hz, 1.28 s windows, 128 frames over 50 s) averaged over the 4 pairs "
            "of each chain LL, LP, RP, RL; absolute dB with a fixed scale (amplitude is kept)."
        ),
    ),
    _chain_mel,
    16,
)
_register(
    ReprInfo(
        name="public_notebook",
        shape=(4, 128, 256),
        kind="image",
        uses_eeg=True,
        uses_kaggle_spectrogram=False,
        lr_swap=_CHAIN_SWAP,
        lr_swap_rows=None,
        description=(
            "The public Kaggle notebook recipe (librosa mel, 128 bins 0-20 Hz, dB ref=max, "
            "(dB+40)/40, 256 frames, mean of the 4 pairs per chain); see public_notebook_images."
        ),
    ),
    _public_notebook,
    16,
)
_register(
    ReprInfo(
        name="kaggle_spectrogram",
        shape=(4, SPEC_N_FREQS, SPEC_WINDOW_COLUMNS),
        kind="image",
        uses_eeg=False,
        uses_kaggle_spectrogram=True,
        lr_swap=_CHAIN_SWAP,
        lr_swap_rows=None,
        description=(
            "The competition's 600 s spectrogram: log of values clipped to [e^-4, e^8], "
            "standardised per window and region, NaN -> 0; regions in chain order LL, LP, RP, RL."
        ),
    ),
    _kaggle,
    64,
)
_register(
    ReprInfo(
        name="tiles_kaggle_eeg",
        shape=(1, 512, 512),
        kind="image",
        uses_eeg=True,
        uses_kaggle_spectrogram=True,
        lr_swap=None,
        lr_swap_rows=_rows_perm(_CHAIN_SWAP, 128),
        description=(
            "Seed recipe: one 512x512 image, left half the 4 Kaggle spectrogram regions (rows "
            "14-114 of each 128-row tile, centre 256 columns, /2), right half the 4 "
            "public-notebook EEG images; tiles stacked LL, LP, RP, RL from top."
        ),
    ),
    _tiles,
    16,
)
_register(
    ReprInfo(
        name="mel16",
        shape=(1, 16 * 64, 256),
        kind="image",
        uses_eeg=True,
        uses_kaggle_spectrogram=False,
        lr_swap=None,
        lr_swap_rows=_rows_perm(_reordered_swap(INTERLEAVED_ORDER), 64),
        description=(
            "3rd place: a separate mel spectrogram for each of the 16 filtered pairs (64 HTK mel "
            "bins 0.53-30 Hz, 0.64 s windows, 256 frames), stacked vertically into one image in "
            "left/right interleaved order (Fp1-F7, Fp2-F8, F7-T3, F8-T4, ...); fixed dB scale."
        ),
    ),
    _mel16,
    16,
)
_register(
    ReprInfo(
        name="mel16_zoom",
        shape=(1, 16 * 64, 512),
        kind="image",
        uses_eeg=True,
        uses_kaggle_spectrogram=False,
        lr_swap=None,
        lr_swap_rows=_REGISTRY["mel16"][0].lr_swap_rows,
        description=(
            "mel16 with a zoom: right of the 50 s view, the central 10 s the experts labelled "
            "(256 frames every 40 ms), as the 3rd place's magnified centre window."
        ),
    ),
    _mel16_zoom,
    16,
)
_register(
    ReprInfo(
        name="cwt",
        shape=(4, 64, 256),
        kind="image",
        uses_eeg=True,
        uses_kaggle_spectrogram=False,
        lr_swap=_CHAIN_SWAP,
        lr_swap_rows=None,
        description=(
            "Morlet scalogram (a CWT, as the 1st place's superlets): 64 log-spaced frequencies "
            "0.5-20 Hz, 5 cycles, power averaged over the 4 filtered pairs of each chain and over "
            "256 time bins; fixed dB scale."
        ),
    ),
    _cwt,
    4,
)
_register(
    ReprInfo(
        name="raw_image",
        shape=(1, 160, 1000),
        kind="image",
        uses_eeg=True,
        uses_kaggle_spectrogram=False,
        lr_swap=None,
        lr_swap_rows=tuple(s * 16 + p for s in range(10) for p in _BANANA_SWAP),
        description=(
            "2nd place: the filtered double banana (clip +-1024 uV, /32) as an image, 10 rows of "
            "5 s per page, each page the 16 pairs in chain order: row = 16 * segment + pair."
        ),
    ),
    _raw_image,
    32,
)
_register(
    ReprInfo(
        name="bipolar_raw",
        shape=(16, WINDOW_SAMPLES),
        kind="raw",
        uses_eeg=True,
        uses_kaggle_spectrogram=False,
        lr_swap=_BANANA_SWAP,
        lr_swap_rows=None,
        description=(
            "Raw 1-D input: NaN-repaired double banana (16 pairs, chain order), band-passed "
            "0.5-20 Hz (Butterworth order 4, zero phase), clipped to +-1024 uV, divided by 32."
        ),
    ),
    _bipolar_raw,
    32,
)

#: Every representation by name.
REPRESENTATIONS: dict[str, ReprInfo] = {name: entry[0] for name, entry in _REGISTRY.items()}
#: The project's default image representation (compact enough to train on 2 CPU cores).
DEFAULT_REPR = "chain_mel"
#: The project's default raw 1-D representation.
DEFAULT_RAW_REPR = "bipolar_raw"


def representation_info(name: str) -> ReprInfo:
    """Description of representation ``name``.

    Raises
    ------
    ValueError
        Unknown name (the message lists the known ones).
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown representation {name!r}; known: {sorted(_REGISTRY)}")
    return _REGISTRY[name][0]


def compute_representation(
    name: str,
    eeg,
    spec=None,
    *,
    device: str | torch.device = "cpu",
    sfreq: float = SFREQ,
) -> torch.Tensor:
    """Compute a named representation for a batch of labelled windows.

    Parameters
    ----------
    name : str
        A key of ``REPRESENTATIONS``.
    eeg : torch.Tensor or numpy.ndarray or None
        Raw 50 s windows ``(batch, 20, 10000)`` in microvolts, channels in ``EEG_CHANNELS``
        order; NaN allowed (repaired inside). May be None for a representation without EEG.
    spec : torch.Tensor or numpy.ndarray or None
        Kaggle spectrogram windows ``(batch, 4, 100, 300)`` as from
        :func:`hmslib.io.load_spectrogram_window` (regions LL, RL, LP, RP), where needed.
    device : str or torch.device
        Where the spectrograms are computed (filters run on the CPU).
    sfreq : float
        Sampling rate of ``eeg``; must be 200 Hz.

    Returns
    -------
    torch.Tensor
        float32 ``(batch, *REPRESENTATIONS[name].shape)`` on ``device``.

    Raises
    ------
    ValueError
        Unknown name, wrong sampling rate, wrong shapes or window lengths, a missing input, or
        batches of different sizes.
    """
    info = representation_info(name)
    _, fn, batch = _REGISTRY[name]
    eeg_t = _check_eeg(eeg, sfreq, name).to(device) if info.uses_eeg else None
    spec_t = None
    if info.uses_kaggle_spectrogram:
        expected = (len(SPEC_REGIONS), SPEC_N_FREQS, SPEC_WINDOW_COLUMNS)
        if spec is None:
            raise ValueError(f"{name}: needs Kaggle spectrogram windows (batch, *{expected})")
        spec_t = _as_float_tensor(spec, device)
        if spec_t.ndim != 4 or tuple(spec_t.shape[1:]) != expected:
            raise ValueError(
                f"{name}: expected Kaggle spectrogram windows of shape (batch, *{expected}), "
                f"found {tuple(spec_t.shape)}"
            )
        if eeg_t is not None and eeg_t.shape[0] != spec_t.shape[0]:
            raise ValueError(
                f"{name}: {eeg_t.shape[0]} EEG windows but {spec_t.shape[0]} spectrogram windows"
            )
    if (eeg_t if eeg_t is not None else spec_t).shape[0] == 0:
        return torch.zeros(0, *info.shape, device=device)
    return _chunked(fn, eeg_t, spec_t, batch)


def swap_hemispheres(x, name: str):
    """Mirror left and right hemispheres in a batch of representation ``name``.

    Parameters
    ----------
    x : torch.Tensor or numpy.ndarray
        ``(..., *shape)`` of the representation (batched or not).
    name : str
        Representation name.

    Returns
    -------
    torch.Tensor or numpy.ndarray
        Same type and shape: channels (or tiled rows) of the left hemisphere exchanged with their
        right-hemisphere homologues (LL <-> RL, LP <-> RP, Fp1-F7 <-> Fp2-F8, ...).

    Raises
    ------
    ValueError
        Unknown name, or trailing dimensions that do not match the representation's shape.
    """
    info = representation_info(name)
    if tuple(x.shape[-len(info.shape) :]) != info.shape:
        raise ValueError(
            f"swap_hemispheres({name!r}): expected (..., *{info.shape}), found {tuple(x.shape)}"
        )
    if info.lr_swap is not None:
        perm, axis = info.lr_swap, x.ndim - len(info.shape)
    else:
        perm, axis = info.lr_swap_rows, x.ndim - 2
    if isinstance(x, torch.Tensor):
        return x.index_select(axis, torch.tensor(perm, device=x.device))
    return np.take(x, perm, axis=axis)
