"""Spectral transforms of EEG in torch and numpy, batched over windows and channels.

:func:`stft_power`, :func:`filterbank`, :func:`spectrogram`, :func:`power_to_db`,
:func:`log_spectrogram` and :func:`morlet_cwt` work on any ``(..., samples)`` tensor, on CPU or GPU;
:func:`kaggle_spectrogram` turns a whole 200 Hz recording into the competition's 4-region, 2 s-step
spectrogram, and :func:`fft_decimate` is the exact FFT low-pass decimation it (and the synthetic
generator) uses.

The STFT is one strided convolution (a matrix product on GPU) of the signal with a windowed DFT
basis restricted to the frequency bins a spectrogram needs (EEG spectrograms use 0-30 Hz of a
0-100 Hz band) and to the non-zero part of the window: exact, and several times faster than a full
FFT of every frame. Power values match ``librosa`` (``center=True``, ``pad_mode="constant"``,
periodic Hann window, Slaney or HTK mel filters) to float32 precision.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import scipy.fft
import torch
import torch.nn.functional as F

from hmslib._checks import check_option
from hmslib.constants import (
    CHAINS,
    EEG_CHANNELS,
    SFREQ,
    SPEC_N_FREQS,
    SPEC_REGIONS,
    SPEC_STEP_SECONDS,
)
from hmslib.signal import montage

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
    check_option("window", window, _WINDOWS)
    check_option("pad_mode", pad_mode, ("constant", "reflect"))
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
    check_option("filter-bank scale", scale, ("mel", "linear"))
    check_option("filter-bank norm", norm, ("slaney", None))
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
# the Kaggle spectrogram
# --------------------------------------------------------------------------------------------------

_KAGGLE_NFFT = 1024
_KAGGLE_DECIMATE = 4  # 200 Hz -> 50 Hz before the FFTs (the spectrogram's bins end at 19.92 Hz)
_KAGGLE_BINS = slice(3, 3 + SPEC_N_FREQS)


def fft_decimate(x: np.ndarray, factor: int = 4) -> np.ndarray:
    """Decimate along the last axis by an exact FFT low-pass at the new Nyquist frequency.

    Parameters
    ----------
    x : numpy.ndarray
        ``(..., n)`` with ``n`` a multiple of ``factor`` (a shorter tail is dropped).
    factor : int
        Decimation factor (4: 200 Hz -> 50 Hz, low-pass at 25 Hz).

    Returns
    -------
    numpy.ndarray
        float32 ``(..., n // factor)``.
    """
    m = x.shape[-1] // factor
    spectrum = scipy.fft.rfft(x, axis=-1)[..., : m // 2 + 1]
    return (scipy.fft.irfft(spectrum, n=m, axis=-1) / factor).astype(np.float32)


def kaggle_region_bipolar(eeg: np.ndarray) -> np.ndarray:
    """The 16 double-banana derivations of ``eeg`` ``(20, n)`` with rows in ``SPEC_REGIONS`` order
    (LL, RL, LP, RP, 4 pairs each, front to back): the input of :func:`kaggle_spectrogram_low`."""
    bipolar, names = montage(eeg, name="double_banana")
    order = [
        names.index(f"{a}-{b}")
        for r in SPEC_REGIONS
        for a, b in zip(CHAINS[r], CHAINS[r][1:], strict=False)
    ]
    return bipolar[order]


def kaggle_spectrogram_low(bipolar: np.ndarray, n_cols: int) -> np.ndarray:
    """Kaggle spectrogram ``(4, 100, n_cols)`` of the 16 derivations at 50 Hz in region order.

    The core of :func:`kaggle_spectrogram`, for callers that already hold the derivations at
    50 Hz (``bipolar`` float ``(16, samples)`` from :func:`kaggle_region_bipolar`).
    """
    low_sfreq = SFREQ / _KAGGLE_DECIMATE
    nfft, hop = _KAGGLE_NFFT // _KAGGLE_DECIMATE, int(SPEC_STEP_SECONDS * low_sfreq)
    pad = 3 * nfft // 4
    padded = np.pad(np.asarray(bipolar, dtype=np.float32), ((0, 0), (pad, pad)))
    centres = np.arange(n_cols) * hop + hop // 2 + pad
    starts = centres[:, None] + np.array([-pad, -nfft // 4])[None, :]
    frames = padded[:, starts[..., None] + np.arange(nfft)]  # (16, n_cols, 2, nfft)
    frames -= frames.mean(axis=-1, keepdims=True)
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(nfft) / nfft)).astype(
        np.float32
    )  # periodic Hann
    power = np.abs(scipy.fft.rfft(frames * window, axis=-1)[..., _KAGGLE_BINS]) ** 2
    power = power.mean(axis=2) / np.float32(low_sfreq * np.sum(window.astype(np.float64) ** 2))
    spec = power.reshape(len(SPEC_REGIONS), 4, n_cols, SPEC_N_FREQS).mean(axis=1)
    return np.ascontiguousarray(spec.transpose(0, 2, 1), dtype=np.float32)


def kaggle_spectrogram(eeg: np.ndarray) -> np.ndarray:
    """Kaggle-style spectrogram of a whole 200 Hz recording.

    Reproduces the competition's files (checked against a real EEG and its spectrogram): for each
    column (one per 2 s, centred at 1, 3, 5, ... s) and each of the 16 double-banana derivations,
    the mean of two 5.12 s Hann periodograms centred 1.28 s either side of the column time, as a
    two-sided density ``|FFT(w x)|^2 / (fs sum w^2)`` in uV^2/Hz, at 0.59-19.92 Hz (bins 3..102 of a
    1024-point FFT at 200 Hz); each region (LL, RL, LP, RP) is the mean of its four derivations.
    The derivations are first band-limited to 25 Hz and decimated to 50 Hz (an exact FFT low-pass),
    which leaves those bins unchanged and makes the transform 4 times cheaper. NaN samples count as
    zero (signal dropout) and the recording is zero-padded at both ends.

    Parameters
    ----------
    eeg : numpy.ndarray
        Shape ``(20, n_samples)`` in ``EEG_CHANNELS`` order, microvolts at 200 Hz.

    Returns
    -------
    numpy.ndarray
        float32 ``(4, 100, n_samples // 400)``: regions in ``SPEC_REGIONS`` order, frequencies
        ascending, one column per 2 s (``time`` = 1, 3, 5, ... s).

    Raises
    ------
    ValueError
        ``eeg`` is not ``(20, n)`` with at least 400 samples.
    """
    eeg = np.asarray(eeg, dtype=np.float32)
    step = int(SPEC_STEP_SECONDS * SFREQ)
    if eeg.ndim != 2 or eeg.shape[0] != len(EEG_CHANNELS) or eeg.shape[1] < step:
        raise ValueError(f"expected an EEG of shape (20, n >= {step}), got {eeg.shape}")
    n_cols = eeg.shape[1] // step
    bipolar = kaggle_region_bipolar(np.nan_to_num(eeg[:, : n_cols * step], nan=0.0))
    return kaggle_spectrogram_low(fft_decimate(bipolar, _KAGGLE_DECIMATE), n_cols)
