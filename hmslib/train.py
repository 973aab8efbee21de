"""Training one (model, fold): KL loss, two stages, early stopping, checkpoints, OOF, DDP.

The recipe of the top HMS solutions, with each credited choice a switch of :class:`TrainConfig`:

- patient-grouped folds (:func:`hmslib.labels.make_folds`), validation on the fold's windows scored
  with the competition metric on >= 10-vote windows (early stopping) and on all windows;
- :func:`kl_loss`: KL divergence of the predicted distribution from the vote distribution;
- AdamW, linear warm-up then cosine decay, gradient clipping, mixed precision and channels-last
  on GPU;
- stage 1 on every training window, stage 2 fine-tuning on the high-agreement windows
  (``min_votes_stage2`` votes or more), starting from stage 1's best weights;
- per epoch one random labelled offset per consolidated group (or per EEG, with the EEG's averaged
  target), label smoothing on vote counts, loss weights by vote count and decaying few-vote weights,
  anatomy-aware augmentations (:mod:`hmslib.augment`).

:func:`fit_fold` writes, atomically, under ``<out_dir>``::

    models/<name>/fold<k>.pt           best weights + configs (what inference loads)
    models/<name>/fold<k>_last.pt      full state after the last finished epoch (resume)
    models/<name>/fold<k>_metrics.csv  one row per epoch
    models/<name>/train_config.json    the resolved configuration
    oof/<name>_fold<k>.parquet         best-epoch predictions for every validation label_id

An interrupted fit resumes from ``fold<k>_last.pt`` and ends exactly where an uninterrupted one
would (on CPU with the same seed): every epoch's randomness is derived from
``(seed, fold, stage, epoch)``.
Under ``torchrun --nproc_per_node=N -m hmslib.train ...`` the same code trains with
DistributedDataParallel (gloo on CPU, nccl on GPU); rank 0 writes every file.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from hmslib import io
from hmslib.augment import AugmentConfig, augment_features, augment_signal, mixup
from hmslib.cache import build_cache, open_cache
from hmslib.constants import CLASSES, PRED_COLUMNS, VOTE_COLUMNS
from hmslib.datasets import CacheDataset, RawWindowDataset, epoch_batches, training_units
from hmslib.labels import make_folds, total_votes
from hmslib.metrics import kaggle_kl
from hmslib.models import ModelConfig, build_model
from hmslib.spectrogram import compute_representation, representation_info, swap_hemispheres

#: Version of the checkpoint layout written by :func:`fit_fold`.
CHECKPOINT_FORMAT = 1
#: Loss weight of a window with this many votes or more is 1 when ``vote_weight`` is on.
FULL_WEIGHT_VOTES = 20
SOURCES = ("cache", "raw")
SAMPLE_BY = ("group", "eeg")
#: TrainConfig fields that may change between an interrupted fit and its resumption.
_RESUME_FREE = ("data_dir", "cache_dir", "out_dir", "device", "num_workers", "resume")


# --------------------------------------------------------------------------------------------------
# loss
# --------------------------------------------------------------------------------------------------


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
    logits = logits.float()
    if output == "softmax":
        return torch.softmax(logits, dim=-1)
    if output == "entmax15":
        from entmax import entmax15

        return entmax15(logits, dim=-1)
    raise ValueError(f"unknown model output {output!r}; expected 'softmax' or 'entmax15'")


def kl_loss(
    logits: torch.Tensor,
    target_probs: torch.Tensor,
    weights: torch.Tensor | None = None,
    *,
    output: str = "softmax",
    eps: float = 1e-15,
) -> torch.Tensor:
    """KL divergence ``sum_c y_c log(y_c / p_c)`` of the predictions from the vote distributions.

    For softmax outputs ``log p`` is ``log_softmax(logits)``, so the value equals
    :func:`hmslib.metrics.kaggle_kl` of ``softmax(logits)`` on the same rows (up to Kaggle's clipping
    of ``p`` at 1e-15). For entmax outputs ``p`` is clamped at ``eps`` inside the logarithm, as Kaggle
    clips it; a class outside the entmax support gets no gradient (the price of a sparse output).

    Parameters
    ----------
    logits : torch.Tensor
        ``(batch, 6)`` raw model outputs.
    target_probs : torch.Tensor
        ``(batch, 6)`` vote probabilities (rows sum to 1; zeros allowed).
    weights : torch.Tensor, optional
        ``(batch,)`` per-window weights (e.g. by vote count); the loss is ``mean_i w_i KL_i``.
    output : {"softmax", "entmax15"}
        Output mapping of the model.
    eps : float
        Floor of ``p`` inside the logarithm for entmax outputs.

    Returns
    -------
    torch.Tensor
        Scalar: the batch mean (``batchmean``) of the per-window KL, in nats.

    Raises
    ------
    ValueError
        Shapes differ or are not ``(batch, n_classes)``.
    """
    if logits.ndim != 2 or logits.shape != target_probs.shape:
        raise ValueError(
            f"kl_loss: logits {tuple(logits.shape)} and targets {tuple(target_probs.shape)} must both "
            "be (batch, n_classes)"
        )
    target = target_probs.float()
    if output == "softmax":
        log_p = F.log_softmax(logits.float(), dim=-1)
    else:
        log_p = torch.log(probabilities(logits, output).clamp_min(eps))
    log_y = torch.log(torch.where(target > 0, target, torch.ones_like(target)))
    per_window = (target * (log_y - log_p)).sum(dim=-1)
    if weights is not None:
        if weights.shape != per_window.shape:
            raise ValueError(
                f"kl_loss: weights {tuple(weights.shape)} must be ({per_window.shape[0]},)"
            )
        per_window = per_window * weights.float()
    return per_window.mean()


def loss_weights(
    total_votes: torch.Tensor,
    *,
    vote_weight: bool,
    few_vote_decay: float,
    min_votes: int,
    epoch: int,
) -> torch.Tensor | None:
    """Per-window loss weights from vote counts, or None when every weight is 1.

    Parameters
    ----------
    total_votes : torch.Tensor
        ``(batch,)`` votes per window.
    vote_weight : bool
        Weight ``min(votes / 20, 1)`` (2nd place: fewer votes, noisier target, smaller weight).
    few_vote_decay : float
        Windows with fewer than ``min_votes`` votes get a further ``few_vote_decay ** epoch``
        (3rd place: few-vote windows fade out as training goes on); 1 = off.
    min_votes : int
        Threshold of the few-vote decay.
    epoch : int
        Epoch within the stage, from 0.

    Returns
    -------
    torch.Tensor or None
        float32 ``(batch,)``.
    """
    if not vote_weight and few_vote_decay == 1.0:
        return None
    votes = total_votes.float()
    weights = torch.ones_like(votes)
    if vote_weight:
        weights = (votes / FULL_WEIGHT_VOTES).clamp(max=1.0)
    if few_vote_decay != 1.0:
        weights = torch.where(votes < min_votes, weights * few_vote_decay**epoch, weights)
    return weights


# --------------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------------


@dataclass
class TrainConfig:
    """Everything :func:`fit_fold` needs; saved (as :meth:`to_dict`) in every checkpoint.

    Parameters
    ----------
    data_dir : str
        Kaggle-layout folder (real or synthetic) with train.csv and train_eegs/.
    model : ModelConfig
        The model to build (:func:`hmslib.models.build_model`).
    out_dir : str
        Run folder; checkpoints go to ``models/<model.name>/``, OOF files to ``oof/``.
    cache_dir : str, optional
        Feature cache of ``model.repr`` (``source="cache"``): one complete cache folder, or a folder
        of caches where the right one is reused or built; None = ``<out_dir>/cache``.
    source : {"cache", "raw"}
        Train on precomputed representations (fast) or compute them per batch from raw windows
        (slower, but band-pass and re-cut time shifts then act before the representation).
    n_folds, seed : int
        Patient-grouped folds of train.csv and the seed of everything random.
    epochs, stage2_epochs : int
        Epochs of stage 1 (all windows) and stage 2 (windows with ``min_votes_stage2`` votes or more).
    min_votes_stage2 : int
        Vote threshold of stage 2 and of the few-vote weight decay.
    stage2_lr_factor : float
        Stage 2 peak learning rate = ``lr * stage2_lr_factor``.
    batch_size : int
        Windows per optimiser step on each process.
    lr, weight_decay : float
        AdamW peak learning rate and decoupled weight decay.
    warmup : float
        Share of each stage's steps spent warming up linearly; then cosine decay to
        ``lr * min_lr_ratio``.
    min_lr_ratio : float
        Final learning rate of each stage as a share of its peak.
    device : {"auto", "cpu", "cuda"}
        "auto" = CUDA when available.
    amp, channels_last : bool
        Mixed precision and channels-last memory format (applied on CUDA only).
    grad_clip : float
        Clip the gradient norm at this value (0 = off).
    patience : int
        Stop a stage after this many epochs without a better validation KL (0 = never).
    num_workers : int
        DataLoader worker processes.
    max_train_samples : int, optional
        Use at most this many training units per epoch (quick runs).
    val_min_votes : int
        Validation KL for early stopping is computed on windows with at least this many votes.
    sample_by : {"group", "eeg"}
        One random labelled offset per consolidated group, or per EEG with the EEG's averaged target.
    label_smoothing : float
        Pseudo-votes added to every class before normalising the targets (0 = off).
    vote_weight : bool
        Loss weight ``min(votes / 20, 1)`` per window.
    few_vote_decay : float
        Per-epoch factor on the loss weight of windows with fewer than ``min_votes_stage2`` votes.
    augment : AugmentConfig
        Augmentations (:mod:`hmslib.augment`).
    resume : bool
        Continue from ``fold<k>_last.pt`` when present (a finished fold is returned as is).
    """

    data_dir: str
    model: ModelConfig
    out_dir: str = "outputs/run"
    cache_dir: str | None = None
    source: str = "cache"
    n_folds: int = 5
    seed: int = 0
    epochs: int = 10
    stage2_epochs: int = 3
    min_votes_stage2: int = 10
    stage2_lr_factor: float = 0.5
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-2
    warmup: float = 0.1
    min_lr_ratio: float = 0.01
    device: str = "auto"
    amp: bool = True
    channels_last: bool = True
    grad_clip: float = 1.0
    patience: int = 3
    num_workers: int = 0
    max_train_samples: int | None = None
    val_min_votes: int = 10
    sample_by: str = "group"
    label_smoothing: float = 0.0
    vote_weight: bool = False
    few_vote_decay: float = 1.0
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    resume: bool = True

    def __post_init__(self) -> None:
        self.data_dir = str(self.data_dir)
        self.out_dir = str(self.out_dir)
        self.cache_dir = None if self.cache_dir is None else str(self.cache_dir)
        if isinstance(self.model, dict):
            self.model = ModelConfig.from_dict(self.model)
        if isinstance(self.augment, dict):
            self.augment = AugmentConfig.from_dict(self.augment)
        if not self.model.repr:
            raise ValueError(
                f"TrainConfig: model {self.model.name!r} names no representation (model.repr)"
            )
        choices = {"source": SOURCES, "sample_by": SAMPLE_BY, "device": ("auto", "cpu", "cuda")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"TrainConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}"
                )
        at_least_one = ("n_folds", "batch_size")
        non_negative = (
            "epochs",
            "stage2_epochs",
            "patience",
            "num_workers",
            "min_votes_stage2",
            "weight_decay",
            "grad_clip",
            "label_smoothing",
            "val_min_votes",
        )
        for name in at_least_one:
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("lr", "stage2_lr_factor"):
            if getattr(self, name) <= 0:
                raise ValueError(f"TrainConfig.{name} must be > 0, got {getattr(self, name)}")
        for name in non_negative:
            if getattr(self, name) < 0:
                raise ValueError(f"TrainConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.epochs + self.stage2_epochs < 1:
            raise ValueError("TrainConfig: epochs + stage2_epochs must be >= 1")
        for name in ("warmup", "min_lr_ratio"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"TrainConfig.{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 < self.few_vote_decay <= 1.0:
            raise ValueError(
                f"TrainConfig.few_vote_decay must be in (0, 1], got {self.few_vote_decay}"
            )
        if self.max_train_samples is not None and self.max_train_samples < 1:
            raise ValueError(
                f"TrainConfig.max_train_samples must be >= 1, got {self.max_train_samples}"
            )

    def to_dict(self) -> dict:
        """Plain JSON-ready dict (the model and augmentation configs nested)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["model"] = self.model.to_dict()
        out["augment"] = self.augment.to_dict()
        return out

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """Inverse of :meth:`to_dict`.

        Raises
        ------
        ValueError
            Unknown keys (listed), or invalid values.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"TrainConfig: unknown keys {unknown} (known: {sorted(known)})")
        return cls(**d)

    def to_json(self, path: str | os.PathLike) -> Path:
        """Write :meth:`to_dict` as JSON atomically."""
        with io.atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=2))
        return Path(path)

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> TrainConfig:
        """Read a config written by :meth:`to_json`; errors name the file."""
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (ValueError, TypeError) as err:
            raise ValueError(f"{path}: not a valid TrainConfig ({err})") from err


def resolve_device(name: str = "auto", *, local_rank: int = 0) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cuda"`` without a GPU is an error."""
    if name not in ("auto", "cpu", "cuda") and not name.startswith("cuda:"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {name!r}")
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    return torch.device(name if ":" in name else f"cuda:{local_rank}")


# --------------------------------------------------------------------------------------------------
# checkpoints and prediction
# --------------------------------------------------------------------------------------------------


def _save(payload: dict, path: Path) -> None:
    """``torch.save`` atomically."""
    with io.atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _read_checkpoint(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises several types for corrupt or foreign files
        raise ValueError(f"{path}: not a readable torch checkpoint ({err})") from err
    needed = ("model_config", "train_config", "state_dict")
    missing = [k for k in needed if k not in ckpt] if isinstance(ckpt, dict) else list(needed)
    if missing:
        raise ValueError(f"{path}: not an hmslib checkpoint (missing {missing})")
    return ckpt


def load_checkpoint(
    path: str | os.PathLike, *, device: str | torch.device = "cpu"
) -> tuple[nn.Module, ModelConfig, TrainConfig]:
    """Rebuild a trained model from a checkpoint written by :func:`fit_fold`.

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
    FileNotFoundError
        No such file.
    ValueError
        Not an hmslib checkpoint, configs this version cannot read, or weights that do not fit the
        model the config builds (an incompatible config).
    """
    ckpt = _read_checkpoint(path)
    try:
        model_config = ModelConfig.from_dict(ckpt["model_config"])
        train_config = TrainConfig.from_dict(
            {**ckpt["train_config"], "model": model_config.to_dict()}
        )
    except (ValueError, TypeError) as err:
        raise ValueError(f"{path}: incompatible checkpoint config ({err})") from err
    model = build_model(dataclasses.replace(model_config, pretrained=False, pretrained_path=None))
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as err:  # missing, unexpected or mis-shaped tensors
        detail = str(err).split("\n\t", 1)[-1].replace("\n\t", "; ")[:500]
        raise ValueError(
            f"{path}: weights do not fit the model its config builds ({model_config.backbone}, "
            f"repr {model_config.repr}): {detail}"
        ) from err
    return model.to(device).eval(), model_config, train_config


def _as_tensor(a) -> torch.Tensor:
    """float32 tensor view or copy of an array."""
    if isinstance(a, torch.Tensor):
        return a.float()
    return torch.from_numpy(np.asarray(a, dtype=np.float32))


@torch.inference_mode()
def predict_windows(
    model: nn.Module,
    model_config: ModelConfig,
    eeg: np.ndarray | torch.Tensor,
    spec: np.ndarray | torch.Tensor | None = None,
    *,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    tta: bool = False,
) -> np.ndarray:
    """Class probabilities for raw windows, computing the model's representation on the way.

    Parameters
    ----------
    model : torch.nn.Module
        A model built from ``model_config`` (e.g. from :func:`load_checkpoint`).
    model_config : ModelConfig
        Says which representation (``repr``) and output mapping the model uses.
    eeg : array-like
        float32 ``(n, 20, 10000)``: 50 s windows in µV, ``EEG_CHANNELS`` order, NaN allowed.
    spec : array-like, optional
        float32 ``(n, 4, 100, 300)`` Kaggle spectrogram windows; required when the representation
        uses them.
    batch_size : int
        Windows per forward pass.
    device : str or torch.device
        Where to compute ("auto" allowed).
    tta : bool
        Average with the prediction of the left/right mirrored input.

    Returns
    -------
    numpy.ndarray
        float64 ``(n, 6)`` in ``CLASSES`` order, rows sum to 1.

    Raises
    ------
    ValueError
        Wrong shapes, or a missing spectrogram for a representation that needs one.
    """
    info = representation_info(model_config.repr)
    eeg = _as_tensor(eeg)
    if eeg.ndim != 3 or eeg.shape[1] != 20:
        raise ValueError(f"predict_windows: eeg must be (n, 20, 10000), got {tuple(eeg.shape)}")
    if spec is not None:
        spec = _as_tensor(spec)
        if spec.ndim != 4 or spec.shape[0] != eeg.shape[0]:
            raise ValueError(
                f"predict_windows: spec must be ({eeg.shape[0]}, 4, 100, 300), got {tuple(spec.shape)}"
            )
    elif info.uses_kaggle_spectrogram:
        raise ValueError(
            f"representation {model_config.repr!r} needs the Kaggle spectrogram windows (spec=)"
        )
    device = resolve_device(str(device)) if str(device) == "auto" else torch.device(device)
    model = model.to(device).eval()
    out = []
    for start in range(0, eeg.shape[0], batch_size):
        part = slice(start, start + batch_size)
        x = compute_representation(
            model_config.repr, eeg[part], None if spec is None else spec[part], device=device
        )
        out.append(_predict_features(model, model_config, x, tta=tta))
    if not out:
        return np.zeros((0, len(CLASSES)))
    return torch.cat(out).double().cpu().numpy()


def _predict_features(model: nn.Module, model_config: ModelConfig, x: torch.Tensor, *, tta: bool):
    """Probabilities ``(batch, 6)`` for a batch of representations, optionally mirror-averaged."""
    probs = probabilities(model(x), model_config.output)
    if tta:
        mirrored = swap_hemispheres(x, model_config.repr)
        probs = 0.5 * (probs + probabilities(model(mirrored), model_config.output))
    return probs


# --------------------------------------------------------------------------------------------------
# distributed helpers
# --------------------------------------------------------------------------------------------------


@dataclass
class _Dist:
    """This process's place in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

    def gather(self, obj) -> list:
        """Every process's ``obj``, in rank order (a one-element list without DDP)."""
        if self.world_size == 1:
            return [obj]
        out = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def sync_buffers(self, model: nn.Module) -> None:
        """Copy rank 0's buffers (BatchNorm statistics) to every process before evaluating.

        During training each process updates its own statistics in its last forward pass; rank 0's are
        the ones saved, so every process must evaluate with them.
        """
        if self.world_size > 1:
            for buffer in model.buffers():
                dist.broadcast(buffer.data, src=0)

    def broadcast(self, obj):
        """Rank 0's ``obj`` on every process."""
        if self.world_size == 1:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def _init_distributed(device_name: str) -> _Dist:
    """Join the process group torchrun describes in the environment (no-op for a single process)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return _Dist()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    owns = False
    if not dist.is_initialized():
        use_cuda = device_name != "cpu" and torch.cuda.is_available()
        if use_cuda:
            torch.cuda.set_device(local_rank)  # nccl collectives run on the current device
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        owns = True
    return _Dist(rank=rank, world_size=world_size, local_rank=local_rank, owns_group=owns)


def _shard(n: int, d: _Dist) -> np.ndarray:
    """Contiguous share of ``range(n)`` for this process (each index on exactly one process)."""
    return np.array_split(np.arange(n), d.world_size)[d.rank]


# --------------------------------------------------------------------------------------------------
# data preparation
# --------------------------------------------------------------------------------------------------


def _check_fold(fold: int, n_folds: int) -> None:
    if not isinstance(fold, int | np.integer) or not 0 <= fold < n_folds:
        raise ValueError(
            f"fold must be an integer in [0, {n_folds - 1}] (n_folds={n_folds}), got {fold!r}"
        )


def _resolve_cache(config: TrainConfig, d: _Dist, *, progress: bool) -> Path:
    """The feature cache of ``config.model.repr``.

    ``cache_dir`` may name one complete cache (it is checked) or a folder of caches, where
    :func:`hmslib.cache.build_cache` reuses or builds the one for this representation; unset, the
    run's ``<out_dir>/cache`` is that folder. Under DDP rank 0 builds and the others wait.
    """
    given = None if config.cache_dir is None else Path(config.cache_dir)
    if given is not None and (given / "COMPLETE").is_file():
        path = given
    else:
        path = None
        if d.main:
            parent = given if given is not None else Path(config.out_dir) / "cache"
            path = str(
                build_cache(
                    config.data_dir,
                    parent,
                    repr=config.model.repr,
                    split="train",
                    workers=max(1, config.num_workers),
                    progress=progress,
                )
            )
        path = Path(d.broadcast(path))
    cache = open_cache(path)
    if cache.repr != config.model.repr:
        raise ValueError(
            f"{path}: the cache holds representation {cache.repr!r} but model {config.model.name!r} "
            f"expects {config.model.repr!r}; build one with `hms preprocess {config.data_dir} --out "
            f"<folder> --repr {config.model.repr}` or leave cache_dir unset"
        )
    return path


@dataclass
class _FoldData:
    """Validation rows of one fold, their dataset, and the training dataset of each stage."""

    val_rows: pd.DataFrame
    val: torch.utils.data.Dataset
    make_train: Callable[[int], torch.utils.data.Dataset | None]


def _prepare(config: TrainConfig, fold: int, d: _Dist, *, progress: bool) -> _FoldData:
    """Split train.csv into the fold's training and validation rows and build the datasets."""
    df = io.read_train_csv(config.data_dir)
    folds = make_folds(df, config.n_folds, config.seed)
    train_rows, val_rows = df[folds != fold], df[folds == fold].reset_index(drop=True)
    if len(val_rows) == 0 or len(train_rows) == 0:
        raise ValueError(
            f"{config.data_dir}: fold {fold} of {config.n_folds} leaves no training or validation rows"
        )
    info = representation_info(config.model.repr)
    cache = _resolve_cache(config, d, progress=progress) if config.source == "cache" else None

    def make(rows: pd.DataFrame, *, by: str, smoothing: float, training: bool):
        units = training_units(rows, by=by, smoothing=smoothing)
        if cache is not None:
            return CacheDataset(cache, units, seed=config.seed, random_offset=training)
        return RawWindowDataset(
            config.data_dir,
            units,
            with_spectrogram=info.uses_kaggle_spectrogram,
            seed=config.seed,
            random_offset=training,
            max_shift_s=config.augment.time_shift_s if training else 0.0,
        )

    def make_train(stage: int):
        rows = (
            train_rows
            if stage == 1
            else train_rows[total_votes(train_rows) >= config.min_votes_stage2]
        )
        if len(rows) == 0:
            return None
        return make(rows, by=config.sample_by, smoothing=config.label_smoothing, training=True)

    val = make(val_rows, by="window", smoothing=0.0, training=False)
    return _FoldData(val_rows, val, make_train)


def _loader(
    dataset, batches: list[np.ndarray], num_workers: int, device: torch.device
) -> torch.utils.data.DataLoader:
    """DataLoader over precomputed index batches (the datasets return whole batches)."""
    return torch.utils.data.DataLoader(
        dataset,
        sampler=batches,
        batch_size=None,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
    )


def _model_input(
    batch: dict, config: TrainConfig, device: torch.device, rng: np.random.Generator | None
) -> torch.Tensor:
    """The model's input tensor on ``device``; augmented when ``rng`` is given (training)."""
    name = config.model.repr
    if "x" in batch:
        x = batch["x"].to(device, non_blocking=True)
        signal_done = False
    else:
        eeg = batch["eeg"].to(device, non_blocking=True)
        spec = batch.get("spec")
        spec = None if spec is None else spec.to(device, non_blocking=True)
        if rng is not None:
            eeg, spec = augment_signal(eeg, spec, config=config.augment, rng=rng)
        x = compute_representation(name, eeg, spec, device=device)
        signal_done = True
    if rng is not None:
        x = augment_features(x, name, config=config.augment, rng=rng, signal_done=signal_done)
    return x


# --------------------------------------------------------------------------------------------------
# the fit
# --------------------------------------------------------------------------------------------------


def _lr_lambda(total_steps: int, warmup: float, min_ratio: float):
    """Linear warm-up over ``warmup * total_steps`` steps, then cosine from 1 to ``min_ratio``."""
    warm = int(round(warmup * total_steps))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        done = min(1.0, (step - warm) / max(1, total_steps - warm))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * done))

    return factor


