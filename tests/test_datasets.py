"""Tests of hmslib.datasets: training units, per-epoch offsets, batches and the two datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal

from hmslib import io
from hmslib.constants import TARGET_COLUMNS, VOTE_COLUMNS
from hmslib.datasets import (
    CacheDataset,
    RawWindowDataset,
    epoch_batches,
    epoch_choice,
    training_units,
    vote_targets,
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    from hmslib.synthetic import generate

    root = generate(tmp_path_factory.mktemp("data") / "tiny", preset="small", n_patients=3, seed=1, progress=False)
    return root


def _rows(votes: list[list[int]], eeg_ids: list[int], offsets: list[float]) -> pd.DataFrame:
    """A hand-made train.csv table."""
    n = len(votes)
    df = pd.DataFrame(
        {
            "eeg_id": eeg_ids,
            "eeg_sub_id": range(n),
            "eeg_label_offset_seconds": offsets,
            "spectrogram_id": [e + 1 for e in eeg_ids],
            "spectrogram_sub_id": range(n),
            "spectrogram_label_offset_seconds": offsets,
            "label_id": np.arange(100, 100 + n),
            "patient_id": [e // 10 for e in eeg_ids],
            "expert_consensus": "Seizure",
        }
    )
    df[list(VOTE_COLUMNS)] = np.asarray(votes)
    return df


def test_vote_targets_smooths_few_vote_rows_more():
    votes = np.array([[3, 0, 0, 0, 0, 0], [15, 5, 0, 0, 0, 0]])
    assert_allclose(vote_targets(votes), [[1, 0, 0, 0, 0, 0], [0.75, 0.25, 0, 0, 0, 0]])
    smooth = vote_targets(votes, smoothing=1.0)
    assert_allclose(smooth[0], np.array([4, 1, 1, 1, 1, 1]) / 9)
    assert_allclose(smooth[1], np.array([16, 6, 1, 1, 1, 1]) / 26)
    with pytest.raises(ValueError, match="no votes"):
        vote_targets(np.zeros((1, 6)))


def test_training_units_by_group_eeg_and_window():
    votes = [[3, 0, 0, 0, 0, 0], [3, 0, 0, 0, 0, 0], [0, 2, 0, 0, 0, 1], [0, 0, 0, 0, 10, 10]]
    df = _rows(votes, eeg_ids=[10, 10, 10, 20], offsets=[0.0, 2.0, 8.0, 4.0])

    groups = training_units(df, by="group")
    assert len(groups) == 3
    first = groups.iloc[0]
    assert (
        first.label_ids == [100, 101] and first.eeg_offsets == [0.0, 2.0] and first.total_votes == 3
    )
    assert_allclose(
        groups[list(TARGET_COLUMNS)].to_numpy(), vote_targets(np.asarray(votes)[[0, 2, 3]])
    )

    per_eeg = training_units(df, by="eeg")
    assert per_eeg.eeg_id.tolist() == [10, 20] and per_eeg.n_windows.tolist() == [3, 1]
    probs = np.asarray(votes, dtype=float) / np.sum(votes, axis=1, keepdims=True)
    assert_allclose(per_eeg[list(TARGET_COLUMNS)].to_numpy()[0], probs[:3].mean(axis=0))
    assert_allclose(per_eeg.total_votes.to_numpy(), [3.0, 20.0])

    windows = training_units(df, by="window", smoothing=0.5)
    assert windows.label_ids.map(len).tolist() == [1, 1, 1, 1]
    assert_allclose(
        windows[list(TARGET_COLUMNS)].to_numpy(), vote_targets(np.asarray(votes), smoothing=0.5)
    )
    with pytest.raises(ValueError, match=r"unknown training unit 'patient'; expected one of \['group', 'eeg', 'window'\]"):
        training_units(df, by="patient")


def test_epoch_choice_is_deterministic_uniform_and_in_range():
    counts = np.full(4000, 4)
    a = epoch_choice(counts, seed=3, epoch=5)
    assert_array_equal(a, epoch_choice(counts, seed=3, epoch=5))
    assert (a != epoch_choice(counts, seed=3, epoch=6)).mean() > 0.6
    assert a.min() == 0 and a.max() == 3
    assert (np.abs(np.bincount(a) - 1000) < 120).all()
    assert (epoch_choice(np.ones(10, dtype=int), seed=0, epoch=0) == 0).all()


def test_epoch_batches_shard_disjointly_with_equal_step_counts():
    per_rank = [
        epoch_batches(103, 8, seed=1, epoch=2, rank=r, world_size=3, limit=100) for r in range(3)
    ]
    assert len({len(b) for b in per_rank}) == 1
    seen = np.concatenate([np.concatenate(b) for b in per_rank])
    assert len(np.unique(seen)) == len(seen) == 99  # 100 used, 33 per rank
    prefix = np.random.default_rng([1, 2, 1]).permutation(103)[:100]
    assert set(seen) <= set(prefix)
    ordered = epoch_batches(10, 4, seed=0, epoch=0, shuffle=False)
    assert [b.tolist() for b in ordered] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert len(epoch_batches(10, 4, seed=0, epoch=0, drop_last=True)) == 2


def test_raw_window_dataset_returns_the_labelled_windows(tiny):
    df = io.read_train_csv(tiny)
    units = training_units(df, by="group")
    ds = RawWindowDataset(tiny, units, with_spectrogram=True, seed=0)
    ds.set_epoch(3)
    index = np.array([2, 0, 1])
    batch = ds[index]
    assert batch["eeg"].shape == (3, 20, 10000) and batch["spec"].shape == (3, 4, 100, 300)
    rows = df.set_index("label_id").loc[batch["label_id"].numpy()]
    for i, unit in enumerate(index):
        assert batch["label_id"][i].item() in units.label_ids[unit]
        expected = io.load_eeg_window(
            tiny, rows.eeg_id.iloc[i], rows.eeg_label_offset_seconds.iloc[i]
        )
        assert_array_equal(batch["eeg"][i].numpy(), expected)
        spec = io.load_spectrogram_window(
            tiny, rows.spectrogram_id.iloc[i], rows.spectrogram_label_offset_seconds.iloc[i]
        )
        assert_array_equal(batch["spec"][i].numpy(), spec)
    assert_allclose(
        batch["target"].numpy(), units[list(TARGET_COLUMNS)].to_numpy()[index], rtol=1e-6
    )


def test_raw_window_dataset_shift_recuts_inside_the_recording(tiny):
    df = io.read_train_csv(tiny)
    units = training_units(df, by="window")
    ds = RawWindowDataset(tiny, units, seed=0, random_offset=False, max_shift_s=20.0)
    ds.set_epoch(1)
    index = np.arange(min(len(units), 12))
    batch = ds[index]
    shifts = np.random.default_rng([0, 1, 2]).uniform(-20, 20, size=len(units))[index]
    assert np.abs(shifts).max() > 5
    for i in index:
        recording = io.load_eeg(tiny, units.eeg_id[i])
        latest = (recording.shape[1] - 10000) / 200
        start = min(max(units.eeg_offsets[i][0] + shifts[i], 0.0), latest)
        expected = io.eeg_window(recording, start)
        assert_array_equal(batch["eeg"][i].numpy(), expected)


def test_cache_dataset_reads_the_cached_rows_in_request_order(tiny, tmp_path):
    from hmslib.cache import build_cache, open_cache
    from hmslib.representations import compute_representation

    cache = open_cache(build_cache(tiny, tmp_path / "cache", representation="chain_mel", progress=False))
    df = io.read_train_csv(tiny)
    units = training_units(df, by="group")
    ds = CacheDataset(cache.path, units, seed=4)
    ds.set_epoch(0)
    index = np.array([len(units) - 1, 0, 1])
    batch = ds[index]
    rows = cache.rows_for(batch["label_id"].numpy())
    assert_array_equal(batch["x"].numpy(), np.asarray(cache.features[rows], dtype=np.float32))
    # and the cached features are the representation of the raw windows (float16 storage)
    labelled = df.set_index("label_id").loc[batch["label_id"].numpy()]
    eeg = np.stack(
        [
            io.load_eeg_window(tiny, e, o)
            for e, o in zip(labelled.eeg_id, labelled.eeg_label_offset_seconds, strict=True)
        ]
    )
    assert_allclose(
        batch["x"].numpy(), compute_representation("chain_mel", eeg).numpy(), atol=5e-3, rtol=2e-3
    )
    # the same batches come out of a DataLoader with worker processes (the memmap is reopened there)
    batches = [np.array([0, 2]), np.array([1])]
    loaded = list(torch.utils.data.DataLoader(ds, sampler=batches, batch_size=None, num_workers=2))
    for b, got in zip(batches, loaded, strict=True):
        assert_array_equal(got["x"].numpy(), ds[b]["x"].numpy())
    with pytest.raises(ValueError, match="does not cover"):
        CacheDataset(cache.path, units.assign(label_ids=[[1, 2]] * len(units)))
