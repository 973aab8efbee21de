"""Feature cache: a representation computed once for every labelled window, memory-mapped.

A cache is a folder ``<out_dir>/<split>-<representation>-<hash>/`` holding

``config.json``
    What was computed and from which inputs; ``<hash>`` is a digest of it, so a changed
    representation, dtype, label table or EEG file gives a new folder.
``index.parquet``
    One row per window: ``label_id, row, eeg_id, eeg_offset_seconds, spectrogram_id,
    spectrogram_offset_seconds, patient_id`` (rows sorted by ``eeg_id``).
``features.npy``
    ``(n_windows, *shape)`` array, read with ``numpy.load(mmap_mode="r")``.
``COMPLETE``
    Written atomically after the last window; a folder without it is never opened.

Features are stored as float16 by default: the representations are dB images or signals scaled to
a few units, where float16's 11-bit mantissa (relative error <= 5e-4) is far below what a model
resolves, and it halves disk use and read time (the demo's ~1000 ``chain_mel`` windows take 64 MiB).
``dtype="float32"`` is available for exact copies.

Work is split into chunks of consecutive windows (sorted by EEG, so a chunk reads few parquet
files) computed in worker processes; each chunk writes its rows into the memory map and then
leaves a marker, so an interrupted build resumes with the chunks still missing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

import hmslib
from hmslib import io
from hmslib._checks import (
    atomic_path,
    check_free_space,
    check_number,
    check_option,
    write_parquet_atomic,
)
from hmslib.representations import DEFAULT_REPR, compute_representation, representation_info

#: Version of the on-disk layout (part of every cache's configuration).
CACHE_FORMAT = 1
DTYPES = ("float16", "float32")
_INDEX_COLUMNS = (
    "label_id",
    "row",
    "eeg_id",
    "eeg_offset_seconds",
    "spectrogram_id",
    "spectrogram_offset_seconds",
    "patient_id",
)


@dataclass
class FeatureCache:
    """An opened, complete feature cache (see :func:`open_cache`).

    Attributes
    ----------
    path : pathlib.Path
        The cache folder.
    features : numpy.memmap
        Read-only ``(n_windows, *shape)`` array (float16 or float32).
    index : pandas.DataFrame
        One row per window with ``label_id`` and ``row`` (the position in ``features``).
    representation : str
        Representation name.
    config : dict
        The configuration the cache was built with.
    """

    path: Path
    features: np.memmap
    index: pd.DataFrame
    representation: str
    config: dict

    def __len__(self) -> int:
        return len(self.index)

    def rows_for(self, label_ids) -> np.ndarray:
        """Rows of ``features`` holding ``label_ids``.

        Parameters
        ----------
        label_ids : array-like of int
            ``label_id`` values (for a test cache: ``eeg_id`` values).

        Returns
        -------
        numpy.ndarray
            int64 ``(len(label_ids),)``.

        Raises
        ------
        KeyError
            Some ids are not in the cache (the message lists a few).
        """
        ids = np.asarray(label_ids, dtype=np.int64).reshape(-1)
        pos = pd.Index(self.index["label_id"]).get_indexer(ids)
        if (pos < 0).any():
            missing = ids[pos < 0]
            raise KeyError(
                f"{self.path}: {missing.size} label_id(s) not in the cache, e.g. "
                f"{missing[:5].tolist()}"
            )
        return self.index["row"].to_numpy(dtype=np.int64)[pos]


# --------------------------------------------------------------------------------------------------
# planning
# --------------------------------------------------------------------------------------------------


def _window_table(root: Path, split: str) -> pd.DataFrame:
    """One row per window to compute, sorted by ``eeg_id``, with its position ``row``."""
    if split == "train":
        df = io.read_train_csv(root)
        table = pd.DataFrame(
            {
                "label_id": df["label_id"],
                "eeg_id": df["eeg_id"],
                "eeg_offset_seconds": df["eeg_label_offset_seconds"].astype(np.float64),
                "spectrogram_id": df["spectrogram_id"],
                "spectrogram_offset_seconds": df["spectrogram_label_offset_seconds"].astype(
                    np.float64
                ),
                "patient_id": df["patient_id"],
            }
        )
    else:
        df = io.read_test_csv(root)
        table = pd.DataFrame(
            {
                "label_id": df["eeg_id"],
                "eeg_id": df["eeg_id"],
                "eeg_offset_seconds": 0.0,
                "spectrogram_id": df["spectrogram_id"],
                "spectrogram_offset_seconds": 0.0,
                "patient_id": df["patient_id"],
            }
        )
    dup = table["label_id"][table["label_id"].duplicated()]
    if len(dup):
        key = "label_id" if split == "train" else "eeg_id"
        raise ValueError(f"{root}/{split}.csv: duplicate {key} values, e.g. {dup[:5].tolist()}")
    if len(table) == 0:
        raise ValueError(f"{root}/{split}.csv has no rows: nothing to cache")
    table = table.sort_values("eeg_id", kind="stable").reset_index(drop=True)
    table.insert(1, "row", np.arange(len(table), dtype=np.int64))
    return table[list(_INDEX_COLUMNS)]


def _fingerprint(
    root: Path, split: str, table: pd.DataFrame, with_eeg: bool, with_spec: bool
) -> str:
    """Digest of the label table's bytes and the name, size and mtime of every input file used."""
    h = hashlib.sha256((root / f"{split}.csv").read_bytes())
    paths = []
    if with_eeg:
        paths += [io.eeg_path(root, e, split) for e in table["eeg_id"].unique()]
    if with_spec:
        paths += [io.spectrogram_path(root, s, split) for s in table["spectrogram_id"].unique()]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{root}: {len(missing)} input file(s) listed in {split}.csv are missing, e.g. "
            f"{missing[:3]}"
        )
    for p in paths:
        st = p.stat()
        h.update(f"{p.parent.name}/{p.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()


def _chunks(n: int, chunk_windows: int) -> list[tuple[int, int]]:
    """Row ranges of ``chunk_windows`` windows (rows are sorted by EEG: each reads few files)."""
    return [(start, min(start + chunk_windows, n)) for start in range(0, n, chunk_windows)]


# --------------------------------------------------------------------------------------------------
# the work of one chunk (runs in a worker process)
# --------------------------------------------------------------------------------------------------


def _load_chunk(
    root: Path, split: str, rows: pd.DataFrame, with_eeg: bool, with_spec: bool
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Raw EEG windows ``(k, 20, 10000)`` and Kaggle spectrogram windows ``(k, 4, 100, 300)``."""
    eeg = spec = None
    if with_eeg:  # rows are sorted by eeg_id: the groups come in row order
        eeg = np.concatenate(
            [
                io.eeg_windows(
                    io.load_eeg(root, eeg_id, split),
                    group["eeg_offset_seconds"].to_numpy(),
                    source=str(io.eeg_path(root, eeg_id, split)),
                )
                for eeg_id, group in rows.groupby("eeg_id", sort=False)
            ]
        )
    if with_spec:
        parts, where = [], []
        for spec_id, group in rows.groupby("spectrogram_id", sort=False):
            parts.append(
                io.spectrogram_windows(
                    io.load_spectrogram(root, spec_id, split),
                    group["spectrogram_offset_seconds"].to_numpy(),
                    source=str(io.spectrogram_path(root, spec_id, split)),
                )
            )
            where.append(group.index.to_numpy())
        spec = np.concatenate(parts)[np.argsort(np.concatenate(where), kind="stable")]
    return eeg, spec


def _compute_chunk(task: dict) -> tuple[int, int]:
    """Compute rows ``task['start']:task['stop']`` and write them into the feature memory map."""
    rows = pd.read_parquet(task["index"]).iloc[task["start"] : task["stop"]]
    info = representation_info(task["representation"])
    eeg, spec = _load_chunk(
        Path(task["root"]), task["split"], rows, info.uses_eeg, info.uses_kaggle_spectrogram
    )
    out = compute_representation(task["representation"], eeg, spec).numpy().astype(task["dtype"])
    bad = ~np.isfinite(out.reshape(len(out), -1)).all(axis=1)
    if bad.any():
        ids = rows["label_id"].to_numpy()[bad][:5].tolist()
        raise ValueError(
            f"{task['representation']}: non-finite values for label_id {ids} (overflow in {task['dtype']}?)"
        )
    features = np.load(task["features"], mmap_mode="r+")
    features[task["start"] : task["stop"]] = out
    features.flush()
    del features
    return task["start"], task["stop"]


def _init_worker() -> None:
    """One torch thread per worker process: the processes are the parallelism."""
    torch.set_num_threads(1)


# --------------------------------------------------------------------------------------------------
# build and open
# --------------------------------------------------------------------------------------------------


def _config_hash(config: dict) -> str:
    hashed = {k: v for k, v in config.items() if k != "data_dir"}
    return hashlib.sha256(json.dumps(hashed, sort_keys=True).encode()).hexdigest()[:12]


def _done_rows(markers: Path, n: int) -> np.ndarray:
    """Boolean ``(n,)``: rows covered by chunk markers ``<start>-<stop>.done``."""
    done = np.zeros(n, dtype=bool)
    for m in markers.glob("*.done"):
        start, stop = (int(v) for v in m.stem.split("-"))
        done[start:stop] = True
    return done


def _can_resume(path: Path, config_hash: str, n: int, shape: tuple[int, ...], dtype: str) -> bool:
    """An interrupted build of the same configuration whose files are intact."""
    try:
        saved = json.loads((path / "config.json").read_text())
        features = np.load(path / "features.npy", mmap_mode="r")
        index = pd.read_parquet(path / "index.parquet")
    except (OSError, ValueError):
        return False
    return (
        _config_hash(saved) == config_hash
        and features.shape == (n, *shape)
        and features.dtype == np.dtype(dtype)
        and len(index) == n
    )


def _start_fresh(path: Path, config: dict, table: pd.DataFrame, shape: tuple[int, ...]) -> None:
    """Remove what an earlier build left and write config, index and an empty feature file."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    check_free_space(path, len(table) * int(np.prod(shape)) * np.dtype(config["dtype"]).itemsize)
    with atomic_path(path / "features.npy") as tmp:
        features = np.lib.format.open_memmap(
            tmp, mode="w+", dtype=config["dtype"], shape=(len(table), *shape)
        )
        del features
    write_parquet_atomic(table, path / "index.parquet")
    with atomic_path(path / "config.json") as tmp:
        tmp.write_text(json.dumps(config, indent=2, sort_keys=True))


def build_cache(
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    representation: str = DEFAULT_REPR,
    workers: int = 1,
    split: str = "train",
    progress: bool = True,
    dtype: str = "float16",
    chunk_windows: int = 64,
) -> Path:
    """Compute ``representation`` for every labelled window of a Kaggle-layout folder.

    Parameters
    ----------
    data_dir : path
        Kaggle HMS data folder (real or synthetic).
    out_dir : path
        Folder that holds caches; this one goes to ``out_dir/<split>-<representation>-<hash>``.
    representation : str
        Representation name (see ``hmslib.representations.REPRESENTATIONS``).
    workers : int
        Worker processes (1 computes in this process).
    split : {"train", "test"}
        ``train``: every row of train.csv at its label offsets; ``test``: every test EEG at offset 0
        (its ``label_id`` in the index is the ``eeg_id``).
    progress : bool
        Show a tqdm progress bar (windows).
    dtype : {"float16", "float32"}
        Storage type (see the module notes).
    chunk_windows : int
        Windows per unit of work (bounds a worker's memory: 64 raw windows take 51 MB).

    Returns
    -------
    pathlib.Path
        The cache folder; open it with :func:`open_cache`. A complete cache with the same
        configuration is reused without recomputing; an interrupted one is resumed.

    Raises
    ------
    FileNotFoundError
        Not a Kaggle data folder, or input files listed in the label table are missing.
    ValueError
        Unknown representation or dtype, bad arguments, duplicate ids, a window outside its
        recording, or bad input data (errors name the file).
    OSError
        Not enough free disk space for the features (checked before anything is computed; the
        message names the file, the space needed and the space free).
    """
    info = representation_info(representation)
    check_option("cache dtype", dtype, DTYPES)
    check_number("workers", workers, low=1, integer=True)
    check_number("chunk_windows", chunk_windows, low=1, integer=True)
    root = io.check_data_dir(data_dir, split).resolve()
    table = _window_table(root, split)
    config = {
        "format": CACHE_FORMAT,
        "hmslib_version": hmslib.__version__,
        "representation": representation,
        "repr_version": info.version,
        "shape": list(info.shape),
        "dtype": dtype,
        "split": split,
        "n_windows": len(table),
        "inputs_sha256": _fingerprint(
            root, split, table, info.uses_eeg, info.uses_kaggle_spectrogram
        ),
        "data_dir": str(root),
    }
    config_hash = _config_hash(config)
    path = Path(out_dir) / f"{split}-{representation}-{config_hash}"
    complete = path / "COMPLETE"
    if complete.is_file() and complete.read_text().strip() == config_hash:
        return path
    if not _can_resume(path, config_hash, len(table), info.shape, dtype):
        _start_fresh(path, config, table, info.shape)
    markers = path / "chunks"
    markers.mkdir(exist_ok=True)
    done = _done_rows(markers, len(table))
    # the memory map is a sparse file: its blocks are allocated as rows are written, and a full
    # disk would then end the build in SIGBUS, so the space is checked before any row is computed
    row_bytes = int(np.prod(info.shape)) * np.dtype(dtype).itemsize
    check_free_space(path / "features.npy", int((~done).sum()) * row_bytes)
    tasks = [
        {
            "root": str(root),
            "split": split,
            "representation": representation,
            "dtype": dtype,
            "index": str(path / "index.parquet"),
            "features": str(path / "features.npy"),
            "start": start,
            "stop": stop,
        }
        for start, stop in _chunks(len(table), chunk_windows)
        if not done[start:stop].all()
    ]
    bar = tqdm(
        total=len(table),
        initial=len(table) - sum(t["stop"] - t["start"] for t in tasks),
        unit="win",
        desc=f"cache {representation}",
        disable=not progress,
    )

    def finished(start: int, stop: int) -> None:
        (markers / f"{start}-{stop}.done").touch()
        bar.update(stop - start)

    with bar:
        if workers == 1:
            for task in tasks:
                finished(*_compute_chunk(task))
        else:
            _run_pool(tasks, workers, finished)
    with atomic_path(complete) as tmp:
        tmp.write_text(config_hash + "\n")
    shutil.rmtree(markers, ignore_errors=True)
    return path


def _run_pool(tasks: list[dict], workers: int, finished) -> None:
    """Run chunk tasks in spawned worker processes; stop at the first error and re-raise it."""
    # fork on Linux, as torch's DataLoader does (workers use one thread); spawn elsewhere
    ctx = get_context("fork" if sys.platform.startswith("linux") else "spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker) as pool:
        pending = {pool.submit(_compute_chunk, t) for t in tasks}
        while pending:
            done, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for future in done:
                if future.exception() is not None:
                    for p in pending:
                        p.cancel()
                    raise future.exception()
                finished(*future.result())


def open_cache(path: str | os.PathLike) -> FeatureCache:
    """Open a complete feature cache read-only.

    Parameters
    ----------
    path : path
        A folder returned by :func:`build_cache`.

    Returns
    -------
    FeatureCache
        With ``features`` memory-mapped (nothing is read until indexed).

    Raises
    ------
    FileNotFoundError
        No such folder.
    ValueError
        The cache is incomplete (interrupted or still building) or its files disagree with its
        configuration.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: feature cache folder does not exist")
    complete = path / "COMPLETE"
    if not complete.is_file():
        raise ValueError(
            f"{path}: feature cache is incomplete (no COMPLETE marker: the build was interrupted "
            f"or is still running); rerun build_cache / `hms preprocess` to resume it"
        )
    config = json.loads((path / "config.json").read_text())
    if complete.read_text().strip() != _config_hash(config):
        raise ValueError(f"{path}: COMPLETE marker does not match config.json; rebuild the cache")
    features = np.load(path / "features.npy", mmap_mode="r")
    index = pd.read_parquet(path / "index.parquet")
    expected = (config["n_windows"], *config["shape"])
    if features.shape != expected or len(index) != config["n_windows"]:
        raise ValueError(
            f"{path}: features.npy has shape {features.shape} and index.parquet {len(index)} rows, "
            f"config.json expects {expected}; rebuild the cache"
        )
    return FeatureCache(
        path=path,
        features=features,
        index=index,
        representation=config["representation"],
        config=config,
    )
