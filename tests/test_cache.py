"""Tests of hmslib.cache on a tiny synthetic Kaggle-layout folder built in a temporary directory."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from hmslib import cache, cli, io
from hmslib.representations import compute_representation

#: A representation that is quick to compute, for tests where the representation does not matter.
FAST = "bipolar_raw"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    from hmslib.synthetic import generate

    return generate(tmp_path_factory.mktemp("synth") / "data", preset="small", n_patients=2, progress=False)


def _copy(data_dir: Path, dest: Path) -> Path:
    shutil.copytree(data_dir, dest)
    return dest


def _reference(
    data_dir: Path, repr_name: str, split: str = "train"
) -> tuple[np.ndarray, np.ndarray]:
    """label ids and the representation of their windows cut by hmslib.io (each file read once)."""
    if split == "train":
        df = io.read_train_csv(data_dir)
        ids = df["label_id"].to_numpy()
        eeg_off, spec_off = df["eeg_label_offset_seconds"], df["spectrogram_label_offset_seconds"]
    else:
        df = io.read_test_csv(data_dir)
        ids = df["eeg_id"].to_numpy()
        eeg_off = spec_off = pd.Series(0.0, index=df.index)
    eegs = {e: io.load_eeg(data_dir, e, split) for e in df["eeg_id"].unique()}
    specs = {s: io.load_spectrogram(data_dir, s, split) for s in df["spectrogram_id"].unique()}
    eeg = np.stack([io.eeg_window(eegs[e], o) for e, o in zip(df["eeg_id"], eeg_off, strict=True)])
    spec = np.stack(
        [
            io.spectrogram_window(specs[s], o)
            for s, o in zip(df["spectrogram_id"], spec_off, strict=True)
        ]
    )
    return ids, compute_representation(repr_name, eeg, spec).numpy()


@pytest.mark.parametrize("repr_name", ["chain_mel", "kaggle_spectrogram"])
def test_round_trip(data_dir, tmp_path, repr_name):
    path = cache.build_cache(data_dir, tmp_path, representation=repr_name, progress=False, chunk_windows=8)
    opened = cache.open_cache(path)
    ids, expected = _reference(data_dir, repr_name)
    assert len(opened) == len(ids) and opened.representation == repr_name
    assert opened.features.dtype == np.float16 and opened.features.shape == expected.shape
    assert list(opened.index.columns[:2]) == ["label_id", "row"]
    got = opened.features[opened.rows_for(ids)].astype(np.float32)
    assert_allclose(got, expected, rtol=1e-3, atol=2e-3)  # float16 storage
    with pytest.raises(KeyError, match="1 label_id"):
        opened.rows_for([ids[0], -5])


def test_test_split(data_dir, tmp_path):
    path = cache.build_cache(
        data_dir, tmp_path, representation="chain_mel", split="test", progress=False, dtype="float32"
    )
    opened = cache.open_cache(path)
    ids, expected = _reference(data_dir, "chain_mel", split="test")
    assert_array_equal(np.sort(opened.index["eeg_id"]), np.sort(ids))
    assert_array_equal(opened.index["eeg_offset_seconds"], 0.0)
    assert_allclose(opened.features[opened.rows_for(ids)], expected, atol=1e-5)


def test_reuse_and_new_config(data_dir, tmp_path, monkeypatch):
    first = cache.build_cache(data_dir, tmp_path, representation=FAST, progress=False)

    def fail(task):
        raise AssertionError("a complete cache must not be recomputed")

    monkeypatch.setattr(cache, "_compute_chunk", fail)
    assert cache.build_cache(data_dir, tmp_path, representation=FAST, progress=False) == first
    monkeypatch.undo()

    as_float32 = cache.build_cache(data_dir, tmp_path, representation=FAST, progress=False, dtype="float32")
    assert as_float32 != first
    changed = _copy(data_dir, tmp_path / "changed")
    df = pd.read_csv(changed / "train.csv")
    df.iloc[1:].to_csv(changed / "train.csv", index=False)
    other = cache.build_cache(changed, tmp_path, representation=FAST, progress=False)
    assert other != first and len(cache.open_cache(other)) == len(df) - 1


def test_interrupted_build_resumes(data_dir, tmp_path, monkeypatch):
    calls = []
    real = cache.compute_representation

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(cache, "compute_representation", flaky)
    build = dict(representation=FAST, progress=False, chunk_windows=8)
    with pytest.raises(RuntimeError, match="killed"):
        cache.build_cache(data_dir, tmp_path / "a", **build)
    (path,) = (tmp_path / "a").iterdir()
    with pytest.raises(ValueError, match="incomplete"):
        cache.open_cache(path)
    n_chunks = len(cache._chunks(len(pd.read_parquet(path / "index.parquet")), 8))
    assert n_chunks >= 3 and len(list((path / "chunks").glob("*.done"))) == 1

    calls.clear()
    monkeypatch.setattr(
        cache, "compute_representation", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    assert cache.build_cache(data_dir, tmp_path / "a", **build) == path
    assert len(calls) == n_chunks - 1  # the finished chunk was not recomputed
    resumed = cache.open_cache(path)
    clean = cache.open_cache(cache.build_cache(data_dir, tmp_path / "b", representation=FAST, progress=False))
    assert_array_equal(resumed.features, clean.features)
    assert not (path / "chunks").exists()


def test_damaged_incomplete_cache_restarts(data_dir, tmp_path, monkeypatch):
    def killed(*args, **kwargs):
        raise RuntimeError("killed")

    monkeypatch.setattr(cache, "compute_representation", killed)
    with pytest.raises(RuntimeError):
        cache.build_cache(data_dir, tmp_path, representation=FAST, progress=False)
    monkeypatch.undo()
    (path,) = tmp_path.iterdir()
    with open(path / "features.npy", "r+b") as f:
        f.truncate(100)  # a half-written file
    (path / "chunks" / f"0-{10**6}.done").touch()  # and a stale marker
    (path / "config.json").write_text(json.dumps({"representation": "other"}))
    assert cache.build_cache(data_dir, tmp_path, representation=FAST, progress=False) == path
    ids, expected = _reference(data_dir, FAST)
    opened = cache.open_cache(path)
    assert_allclose(
        opened.features[opened.rows_for(ids)].astype(np.float32), expected, rtol=1e-3, atol=2e-3
    )


def test_worker_processes_give_identical_features(data_dir, tmp_path):
    one = cache.open_cache(cache.build_cache(data_dir, tmp_path / "one", representation=FAST, progress=False))
    two = cache.build_cache(
        data_dir, tmp_path / "two", representation=FAST, workers=2, chunk_windows=8, progress=False
    )
    assert_array_equal(cache.open_cache(two).features, one.features)


def test_cli_and_errors(data_dir, tmp_path, capsys):
    argv = [
        "preprocess",
        str(data_dir),
        "--out",
        str(tmp_path),
        "--repr",
        FAST,
        "--workers",
        "1",
        "--no-progress",
    ]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert f"train-{FAST}-" in printed and "windows" in printed
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["preprocess", str(data_dir), "--out", str(tmp_path), "--repr", "nope"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err
    # a missing data folder is bad input: exit 2 with one line naming it
    assert cli.main(["preprocess", str(tmp_path / "missing"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hms preprocess: error: ") and "does not exist" in err
    assert len(err.strip().splitlines()) == 1

    broken = _copy(data_dir, tmp_path / "broken")
    df = pd.read_csv(broken / "train.csv")
    (broken / "train_eegs" / f"{df['eeg_id'].iloc[0]}.parquet").unlink()
    with pytest.raises(FileNotFoundError, match=f"{df['eeg_id'].iloc[0]}.parquet"):
        cache.build_cache(broken, tmp_path, representation=FAST, progress=False)
    df.loc[0, "eeg_label_offset_seconds"] = 1e6
    df.to_csv(broken / "train.csv", index=False)
    shutil.copy(data_dir / "train_eegs" / f"{df['eeg_id'].iloc[0]}.parquet", broken / "train_eegs")
    with pytest.raises(ValueError, match=r"train_eegs/\d+\.parquet: window \[200000000, 200010000\) does not fit"):
        cache.build_cache(broken, tmp_path, representation=FAST, progress=False)
    pd.concat([df, df.iloc[:1]]).to_csv(broken / "train.csv", index=False)
    with pytest.raises(ValueError, match="duplicate label_id"):
        cache.build_cache(broken, tmp_path, representation=FAST, progress=False)
    with pytest.raises(ValueError, match="unknown representation"):
        cache.build_cache(data_dir, tmp_path, representation="nope")
    with pytest.raises(FileNotFoundError, match="incomplete|does not exist"):
        cache.open_cache(tmp_path / "nothing")
