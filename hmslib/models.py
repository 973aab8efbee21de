"""Models: GeM pooling, spectrogram CNN classifiers over timm backbones, raw-EEG 1-D classifiers.

The raw-EEG backbones are the project's own channel-wise encoders (``wavenet1d``, ``resnet1d``) and
``sparcnet``, braindecode's ``SPARCNet`` (Jing et al. 2023, the dense 1-D CNN of the study the HMS
data come from, over 10 s of the 16 bipolar signals; needs the ``braindecode`` package).

Every model maps one batch of inputs to six logits in ``CLASSES`` order; :func:`probabilities`
turns them into a distribution with the model's output mapping. A :class:`ModelConfig` (a small
JSON-friendly dataclass saved in every checkpoint) is all :func:`build_model` needs to rebuild a
model, so a checkpoint alone restores its network. Models share braindecode's argument names
``n_chans, n_outputs, n_times, sfreq``.

Pretrained weights (:mod:`hmslib.weights`) never download anything unless asked to:
``pretrained_path=`` is a local file; ``pretrained=True`` gives the offline ImageNet weights of
``tf_efficientnet_lite0/1/2``, or timm's own weights from the Hugging Face hub for other names (only
its local cache when ``HF_HUB_OFFLINE=1``).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from hmslib._checks import check_number, check_option
from hmslib.constants import CLASSES, EEG_WINDOW_SAMPLES, SFREQ
from hmslib.representations import representation_info
from hmslib.weights import load_image_pretrained, load_pretrained, read_weights

#: Names of the raw-EEG (1-D) architectures :func:`build_model` knows: the channel-wise encoders
#: (by their residual block) and braindecode's SPaRCNet.
RAW_BACKBONES: tuple[str, ...] = ("wavenet1d", "resnet1d", "sparcnet")

#: Output mappings from logits to probabilities (:func:`probabilities`).
OUTPUTS: tuple[str, ...] = ("softmax", "entmax15")

KINDS: tuple[str, ...] = ("image", "raw")
_TEMPORAL = ("gru", "gem")


def kind_of(backbone: str) -> str:
    """``"raw"`` for the 1-D backbones of :data:`RAW_BACKBONES`, ``"image"`` for any other name."""
    return "raw" if backbone in RAW_BACKBONES else "image"


def probabilities(logits: torch.Tensor, output: str = "softmax") -> torch.Tensor:
    """Class probabilities from logits: softmax, or 1.5-entmax (sparse: may hold exact zeros).

    Parameters
    ----------
    logits : torch.Tensor
        ``(batch, 6)``.
    output : {"softmax", "entmax15"}
        The model's output mapping (``ModelConfig.output``).

    Returns
    -------
    torch.Tensor
        float32 ``(batch, 6)``, rows sum to 1.
    """
    check_option("model output", output, OUTPUTS)
    logits = logits.float()
    if output == "softmax":
        return torch.softmax(logits, dim=-1)
    from entmax import entmax15

    return entmax15(logits, dim=-1)


# --------------------------------------------------------------------------------------------------
# pooling
# --------------------------------------------------------------------------------------------------


class GeM(nn.Module):
    """Generalised-mean pooling over every axis after the channel axis.

    ``y[b, c] = mean(clamp(x[b, c], eps) ** p) ** (1 / p)``: the mean at ``p = 1``, tending to the
    maximum as ``p`` grows. Computed in float32 with autocast off and scaled by the per-channel
    maximum, so neither ``x ** p`` nor its mean over- or underflows in fp16/bf16 or for large ``p``.

    Parameters
    ----------
    p : float
        Initial exponent (>= 1; the effective exponent is clamped at 1 from below while training).
    eps : float
        Lower clamp of the inputs (GeM is defined on positive activations).
    learnable : bool
        Whether ``p`` is a trained parameter (else a fixed buffer).

    Raises
    ------
    ValueError
        If ``p < 1`` or ``eps <= 0``.
    """

    def __init__(self, p: float = 3.0, eps: float = 1e-6, learnable: bool = True) -> None:
        super().__init__()
        if p < 1.0:
            raise ValueError(f"GeM: p must be >= 1, got {p}")
        if eps <= 0.0:
            raise ValueError(f"GeM: eps must be > 0, got {eps}")
        self.eps = float(eps)
        p_tensor = torch.full((1,), float(p))
        if learnable:
            self.p = nn.Parameter(p_tensor)
        else:
            self.register_buffer("p", p_tensor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pool ``(batch, channels, *spatial)`` -> ``(batch, channels)`` in the input's dtype."""
        if x.ndim < 3:
            raise ValueError(f"GeM expects (batch, channels, *spatial), got shape {tuple(x.shape)}")
        dims = tuple(range(2, x.ndim))
        with torch.autocast(device_type=x.device.type, enabled=False):
            xf = x.float().clamp(min=self.eps)
            p = self.p.float().clamp(min=1.0)
            # The result does not depend on the scale mathematically, so it needs no gradient.
            scale = xf.amax(dim=dims, keepdim=True).detach()
            pooled = (xf / scale).pow(p).mean(dim=dims).pow(1.0 / p) * scale.flatten(1)
        return pooled.to(x.dtype)

    def extra_repr(self) -> str:
        return (
            f"p={self.p.item():.4g}, eps={self.eps:g}, learnable={isinstance(self.p, nn.Parameter)}"
        )