def _epoch_seed(config: TrainConfig, fold: int, stage: int, epoch: int, rank: int) -> int:
    """Seed of one epoch's global torch RNG (dropout etc.): a function of its coordinates only."""
    return int(np.random.SeedSequence([config.seed, fold, stage, epoch, rank]).generate_state(1)[0])


def _autocast(device: torch.device, enabled: bool):
    if enabled and device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return torch.autocast("cpu", enabled=False)


def _evaluate(model, fold_data: _FoldData, config: TrainConfig, device, d: _Dist, amp: bool):
    """Probabilities float64 ``(n_val, 6)`` for every validation window (gathered over processes).

    ``model`` is the bare module, not its DDP wrapper: processes may run different numbers of
    evaluation batches, which must not trigger DDP's collective buffer broadcasts.
    """
    d.sync_buffers(model)
    mine = _shard(len(fold_data.val), d)
    batches = [mine[i : i + config.batch_size] for i in range(0, len(mine), config.batch_size)]
    model.eval()
    preds = []
    with torch.inference_mode():
        for batch in _loader(fold_data.val, batches, config.num_workers, device):
            x = _model_input(batch, config, device, None)
            if config.channels_last and device.type == "cuda" and x.ndim == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            with _autocast(device, amp):
                logits = model(x)
            preds.append(probabilities(logits, config.model.output).double().cpu().numpy())
    local = np.concatenate(preds) if preds else np.zeros((0, len(CLASSES)))
    return np.concatenate(d.gather(local))


