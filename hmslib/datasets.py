"""Torch datasets for training: one sample per training unit, a random labelled offset per epoch.

A *training unit* is what one epoch visits once (see :func:`training_units`):

- ``"group"``: a consolidated group (:func:`hmslib.labels.consolidate_windows`), i.e. the overlapping
  windows of one EEG that share a vote vector; each epoch takes one of its offsets at random;
- ``"eeg"``: every labelled window of one EEG, with the EEG's averaged target (2nd place's sampling);
- ``"window"``: each label row on its own (validation and OOF: one prediction per ``label_id``).

The datasets are indexed by *batches*: ``dataset[[i, j, k]]`` returns one ready batch (a dict of
tensors), read with one vectorised memory-map access (:class:`CacheDataset`) or one file read per EEG
(:class:`RawWindowDataset`). Use them with ``DataLoader(dataset, sampler=batches, batch_size=None)``
where ``batches`` yields index arrays (see :func:`epoch_batches`). The random choices of an epoch are
fixed by :meth:`set_epoch` from ``(seed, epoch)``, so a run is reproducible and resumable whatever the
number of loader workers.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from hmslib import io
from hmslib._checks import check_number, check_option, check_votes
from hmslib.cache import open_cache
from hmslib.constants import (
    CLASSES,
    EEG_CHANNELS,
    EEG_WINDOW_SAMPLES,
    SPEC_N_FREQS,
    SPEC_REGIONS,
    SPEC_WINDOW_COLUMNS,
    TARGET_COLUMNS,
    VOTE_COLUMNS,
)
from hmslib.labels import consolidate_windows

UNIT_KINDS = ("group", "eeg", "window")


def vote_targets(votes: np.ndarray, *, smoothing: float = 0.0) -> np.ndarray:
    """Vote counts -> probability targets, with optional smoothing on the counts.

    ``(votes + smoothing) / (total + 6 * smoothing)``: adding pseudo-votes before normalising smooths a
    3-vote row much more than a 20-vote row (the 1st-place solution's label smoothing).

    Parameters
    ----------
    votes : numpy.ndarray
        ``(n, 6)`` non-negative vote counts in ``CLASSES`` order.
    smoothing : float
        Pseudo-votes added to every class (0 = plain normalisation).

    Returns
    -------
    numpy.ndarray
        float64 ``(n, 6)``, rows sum to 1.

    Raises
    ------
    ValueError
        Negative smoothing or votes, or a row without votes.
    """
    check_number("label smoothing (pseudo-votes)", smoothing, low=0)
    votes = check_votes(votes, what="vote_targets")
    totals = votes.sum(axis=1, keepdims=True)
    return (votes + smoothing) / (totals + votes.shape[1] * smoothing)


def training_units(df: pd.DataFrame, *, by: str = "group", smoothing: float = 0.0) -> pd.DataFrame:
    """Group label rows into the units one epoch visits once.

    Parameters
    ----------
    df : pandas.DataFrame
        train.csv rows (all 15 columns).
    by : {"group", "eeg", "window"}
        ``"group"``: one unit per consolidated (EEG, vote vector) group; ``"eeg"``: one unit per EEG,
        target = mean of its rows' targets; ``"window"``: one unit per row.
    smoothing : float
        Pseudo-votes per class added before normalising (see :func:`vote_targets`).

    Returns
    -------
    pandas.DataFrame
        One row per unit: ``eeg_id, patient_id, spectrogram_id, total_votes`` (float: the mean over the
        unit's rows for ``"eeg"``), ``n_windows``, list columns ``label_ids, eeg_offsets,
        spectrogram_offsets`` (seconds) and ``target_seizure ... target_other`` (``TARGET_COLUMNS``).

    Raises
    ------
    ValueError
        Unknown ``by`` or invalid votes.
    """
    check_option("training unit", by, UNIT_KINDS)
    if by == "group":
        units = consolidate_windows(df)
        target = vote_targets(units[list(VOTE_COLUMNS)].to_numpy(), smoothing=smoothing)
        units = units.drop(columns=list(VOTE_COLUMNS))
        units["total_votes"] = units["total_votes"].astype(np.float64)
    else:
        rows = df.reset_index(drop=True)
        row_target = vote_targets(rows[list(VOTE_COLUMNS)].to_numpy(), smoothing=smoothing)
        row_votes = rows[list(VOTE_COLUMNS)].sum(axis=1).astype(np.float64)
        codes = pd.factorize(rows["label_id"] if by == "window" else rows["eeg_id"])[0]
        grouped = rows.assign(total_votes=row_votes).groupby(codes, sort=True)
        units = grouped.agg(
            eeg_id=("eeg_id", "first"),
            patient_id=("patient_id", "first"),
            spectrogram_id=("spectrogram_id", "first"),
            total_votes=("total_votes", "mean"),
            n_windows=("eeg_id", "size"),
            label_ids=("label_id", list),
            eeg_offsets=("eeg_label_offset_seconds", list),
            spectrogram_offsets=("spectrogram_label_offset_seconds", list),
        ).reset_index(drop=True)
        target = np.zeros((len(units), len(CLASSES)))
        np.add.at(target, codes, row_target)
        target /= np.bincount(codes, minlength=len(units))[:, None]
    for k, column in enumerate(TARGET_COLUMNS):
        units[column] = target[:, k]
    return units


def _ragged(units: pd.DataFrame, column: str, dtype) -> np.ndarray:
    """Flatten a list column of a units table into one array."""
    return np.fromiter((v for values in units[column] for v in values), dtype=dtype)


def epoch_choice(counts: np.ndarray, *, seed: int, epoch: int) -> np.ndarray:
    """Which member of each unit an epoch uses: int64 ``(n,)`` with ``0 <= choice < counts``.

    Deterministic in ``(seed, epoch)``; different epochs give independent draws.
    """
    rng = np.random.default_rng([seed, epoch, 0])
    return np.minimum((rng.random(len(counts)) * counts).astype(np.int64), counts - 1)


def epoch_batches(
    n: int,
    batch_size: int,
    *,
    seed: int,
    epoch: int,
    shuffle: bool = True,
    limit: int | None = None,
    rank: int = 0,
    world_size: int = 1,
    drop_last: bool = False,
) -> list[np.ndarray]:
    """Index batches of one epoch, sharded for distributed training.

    Parameters
    ----------
    n : int
        Number of units.
    batch_size : int
        Units per batch on each process.
    seed, epoch : int
        The permutation is a function of these only (identical on every process).
    shuffle : bool
        Permute (training) or keep order (evaluation).
    limit : int, optional
        Use only the first ``limit`` units of the permutation (quick runs).
    rank, world_size : int
        This process takes every ``world_size``-th unit from ``rank``; every process gets the same
        number of batches.
    drop_last : bool
        Drop the last batch when it is smaller than ``batch_size``.

    Returns
    -------
    list of numpy.ndarray
        int64 index arrays.
    """
    order = np.random.default_rng([seed, epoch, 1]).permutation(n) if shuffle else np.arange(n)
    if limit is not None:
        order = order[:limit]
    per_rank = len(order) // world_size if world_size > 1 else len(order)
    order = order[rank::world_size][:per_rank]
    stop = len(order) - len(order) % batch_size if drop_last else len(order)
    return [order[i : i + batch_size] for i in range(0, stop, batch_size)]


class _UnitsDataset(torch.utils.data.Dataset):
    """Shared bookkeeping: targets, vote counts and the ragged members of each unit."""

    def __init__(self, units: pd.DataFrame, *, seed: int, random_offset: bool) -> None:
        missing = [
            c for c in ("label_ids", "total_votes", *TARGET_COLUMNS) if c not in units.columns
        ]
        if missing:
            raise ValueError(
                f"units table misses columns {missing}; build it with training_units()"
            )
        if len(units) == 0:
            raise ValueError("units table is empty: no labelled windows to train or validate on")
        self.units = units.reset_index(drop=True)
        self.seed = int(seed)
        self.random_offset = bool(random_offset)
        self.counts = self.units["label_ids"].map(len).to_numpy(np.int64)
        self.starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]])
        self.label_ids = _ragged(self.units, "label_ids", np.int64)
        self.target = self.units[list(TARGET_COLUMNS)].to_numpy(np.float32)
        self.total_votes = self.units["total_votes"].to_numpy(np.float32)
        self.epoch = 0
        self.member = self.starts.copy()

    def set_epoch(self, epoch: int) -> None:
        """Draw each unit's member (labelled offset) for ``epoch`` (the first without randomness)."""
        self.epoch = int(epoch)
        choice = (
            epoch_choice(self.counts, seed=self.seed, epoch=self.epoch) if self.random_offset else 0
        )
        self.member = self.starts + choice

    def __len__(self) -> int:
        return len(self.units)

    def _common(self, index: np.ndarray) -> dict[str, torch.Tensor]:
        member = self.member[index]
        return {
            "target": torch.from_numpy(self.target[index]),
            "total_votes": torch.from_numpy(self.total_votes[index]),
            "unit": torch.from_numpy(index.astype(np.int64)),
            "label_id": torch.from_numpy(self.label_ids[member]),
        }


def _as_index(index) -> np.ndarray:
    """An int, a list or an array of unit indices as int64 ``(batch,)``."""
    return np.atleast_1d(np.asarray(index, dtype=np.int64))


class CacheDataset(_UnitsDataset):
    """Batches of precomputed representations from a feature cache (:mod:`hmslib.cache`).

    Parameters
    ----------
    cache : path or FeatureCache
        A complete cache (``hmslib.cache.open_cache``); reopened lazily in each loader worker.
    units : pandas.DataFrame
        From :func:`training_units`; every ``label_id`` must be in the cache.
    seed : int
        Seed of the per-epoch offset choice.
    random_offset : bool
        Choose a random member per epoch (training) or always the first (evaluation).

    Notes
    -----
    ``dataset[index_array]`` returns a dict: ``x`` float32 ``(batch, *shape)``, ``target`` float32
    ``(batch, 6)``, ``total_votes`` float32 ``(batch,)``, ``unit`` and ``label_id`` int64 ``(batch,)``.
    """

    def __init__(
        self, cache, units: pd.DataFrame, *, seed: int = 0, random_offset: bool = True
    ) -> None:
        super().__init__(units, seed=seed, random_offset=random_offset)
        opened = open_cache(cache) if isinstance(cache, str | os.PathLike) else cache
        self.cache_path = Path(opened.path)
        self.representation = opened.representation
        self.shape = tuple(opened.features.shape[1:])
        try:
            self.rows = np.asarray(opened.rows_for(self.label_ids), dtype=np.int64)
        except KeyError as err:
            raise ValueError(f"cache does not cover these label windows: {err.args[0]}") from err
        self._cache = opened

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_cache"] = None  # a memmap would be pickled by value; workers reopen the file
        return state

    def _features(self):
        if self._cache is None:
            self._cache = open_cache(self.cache_path)
        return self._cache.features

    def __getitem__(self, index) -> dict[str, torch.Tensor]:
        index = _as_index(index)
        rows = self.rows[self.member[index]]
        order = np.argsort(rows, kind="stable")
        data = np.empty((len(rows), *self.shape), dtype=np.float32)
        data[order] = self._features()[rows[order]]  # sorted rows: one forward pass over the file
        return {"x": torch.from_numpy(data), **self._common(index)}


@functools.lru_cache(maxsize=32)
def _recording(root: str, eeg_id: int, split: str) -> np.ndarray:
    """Whole EEG recording, kept for a while: neighbouring windows of one EEG share the file read."""
    return io.load_eeg(root, eeg_id, split)


@functools.lru_cache(maxsize=32)
def _spectrogram(root: str, spectrogram_id: int, split: str) -> np.ndarray:
    """Whole Kaggle spectrogram, cached like :func:`_recording`."""
    return io.load_spectrogram(root, spectrogram_id, split)


class RawWindowDataset(_UnitsDataset):
    """Batches of raw 50 s EEG windows (and 600 s Kaggle spectrogram windows) read from a data folder.

    Parameters
    ----------
    data_dir : path
        Kaggle-layout folder.
    units : pandas.DataFrame
        From :func:`training_units`.
    split : {"train", "test"}
        Which ``*_eegs`` folder to read.
    with_spectrogram : bool
        Also return the Kaggle spectrogram window of each sample.
    seed : int
        Seed of the per-epoch offset and shift choices.
    random_offset : bool
        Random member per epoch (training) or the first (evaluation).
    max_shift_s : float
        Re-cut each training window at ``offset + u``, ``u`` uniform in ``[-max_shift_s, max_shift_s]``
        seconds (drawn per epoch), clipped to the recording; the 10 s the experts labelled stays inside
        the window for shifts up to 20 s. 0 = the labelled offsets only.

    Notes
    -----
    ``dataset[index_array]`` returns ``eeg`` float32 ``(batch, 20, 10000)`` µV (NaN kept), ``spec``
    float32 ``(batch, 4, 100, 300)`` when asked for, and the keys of :class:`CacheDataset` but ``x``.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike,
        units: pd.DataFrame,
        *,
        split: str = "train",
        with_spectrogram: bool = False,
        seed: int = 0,
        random_offset: bool = True,
        max_shift_s: float = 0.0,
    ) -> None:
        super().__init__(units, seed=seed, random_offset=random_offset)
        check_number("max_shift_s", max_shift_s, low=0)
        self.root = str(data_dir)
        self.split = split
        self.with_spectrogram = bool(with_spectrogram)
        self.max_shift_s = float(max_shift_s)
        self.eeg_ids = np.repeat(self.units["eeg_id"].to_numpy(np.int64), self.counts)
        self.spec_ids = np.repeat(self.units["spectrogram_id"].to_numpy(np.int64), self.counts)
        self.eeg_offsets = _ragged(self.units, "eeg_offsets", np.float64)
        self.spec_offsets = _ragged(self.units, "spectrogram_offsets", np.float64)
        self.shift = np.zeros(len(self.units))

    def set_epoch(self, epoch: int) -> None:
        """Draw each unit's member and, with ``max_shift_s``, its time shift for ``epoch``."""
        super().set_epoch(epoch)
        if self.max_shift_s > 0:
            rng = np.random.default_rng([self.seed, self.epoch, 2])
            self.shift = rng.uniform(-self.max_shift_s, self.max_shift_s, size=len(self.units))

    def __getitem__(self, index) -> dict[str, torch.Tensor]:
        index = _as_index(index)
        member = self.member[index]
        eeg = np.empty((len(index), len(EEG_CHANNELS), EEG_WINDOW_SAMPLES), dtype=np.float32)
        offsets = self.eeg_offsets[member] + self.shift[index]
        for eeg_id in np.unique(self.eeg_ids[member]):
            at = np.flatnonzero(self.eeg_ids[member] == eeg_id)
            eeg[at] = io.eeg_windows(
                _recording(self.root, int(eeg_id), self.split),
                offsets[at],
                clip=self.max_shift_s > 0,
                source=str(io.eeg_path(self.root, int(eeg_id), self.split)),
            )
        batch = {"eeg": torch.from_numpy(eeg), **self._common(index)}
        if self.with_spectrogram:
            shape = (len(index), len(SPEC_REGIONS), SPEC_N_FREQS, SPEC_WINDOW_COLUMNS)
            spec = np.empty(shape, dtype=np.float32)
            for spec_id in np.unique(self.spec_ids[member]):
                at = np.flatnonzero(self.spec_ids[member] == spec_id)
                spec[at] = io.spectrogram_windows(
                    _spectrogram(self.root, int(spec_id), self.split),
                    self.spec_offsets[member[at]],
                    source=str(io.spectrogram_path(self.root, int(spec_id), self.split)),
                )
            batch["spec"] = torch.from_numpy(spec)
        return batch
