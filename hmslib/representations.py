"""Model input representations: named, batched transforms of 50 s EEG windows into tensors.

``REPRESENTATIONS[name]`` describes one (:class:`ReprInfo`: shape, inputs, layout) and
:func:`compute_representation` computes it from raw 50 s EEG windows ``(batch, 20, 10000)`` in
microvolts (NaN allowed) and, where needed, Kaggle spectrogram windows ``(batch, 4, 100, 300)``.
Each :class:`ReprInfo` also says how its tensor is laid out -- the seconds its last axis spans, the
bipolar pairs stacked along its first axis or rows, whether axis -2 is frequency, and the channel
names its left/right mirror is derived from -- so that augmentations (:mod:`hmslib.augment`) and
test-time mirroring (:func:`swap_hemispheres`) read the layout from one place.

Most representations start from :func:`scaled_bipolar`: NaN-repaired, band-passed, clipped double
banana (the input scaling of the top solutions); ``public_notebook`` reproduces the public Kaggle
notebook's librosa loop exactly, in the notebook's own chain order (LL, LP, RL, RP).
``bipolar_center`` and ``bipolar_center_z`` are SPaRCNet's input, the central 10 s the experts
labelled; they can also be computed from windows of only those 10 s (:attr:`ReprInfo.center_input`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from hmslib import signal as hsignal
from hmslib._checks import check_eeg, check_option
from hmslib.constants import (
    CENTER_SAMPLES,
    CENTER_SLICE,
    CHAIN_NAMES,
    EEG_WINDOW_SAMPLES,
    EEG_WINDOW_SECONDS,
    LABEL_CENTER_SECONDS,
    SFREQ,
    SPEC_N_FREQS,
    SPEC_REGIONS,
    SPEC_WINDOW_COLUMNS,
    SPEC_WINDOW_SECONDS,
)
from hmslib.spectral import _as_float_tensor, log_spectrogram, morlet_cwt, spectrogram

#: Input scaling of the top solutions: clip to +-1024 uV, then divide by 32 (no standardisation).
CLIP_UV = 1024.0
SCALE_UV = 32.0

# --------------------------------------------------------------------------------------------------
# the public-notebook preset
# --------------------------------------------------------------------------------------------------


def _check_eeg(eeg, sfreq: float, what: str) -> torch.Tensor:
    """Validate raw EEG windows ``(batch, 20, 10000)`` at 200 Hz; return them as a float tensor."""
    return _as_float_tensor(check_eeg(eeg, what=what, sfreq=sfreq))


def public_notebook_images(eeg, *, device: str | torch.device | None = None) -> torch.Tensor:
    """EEG spectrogram images of the public Kaggle notebook recipe, batched.

    For every double-banana pair ``x = eeg[a] - eeg[b]`` (NaN -> the pair's mean over the window,
    or 0 when the pair is all NaN, as the notebook does): a mel spectrogram with ``sr=200,
    n_fft=1024, win_length=128, hop_length=10000 // 256, n_mels=128, fmin=0, fmax=20``, power to
    dB with ``ref=max`` and ``top_db=80``, ``(dB + 40) / 40``, the first 256 frames; then the
    mean of the 4 pairs of each chain. Matches the librosa loop to float32 precision (no filter,
    no clipping: the recipe as published), image for image in the notebook's own chain order:
    ``Fp1-F7-T3-T5-O1`` (LL), ``Fp1-F3-C3-P3-O1`` (LP), ``Fp2-F8-T4-T6-O2`` (RL),
    ``Fp2-F4-C4-P4-O2`` (RP) -- not the project's LL, LP, RP, RL (:data:`PUBLIC_NOTEBOOK_CHAINS`).

    Parameters
    ----------
    eeg : torch.Tensor or numpy.ndarray
        Raw windows ``(batch, 20, 10000)`` in microvolts, channels in ``EEG_CHANNELS`` order.
    device : str or torch.device, optional
        Where to compute (default: where ``eeg`` is).

    Returns
    -------
    torch.Tensor
        float32 ``(batch, 4, 128, 256)``: chains LL, LP, RL, RP; mel bins low to high frequency.

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