def _scores(val_rows: pd.DataFrame, preds: np.ndarray, min_votes: int) -> tuple[float, float, int]:
    """(KL on windows with >= min_votes votes, KL on all windows, number of the former)."""
    votes = val_rows[list(VOTE_COLUMNS)].to_numpy(np.float64)
    many = votes.sum(axis=1) >= min_votes
    kl_all = kaggle_kl(votes, preds)
    kl_many = kaggle_kl(votes[many], preds[many]) if many.any() else float("nan")
    return kl_many, kl_all, int(many.sum())


def _oof_table(val_rows: pd.DataFrame, preds: np.ndarray, fold: int) -> pd.DataFrame:
    """One row per validation label_id: ids, fold, true votes and predictions (OOF file layout)."""
    out = val_rows[["label_id", "eeg_id", "patient_id"]].copy()
    out["fold"] = fold
    out["total_votes"] = total_votes(val_rows)
    for column in VOTE_COLUMNS:
        out[column] = val_rows[column].to_numpy()
    for k, column in enumerate(PRED_COLUMNS):
        out[column] = preds[:, k]
    return out.reset_index(drop=True)


def _paths(config: TrainConfig, fold: int) -> dict[str, Path]:
    model_dir = Path(config.out_dir) / "models" / config.model.name
    return {
        "best": model_dir / f"fold{fold}.pt",
        "last": model_dir / f"fold{fold}_last.pt",
        "metrics": model_dir / f"fold{fold}_metrics.csv",
        "config": model_dir / "train_config.json",
        "oof": Path(config.out_dir) / "oof" / f"{config.model.name}_fold{fold}.parquet",
    }


