"""Training one (model, fold): two stages, early stopping, checkpoints, OOF predictions, DDP.

The recipe of the top HMS solutions, with each credited choice a switch of
:class:`hmslib.config.Recipe`:

- patient-grouped folds (:func:`hmslib.labels.make_folds`), validation on the fold's windows scored
  with the competition metric: each epoch on the >= 10-vote windows (early stopping reads only
  those), then once with the best weights on the rest, for the OOF file and the all-window KL;
- :func:`hmslib.losses.kl_loss`: KL divergence of the predicted distribution from the vote
  distribution;
- AdamW, linear warm-up then cosine decay, gradient clipping, mixed precision and channels-last
  on GPU;
- stage 1 on every training window, stage 2 fine-tuning on the high-agreement windows
  (``min_votes_stage2`` votes or more), starting from stage 1's best weights;
- per epoch one random labelled offset per consolidated group (or per EEG, with the EEG's averaged
  target), label smoothing on vote counts, loss weights by vote count and decaying few-vote weights,
  anatomy-aware augmentations (:mod:`hmslib.augment`).

:func:`fit_fold` writes, atomically, the files of :func:`hmslib.checkpoints.fold_paths` under the run
folder: the best checkpoint ``models/<name>/fold<k>.pt``, the resume checkpoint ``fold<k>_last.pt``,
``fold<k>_metrics.csv``, ``train_config.json`` and ``oof/<name>_fold<k>.parquet``. Every checkpoint
also holds ``class_prior``, the mean vote distribution of the fold's training rows, which prediction
gives to windows without signal.

An interrupted fit resumes from ``fold<k>_last.pt`` and ends exactly where an uninterrupted one
would (on CPU with the same seed), with the same files: every epoch's randomness is derived from
``(seed, fold, stage, epoch)``. Under ``torchrun --nproc_per_node=N -m hmslib.cli train ...`` the same
code trains with DistributedDataParallel (gloo on CPU, nccl on GPU); rank 0 writes every file.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from hmslib import io
from hmslib._checks import write_csv_atomic, write_parquet_atomic
from hmslib.augment import augment_features, augment_signal, mixup
from hmslib.cache import build_cache, open_cache
from hmslib.checkpoints import fold_paths, read_checkpoint, save_checkpoint
from hmslib.config import TrainConfig
from hmslib.constants import CLASSES, PRED_COLUMNS, VOTE_COLUMNS
from hmslib.datasets import CacheDataset, RawWindowDataset, epoch_batches, training_units
from hmslib.labels import class_prior, make_folds, total_votes
from hmslib.losses import kl_loss, loss_weights
from hmslib.metrics import kaggle_kl, kl_split
from hmslib.models import build_model, probabilities
from hmslib.predict import resolve_device
from hmslib.representations import compute_representation, representation_info

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


def _shard(indices: np.ndarray, d: _Dist) -> np.ndarray:
    """Contiguous share of ``indices`` for this process (each index on exactly one process)."""
    return np.array_split(indices, d.world_size)[d.rank]


# --------------------------------------------------------------------------------------------------
# data preparation
# --------------------------------------------------------------------------------------------------


def _check_fold(fold: int, n_folds: int) -> None:
    if not isinstance(fold, int | np.integer) or not 0 <= fold < n_folds:
        raise ValueError(
            f"fold must be an integer in [0, {n_folds - 1}] (n_folds={n_folds}), got {fold!r}"
        )


def _resolve_cache(config: TrainConfig, d: _Dist, *, progress: bool) -> Path:
    """The feature cache of ``config.recipe.model.representation``.

    ``cache_dir`` may name one complete cache (it is checked) or a folder of caches, where
    :func:`hmslib.cache.build_cache` reuses or builds the one for this representation; unset, the
    run's ``<out_dir>/cache`` is that folder. Under DDP rank 0 builds and the others wait.
    """
    given = None if config.env.cache_dir is None else Path(config.env.cache_dir)
    if given is not None and (given / "COMPLETE").is_file():
        path = given
    else:
        path = None
        if d.main:
            parent = given if given is not None else Path(config.env.out_dir) / "cache"
            path = str(
                build_cache(
                    config.env.data_dir,
                    parent,
                    representation=config.recipe.model.representation,
                    split="train",
                    workers=max(1, config.env.num_workers),
                    progress=progress,
                )
            )
        path = Path(d.broadcast(path))
    cache = open_cache(path)
    if cache.representation != config.recipe.model.representation:
        raise ValueError(
            f"{path}: the cache holds representation {cache.representation!r} but model {config.recipe.model.name!r} "
            f"expects {config.recipe.model.representation!r}; build one with `hms preprocess {config.env.data_dir} --out "
            f"<folder> --repr {config.recipe.model.representation}` or leave cache_dir unset"
        )
    return path


@dataclass
class _FoldData:
    """Validation rows of one fold, their dataset, the rows early stopping scores each epoch, the
    training dataset of each stage, and the class prior (mean vote distribution) of the fold's
    training rows."""

    val_rows: pd.DataFrame
    val: torch.utils.data.Dataset
    early_stop_rows: np.ndarray
    make_train: Callable[[int], torch.utils.data.Dataset | None]
    class_prior: np.ndarray

    @property
    def votes(self) -> np.ndarray:
        """Vote counts float64 ``(n_val, 6)`` of the validation rows."""
        return self.val_rows[list(VOTE_COLUMNS)].to_numpy(np.float64)

    @property
    def other_rows(self) -> np.ndarray:
        """Validation rows scored only once, with the best weights, after training."""
        return np.setdiff1d(np.arange(len(self.val_rows)), self.early_stop_rows)


def _prepare(config: TrainConfig, fold: int, d: _Dist, *, progress: bool) -> _FoldData:
    """Split train.csv into the fold's training and validation rows and build the datasets."""
    df = io.read_train_csv(config.env.data_dir)
    folds = make_folds(df, config.recipe.n_folds, config.recipe.seed)
    train_rows, val_rows = df[folds != fold], df[folds == fold].reset_index(drop=True)
    if len(val_rows) == 0 or len(train_rows) == 0:
        raise ValueError(
            f"{config.env.data_dir}: fold {fold} of {config.recipe.n_folds} leaves no training or validation rows"
        )
    info = representation_info(config.recipe.model.representation)
    cache = _resolve_cache(config, d, progress=progress) if config.recipe.source == "cache" else None

    def make(rows: pd.DataFrame, *, by: str, smoothing: float, training: bool):
        units = training_units(rows, by=by, smoothing=smoothing)
        if cache is not None:
            return CacheDataset(cache, units, seed=config.recipe.seed, random_offset=training)
        return RawWindowDataset(
            config.env.data_dir,
            units,
            with_spectrogram=info.uses_kaggle_spectrogram,
            seed=config.recipe.seed,
            random_offset=training,
            max_shift_s=config.recipe.augment.time_shift_s if training else 0.0,
        )

    def make_train(stage: int):
        rows = (
            train_rows
            if stage == 1
            else train_rows[total_votes(train_rows) >= config.recipe.min_votes_stage2]
        )
        if len(rows) == 0:
            return None
        return make(rows, by=config.recipe.sample_by, smoothing=config.recipe.label_smoothing, training=True)

    val = make(val_rows, by="window", smoothing=0.0, training=False)
    many = np.flatnonzero(total_votes(val_rows) >= config.recipe.val_min_votes)
    early_stop_rows = many if len(many) else np.arange(len(val_rows))
    return _FoldData(val_rows, val, early_stop_rows, make_train, class_prior(train_rows))


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
    name = config.recipe.model.representation
    if "x" in batch:
        x = batch["x"].to(device, non_blocking=True)
        signal_done = False
    else:
        eeg = batch["eeg"].to(device, non_blocking=True)
        spec = batch.get("spec")
        spec = None if spec is None else spec.to(device, non_blocking=True)
        if rng is not None:
            eeg, spec = augment_signal(eeg, spec, config=config.recipe.augment, rng=rng)
        x = compute_representation(name, eeg, spec, device=device)
        signal_done = True
    if rng is not None:
        x = augment_features(x, name, config=config.recipe.augment, rng=rng, signal_done=signal_done)
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
    return int(np.random.SeedSequence([config.recipe.seed, fold, stage, epoch, rank]).generate_state(1)[0])


