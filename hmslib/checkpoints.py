"""Checkpoints: the one writer and reader of ``models/<name>/fold<k>.pt`` and of a run's model layout.

A run folder holds, per model and fold (written by :func:`hmslib.train.fit_fold`)::

    models/<name>/fold<k>.pt           best weights + the TrainConfig that made them (inference)
    models/<name>/fold<k>_last.pt      the state after the last finished epoch (resume)
    models/<name>/fold<k>_metrics.csv  one row per epoch
    models/<name>/train_config.json    the resolved configuration
    oof/<name>_fold<k>.parquet         best-epoch predictions for every validation label_id

Every checkpoint is a dict with ``format``, ``train_config`` (``{"recipe", "env"}``),
``state_dict``, ``torch_version`` and ``class_prior`` (the mean vote distribution of the rows the
fold trained on: what a :class:`hmslib.predict.Predictor` gives a window without signal; absent
from checkpoints written before hmslib stored it). :func:`read_checkpoint` turns a missing, truncated or foreign
file into one sentence naming it; :func:`run_checkpoints` checks that the checkpoints of a model
agree with each other and with the run's ``train_config.json``, so a checkpoint of another model or
representation dropped into a run is refused, never used.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hmslib._checks import atomic_path
from hmslib.config import TrainConfig
from hmslib.constants import CLASSES
from hmslib.models import ModelConfig, build_model

#: Version of the checkpoint layout.
CHECKPOINT_FORMAT = 2
_FOLD_FILE = re.compile(r"fold\d+\.pt")


def fold_paths(out_dir: str | os.PathLike, model_name: str, fold: int) -> dict[str, Path]:
    """The files of one (model, fold) in a run folder: ``best, last, metrics, config, oof``."""
    model_dir = Path(out_dir) / "models" / model_name
    return {
        "best": model_dir / f"fold{fold}.pt",
        "last": model_dir / f"fold{fold}_last.pt",
        "metrics": model_dir / f"fold{fold}_metrics.csv",
        "config": model_dir / "train_config.json",
        "oof": Path(out_dir) / "oof" / f"{model_name}_fold{fold}.parquet",
    }


def save_checkpoint(payload: dict, path: str | os.PathLike) -> Path:
    """``torch.save`` a checkpoint dict atomically (a temporary file renamed into place)."""
    with atomic_path(path) as tmp:
        torch.save({"format": CHECKPOINT_FORMAT, "torch_version": str(torch.__version__), **payload}, tmp)
    return Path(path)


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Read and validate a checkpoint written by :func:`save_checkpoint`.

    Parameters
    ----------
    path : path
        ``models/<name>/fold<k>.pt`` or ``fold<k>_last.pt``.

    Returns
    -------
    dict
        The checkpoint, its ``train_config`` parsed into a :class:`~hmslib.config.TrainConfig`.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        A file torch cannot read (truncated, empty, another format), a dict without the
        checkpoint keys, another layout version, or a config this version cannot read; every
        message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises several types for truncated or foreign files
        raise ValueError(
            f"{path}: not a readable checkpoint (truncated or not written by torch.save: "
            f"{type(err).__name__})"
        ) from err
    needed = ("format", "train_config", "state_dict")
    missing = [k for k in needed if k not in ckpt] if isinstance(ckpt, dict) else list(needed)
    if missing:
        raise ValueError(f"{path}: not an hmslib checkpoint (missing {missing})")
    if ckpt["format"] != CHECKPOINT_FORMAT:
        raise ValueError(
            f"{path}: checkpoint layout version {ckpt['format']}, this hmslib reads version "
            f"{CHECKPOINT_FORMAT}; retrain with this version"
        )
    try:
        ckpt["train_config"] = TrainConfig.from_dict(ckpt["train_config"])
    except (ValueError, TypeError) as err:
        raise ValueError(f"{path}: incompatible checkpoint config ({err})") from err
    if ckpt.get("class_prior") is not None:
        prior = np.asarray(ckpt["class_prior"], dtype=np.float64)
        if prior.shape != (len(CLASSES),) or not np.isfinite(prior).all() or (prior < 0).any() \
                or abs(prior.sum() - 1) > 1e-6:  # fmt: skip
            raise ValueError(
                f"{path}: class_prior must be {len(CLASSES)} non-negative probabilities summing "
                f"to 1, got {prior.tolist()}"
            )
        ckpt["class_prior"] = prior
    return ckpt


def load_model(
    path: str | os.PathLike, *, device: str | torch.device = "cpu"
) -> tuple[nn.Module, ModelConfig, TrainConfig]:
    """Rebuild a trained model from a checkpoint.

    Parameters
    ----------
    path : path
        ``models/<name>/fold<k>.pt`` (or ``fold<k>_last.pt``).
    device : str or torch.device
        Where to put the model.

    Returns
    -------
    model : torch.nn.Module
        In eval mode, weights loaded (no pretrained download or file is needed).
    model_config : ModelConfig
    train_config : TrainConfig

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`read_checkpoint`, or weights that do not fit the model the config builds.
    """
    return model_from_checkpoint(read_checkpoint(path), path, device=device)


def model_from_checkpoint(
    ckpt: dict, path: str | os.PathLike, *, device: str | torch.device = "cpu"
) -> tuple[nn.Module, ModelConfig, TrainConfig]:
    """:func:`load_model` for a checkpoint already read with :func:`read_checkpoint`.

    Parameters
    ----------
    ckpt : dict
        From :func:`read_checkpoint`.
    path : path
        Its file, for messages.
    device : str or torch.device
        Where to put the model.

    Returns
    -------
    model, model_config, train_config
        As :func:`load_model`.
    """
    train_config = ckpt["train_config"]
    model_config = train_config.model
    model = build_model(dataclasses.replace(model_config, pretrained=False, pretrained_path=None))
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as err:  # missing, unexpected or mis-shaped tensors
        detail = str(err).split("\n\t", 1)[-1].replace("\n\t", "; ")[:500]
        raise ValueError(
            f"{path}: weights do not fit the model its config builds ({model_config.backbone}, "
            f"representation {model_config.representation}): {detail}"
        ) from err
    return model.to(device).eval(), model_config, train_config


def _differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Dotted names of the fields where two nested dicts differ."""
    out = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            out += _differences(x, y, f"{prefix}{key}.")
        elif x != y:
            out.append(f"{prefix}{key}")
    return out