def _comparable(d: dict) -> dict:
    return {k: v for k, v in d.items() if k not in _RESUME_FREE}


def _check_resumable(saved: dict, config: TrainConfig, path: Path) -> None:
    """Raise when the checkpoint at ``path`` was written by a different configuration."""
    try:
        saved_config = TrainConfig.from_dict(saved["train_config"]).to_dict()
    except (ValueError, TypeError) as err:
        raise ValueError(f"{path}: checkpoint from an incompatible configuration ({err})") from err
    old, new = _comparable(saved_config), _comparable(config.to_dict())
    differ = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if differ:
        detail = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in differ[:6])
        raise ValueError(
            f"{path}: checkpoint from an incompatible configuration ({detail}); use another out_dir, "
            "delete the checkpoint or set resume=False to start over"
        )


def _summary(
    state: dict, paths: dict[str, Path], fold: int, config: TrainConfig, resumed: bool
) -> dict:
    return {
        "model": config.model.name,
        "fold": fold,
        "val_kl": state["best_kl"],
        "val_kl_all": state["best_kl_all"],
        "n_val": state["n_val"],
        "n_val_min_votes": state["n_val_min_votes"],
        "best_stage": state["best_stage"],
        "best_epoch": state["best_epoch"],
        "epochs_run": len(state["metrics"]),
        "resumed": resumed,
        "checkpoint": paths["best"],
        "last_checkpoint": paths["last"],
        "metrics": paths["metrics"],
        "oof": paths["oof"],
    }