def _autocast(device: torch.device, enabled: bool):
    if enabled and device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return torch.autocast("cpu", enabled=False)


def _evaluate(
    model, fold_data: _FoldData, rows: np.ndarray, config: TrainConfig, device, d: _Dist, amp: bool
) -> np.ndarray:
    """Probabilities float64 ``(len(rows), 6)`` for the validation windows at positions ``rows``
    (gathered over processes, in the order of ``rows``).

    ``model`` is the bare module, not its DDP wrapper: processes may run different numbers of
    evaluation batches, which must not trigger DDP's collective buffer broadcasts.
    """
    d.sync_buffers(model)
    mine = _shard(rows, d)
    batches = [mine[i : i + config.recipe.batch_size] for i in range(0, len(mine), config.recipe.batch_size)]
    model.eval()
    preds = []
    with torch.inference_mode():
        for batch in _loader(fold_data.val, batches, config.env.num_workers, device):
            x = _model_input(batch, config, device, None)
            if config.env.channels_last and device.type == "cuda" and x.ndim == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            with _autocast(device, amp):
                logits = model(x)
            preds.append(probabilities(logits, config.recipe.model.output).double().cpu().numpy())
    local = np.concatenate(preds) if preds else np.zeros((0, len(CLASSES)))
    return np.concatenate(d.gather(local))


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