#: Chain order of the public notebook's images (its 3rd image is the right lateral chain).
PUBLIC_NOTEBOOK_CHAINS: tuple[str, ...] = ("LL", "LP", "RL", "RP")
_NOTEBOOK_FROM_CHAIN = tuple(CHAIN_NAMES.index(c) for c in PUBLIC_NOTEBOOK_CHAINS)
_CHAIN_FROM_NOTEBOOK = tuple(PUBLIC_NOTEBOOK_CHAINS.index(c) for c in CHAIN_NAMES)


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
    chains = db.unflatten(1, (4, 4)).mean(dim=2).add_(40.0).div_(40.0)  # LL, LP, RP, RL
    return chains[:, list(_NOTEBOOK_FROM_CHAIN)]


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
    """Description of a named model input representation, layout included.

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
    mirror_names : tuple of str
        Names of the units the left/right mirror permutes (chains ``"LL"``..., bipolar pairs
        ``"Fp1-F7"``...), in their order along the mirrored axis; the permutation is derived from
        them (:func:`hmslib.signal.mirror_permutation`).
    mirror_rows : bool
        The mirrored units are blocks of rows (axis -2, ``H // len(mirror_names)`` rows each) of a
        tiled image, repeated ``mirror_tiles`` times; False: they are the channels (axis 0).
    mirror_tiles : int
        Times the block of units repeats down the rows (pages of a paged image; 1 otherwise).
    seconds : float or None
        Seconds spanned by the last axis when it is one continuous time axis (time shifts, time
        reversal and time masks apply); None for tiled or paged images.
    pair_blocks : int or None
        Number of bipolar pairs stacked in equal blocks along axis 0 (channel zeroing applies).
    freq_axis : bool
        Axis -2 is frequency (frequency masks apply to images).
    description : str
        What it is and where it comes from.
    version : int
        Bumped when the definition changes (part of a feature cache's configuration).
    center_input : bool
        Can also be computed from windows holding only the central ``LABEL_CENTER_SECONDS``
        (``(batch, 20, CENTER_SAMPLES)``, e.g. SPaRCNet-style 10 s segments); such windows are
        filtered on their own samples.
    bipolar : BipolarScaling or None
        The filtered bipolar step the representation starts from (its band-pass, clipping, scale
        and pair order); None for those that do not filter (public notebook, Kaggle spectrogram).
    gain : {"invariant", "log_power", "linear"}
        What a gain ``g`` on the EEG does to the values (:meth:`apply_gain`): nothing
        (standardised per window, or dB relative to the window's maximum), adds
        ``20 log10(g) / db_scale[1]`` (fixed-dB power), or multiplies them by ``g`` (filtered
        signals, clipped again at ``bipolar.clip_uv``).
    db_scale : tuple of float or None
        ``(offset, scale)`` of a fixed-dB representation: values are ``(10 log10(power) - offset)
        / scale``.
    """

    name: str
    shape: tuple[int, ...]
    kind: str
    uses_eeg: bool
    uses_kaggle_spectrogram: bool
    mirror_names: tuple[str, ...]
    mirror_rows: bool
    seconds: float | None
    pair_blocks: int | None
    freq_axis: bool
    description: str
    mirror_tiles: int = 1
    version: int = 1
    center_input: bool = False
    bipolar: BipolarScaling | None = None
    gain: str = "invariant"
    db_scale: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        check_option("ReprInfo.gain", self.gain, ["invariant", "log_power", "linear"])
        if (self.gain == "log_power") != (self.db_scale is not None):
            raise ValueError(
                f"ReprInfo {self.name!r}: db_scale is needed by, and only by, gain 'log_power'"
            )
        if self.gain == "linear" and self.bipolar is None:
            raise ValueError(
                f"ReprInfo {self.name!r}: gain 'linear' needs the bipolar step's clipping"
            )

    def apply_gain(self, x: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
        """The values this representation would have had for EEG windows scaled by ``gain``.

        Parameters
        ----------
        x : torch.Tensor
            ``(batch, *shape)`` of this representation.
        gain : torch.Tensor
            ``(batch,)`` positive factors on the EEG (µV -> µV).

        Returns
        -------
        torch.Tensor
            Same shape (``x`` itself for ``gain="invariant"``). Exact but for the clipping of the
            filtered signal (``linear``: samples clipped before stay at the bound) and the power
            floor of the dB conversion.
        """
        if self.gain == "invariant":
            return x
        g = gain.to(x.device, x.dtype).reshape(-1, *([1] * (x.ndim - 1)))
        if self.gain == "log_power":
            return x + 20.0 * torch.log10(g) / self.db_scale[1]
        bound = self.bipolar.clip_uv / self.bipolar.divisor
        return (x * g).clamp(-bound, bound)

    @property
    def mirror(self) -> tuple[int, ...]:
        """Index permutation along the mirrored axis (channels, or rows of a tiled image)."""
        units = hsignal.mirror_permutation(self.mirror_names)
        if not self.mirror_rows:
            return units
        block = self.shape[-2] // (len(units) * self.mirror_tiles)
        size = len(units) * block
        return tuple(
            t * size + u * block + r
            for t in range(self.mirror_tiles)
            for u in units
            for r in range(block)
        )

    def swap(self, x):
        """Mirror left and right hemispheres of ``x`` (batched); see :func:`swap_hemispheres`."""
        return swap_hemispheres(x, self.name)


#: Double-banana pairs in chain order (LL, LP, RP, RL x 4), the order of ``montage``.
BANANA_NAMES: tuple[str, ...] = tuple(hsignal.montage_names("double_banana"))
#: Pair order of the 3rd-place 2-D models: left/right homologues adjacent (Fp1-F7, Fp2-F8, ...),
#: as indices into ``BANANA_NAMES``.
INTERLEAVED_ORDER: tuple[int, ...] = tuple(
    j
    for i, name in enumerate(BANANA_NAMES)
    if name.split("-")[0] in ("Fp1", "F7", "T3", "T5", "F3", "C3", "P3")
    for j in (i, BANANA_NAMES.index(hsignal.mirror_name(name)))
)
_INTERLEAVED_NAMES = tuple(BANANA_NAMES[i] for i in INTERLEAVED_ORDER)
# Kaggle regions are stored LL, RL, LP, RP; representations use the chain order LL, LP, RP, RL.
_KAGGLE_TO_CHAIN = tuple(SPEC_REGIONS.index(r) for r in CHAIN_NAMES)


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
        float32 ``(batch, len(pairs) or 16, samples)`` on ``eeg``'s device (NaN repair runs on the
        CPU, the montage and the filter on the device).
    """
    t = _as_float_tensor(eeg)
    raw, _ = hsignal.repair_nans(t.detach().cpu().numpy())
    x, _ = hsignal.montage(torch.from_numpy(raw).to(t.device), "double_banana")
    if pairs is not None:
        x = x[:, list(pairs)]
    return hsignal.clip(hsignal.bandpass(x, low, high, SFREQ, order), clip_uv).div_(divisor)


@dataclass(frozen=True)
class BipolarScaling:
    """The settings of one :func:`scaled_bipolar` step of a representation, kept as data.

    The representation computes its input with :meth:`__call__`, and its :class:`ReprInfo` carries
    the same object (``ReprInfo.bipolar``), so that an exported model's preprocessing
    (:mod:`hmslib.export`) is read from the one place the computation uses.

    Attributes
    ----------
    low, high : float or None
        Band-pass edges, Hz (None: no high-pass / no low-pass).
    order : int
        Butterworth order (applied forward and backward).
    clip_uv : float
        Clipping bound, microvolts (``inf``: no clipping).
    divisor : float
        Scale of the result.
    pairs : tuple of int or None
        Order of the pairs as indices into ``BANANA_NAMES`` (None: chain order).
    """

    low: float | None = 0.5
    high: float | None = 20.0
    order: int = 4
    clip_uv: float = CLIP_UV
    divisor: float = SCALE_UV
    pairs: tuple[int, ...] | None = None

    def __call__(self, eeg) -> torch.Tensor:
        """:func:`scaled_bipolar` of raw windows ``(batch, 20, samples)`` with these settings."""
        return scaled_bipolar(
            eeg, low=self.low, high=self.high, order=self.order, clip_uv=self.clip_uv,
            divisor=self.divisor, pairs=self.pairs,
        )  # fmt: skip

    def to_dict(self) -> dict:
        """JSON-ready settings: pair names in their order, ``clip_uv`` None for no clipping."""
        pairs = range(len(BANANA_NAMES)) if self.pairs is None else self.pairs
        return {
            "montage": "double_banana",
            "pairs": [BANANA_NAMES[i] for i in pairs],
            "bandpass": {"low_hz": self.low, "high_hz": self.high, "order": self.order,
                         "design": "butterworth", "zero_phase": True},
            "clip_uv": float(self.clip_uv) if math.isfinite(self.clip_uv) else None,
            "divisor": float(self.divisor),
        }  # fmt: skip


#: The filtered bipolar input of most representations: 0.5-20 Hz, clipped at +-1024 uV, / 32.
FILTERED = BipolarScaling()
_INTERLEAVED = BipolarScaling(pairs=INTERLEAVED_ORDER)
#: Unclipped, unscaled: the per-channel standardised centre (its units are z-scores already).
_UNSCALED = BipolarScaling(clip_uv=math.inf, divisor=1.0)


def _scaled_db_(power: torch.Tensor, offset: float, scale: float) -> torch.Tensor:
    """Absolute log power with fixed affine scaling (no per-window standardisation), in place."""
    return power.clamp_min_(1e-10).log10_().mul_(10.0 / scale).sub_(offset / scale)


# Fixed dB offsets and scales, chosen so that the real sample EEGs give values of mean ~0 and
# standard deviation ~1; fixed (not per window) so that amplitude stays informative.
_CHAIN_MEL_DB = (20.0, 8.0)
_MEL16_DB = (0.0, 15.0)
_CWT_DB = (-20.0, 5.0)


def _chain_mel(eeg: torch.Tensor, spec: torch.Tensor | None) -> torch.Tensor:
    x = FILTERED(eeg)
    power = spectrogram(
        x, n_fft=1024, hop_length=78, win_length=256, n_bins=64, fmin=0.5, fmax=20.0
    )[..., :128]
    return _scaled_db_(power.unflatten(1, (4, 4)).mean(dim=2), *_CHAIN_MEL_DB)


def _mel16_views(x: torch.Tensor, zoom: bool) -> torch.Tensor:
    kwargs = dict(n_fft=1024, win_length=128, n_bins=64, fmin=0.53, fmax=30.0, htk=True, norm=None)
    views = [spectrogram(x, hop_length=39, **kwargs)[..., :256]]
    if zoom:
        # 256 frames every 8 samples, centred on the middle 10 s (3980 ... 6020), real context
        centre0, hop = (EEG_WINDOW_SAMPLES - 255 * 8) // 2, 8
        seg = x[..., centre0 - 512 : centre0 + 255 * hop + 512]
        views.append(spectrogram(seg, hop_length=hop, center=False, **kwargs))
    db = _scaled_db_(torch.cat(views, dim=-1), *_MEL16_DB)
    b, c, h, w = db.shape
    return db.reshape(b, 1, c * h, w)


def _mel16(eeg: torch.Tensor, spec: torch.Tensor | None) -> torch.Tensor:
    return _mel16_views(_INTERLEAVED(eeg), zoom=False)


def _mel16_zoom(eeg: torch.Tensor, spec: torch.Tensor | None) -> torch.Tensor:
    return _mel16_views(_INTERLEAVED(eeg), zoom=True)


_CWT_FREQS = np.geomspace(0.5, 20.0, 64)


def _cwt(eeg: torch.Tensor, spec: torch.Tensor | None) -> torch.Tensor:
    x = FILTERED(eeg)
    w = morlet_cwt(x, _CWT_FREQS, n_cycles=5.0, decim=4)
    power = torch.view_as_real(w).square_().sum(dim=-1).unflatten(1, (4, 4)).mean(dim=2)
    pooled = F.adaptive_avg_pool1d(power.flatten(0, 2), 256).reshape(x.shape[0], 4, 64, 256)
    return _scaled_db_(pooled, *_CWT_DB)


def _raw_image(eeg: torch.Tensor, spec: torch.Tensor | None) -> torch.Tensor:
    x = FILTERED(eeg)
    b = x.shape[0]
    # rows: 10 segments of 5 s, each holding the 16 pairs (read like pages of an EEG)
    return x.reshape(b, 16, 10, 1000).permute(0, 2, 1, 3).reshape(b, 1, 160, 1000)


def _bipolar_raw(eeg: torch.Tensor, spec: torch.Tensor | None) -> torch.Tensor:
    return FILTERED(eeg)


#: Lower bound of the standard deviation a z-score divides by (a flat channel becomes 0).
ZSCORE_EPS = 1e-6


def center_samples(x):
    """The labelled centre of windows along the last axis.

    Parameters
    ----------
    x : torch.Tensor or numpy.ndarray
        ``(..., samples)`` with ``samples`` either ``EEG_WINDOW_SAMPLES`` (a 50 s window) or
        ``CENTER_SAMPLES`` (already only the centre).

    Returns
    -------
    torch.Tensor or numpy.ndarray
        ``(..., CENTER_SAMPLES)``: ``x[..., CENTER_SLICE]``, or ``x`` itself when it is the centre.

    Raises
    ------
    ValueError
        Another number of samples.
    """
    n = x.shape[-1]
    if n == CENTER_SAMPLES:
        return x
    if n != EEG_WINDOW_SAMPLES:
        raise ValueError(
            f"center_samples: expected {EEG_WINDOW_SAMPLES} samples ({EEG_WINDOW_SECONDS:g} s) or "
            f"{CENTER_SAMPLES} ({LABEL_CENTER_SECONDS:g} s) per window, found {n}"
        )
    return x[..., CENTER_SLICE]


def zscore_channels(x: torch.Tensor, *, ref: torch.Tensor | None = None) -> torch.Tensor:
    """Standardise every channel of every window: ``(x - mean) / max(std, ZSCORE_EPS)``.

    Parameters
    ----------
    x : torch.Tensor
        ``(..., channels, samples)``.
    ref : torch.Tensor, optional
        ``(..., channels, m)`` whose mean and (population) standard deviation are used, e.g. the
        centre of ``x``; default ``x`` itself.

    Returns
    -------
    torch.Tensor
        Same shape and dtype as ``x``.
    """
    ref = x if ref is None else ref
    std, mean = torch.std_mean(ref, dim=-1, correction=0, keepdim=True)
    return (x - mean) / std.clamp_min(ZSCORE_EPS)


def _bipolar_center(eeg: torch.Tensor, spec: torch.Tensor | None) -> torch.Tensor:
    return center_samples(FILTERED(eeg))


def _bipolar_center_z(eeg: torch.Tensor, spec: torch.Tensor | None) -> torch.Tensor:
    # the centre first: a 50 s window and its 10 s centre give the same tensor, so that a model
    # trained on 50 s windows sees real 10 s segments exactly as it saw its training windows
    raw, _ = hsignal.repair_nans(center_samples(eeg).detach().cpu().numpy())
    # each lead standardised, as the real 10 s windows were (its offset and scale are then gone in
    # training as in the real files); no clipping in these units
    leads = zscore_channels(torch.from_numpy(raw).to(eeg.device))
    return zscore_channels(_UNSCALED(leads))


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
    # the EEG images in chain order, so that each 128-row tile holds one region in both halves
    images = _public_notebook(eeg, None)[:, list(_CHAIN_FROM_NOTEBOOK)]
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
        mirror_names=CHAIN_NAMES,
        mirror_rows=False,
        seconds=EEG_WINDOW_SECONDS,
        pair_blocks=None,
        freq_axis=True,
        description=(
            "Project default: filtered double banana (0.5-20 Hz, clip +-1024 uV, /32), mel power "
            "(64 bins 0.5-20 Hz, 1.28 s windows, 128 frames over 50 s) averaged over the 4 pairs "
            "of each chain LL, LP, RP, RL; absolute dB with a fixed scale (amplitude is kept)."
        ),
        bipolar=FILTERED,
        gain="log_power",
        db_scale=_CHAIN_MEL_DB,
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
        mirror_names=PUBLIC_NOTEBOOK_CHAINS,
        mirror_rows=False,
        seconds=EEG_WINDOW_SECONDS,
        pair_blocks=None,
        freq_axis=True,
        description=(
            "The public Kaggle notebook recipe (librosa mel, 128 bins 0-20 Hz, dB ref=max, "
            "(dB+40)/40, 256 frames, mean of the 4 pairs per chain), in the notebook's chain order "
            "LL, LP, RL, RP; see public_notebook_images."
        ),
        version=2,
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
        mirror_names=CHAIN_NAMES,
        mirror_rows=False,
        seconds=SPEC_WINDOW_SECONDS,
        pair_blocks=None,
        freq_axis=True,
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
        mirror_names=CHAIN_NAMES,
        mirror_rows=True,
        seconds=None,
        pair_blocks=None,
        freq_axis=True,
        description=(
            "Seed recipe: one 512x512 image, left half the 4 Kaggle spectrogram regions (rows "
            "14-114 of each 128-row tile, centre 256 columns, /2), right half the 4 "
            "public-notebook EEG images; tiles stacked LL, LP, RP, RL from top in both halves (the "
            "EEG images taken out of the notebook's order LL, LP, RL, RP into the chain order, so "
            "that each tile row is one region)."
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
        mirror_names=_INTERLEAVED_NAMES,
        mirror_rows=True,
        seconds=EEG_WINDOW_SECONDS,
        pair_blocks=16,
        freq_axis=True,
        description=(
            "3rd place: a separate mel spectrogram for each of the 16 filtered pairs (64 HTK mel "
            "bins 0.53-30 Hz, 0.64 s windows, 256 frames), stacked vertically into one image in "
            "left/right interleaved order (Fp1-F7, Fp2-F8, F7-T3, F8-T4, ...); fixed dB scale."
        ),
        bipolar=_INTERLEAVED,
        gain="log_power",
        db_scale=_MEL16_DB,
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
        mirror_names=_INTERLEAVED_NAMES,
        mirror_rows=True,
        seconds=None,
        pair_blocks=16,
        freq_axis=True,
        description=(
            "mel16 with a zoom: right of the 50 s view, the central 10 s the experts labelled "
            "(256 frames every 40 ms), as the 3rd place's magnified centre window."
        ),
        bipolar=_INTERLEAVED,
        gain="log_power",
        db_scale=_MEL16_DB,
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
        mirror_names=CHAIN_NAMES,
        mirror_rows=False,
        seconds=EEG_WINDOW_SECONDS,
        pair_blocks=None,
        freq_axis=True,
        description=(
            "Morlet scalogram (a CWT, as the 1st place's superlets): 64 log-spaced frequencies "
            "0.5-20 Hz, 5 cycles, power averaged over the 4 filtered pairs of each chain and over "
            "256 time bins; fixed dB scale."
        ),
        bipolar=FILTERED,
        gain="log_power",
        db_scale=_CWT_DB,
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
        mirror_names=BANANA_NAMES,
        mirror_rows=True,
        mirror_tiles=10,
        seconds=None,
        pair_blocks=None,
        freq_axis=False,
        description=(
            "2nd place: the filtered double banana (clip +-1024 uV, /32) as an image, 10 rows of "
            "5 s per page, each page the 16 pairs in chain order: row = 16 * segment + pair."
        ),
        bipolar=FILTERED,
        gain="linear",
    ),
    _raw_image,
    32,
)
_register(
    ReprInfo(
        name="bipolar_raw",
        shape=(16, EEG_WINDOW_SAMPLES),
        kind="raw",
        uses_eeg=True,
        uses_kaggle_spectrogram=False,
        mirror_names=BANANA_NAMES,
        mirror_rows=False,
        seconds=EEG_WINDOW_SECONDS,
        pair_blocks=16,
        freq_axis=False,
        description=(
            "Raw 1-D input: NaN-repaired double banana (16 pairs, chain order), band-passed "
            "0.5-20 Hz (Butterworth order 4, zero phase), clipped to +-1024 uV, divided by 32."
        ),
        bipolar=FILTERED,
        gain="linear",
    ),
    _bipolar_raw,
    32,
)
_register(
    ReprInfo(
        name="bipolar_center",
        shape=(16, CENTER_SAMPLES),
        kind="raw",
        uses_eeg=True,
        uses_kaggle_spectrogram=False,
        mirror_names=BANANA_NAMES,
        mirror_rows=False,
        seconds=LABEL_CENTER_SECONDS,
        pair_blocks=16,
        freq_axis=False,
        center_input=True,
        description=(
            "SPaRCNet's input: bipolar_raw (double banana, 0.5-20 Hz, clip +-1024 uV, /32) "
            "filtered over the whole window, then its central 10 s, the part the experts labelled."
        ),
        bipolar=FILTERED,
        gain="linear",
    ),
    _bipolar_center,
    64,
)
_register(
    ReprInfo(
        name="bipolar_center_z",
        shape=(16, CENTER_SAMPLES),
        kind="raw",
        uses_eeg=True,
        uses_kaggle_spectrogram=False,
        mirror_names=BANANA_NAMES,
        mirror_rows=False,
        seconds=LABEL_CENTER_SECONDS,
        pair_blocks=16,
        freq_axis=False,
        center_input=True,
        description=(
            "bipolar_center standardised, from the central 10 s alone: each referential lead "
            "z-scored over those 10 s (as the real 10 s sample windows are), double banana, "
            "band-pass 0.5-20 Hz of the 10 s, each pair z-scored (no clipping)."
        ),
        bipolar=_UNSCALED,
    ),
    _bipolar_center_z,
    64,
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
    check_option("representation", name, sorted(_REGISTRY))
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
        order; NaN allowed (repaired inside). May be None for a representation without EEG. A
        representation with ``center_input`` also takes windows of only the labelled centre,
        ``(batch, 20, CENTER_SAMPLES)``.
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
    eeg_t = None
    if info.uses_eeg:
        centre_only = info.center_input and eeg is not None and eeg.shape[-1] == CENTER_SAMPLES
        n_times = CENTER_SAMPLES if centre_only else EEG_WINDOW_SAMPLES
        eeg_t = _as_float_tensor(check_eeg(eeg, what=name, sfreq=sfreq, n_times=n_times))
        eeg_t = eeg_t.to(device)
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
    perm = info.mirror
    axis = x.ndim - 2 if info.mirror_rows else x.ndim - len(info.shape)
    if isinstance(x, torch.Tensor):
        return x.index_select(axis, torch.tensor(perm, device=x.device))
    return np.take(x, perm, axis=axis)