def fit_fold(config: TrainConfig, fold: int, *, progress: bool = True) -> dict:
    """Train one model on one fold and write its checkpoints, metrics and OOF predictions.

    Parameters
    ----------
    config : TrainConfig
        The run; ``config.model`` names the model (``model.name`` is used in output paths).
    fold : int
        Validation fold in ``[0, n_folds)``; the other folds train.
    progress : bool
        Show a tqdm bar (on rank 0).

    Returns
    -------
    dict
        ``model, fold, val_kl`` (best KL on >= ``val_min_votes``-vote windows; NaN when the fold has
        none), ``val_kl_all, n_val, n_val_min_votes, best_stage, best_epoch, epochs_run, resumed`` and
        the paths ``checkpoint, last_checkpoint, metrics, oof``.

    Raises
    ------
    ValueError
        Before any training: fold out of range, unknown backbone or representation (close names
        listed), a cache of another representation, or a ``fold<k>_last.pt`` of another configuration.
    FloatingPointError
        A non-finite loss; names the stage, epoch, step and batch, and the last good checkpoint.
    FileNotFoundError
        No Kaggle-layout data folder at ``config.data_dir``.
    """
    _check_fold(fold, config.n_folds)
    representation_info(config.model.repr)
    io.check_data_dir(config.data_dir, "train")
    d = _init_distributed(config.device)
    try:
        return _fit(config, fold, d, progress=progress)
    finally:
        if d.owns_group:
            dist.destroy_process_group()