def run_checkpoints(run_dir: str | os.PathLike, model_name: str) -> list[Path]:
    """The fold checkpoints of one model of a run, checked against each other and the run.

    Every ``models/<model_name>/fold<k>.pt`` of the model's ``n_folds`` must exist, be readable,
    and hold the same recipe -- model name, backbone, representation, output and every training
    setting -- as the model's ``train_config.json`` (or, without one, as the first fold).

    Returns
    -------
    list of pathlib.Path
        ``fold0.pt ... fold<n-1>.pt``.

    Raises
    ------
    FileNotFoundError
        The model folder is absent, or some folds have no checkpoint (the message lists them).
    ValueError
        An unreadable checkpoint, or one whose recipe differs (the message names the file and the
        differing fields, e.g. ``model.representation``).
    """
    folder = Path(run_dir) / "models" / model_name
    found = sorted(p for p in folder.glob("fold*.pt") if _FOLD_FILE.fullmatch(p.name))
    if not found:
        raise FileNotFoundError(f"{folder}: no checkpoints fold<k>.pt for model {model_name!r}")
    saved = folder / "train_config.json"
    reference = TrainConfig.from_json(saved).recipe if saved.is_file() else None
    recipes = {path: read_checkpoint(path)["train_config"].recipe for path in found}
    if reference is None:
        reference, saved = recipes[found[0]], found[0]
    expected = [folder / f"fold{k}.pt" for k in range(reference.n_folds)]
    missing = [p.name for p in expected if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{folder}: model {model_name!r} was trained with {reference.n_folds} folds but "
            f"{missing} are missing"
        )
    for path, recipe in recipes.items():
        differ = _differences(reference.to_dict(), recipe.to_dict())
        if path in expected and recipe.model.name != model_name:
            differ = ["model.name", *differ]
        if differ:
            detail = ", ".join(differ[:6])
            raise ValueError(
                f"{path}: checkpoint does not match the run's {saved.name} (differs in {detail}); "
                f"it was trained as model {recipe.model.name!r} on representation "
                f"{recipe.model.representation!r}; remove it or retrain this fold"
            )
    return expected