# --------------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class ModelConfig:
    """Everything :func:`build_model` needs; saved in every checkpoint (see :meth:`to_dict`).

    Parameters
    ----------
    name : str
        Model name used in output paths (``models/<name>/fold<k>.pt``); defaults to ``backbone``.
    kind : {"image", "raw"} or None
        ``"image"``: a timm CNN over (C, H, W) images; ``"raw"``: a 1-D network over (C, T) signals.
        None (default): from the backbone (:func:`kind_of`).
    backbone : str
        timm model name for image models (``"tf_efficientnet_lite0"``, ``"efficientnet_b0"``,
        ``"resnet18"``, ``"convnext_nano"``, ...) or one of :data:`RAW_BACKBONES` for raw models.
    representation : str or None
        Representation name from :mod:`hmslib.representations`; it fixes the input channels (and
        samples for raw models). None: no named representation, ``n_chans`` must be given.
    n_chans : int or None
        Input channels; None takes them from ``representation``. When both are given they must
        agree.
    n_times : int or None
        Raw models: samples per input window; None takes them from ``representation`` (else
        10,000 = 50 s).
    sfreq : float
        Raw models: sampling rate of the input, Hz.
    n_outputs : int
        Number of logits (6 classes).
    pretrained : bool
        Start from pretrained weights (see the module docstring for where they come from).
    pretrained_path : str or None
        Local weights file (state dict, timm or hmslib checkpoint); implies loading, never downloads.
    drop_rate : float
        Dropout before the final linear layer.
    drop_path_rate : float
        Stochastic depth of the timm backbone (image models that support it; 0 = off).
    gem_p : float
        Initial GeM exponent (learnable).
    output : {"softmax", "entmax15"}
        How logits become probabilities (:func:`probabilities`); the model itself always returns
        logits.
    widths, strides : tuple of int
        Raw models: channels and temporal down-sampling factor of each per-channel stage.
    dilations : tuple of int
        Raw models: dilations of the residual layers within each stage.
    kernel_size : int
        Raw models: odd kernel size of the dilated convolutions.
    hidden : int
        Raw models: features after mixing the EEG channels (and GRU hidden size per direction).
    temporal : {"gru", "gem"}
        Raw models: a bidirectional GRU then mean over time, or GeM over time.
    block_layers, growth_rate, bottleneck_size : int
        ``sparcnet``: dense layers per block, channels each dense layer adds, and the bottleneck
        width factor (braindecode's ``SPARCNet`` arguments; the defaults are the published model's;
        ``widths`` ... ``temporal`` do not apply to it, ``drop_rate`` is its dropout).

    Raises
    ------
    ValueError
        On an unknown kind, backbone (with close names), output or temporal mode, or inconsistent
        raw-model settings.
    """

    name: str = ""
    kind: str | None = None
    backbone: str = "tf_efficientnet_lite0"
    representation: str | None = None
    n_chans: int | None = None
    n_times: int | None = None
    sfreq: float = SFREQ
    n_outputs: int = len(CLASSES)
    pretrained: bool = False
    pretrained_path: str | None = None
    drop_rate: float = 0.2
    drop_path_rate: float = 0.0
    gem_p: float = 3.0
    output: str = "softmax"
    widths: tuple[int, ...] = (8, 16, 32)
    strides: tuple[int, ...] = (10, 4, 4)
    dilations: tuple[int, ...] = (1, 2, 4)
    kernel_size: int = 3
    hidden: int = 64
    temporal: str = "gru"
    block_layers: int = 4
    growth_rate: int = 16
    bottleneck_size: int = 16

    def __post_init__(self) -> None:
        if not self.name:
            self.name = self.backbone
        if self.pretrained_path is not None:
            self.pretrained_path = str(self.pretrained_path)
        if self.kind is None:
            self.kind = kind_of(self.backbone)
        check_option("ModelConfig.kind", self.kind, KINDS)
        check_backbone(self.backbone, self.kind)
        check_option("ModelConfig.output", self.output, OUTPUTS)
        check_option("ModelConfig.temporal", self.temporal, _TEMPORAL)
        self.widths = tuple(int(w) for w in self.widths)
        self.strides = tuple(int(s) for s in self.strides)
        self.dilations = tuple(int(d) for d in self.dilations)
        if len(self.widths) != len(self.strides) or not self.widths:
            raise ValueError(
                f"ModelConfig.widths {self.widths} and strides {self.strides} must be non-empty "
                "and of equal length (one entry per stage)"
            )
        if self.kernel_size % 2 == 0:
            raise ValueError(f"ModelConfig.kernel_size must be odd, got {self.kernel_size}")
        for name in ("block_layers", "growth_rate", "bottleneck_size"):
            check_number(f"ModelConfig.{name}", getattr(self, name), low=1, integer=True)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field (tuples as lists)."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelConfig:
        """Rebuild a config from :meth:`to_dict` output (e.g. read back from JSON or a checkpoint).

        Raises
        ------
        ValueError
            If ``d`` has keys that are not fields of :class:`ModelConfig`.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(
                f"ModelConfig.from_dict: unknown keys {unknown} (known: {sorted(known)}); "
                "was the config written by another hmslib version?"
            )
        return cls(**dict(d))


def check_backbone(name: str, kind: str | None = None) -> None:
    """Raise a ValueError unless ``name`` is a backbone (of ``kind``, when given).

    An unknown name lists the close names among every backbone, 1-D and timm alike.
    """
    if name in RAW_BACKBONES or timm.is_model(name):
        if kind is not None and kind_of(name) != kind:
            raise ValueError(
                f"backbone {name!r} is for kind={kind_of(name)!r} models, not kind={kind!r}"
            )
        return
    pool = [*RAW_BACKBONES, *timm.list_models()]
    close = difflib.get_close_matches(name, pool, n=8, cutoff=0.5)
    hint = (
        f"close names: {close}"
        if close
        else f"known backbones: the 1-D {list(RAW_BACKBONES)} and timm's image models"
    )
    raise ValueError(f"unknown backbone {name!r}; {hint}")


def _input_spec(config: ModelConfig) -> tuple[int, int]:
    """Input channels and (raw models) samples, from ``config.representation`` or the fields."""
    n_chans, n_times = config.n_chans, config.n_times
    if config.representation is not None:
        info = representation_info(config.representation)
        if info.kind != config.kind:
            raise ValueError(
                f"representation {config.representation!r} is of kind {info.kind!r} but the "
                f"model {config.name!r} ({config.backbone}) has kind={config.kind!r}"
            )
        if n_chans is not None and n_chans != info.shape[0]:
            raise ValueError(
                f"model {config.name!r}: n_chans={n_chans} but representation "
                f"{config.representation!r} has {info.shape[0]} channels (shape {info.shape})"
            )
        n_chans = info.shape[0]
        if config.kind == "raw":
            if n_times is not None and n_times != info.shape[-1]:
                raise ValueError(
                    f"model {config.name!r}: n_times={n_times} but representation "
                    f"{config.representation!r} has {info.shape[-1]} samples"
                )
            n_times = info.shape[-1]
    if n_chans is None:
        raise ValueError(
            f"model {config.name!r}: input channels unknown; set representation (a name) or "
            "n_chans"
        )
    return n_chans, EEG_WINDOW_SAMPLES if n_times is None else n_times


# --------------------------------------------------------------------------------------------------
# image models
# --------------------------------------------------------------------------------------------------


class SpectrogramClassifier(nn.Module):
    """A timm CNN backbone over (C, H, W) images, then GeM pooling, dropout and a linear layer.

    Parameters
    ----------
    backbone : str
        timm model name (any CNN whose features are ``(batch, features, h, w)``).
    n_chans : int
        Input image channels (the stem is built for them).
    n_outputs : int
        Number of logits.
    drop_rate : float
        Dropout before the linear layer.
    drop_path_rate : float
        Stochastic depth of the backbone (0 = off; only passed to timm when > 0).
    gem_p : float
        Initial GeM exponent.

    Notes
    -----
    ``forward`` maps ``(batch, n_chans, H, W)`` float images to ``(batch, n_outputs)`` logits.
    """

    def __init__(
        self,
        backbone: str,
        *,
        n_chans: int,
        n_outputs: int = len(CLASSES),
        drop_rate: float = 0.2,
        drop_path_rate: float = 0.0,
        gem_p: float = 3.0,
    ) -> None:
        super().__init__()
        extra = {"drop_path_rate": drop_path_rate} if drop_path_rate > 0 else {}
        self.backbone_name = backbone
        self.n_chans = n_chans
        self.n_outputs = n_outputs
        self.backbone = timm.create_model(
            backbone, pretrained=False, num_classes=0, global_pool="", in_chans=n_chans, **extra
        )
        self.pool = GeM(p=gem_p)
        self.dropout = nn.Dropout(drop_rate)
        self.head = nn.Linear(self.backbone.num_features, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(batch, n_chans, H, W)`` -> logits ``(batch, n_outputs)``."""
        if x.ndim != 4 or x.shape[1] != self.n_chans:
            raise ValueError(
                f"{self.backbone_name}: expected images (batch, {self.n_chans}, H, W), "
                f"got shape {tuple(x.shape)}"
            )
        features = self.backbone(x)
        if features.ndim != 4 or features.shape[1] != self.backbone.num_features:
            raise ValueError(
                f"backbone {self.backbone_name!r} gives features of shape {tuple(features.shape)}; "
                f"GeM needs (batch, {self.backbone.num_features}, h, w): use a CNN backbone"
            )
        return self.head(self.dropout(self.pool(features)))