def _initial_state(n_val: int) -> dict:
    """Training state before the first epoch (what ``fold<k>_last.pt`` holds besides the weights)."""
    return {
        "stage": 1,
        "epoch": 0,
        "bad_epochs": 0,
        "finished": False,
        "metrics": [],
        "best_score": math.inf,
        "best_kl": math.nan,
        "best_kl_all": math.nan,
        "best_stage": 0,
        "best_epoch": -1,
        "best_preds": None,
        "best_state_dict": None,
        "n_val": n_val,
        "n_val_min_votes": 0,
    }


def _fit(config: TrainConfig, fold: int, d: _Dist, *, progress: bool) -> dict:
    paths = _paths(config, fold)
    device = resolve_device(config.device, local_rank=d.local_rank)
    torch.manual_seed(config.seed)
    model = build_model(config.model)
    state = None
    if config.resume and paths["last"].is_file():
        state = torch.load(paths["last"], map_location="cpu", weights_only=False)
        _check_resumable(state, config, paths["last"])
    fold_data = _prepare(config, fold, d, progress=progress and d.main)
    if state is not None and state["finished"]:
        if d.main and not paths["oof"].is_file():
            io.write_parquet_atomic(
                _oof_table(fold_data.val_rows, state["best_preds"], fold), paths["oof"]
            )
        return _summary(state, paths, fold, config, resumed=True)
    resumed = state is not None
    if resumed:
        model.load_state_dict(state["state_dict"])
    else:
        state = _initial_state(len(fold_data.val_rows))
    if d.main:
        config.to_json(paths["config"])

    model = model.to(device)
    if config.channels_last and device.type == "cuda" and config.model.kind == "image":
        model = model.to(memory_format=torch.channels_last)
    net = model
    if d.world_size > 1:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )

    stages = [
        (1, config.epochs, config.lr),
        (2, config.stage2_epochs, config.lr * config.stage2_lr_factor),
    ]
    train_sets = {
        stage: fold_data.make_train(stage) if n_epochs else None for stage, n_epochs, _ in stages
    }
    steps = {s: _steps_per_epoch(train_sets[s], config, d) for s, _, _ in stages}
    bar = tqdm(
        total=sum(steps[s] * n for s, n, _ in stages),
        desc=f"{config.model.name} fold {fold}",
        disable=not (progress and d.main),
        leave=False,
    )
    bar.update(
        sum(
            steps[s] * min(n, state["epoch"]) if s == state["stage"] else steps[s] * n
            for s, n, _ in stages
            if s <= state["stage"]
        )
    )
    run = _Run(config, fold, device, d, model, net, fold_data, paths, bar)
    try:
        for stage, n_epochs, peak_lr in stages:
            if stage < state["stage"] or train_sets[stage] is None:
                continue
            if stage > state["stage"]:  # stage 2 fine-tunes stage 1's best weights
                state.update(stage=stage, epoch=0, bad_epochs=0)
                if state["best_state_dict"] is not None:
                    model.load_state_dict(state["best_state_dict"])
            _run_stage(run, state, train_sets[stage], n_epochs, peak_lr, steps[stage])
        state["finished"] = True
        if d.main:
            io.write_parquet_atomic(
                _oof_table(fold_data.val_rows, state["best_preds"], fold), paths["oof"]
            )
            _save(
                {**_checkpoint_header(config), **state, "state_dict": model.state_dict()},
                paths["last"],
            )
        d.barrier()
    finally:
        bar.close()
    return _summary(state, paths, fold, config, resumed)


@dataclass
class _Run:
    """What every epoch of one fit needs."""

    config: TrainConfig
    fold: int
    device: torch.device
    d: _Dist
    model: nn.Module
    net: nn.Module
    data: _FoldData
    paths: dict[str, Path]
    bar: tqdm

    @property
    def amp(self) -> bool:
        return self.config.amp and self.device.type == "cuda"


