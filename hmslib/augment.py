"""Training augmentations that respect EEG anatomy, as batched torch operations.

Every function takes a batch (first axis = windows) and a :class:`numpy.random.Generator` that
draws the few random parameters (one or a handful per window); the heavy work is one vectorised torch
operation on the batch's device. Drawing parameters from an explicit generator keeps training
reproducible and lets a resumed run replay exactly the augmentations of an uninterrupted one.

What each augmentation does to the label:

- left/right hemisphere swap: nothing (a left LPD mirrored is a right LPD, still an LPD);
- time shift, time reversal, time/frequency masking, channel zeroing, narrower band-pass, gain:
  nothing;
- mixup: the targets (and loss weights) are mixed with the same coefficients as the inputs.

:func:`augment_features` applies an :class:`AugmentConfig` to a batch of one representation,
choosing the operations that make sense for it (e.g. no frequency masking of a raw 1-D signal, no
band-pass of a spectrogram image); :func:`augment_signal` augments raw windows before their
representation is computed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from hmslib._checks import check_eeg
from hmslib.constants import SFREQ, SPEC_REGIONS
from hmslib.representations import representation_info, swap_hemispheres
from hmslib.signal import EEG_MIRROR, mirror_permutation


@dataclass
class AugmentConfig:
    """Which augmentations to apply during training, and how strongly.

    Probabilities are per window unless stated; 0 switches an augmentation off.

    Parameters
    ----------
    hemisphere_swap : float
        Probability of mirroring a window left <-> right.
    time_shift_s : float
        Largest shift in seconds (uniform in ``[-time_shift_s, time_shift_s]``). Raw EEG windows are
        re-cut from the recording at the shifted offset; representations are rolled within the window.
    time_reverse : float
        Probability of reversing a window in time.
    time_masks, time_mask_width : int, float
        Number of masked time spans per window and the largest span as a share of the time axis.
    freq_masks, freq_mask_width : int, float
        Same along the frequency axis of image representations.
    channel_zero : float
        Probability of zeroing between 1 and ``channel_zero_max`` bipolar channels of a window.
    channel_zero_max : int
        Largest number of zeroed channels (the 3rd-place solution used 1-8 of 16).
    bandpass : float
        Probability of a random narrower band-pass of the raw signal.
    bandpass_low, bandpass_high : tuple of float
        Ranges (Hz) the lower and upper cut-offs are drawn from.
    mixup : float
        Probability that a batch is mixed up.
    mixup_alpha : float
        Beta(alpha, alpha) parameter of the mixing coefficients.
    gain : float
        Probability of scaling a window's amplitude (all channels alike) by a factor drawn
        log-uniformly from ``gain_range``: real recordings differ in voltage from patient to patient
        and amplifier to amplifier, so that a pattern should be told by its shape and rhythm, not
        its voltage alone.
    gain_range : tuple of float
        ``(low, high)`` factors, ``0 < low <= high``.
    """

    hemisphere_swap: float = 0.5
    time_shift_s: float = 0.0
    time_reverse: float = 0.0
    time_masks: int = 0
    time_mask_width: float = 0.1
    freq_masks: int = 0
    freq_mask_width: float = 0.1
    channel_zero: float = 0.0
    channel_zero_max: int = 8
    bandpass: float = 0.0
    bandpass_low: tuple[float, float] = (0.5, 2.0)
    bandpass_high: tuple[float, float] = (10.0, 20.0)
    mixup: float = 0.0
    mixup_alpha: float = 0.5
    gain: float = 0.0
    gain_range: tuple[float, float] = (0.33, 3.0)

    def __post_init__(self) -> None:
        self.bandpass_low = tuple(float(v) for v in self.bandpass_low)
        self.bandpass_high = tuple(float(v) for v in self.bandpass_high)
        self.gain_range = tuple(float(v) for v in self.gain_range)
        probabilities = ("hemisphere_swap", "time_reverse", "channel_zero", "bandpass", "mixup", "gain")
        for name in probabilities:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"AugmentConfig.{name} is a probability in [0, 1], got {value}")
        for name in ("time_mask_width", "freq_mask_width"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(
                    f"AugmentConfig.{name} is a share of the axis in [0, 1], got {value}"
                )
        if self.time_shift_s < 0 or self.time_masks < 0 or self.freq_masks < 0:
            raise ValueError("AugmentConfig.time_shift_s, time_masks and freq_masks must be >= 0")
        if self.channel_zero_max < 1:
            raise ValueError(
                f"AugmentConfig.channel_zero_max must be >= 1, got {self.channel_zero_max}"
            )
        for name in ("bandpass_low", "bandpass_high", "gain_range"):
            lo, hi = getattr(self, name)
            if len(getattr(self, name)) != 2 or not 0 < lo <= hi:
                raise ValueError(
                    f"AugmentConfig.{name} must be (low, high) with 0 < low <= high, got {(lo, hi)}"
                )
        if self.bandpass_low[1] >= self.bandpass_high[0]:
            raise ValueError(
                f"AugmentConfig: bandpass_low {self.bandpass_low} must lie below bandpass_high "
                f"{self.bandpass_high}"
            )
        if self.mixup_alpha <= 0:
            raise ValueError(f"AugmentConfig.mixup_alpha must be > 0, got {self.mixup_alpha}")

    def to_dict(self) -> dict:
        """Plain JSON-ready dict."""
        out = dataclasses.asdict(self)
        out["bandpass_low"] = list(self.bandpass_low)
        out["bandpass_high"] = list(self.bandpass_high)
        out["gain_range"] = list(self.gain_range)
        return out

    @classmethod
    def from_dict(cls, d: dict) -> AugmentConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"AugmentConfig: unknown keys {unknown} (known: {sorted(known)})")
        return cls(**d)


# --------------------------------------------------------------------------------------------------
# single augmentations
# --------------------------------------------------------------------------------------------------


def _select(mask: np.ndarray, x: torch.Tensor) -> torch.Tensor:
    """Boolean per-window mask as a tensor broadcastable against ``x``."""
    return torch.as_tensor(mask, device=x.device).reshape((-1,) + (1,) * (x.ndim - 1))


def mirror_eeg(eeg: torch.Tensor) -> torch.Tensor:
    """Mirror referential EEG left <-> right (Fp1 <-> Fp2, ..., O1 <-> O2; midline and EKG kept).

    Parameters
    ----------
    eeg : torch.Tensor
        ``(..., 20, samples)`` in ``EEG_CHANNELS`` order.

    Returns
    -------
    torch.Tensor
        Same shape; a new tensor.
    """
    check_eeg(eeg, what="mirror_eeg", batched=eeg.ndim != 2, n_times=None)
    return eeg[..., list(EEG_MIRROR), :]


def random_hemisphere_swap(
    x: torch.Tensor,
    *,
    swap: Callable[[torch.Tensor], torch.Tensor],
    p: float,
    rng: np.random.Generator,
) -> torch.Tensor:
    """Mirror a random subset of windows left <-> right.

    Parameters
    ----------
    x : torch.Tensor
        ``(batch, ...)`` windows.
    swap : callable
        Mirrors a whole batch: ``lambda t: swap_hemispheres(t, "mel16")`` or :func:`mirror_eeg`.
    p : float
        Probability per window.
    rng : numpy.random.Generator
        Source of the per-window decisions.

    Returns
    -------
    torch.Tensor
        Same shape as ``x``.
    """
    chosen = rng.random(x.shape[0]) < p
    if not chosen.any():
        return x
    return torch.where(_select(chosen, x), swap(x), x)


def time_shift(x: torch.Tensor, *, max_shift: int, rng: np.random.Generator) -> torch.Tensor:
    """Roll each window along its last (time) axis by a random number of columns.

    Parameters
    ----------
    x : torch.Tensor
        ``(batch, ..., time)``.
    max_shift : int
        Shifts are uniform integers in ``[-max_shift, max_shift]`` (clipped to the axis length).
    rng : numpy.random.Generator

    Returns
    -------
    torch.Tensor
        Same shape: ``out[b, ..., t] = x[b, ..., (t - shift_b) mod time]``.
    """
    n = x.shape[-1]
    max_shift = min(int(max_shift), n - 1)
    if max_shift <= 0:
        return x
    shifts = rng.integers(-max_shift, max_shift + 1, size=x.shape[0])
    index = (
        torch.arange(n, device=x.device)[None, :]
        - torch.as_tensor(shifts, device=x.device)[:, None]
    ) % n
    index = index.reshape((x.shape[0],) + (1,) * (x.ndim - 2) + (n,)).expand_as(x)
    return torch.gather(x, -1, index)


def time_reverse(x: torch.Tensor, *, p: float, rng: np.random.Generator) -> torch.Tensor:
    """Reverse a random subset of windows along the last (time) axis (probability ``p`` each)."""
    chosen = rng.random(x.shape[0]) < p
    if not chosen.any():
        return x
    return torch.where(_select(chosen, x), x.flip(-1), x)


def _span_mask(
    batch: int, length: int, *, n_masks: int, max_width: float, rng: np.random.Generator
) -> np.ndarray:
    """Boolean ``(batch, length)``, True inside ``n_masks`` spans of up to ``max_width * length``."""
    widest = int(max_width * length)
    widths = rng.integers(0, widest + 1, size=(batch, n_masks))
    starts = (rng.random((batch, n_masks)) * (length - widths + 1)).astype(np.int64)
    pos = np.arange(length)
    inside = (pos >= starts[..., None]) & (pos < (starts + widths)[..., None])
    return inside.any(axis=1)


def mask_axis(
    x: torch.Tensor, *, axis: int, n_masks: int, max_width: float, rng: np.random.Generator
) -> torch.Tensor:
    """SpecAugment-style masking: zero ``n_masks`` random spans along ``axis`` of each window.

    Parameters
    ----------
    x : torch.Tensor
        ``(batch, ...)``.
    axis : int
        Axis to mask (``-1`` time, ``-2`` frequency of a ``(batch, C, freq, time)`` image).
    n_masks : int
        Spans per window (each of width uniform in ``[0, max_width * axis length]``).
    max_width : float
        Largest span as a share of the axis length.
    rng : numpy.random.Generator

    Returns
    -------
    torch.Tensor
        Same shape, zero inside the spans.
    """
    axis = axis % x.ndim
    if n_masks <= 0 or max_width <= 0:
        return x
    inside = _span_mask(x.shape[0], x.shape[axis], n_masks=n_masks, max_width=max_width, rng=rng)
    shape = [x.shape[0]] + [1] * (x.ndim - 1)
    shape[axis] = x.shape[axis]
    keep = torch.as_tensor(~inside, device=x.device).reshape(shape)
    return x * keep.to(x.dtype)


def zero_channels(
    x: torch.Tensor, *, p: float, max_channels: int, rng: np.random.Generator
) -> torch.Tensor:
    """Zero between 1 and ``max_channels`` random channels (axis 1) of a random subset of windows.

    Parameters
    ----------
    x : torch.Tensor
        ``(batch, channels, ...)``, e.g. the 16 bipolar derivations.
    p : float
        Probability that a window loses channels.
    max_channels : int
        Upper bound of the number of zeroed channels (clipped to ``channels - 1``).
    rng : numpy.random.Generator

    Returns
    -------
    torch.Tensor
        Same shape.
    """
    batch, channels = x.shape[:2]
    max_channels = min(max_channels, channels - 1)
    chosen = rng.random(batch) < p
    if max_channels < 1 or not chosen.any():
        return x
    counts = np.where(chosen, rng.integers(1, max_channels + 1, size=batch), 0)
    ranks = rng.random((batch, channels)).argsort(axis=1).argsort(axis=1)
    keep = torch.as_tensor(ranks >= counts[:, None], device=x.device)
    return x * keep.reshape((batch, channels) + (1,) * (x.ndim - 2)).to(x.dtype)


def bandpass_gain(
    freqs: np.ndarray, low: np.ndarray, high: np.ndarray, order: int = 2
) -> np.ndarray:
    """Zero-phase Butterworth band-pass power gain ``|H_hp(f)|^2 |H_lp(f)|^2`` (analog prototype).

    This is the magnitude a forward-backward (``filtfilt``) Butterworth filter of ``order`` applies.

    Parameters
    ----------
    freqs : numpy.ndarray
        ``(n_freqs,)`` frequencies, Hz.
    low, high : numpy.ndarray
        ``(batch,)`` cut-off frequencies (-3 dB of one pass), Hz.
    order : int
        Butterworth order of each of the low- and high-pass sections.

    Returns
    -------
    numpy.ndarray
        ``(batch, n_freqs)`` gains in ``[0, 1]``.
    """
    f = np.maximum(np.asarray(freqs, dtype=np.float64), 1e-12)[None, :]
    low = np.asarray(low, dtype=np.float64)[:, None]
    high = np.asarray(high, dtype=np.float64)[:, None]
    return 1.0 / (1.0 + (low / f) ** (2 * order)) / (1.0 + (f / high) ** (2 * order))


def random_bandpass(
    x: torch.Tensor,
    *,
    p: float,
    low: tuple[float, float],
    high: tuple[float, float],
    rng: np.random.Generator,
    sfreq: float = SFREQ,
    order: int = 2,
) -> torch.Tensor:
    """Band-pass a random subset of windows with random, narrower cut-offs (zero phase, via FFT).

    Parameters
    ----------
    x : torch.Tensor
        ``(batch, channels, samples)`` raw signal at ``sfreq``.
    p : float
        Probability per window.
    low, high : tuple of float
        Ranges (Hz) of the lower and upper cut-off, drawn uniformly per window.
    rng : numpy.random.Generator
    sfreq : float
        Sampling rate, Hz.
    order : int
        Butterworth order of the gain (see :func:`bandpass_gain`).

    Returns
    -------
    torch.Tensor
        Same shape and dtype. Windows are reflect-padded by one second on each side before filtering,
        so the circular FFT does not wrap the end of a window onto its start.
    """
    chosen = rng.random(x.shape[0]) < p
    lows = rng.uniform(*low, size=x.shape[0])
    highs = rng.uniform(*high, size=x.shape[0])
    if not chosen.any():
        return x
    n = x.shape[-1]
    pad = min(int(sfreq), n - 1)
    padded = F.pad(x.float(), (pad, pad), mode="reflect")
    freqs = np.fft.rfftfreq(padded.shape[-1], d=1.0 / sfreq)
    gain = np.where(chosen[:, None], bandpass_gain(freqs, lows, highs, order), 1.0)
    gain_t = torch.as_tensor(gain, dtype=torch.float32, device=x.device)[:, None, :]
    filtered = torch.fft.irfft(torch.fft.rfft(padded, dim=-1) * gain_t, n=padded.shape[-1], dim=-1)
    return filtered[..., pad : pad + n].to(x.dtype)


def random_gain(
    x: torch.Tensor,
    *,
    apply: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    p: float,
    low: float,
    high: float,
    rng: np.random.Generator,
) -> torch.Tensor:
    """Scale the amplitude of each window, with probability ``p``, by a log-uniform factor.

    Parameters
    ----------
    x : torch.Tensor
        ``(batch, ...)`` raw windows or a representation.
    apply : callable
        ``apply(x, gains)`` -> ``x`` as if its EEG had been multiplied by ``gains`` ``(batch,)``
        (e.g. :meth:`hmslib.representations.ReprInfo.apply_gain`).
    p : float
        Probability per window.
    low, high : float
        Range of the factors (drawn uniformly in log).
    rng : numpy.random.Generator

    Returns
    -------
    torch.Tensor
        Same shape.
    """
    batch = x.shape[0]
    on = rng.random(batch) < p
    factors = np.exp(rng.uniform(np.log(low), np.log(high), batch))
    if not on.any():
        return x
    return apply(x, torch.from_numpy(np.where(on, factors, 1.0)))


def mixup(
    x: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    *,
    alpha: float,
    rng: np.random.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Mix each window with a random partner of the batch, targets with the same coefficients.

    Parameters
    ----------
    x : torch.Tensor
        ``(batch, ...)`` inputs.
    target : torch.Tensor
        ``(batch, 6)`` vote probabilities.
    weight : torch.Tensor, optional
        ``(batch,)`` loss weights, mixed like the targets.
    alpha : float
        Coefficients ``lam ~ Beta(alpha, alpha)``, one per window.
    rng : numpy.random.Generator

    Returns
    -------
    x, target, weight
        ``lam * a + (1 - lam) * a[partner]`` for each; targets stay distributions.
    """
    batch = x.shape[0]
    lam = rng.beta(alpha, alpha, size=batch)
    partner = torch.as_tensor(rng.permutation(batch), device=x.device)
    lam_x = torch.as_tensor(lam, dtype=x.dtype, device=x.device).reshape(
        (batch,) + (1,) * (x.ndim - 1)
    )
    lam_t = torch.as_tensor(lam, dtype=target.dtype, device=target.device)[:, None]
    x = lam_x * x + (1 - lam_x) * x[partner]
    target = lam_t * target + (1 - lam_t) * target[partner]
    if weight is not None:
        weight = lam_t[:, 0] * weight + (1 - lam_t[:, 0]) * weight[partner]
    return x, target, weight