# --------------------------------------------------------------------------------------------------
# raw-EEG models
# --------------------------------------------------------------------------------------------------


class _GatedBlock(nn.Module):
    """WaveNet residual layers: ``x + conv1x1(tanh(filter) * sigmoid(gate))`` per dilation."""

    def __init__(self, channels: int, kernel_size: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv1d(
                channels, 2 * channels, kernel_size, dilation=d, padding=d * (kernel_size // 2)
            )
            for d in dilations
        )
        self.mixes = nn.ModuleList(nn.Conv1d(channels, channels, 1) for _ in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv, mix in zip(self.convs, self.mixes, strict=True):
            filt, gate = conv(x).chunk(2, dim=1)
            x = x + mix(torch.tanh(filt) * torch.sigmoid(gate))
        return x


class _ResidualBlock(nn.Module):
    """Pre-activation residual layers: ``x + conv(silu(bn(x)))`` per dilation."""

    def __init__(self, channels: int, kernel_size: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Sequential(
                nn.BatchNorm1d(channels),
                nn.SiLU(),
                nn.Conv1d(
                    channels, channels, kernel_size, dilation=d, padding=d * (kernel_size // 2)
                ),
            )
            for d in dilations
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = x + layer(x)
        return x


_BLOCKS: dict[str, type[nn.Module]] = {"wavenet1d": _GatedBlock, "resnet1d": _ResidualBlock}


class _ChannelwiseEncoder(nn.Module):
    """One 1-D encoder shared by all EEG channels, then a 1x1 convolution that mixes channels.

    ``(batch, n_chans, T)`` -> ``(batch, hidden, T')`` with ``T' ~ T / prod(strides)``. Each stage is a
    strided convolution (kernel ``2 * stride``) with batch norm and SiLU, then dilated residual layers.
    """

    def __init__(
        self,
        *,
        n_chans: int,
        block: str,
        widths: tuple[int, ...],
        strides: tuple[int, ...],
        dilations: tuple[int, ...],
        kernel_size: int,
        hidden: int,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_width = 1
        for width, stride in zip(widths, strides, strict=True):
            layers += [
                nn.Conv1d(in_width, width, 2 * stride, stride=stride, padding=stride // 2),
                nn.BatchNorm1d(width),
                nn.SiLU(),
                _BLOCKS[block](width, kernel_size, dilations),
            ]
            in_width = width
        self.n_chans = n_chans
        self.stages = nn.Sequential(*layers)
        self.mix = nn.Sequential(
            nn.Conv1d(n_chans * in_width, hidden, 1), nn.BatchNorm1d(hidden), nn.SiLU()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, n_chans, n_times = x.shape
        h = self.stages(x.reshape(batch * n_chans, 1, n_times))
        return self.mix(h.reshape(batch, n_chans * h.shape[1], h.shape[2]))


class _GRUPool(nn.Module):
    """Bidirectional GRU over time, then the mean of its outputs: ``(B, H, T)`` -> ``(B, 2H)``."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.gru = nn.GRU(hidden, hidden, batch_first=True, bidirectional=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(x.transpose(1, 2))
        return out.mean(dim=1)


class RawEEGClassifier(nn.Module):
    """A 1-D classifier over a bipolar montage: shared per-channel encoder, GRU or GeM over time.

    Every channel (e.g. the 16 double-banana derivations, or 18 with the midline) runs through the
    same strided, dilated residual encoder (WaveNet-style gated layers or plain residual layers),
    the channels are mixed by a 1x1 convolution, and a bidirectional GRU (or GeM) summarises time.

    Parameters
    ----------
    n_chans : int
        Input channels (montage derivations).
    n_outputs : int
        Number of logits.
    n_times : int
        Samples per window (10,000 = 50 s at 200 Hz); must cover the total stride.
    sfreq : float
        Sampling rate of the input, Hz (kept as an attribute for callers that check their input).
    block : {"wavenet1d", "resnet1d"}
        Residual layer type.
    widths, strides : tuple of int
        Channels and down-sampling factor of each stage.
    dilations : tuple of int
        Dilations of the residual layers in each stage.
    kernel_size : int
        Odd kernel size of the dilated layers.
    hidden : int
        Features after channel mixing (GRU hidden size per direction).
    temporal : {"gru", "gem"}
        Summary over time.
    drop_rate : float
        Dropout before the linear layer.
    gem_p : float
        Initial GeM exponent (``temporal="gem"``).

    Raises
    ------
    ValueError
        If ``n_times`` is shorter than the product of ``strides``.

    Notes
    -----
    ``forward`` maps ``(batch, n_chans, T)`` float signals to ``(batch, n_outputs)`` logits.
    """

    def __init__(
        self,
        n_chans: int = 16,
        n_outputs: int = len(CLASSES),
        n_times: int = EEG_WINDOW_SAMPLES,
        sfreq: float = SFREQ,
        *,
        block: str = "wavenet1d",
        widths: tuple[int, ...] = (8, 16, 32),
        strides: tuple[int, ...] = (10, 4, 4),
        dilations: tuple[int, ...] = (1, 2, 4),
        kernel_size: int = 3,
        hidden: int = 64,
        temporal: str = "gru",
        drop_rate: float = 0.2,
        gem_p: float = 3.0,
    ) -> None:
        super().__init__()
        total_stride = math.prod(strides)
        if n_times < total_stride:
            raise ValueError(
                f"RawEEGClassifier: n_times={n_times} is shorter than the total stride "
                f"{total_stride} (strides {strides})"
            )
        self.n_chans, self.n_outputs, self.n_times, self.sfreq = n_chans, n_outputs, n_times, sfreq
        self.backbone = _ChannelwiseEncoder(
            n_chans=n_chans,
            block=block,
            widths=widths,
            strides=strides,
            dilations=dilations,
            kernel_size=kernel_size,
            hidden=hidden,
        )
        self.pool = _GRUPool(hidden) if temporal == "gru" else GeM(p=gem_p)
        self.dropout = nn.Dropout(drop_rate)
        self.head = nn.Linear(2 * hidden if temporal == "gru" else hidden, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Signals ``(batch, n_chans, T)`` -> logits ``(batch, n_outputs)``."""
        if x.ndim != 3 or x.shape[1] != self.n_chans:
            raise ValueError(
                f"RawEEGClassifier: expected (batch, {self.n_chans}, samples), "
                f"got shape {tuple(x.shape)}"
            )
        return self.head(self.dropout(self.pool(self.backbone(x))))


class SPaRCNetClassifier(nn.Module):
    """SPaRCNet (Jing et al. 2023): braindecode's ``SPARCNet`` dense 1-D CNN, as a project model.

    The network of the study the HMS data come from: a DenseNet over time whose input channels are
    the 16 double-banana signals of a 10 s segment (representation ``bipolar_center`` or
    ``bipolar_center_z``). This wrapper checks the input and keeps braindecode's argument names;
    the network itself is braindecode's (``self.net``).

    Parameters
    ----------
    n_chans : int
        Input channels (bipolar derivations).
    n_outputs : int
        Number of logits.
    n_times : int
        Samples per input window (2,000 = 10 s at 200 Hz); the number of dense blocks follows it.
    sfreq : float
        Sampling rate of the input, Hz.
    block_layers, growth_rate, bottleneck_size : int
        Dense layers per block, channels added per dense layer, bottleneck width factor.
    drop_rate : float
        Dropout of the dense layers.

    Raises
    ------
    ImportError
        braindecode is not installed.

    Notes
    -----
    ``forward`` maps ``(batch, n_chans, n_times)`` float signals to ``(batch, n_outputs)`` logits.
    """

    def __init__(
        self,
        n_chans: int = 16,
        n_outputs: int = len(CLASSES),
        n_times: int = EEG_WINDOW_SAMPLES,
        sfreq: float = SFREQ,
        *,
        block_layers: int = 4,
        growth_rate: int = 16,
        bottleneck_size: int = 16,
        drop_rate: float = 0.5,
    ) -> None:
        super().__init__()
        sparcnet = _braindecode_sparcnet()
        self.n_chans, self.n_outputs, self.n_times, self.sfreq = n_chans, n_outputs, n_times, sfreq
        self.net = sparcnet(
            n_chans=n_chans,
            n_outputs=n_outputs,
            n_times=n_times,
            sfreq=sfreq,
            block_layers=block_layers,
            growth_rate=growth_rate,
            bottleneck_size=bottleneck_size,
            drop_prob=drop_rate,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Signals ``(batch, n_chans, n_times)`` -> logits ``(batch, n_outputs)``."""
        if x.ndim != 3 or x.shape[1] != self.n_chans or x.shape[2] != self.n_times:
            raise ValueError(
                f"SPaRCNetClassifier: expected (batch, {self.n_chans}, {self.n_times}), "
                f"got shape {tuple(x.shape)}"
            )
        return self.net(x)


def _braindecode_sparcnet() -> type[nn.Module]:
    """braindecode's ``SPARCNet`` class, imported on first use (braindecode imports slowly)."""
    try:
        with warnings.catch_warnings():
            # importing braindecode's model zoo warns about its own dependencies (an MNE montage
            # name, a pandas keyword in wfdb): nothing a caller can act on
            warnings.simplefilter("ignore")
            from braindecode.models import SPARCNet
    except ImportError as err:
        raise ImportError(
            "backbone 'sparcnet' is braindecode's SPARCNet; install braindecode "
            f"(pip install braindecode): {err}"
        ) from err
    return SPARCNet


# --------------------------------------------------------------------------------------------------
def build_model(config: ModelConfig) -> nn.Module:
    """Build the network a :class:`ModelConfig` describes, with its pretrained weights if asked.

    Parameters
    ----------
    config : ModelConfig
        Model description; ``representation`` (via
        :func:`hmslib.representations.representation_info`) or ``n_chans`` fixes the input
        channels.

    Returns
    -------
    torch.nn.Module
        :class:`SpectrogramClassifier` (``kind="image"``), :class:`RawEEGClassifier`
        (``kind="raw"``) or :class:`SPaRCNetClassifier` (``backbone="sparcnet"``), in training
        mode, giving logits ``(batch, n_outputs)``.

    Raises
    ------
    ValueError
        Unknown backbone (with close names), input channels unknown or inconsistent with ``repr``,
        ``pretrained=True`` for a raw model without ``pretrained_path``, or weights that do not fit.
    FileNotFoundError
        If ``pretrained_path`` does not exist.
    ImportError
        ``backbone="sparcnet"`` without braindecode installed.
    RuntimeError
        If hub weights are needed but the hub is offline (``HF_HUB_OFFLINE=1``) or unreachable.
    """
    check_backbone(config.backbone, config.kind)
    n_chans, n_times = _input_spec(config)
    model: nn.Module
    if config.kind == "image":
        model = SpectrogramClassifier(
            config.backbone,
            n_chans=n_chans,
            n_outputs=config.n_outputs,
            drop_rate=config.drop_rate,
            drop_path_rate=config.drop_path_rate,
            gem_p=config.gem_p,
        )
    elif config.backbone == "sparcnet":
        model = SPaRCNetClassifier(
            n_chans=n_chans,
            n_outputs=config.n_outputs,
            n_times=n_times,
            sfreq=config.sfreq,
            block_layers=config.block_layers,
            growth_rate=config.growth_rate,
            bottleneck_size=config.bottleneck_size,
            drop_rate=config.drop_rate,
        )
    else:
        model = RawEEGClassifier(
            n_chans=n_chans,
            n_outputs=config.n_outputs,
            n_times=n_times,
            sfreq=config.sfreq,
            block=config.backbone,
            widths=config.widths,
            strides=config.strides,
            dilations=config.dilations,
            kernel_size=config.kernel_size,
            hidden=config.hidden,
            temporal=config.temporal,
            drop_rate=config.drop_rate,
            gem_p=config.gem_p,
        )
    if config.pretrained_path is not None:
        path = Path(config.pretrained_path).expanduser()
        load_pretrained(model, read_weights(path), origin=str(path))
    elif config.pretrained:
        if config.kind == "raw":
            raise ValueError(
                f"model {config.name!r}: raw 1-D backbones have no public pretrained weights; "
                "give pretrained_path= (e.g. an earlier hmslib checkpoint) or pretrained=False"
            )
        load_image_pretrained(model, config.backbone)
    return model