def _run_stage(run: _Run, state: dict, dataset, n_epochs: int, peak_lr: float, steps: int) -> None:
    """Epochs of one stage from ``state["epoch"]``: train, validate, keep the best, checkpoint."""
    config = run.config
    optimizer = torch.optim.AdamW(
        run.model.parameters(), lr=peak_lr, weight_decay=config.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _lr_lambda(steps * n_epochs, config.warmup, config.min_lr_ratio)
    )
    if state["epoch"] > 0:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
    scaler = torch.amp.GradScaler("cuda", enabled=run.amp and not torch.cuda.is_bf16_supported())
    stage = state["stage"]
    while state["epoch"] < n_epochs and not (
        config.patience and state["bad_epochs"] >= config.patience
    ):
        epoch = state["epoch"]
        started = time.perf_counter()
        train_loss = _train_epoch(run, dataset, stage, epoch, optimizer, scheduler, scaler)
        preds = _evaluate(run.model, run.data, config, run.device, run.d, run.amp)
        kl_many, kl_all, n_many = _scores(run.data.val_rows, preds, config.val_min_votes)
        score = kl_many if n_many else kl_all
        improved = score < state["best_score"]
        if improved:
            best = {k: v.detach().cpu().clone() for k, v in run.model.state_dict().items()}
            state.update(
                best_score=score,
                best_kl=kl_many,
                best_kl_all=kl_all,
                best_stage=stage,
                best_epoch=epoch,
                best_preds=preds,
                best_state_dict=best,
                bad_epochs=0,
                n_val_min_votes=n_many,
            )
        else:
            state["bad_epochs"] += 1
        state["metrics"].append(
            {
                "stage": stage,
                "epoch": epoch,
                "lr": optimizer.param_groups[0]["lr"],
                "train_loss": train_loss,
                "val_kl": kl_many,
                "val_kl_all": kl_all,
                "n_train": len(dataset),
                "n_val": len(preds),
                "n_val_min_votes": n_many,
                "best": improved,
                "seconds": time.perf_counter() - started,
            }
        )
        state["epoch"] = epoch + 1
        run.bar.set_postfix(stage=stage, loss=f"{train_loss:.3f}", val_kl=f"{score:.3f}")
        if run.d.main:
            _write_epoch(state, run.model, optimizer, scheduler, config, run.paths, improved)
        run.d.barrier()


def _steps_per_epoch(dataset, config: TrainConfig, d: _Dist) -> int:
    if dataset is None:
        return 0
    return len(_train_batches(len(dataset), config, d, key=0))


def _train_batches(n: int, config: TrainConfig, d: _Dist, *, key: int) -> list[np.ndarray]:
    """The epoch's shuffled batches for this process (the last one dropped if it would be ragged)."""
    limit = config.max_train_samples
    used = min(n, limit) if limit else n
    return epoch_batches(
        n,
        config.batch_size,
        seed=config.seed,
        epoch=key,
        limit=limit,
        rank=d.rank,
        world_size=d.world_size,
        drop_last=used // d.world_size > config.batch_size,
    )


def _checkpoint_header(config: TrainConfig) -> dict:
    return {
        "format": CHECKPOINT_FORMAT,
        "model_config": config.model.to_dict(),
        "train_config": config.to_dict(),
        "torch_version": torch.__version__,
    }


def _write_epoch(state, model, optimizer, scheduler, config, paths, improved: bool) -> None:
    """After an epoch: best checkpoint (if improved), metrics CSV, then the resume checkpoint."""
    header = _checkpoint_header(config)
    if improved:
        _save(
            {
                **header,
                "state_dict": state["best_state_dict"],
                "epoch": state["best_epoch"],
                "stage": state["best_stage"],
                "best_kl": state["best_kl"],
                "best_kl_all": state["best_kl_all"],
            },
            paths["best"],
        )
    io.write_csv_atomic(pd.DataFrame(state["metrics"]), paths["metrics"])
    _save(
        {
            **header,
            **state,
            "state_dict": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": {"torch": torch.get_rng_state()},
        },
        paths["last"],
    )