# --------------------------------------------------------------------------------------------------
# whole batches
# --------------------------------------------------------------------------------------------------

#: ``spec[:, KAGGLE_MIRROR]`` mirrors Kaggle spectrogram regions (file order): LL <-> RL, LP <-> RP.
KAGGLE_MIRROR: tuple[int, ...] = mirror_permutation(SPEC_REGIONS)


def augment_signal(
    eeg: torch.Tensor,
    spec: torch.Tensor | None,
    *,
    config: AugmentConfig,
    rng: np.random.Generator,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Augment raw windows before their representation is computed (training from raw windows).

    Applies the hemisphere swap (EEG electrodes and Kaggle spectrogram regions together), time
    reversal (both), the random band-pass and the random gain (EEG; NaN samples stay NaN so that
    the representation's NaN repair still sees them). Time shifts are done by re-cutting the window
    from the recording (:class:`hmslib.datasets.RawWindowDataset`), channel zeroing and masking on
    the representation (:func:`augment_features`).

    Parameters
    ----------
    eeg : torch.Tensor
        ``(batch, 20, samples)`` µV in ``EEG_CHANNELS`` order at 200 Hz, NaN allowed.
    spec : torch.Tensor, optional
        ``(batch, 4, 100, columns)`` Kaggle spectrogram windows (regions LL, RL, LP, RP).
    config : AugmentConfig
    rng : numpy.random.Generator

    Returns
    -------
    eeg, spec
        Same shapes.
    """
    batch = eeg.shape[0]
    swap = rng.random(batch) < config.hemisphere_swap
    reverse = rng.random(batch) < config.time_reverse
    if swap.any():
        eeg = torch.where(_select(swap, eeg), mirror_eeg(eeg), eeg)
        if spec is not None:
            mirrored = spec[:, list(KAGGLE_MIRROR)]
            spec = torch.where(_select(swap, spec), mirrored, spec)
    if reverse.any():
        eeg = torch.where(_select(reverse, eeg), eeg.flip(-1), eeg)
        if spec is not None:
            spec = torch.where(_select(reverse, spec), spec.flip(-1), spec)
    if config.bandpass > 0:
        missing = torch.isnan(eeg)
        filtered = random_bandpass(
            torch.nan_to_num(eeg),
            p=config.bandpass,
            low=config.bandpass_low,
            high=config.bandpass_high,
            rng=rng,
        )
        eeg = filtered.masked_fill(missing, float("nan"))
    if config.gain > 0:
        eeg = random_gain(
            eeg, apply=_scale_windows, p=config.gain, low=config.gain_range[0],
            high=config.gain_range[1], rng=rng,
        )  # fmt: skip
    return eeg, spec


def _scale_windows(eeg: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
    return eeg * gain.to(eeg.device, eeg.dtype)[:, None, None]


def augment_features(
    x: torch.Tensor,
    repr_name: str,
    *,
    config: AugmentConfig,
    rng: np.random.Generator,
    signal_done: bool = False,
) -> torch.Tensor:
    """Augment a batch of one representation (cached features, or features of augmented raw windows).

    Parameters
    ----------
    x : torch.Tensor
        ``(batch, *shape)`` of representation ``repr_name``.
    repr_name : str
        Its name; its :class:`hmslib.representations.ReprInfo` layout says which operations make
        sense (no time shift of a tiled image, no frequency masking of a 1-D signal, channel zeroing
        only where bipolar pairs are separate).
    config : AugmentConfig
    rng : numpy.random.Generator
    signal_done : bool
        The hemisphere swap, time reversal, band-pass and gain were already applied to the raw
        windows (:func:`augment_signal`); skip them here.

    Returns
    -------
    torch.Tensor
        Same shape. Mixup is not applied here (it changes the targets; see :func:`mixup`).
    """
    info = representation_info(repr_name)
    seconds, pairs, freq_rows = info.seconds, info.pair_blocks, info.freq_axis
    if not signal_done:
        x = random_hemisphere_swap(
            x, swap=lambda t: swap_hemispheres(t, repr_name), p=config.hemisphere_swap, rng=rng
        )
        if seconds is not None:
            if config.time_reverse > 0:
                x = time_reverse(x, p=config.time_reverse, rng=rng)
            if config.time_shift_s > 0:
                columns = int(round(config.time_shift_s * x.shape[-1] / seconds))
                x = time_shift(x, max_shift=columns, rng=rng)
        if info.kind == "raw" and config.bandpass > 0:
            x = random_bandpass(
                x, p=config.bandpass, low=config.bandpass_low, high=config.bandpass_high, rng=rng
            )
        if config.gain > 0:
            x = random_gain(
                x, apply=info.apply_gain, p=config.gain, low=config.gain_range[0],
                high=config.gain_range[1], rng=rng,
            )  # fmt: skip
    if pairs is not None and config.channel_zero > 0:
        blocks = x.reshape(x.shape[0], pairs, -1)
        x = zero_channels(
            blocks, p=config.channel_zero, max_channels=config.channel_zero_max, rng=rng
        ).reshape(x.shape)
    if seconds is not None and config.time_masks > 0:
        x = mask_axis(
            x, axis=-1, n_masks=config.time_masks, max_width=config.time_mask_width, rng=rng
        )
    if freq_rows and info.kind == "image" and config.freq_masks > 0:
        x = mask_axis(
            x, axis=-2, n_masks=config.freq_masks, max_width=config.freq_mask_width, rng=rng
        )
    return x