def _check_resumable(ckpt: dict, config: TrainConfig, path: Path) -> None:
    """Raise when the checkpoint at ``path`` was written by a different recipe."""
    old, new = ckpt["train_config"].recipe.to_dict(), config.recipe.to_dict()
    differ = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if differ:
        detail = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in differ[:6])
        raise ValueError(
            f"{path}: checkpoint from another recipe ({detail}); use another run folder, delete "
            "the checkpoint, or start over with `hms train --restart` (resume=False)"
        )


def _read_resume(path: Path) -> dict:
    """The resume checkpoint, with a hint on how to start fresh when it cannot be read."""
    try:
        return read_checkpoint(path)
    except ValueError as err:
        raise ValueError(
            f"{err}; cannot resume from it: delete it, or start over with `hms train --restart` "
            "(resume=False)"
        ) from err


def _summary(
    state: dict, paths: dict[str, Path], fold: int, config: TrainConfig, resumed: bool
) -> dict:
    return {
        "model": config.recipe.model.name,
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
        The run; ``config.recipe.model`` names the model (``model.name`` is used in output paths).
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
        No Kaggle-layout data folder at ``config.env.data_dir``.
    """
    _check_fold(fold, config.recipe.n_folds)
    representation_info(config.recipe.model.representation)
    io.check_data_dir(config.env.data_dir, "train")
    d = _init_distributed(config.env.device)
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
    paths = fold_paths(config.env.out_dir, config.recipe.model.name, fold)
    device = resolve_device(config.env.device, local_rank=d.local_rank)
    torch.manual_seed(config.recipe.seed)
    model = build_model(config.recipe.model)
    state = None
    resume_from: dict = {}
    if config.env.resume and paths["last"].is_file():
        ckpt = _read_resume(paths["last"])
        _check_resumable(ckpt, config, paths["last"])
        state = {k: ckpt[k] for k in _initial_state(0)}
        resume_from = {k: ckpt[k] for k in ("state_dict", "optimizer", "scheduler") if k in ckpt}
    fold_data = _prepare(config, fold, d, progress=progress and d.main)
    if state is not None and state["finished"]:
        if d.main and not paths["oof"].is_file():
            write_parquet_atomic(
                _oof_table(fold_data.val_rows, state["best_preds"], fold), paths["oof"]
            )
        return _summary(state, paths, fold, config, resumed=True)
    resumed = state is not None
    if resumed:
        model.load_state_dict(resume_from["state_dict"])
    else:
        state = _initial_state(len(fold_data.val_rows))
    if d.main:
        config.to_json(paths["config"])

    model = model.to(device)
    if config.env.channels_last and device.type == "cuda" and config.recipe.model.kind == "image":
        model = model.to(memory_format=torch.channels_last)
    net = model
    if d.world_size > 1:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )

    stages = [
        (1, config.recipe.epochs, config.recipe.lr),
        (2, config.recipe.stage2_epochs, config.recipe.lr * config.recipe.stage2_lr_factor),
    ]
    train_sets = {
        stage: fold_data.make_train(stage) if n_epochs else None for stage, n_epochs, _ in stages
    }
    steps = {s: _steps_per_epoch(train_sets[s], config, d) for s, _, _ in stages}
    bar = tqdm(
        total=sum(steps[s] * n for s, n, _ in stages),
        desc=f"{config.recipe.model.name} fold {fold}",
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
    run = _Run(config, fold, device, d, model, net, fold_data, paths, bar, resume_from)
    try:
        for stage, n_epochs, peak_lr in stages:
            if stage < state["stage"] or train_sets[stage] is None:
                continue
            if stage > state["stage"]:  # stage 2 fine-tunes stage 1's best weights
                state.update(stage=stage, epoch=0, bad_epochs=0)
                if state["best_state_dict"] is not None:
                    model.load_state_dict(state["best_state_dict"])
            _run_stage(run, state, train_sets[stage], n_epochs, peak_lr, steps[stage])
        _complete_predictions(run, state)
        state["finished"] = True
        if d.main:
            write_parquet_atomic(
                _oof_table(fold_data.val_rows, state["best_preds"], fold), paths["oof"]
            )
            save_checkpoint(
                {
                    "train_config": config.to_dict(),
                    "class_prior": fold_data.class_prior.tolist(),
                    **state,
                    "state_dict": model.state_dict(),
                },
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
    resume_from: dict

    @property
    def amp(self) -> bool:
        return self.config.env.amp and self.device.type == "cuda"


def _run_stage(run: _Run, state: dict, dataset, n_epochs: int, peak_lr: float, steps: int) -> None:
    """Epochs of one stage from ``state["epoch"]``: train, validate, keep the best, checkpoint."""
    config = run.config
    optimizer = torch.optim.AdamW(
        run.model.parameters(), lr=peak_lr, weight_decay=config.recipe.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _lr_lambda(steps * n_epochs, config.recipe.warmup, config.recipe.min_lr_ratio)
    )
    if state["epoch"] > 0:  # resumed within this stage: the interrupted run's optimiser
        optimizer.load_state_dict(run.resume_from["optimizer"])
        scheduler.load_state_dict(run.resume_from["scheduler"])
    scaler = torch.amp.GradScaler("cuda", enabled=run.amp and not torch.cuda.is_bf16_supported())
    stage = state["stage"]
    while state["epoch"] < n_epochs and not (
        config.recipe.patience and state["bad_epochs"] >= config.recipe.patience
    ):
        epoch = state["epoch"]
        started = time.perf_counter()
        train_loss = _train_epoch(run, dataset, stage, epoch, optimizer, scheduler, scaler)
        rows = run.data.early_stop_rows
        preds = _evaluate(run.model, run.data, rows, config, run.device, run.d, run.amp)
        score = kaggle_kl(run.data.votes[rows], preds)
        improved = score < state["best_score"]
        if improved:
            best = _cpu_state_dict(run.model)
            state.update(
                best_score=score,
                best_stage=stage,
                best_epoch=epoch,
                best_preds=preds,
                best_state_dict=best,
                bad_epochs=0,
            )
        else:
            state["bad_epochs"] += 1
        state["metrics"].append(
            {
                "stage": stage,
                "epoch": epoch,
                "lr": optimizer.param_groups[0]["lr"],
                "train_loss": train_loss,
                "val_kl": score,
                "n_train": len(dataset),
                "n_val": len(rows),
                "best": improved,
                "seconds": time.perf_counter() - started,
            }
        )
        state["epoch"] = epoch + 1
        run.bar.set_postfix(stage=stage, loss=f"{train_loss:.3f}", val_kl=f"{score:.3f}")
        if run.d.main:
            _write_epoch(state, run, optimizer, scheduler, improved)
        run.d.barrier()


def _cpu_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of ``model``'s weights on the CPU, unaffected by further training."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _complete_predictions(run: _Run, state: dict) -> None:
    """Predict the validation windows early stopping did not score, with the best weights, and
    put every window's prediction and the fold's final KL figures in ``state``.

    Each epoch scores only ``early_stop_rows`` (what early stopping reads); the OOF file needs every
    window, which one pass after training gives at the cost of a fraction of one epoch's validation.
    """
    data, config = run.data, run.config
    if len(state["best_preds"]) == len(data.val_rows):
        # every window scored already: a fold without >= val_min_votes windows, or a fit resumed
        # from a checkpoint of an hmslib that scored every window each epoch
        preds = np.asarray(state["best_preds"], dtype=np.float64)
    else:
        preds = np.empty((len(data.val_rows), len(CLASSES)))
        preds[data.early_stop_rows] = state["best_preds"]
        rest = data.other_rows
        last = _cpu_state_dict(run.model)
        run.model.load_state_dict(state["best_state_dict"])
        preds[rest] = _evaluate(run.model, data, rest, config, run.device, run.d, run.amp)
        run.model.load_state_dict(last)
    kl_many, kl_all, n_many = kl_split(data.votes, preds, min_votes=config.recipe.val_min_votes)
    state.update(best_preds=preds, best_kl=kl_many, best_kl_all=kl_all, n_val_min_votes=n_many)


def _steps_per_epoch(dataset, config: TrainConfig, d: _Dist) -> int:
    if dataset is None:
        return 0
    return len(_train_batches(len(dataset), config, d, key=0))


def _train_batches(n: int, config: TrainConfig, d: _Dist, *, key: int) -> list[np.ndarray]:
    """The epoch's shuffled batches for this process (the last one dropped if it would be ragged)."""
    limit = config.recipe.max_train_samples
    used = min(n, limit) if limit else n
    return epoch_batches(
        n,
        config.recipe.batch_size,
        seed=config.recipe.seed,
        epoch=key,
        limit=limit,
        rank=d.rank,
        world_size=d.world_size,
        drop_last=used // d.world_size > config.recipe.batch_size,
    )


def _write_epoch(state, run: _Run, optimizer, scheduler, improved: bool) -> None:
    """After an epoch: best checkpoint (if improved), metrics CSV, then the resume checkpoint."""
    model, paths = run.model, run.paths
    header = {"train_config": run.config.to_dict(), "class_prior": run.data.class_prior.tolist()}
    if improved:
        save_checkpoint(
            {
                **header,
                "state_dict": state["best_state_dict"],
                "epoch": state["best_epoch"],
                "stage": state["best_stage"],
                "best_score": state["best_score"],
            },
            paths["best"],
        )
    write_csv_atomic(pd.DataFrame(state["metrics"]), paths["metrics"])
    save_checkpoint(
        {
            **header,
            **state,
            "state_dict": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
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
    rng = np.random.default_rng([config.recipe.seed, run.fold, stage, epoch, d.rank])
    batches = _train_batches(len(dataset), config, d, key=key)
    run.net.train()
    losses = []
    for step, batch in enumerate(_loader(dataset, batches, config.env.num_workers, device)):
        target = batch["target"].to(device)
        weights = loss_weights(
            batch["total_votes"].to(device),
            vote_weight=config.recipe.vote_weight,
            few_vote_decay=config.recipe.few_vote_decay if stage == 1 else 1.0,
            min_votes=config.recipe.min_votes_stage2,
            epoch=epoch,
        )
        x = _model_input(batch, config, device, rng)
        if config.recipe.augment.mixup and rng.random() < config.recipe.augment.mixup:
            x, target, weights = mixup(
                x, target, weights, alpha=config.recipe.augment.mixup_alpha, rng=rng
            )
        if config.env.channels_last and device.type == "cuda" and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with _autocast(device, run.amp):
            logits = run.net(x)
        loss = kl_loss(logits.float(), target, weights, output=config.recipe.model.output)
        if not torch.isfinite(loss):
            ids = batch["label_id"][:8].tolist()
            raise FloatingPointError(
                f"{config.recipe.model.name} fold {run.fold}: non-finite loss {loss.item()} in stage "
                f"{stage}, epoch {epoch}, step {step} (batch of label_ids {ids}...); the last good "
                f"checkpoint is kept at {run.paths['last']}"
            )
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if config.recipe.grad_clip:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(run.net.parameters(), config.recipe.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        losses.append(loss.item())
        run.bar.update(1)
    every = np.concatenate([np.asarray(x, dtype=np.float64) for x in d.gather(losses)])
    return float(every.mean()) if every.size else math.nan