def _train_epoch(run: _Run, dataset, stage: int, epoch: int, optimizer, scheduler, scaler) -> float:
    """One pass over the stage's training units; returns the mean loss over all processes' batches.

    The epoch's randomness (offsets, order, augmentations, dropout) is a function of
    ``(seed, fold, stage, epoch, rank)`` only, so a resumed fit replays it exactly.
    """
    config, device, d = run.config, run.device, run.d
    key = stage * 100_000 + epoch
    dataset.set_epoch(key)
    torch.manual_seed(_epoch_seed(config, run.fold, stage, epoch, d.rank))
    rng = np.random.default_rng([config.seed, run.fold, stage, epoch, d.rank])
    batches = _train_batches(len(dataset), config, d, key=key)
    run.net.train()
    losses = []
    for step, batch in enumerate(_loader(dataset, batches, config.num_workers, device)):
        target = batch["target"].to(device)
        weights = loss_weights(
            batch["total_votes"].to(device),
            vote_weight=config.vote_weight,
            few_vote_decay=config.few_vote_decay if stage == 1 else 1.0,
            min_votes=config.min_votes_stage2,
            epoch=epoch,
        )
        x = _model_input(batch, config, device, rng)
        if config.augment.mixup and rng.random() < config.augment.mixup:
            x, target, weights = mixup(
                x, target, weights, alpha=config.augment.mixup_alpha, rng=rng
            )
        if config.channels_last and device.type == "cuda" and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with _autocast(device, run.amp):
            logits = run.net(x)
        loss = kl_loss(logits.float(), target, weights, output=config.model.output)
        if not torch.isfinite(loss):
            ids = batch["label_id"][:8].tolist()
            raise FloatingPointError(
                f"{config.model.name} fold {run.fold}: non-finite loss {loss.item()} in stage "
                f"{stage}, epoch {epoch}, step {step} (batch of label_ids {ids}...); the last good "
                f"checkpoint is kept at {run.paths['last']}"
            )
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if config.grad_clip:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(run.net.parameters(), config.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        losses.append(loss.item())
        run.bar.update(1)
    every = np.concatenate([np.asarray(x, dtype=np.float64) for x in d.gather(losses)])
    return float(every.mean()) if every.size else math.nan


# --------------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------------


def _parse_value(text: str):
    """``--set`` values: JSON when it parses (numbers, true/false/null, lists), else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _apply_overrides(config: TrainConfig, pairs: list[str]) -> TrainConfig:
    """Apply ``key=value`` pairs (``augment.mixup=0.5``, ``model.drop_rate=0.2``) to ``config``."""
    d = config.to_dict()
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--set expects key=value, got {pair!r}")
        *parents, leaf = key.split(".")
        target = d
        for part in parents:
            if not isinstance(target.get(part), dict):
                raise ValueError(
                    f"--set {key}: {part!r} is not a nested config (try model.* or augment.*)"
                )
            target = target[part]
        if leaf not in target:
            raise ValueError(f"--set {key}: unknown field {leaf!r} (known: {sorted(target)})")
        target[leaf] = _parse_value(value)
    return TrainConfig.from_dict(d)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hms train",
        description="Train one (backbone, fold): checkpoints under RUN_DIR/models/<name>/, OOF under "
        "RUN_DIR/oof/. Runs unchanged under `torchrun --nproc_per_node=N -m hmslib.train ...`.",
    )
    p.add_argument("data_dir", help="Kaggle-layout data folder (train.csv, train_eegs/, ...)")
    p.add_argument(
        "--backbone", help="timm name (e.g. tf_efficientnet_lite0) or a raw 1-D model name"
    )
    p.add_argument("--fold", required=True, help="validation fold in [0, n_folds) or 'all'")
    p.add_argument("--epochs", type=int, help="stage 1 epochs")
    p.add_argument("--stage2-epochs", type=int, help="stage 2 epochs (high-agreement windows)")
    p.add_argument(
        "--repr", help="representation (default: the project default for the model kind)"
    )
    p.add_argument("--out", help="run folder (default outputs/run)")
    p.add_argument("--name", help="model name used in output paths (default <backbone>_<repr>)")
    p.add_argument(
        "--config", help="start from a TrainConfig JSON (e.g. a run's train_config.json)"
    )
    p.add_argument(
        "--cache", help="feature cache folder of the representation (default: build one)"
    )
    p.add_argument("--source", choices=SOURCES, help="cached representations or raw windows")
    p.add_argument("--n-folds", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"))
    p.add_argument("--workers", type=int, help="DataLoader worker processes")
    p.add_argument("--max-train-samples", type=int, help="training units per epoch (quick runs)")
    p.add_argument(
        "--pretrained",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="start from ImageNet weights (offline for tf_efficientnet_lite0/1/2)",
    )
    p.add_argument("--pretrained-path", help="local weights file for the backbone")
    p.add_argument("--output", choices=("softmax", "entmax15"), help="output mapping of the model")
    p.add_argument("--restart", action="store_true", help="ignore an existing fold<k>_last.pt")
    p.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="any other TrainConfig field, e.g. label_smoothing=1 augment.mixup=0.5",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Build the :class:`TrainConfig` a ``hms train`` command line describes.

    Raises
    ------
    ValueError
        Neither ``--backbone`` nor ``--config``, or invalid values.
    """
    from hmslib.models import RAW_BACKBONES
    from hmslib.spectrogram import DEFAULT_RAW_REPR, DEFAULT_REPR

    if args.config:
        config = TrainConfig.from_json(args.config)
        model = config.model
        if args.backbone and args.backbone != model.backbone:
            raise ValueError(
                f"--backbone {args.backbone} differs from {args.config} ({model.backbone}); drop one"
            )
    elif not args.backbone:
        raise ValueError("give --backbone NAME (or --config a train_config.json)")
    else:
        kind = "raw" if args.backbone in RAW_BACKBONES else "image"
        repr_name = args.repr or (DEFAULT_RAW_REPR if kind == "raw" else DEFAULT_REPR)
        model = ModelConfig(
            name=args.name or f"{args.backbone}_{repr_name}",
            kind=kind,
            backbone=args.backbone,
            repr=repr_name,
        )
        config = TrainConfig(data_dir=args.data_dir, model=model)
    model_changes = {
        "repr": args.repr if args.config else None,
        "name": args.name if args.config else None,
        "pretrained": args.pretrained,
        "pretrained_path": args.pretrained_path,
        "output": args.output,
    }
    model = dataclasses.replace(model, **{k: v for k, v in model_changes.items() if v is not None})
    changes = {
        "data_dir": args.data_dir,
        "model": model,
        "out_dir": args.out,
        "cache_dir": args.cache,
        "source": args.source,
        "n_folds": args.n_folds,
        "seed": args.seed,
        "epochs": args.epochs,
        "stage2_epochs": args.stage2_epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "device": args.device,
        "num_workers": args.workers,
        "max_train_samples": args.max_train_samples,
    }
    config = dataclasses.replace(config, **{k: v for k, v in changes.items() if v is not None})
    if args.restart:
        config = dataclasses.replace(config, resume=False)
    return _apply_overrides(config, args.set)


def main(argv: list[str] | None = None) -> int:
    """``hms train DATA_DIR --backbone NAME --fold K [--epochs E] [--repr NAME] [--out DIR] ...``."""
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        config = config_from_args(args)
        folds = range(config.n_folds) if args.fold == "all" else [int(args.fold)]
    except ValueError as err:
        print(f"hms train: {err}", file=sys.stderr)
        return 2
    for fold in folds:
        try:
            result = fit_fold(config, fold, progress=not args.quiet)
        except (ValueError, FileNotFoundError) as err:
            print(f"hms train: {err}", file=sys.stderr)
            return 2
        if int(os.environ.get("RANK", "0")) == 0:
            r = result
            print(
                f"{r['model']} fold {fold}: val KL {r['val_kl']:.4f} (>= {config.val_min_votes} "
                f"votes, n={r['n_val_min_votes']}), {r['val_kl_all']:.4f} (all, n={r['n_val']}); "
                f"best stage {r['best_stage']} epoch {r['best_epoch']} -> {r['checkpoint']}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
