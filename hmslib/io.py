"""Reading the Kaggle HMS data folder: label tables, EEG parquet files and Kaggle spectrograms.

The folder layout is the competition's::

    root/train.csv  root/test.csv  root/sample_submission.csv
    root/train_eegs/<eeg_id>.parquet          200 Hz, 20 float32 columns (``EEG_CHANNELS``)
    root/train_spectrograms/<spec_id>.parquet ``time`` + 400 columns ``LL_0.59`` ... ``RP_19.92``
    root/test_eegs/ ...  root/test_spectrograms/ ...

Every reader validates what it reads and raises an error that names the file, the id and what was
expected. Nothing is silently zero-filled: padding happens only when the caller asks for it
(``pad=True``), and then a :class:`PaddingWarning` says so.
"""

from __future__ import annotations

import math
import os
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from hmslib.constants import (
    EEG_CHANNELS,
    EEG_WINDOW_SECONDS,
    SFREQ,
    SPEC_N_FREQS,
    SPEC_REGIONS,
    SPEC_STEP_SECONDS,
    SPEC_WINDOW_SECONDS,
    TEST_COLUMNS,
    TRAIN_COLUMNS,
    VOTE_COLUMNS,
)

SPLITS = ("train", "test")


class PaddingWarning(UserWarning):
    """A window ran past the end of its recording and was padded because the caller asked for it."""


# --------------------------------------------------------------------------------------------------
# paths and atomic writes
# --------------------------------------------------------------------------------------------------


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def eeg_path(root: str | os.PathLike, eeg_id: int, split: str = "train") -> Path:
    """Path of the parquet file of one EEG: ``root/{split}_eegs/{eeg_id}.parquet``."""
    _check_split(split)
    return Path(root) / f"{split}_eegs" / f"{int(eeg_id)}.parquet"


def spectrogram_path(root: str | os.PathLike, spectrogram_id: int, split: str = "train") -> Path:
    """Path of the parquet file of one Kaggle spectrogram: ``root/{split}_spectrograms/{id}.parquet``."""
    _check_split(split)
    return Path(root) / f"{split}_spectrograms" / f"{int(spectrogram_id)}.parquet"


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    An interrupted or failed write therefore never leaves a half-written file under the final name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_csv_atomic(df: pd.DataFrame, path: str | os.PathLike, **kwargs) -> Path:
    """Write ``df`` to CSV at ``path`` atomically (``index=False`` unless given)."""
    kwargs.setdefault("index", False)
    with atomic_path(path) as tmp:
        df.to_csv(tmp, **kwargs)
    return Path(path)


def write_parquet_atomic(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``df`` to parquet at ``path`` atomically, without the pandas index."""
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)
    return Path(path)


# --------------------------------------------------------------------------------------------------
# label tables
# --------------------------------------------------------------------------------------------------


def _read_table(path: Path, what: str) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} not found (expected a Kaggle HMS data folder)")
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError as err:
        raise ValueError(f"{path}: {what} is empty") from err
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: {what} is not a readable CSV file ({err})") from err
    return df


def _check_columns(df: pd.DataFrame, expected: tuple[str, ...], path: Path) -> None:
    missing = [c for c in expected if c not in df.columns]
    if missing:
        extra = [c for c in df.columns if c not in expected]
        hint = f"; unexpected columns {extra}" if extra else ""
        raise ValueError(f"{path}: missing columns {missing}{hint} (expected {list(expected)})")


def _check_numeric(df: pd.DataFrame, columns: tuple[str, ...], path: Path) -> None:
    bad = [c for c in columns if not pd.api.types.is_numeric_dtype(df[c])]
    if bad:
        found = {c: str(df[c].dtype) for c in bad}
        raise ValueError(f"{path}: columns {bad} must be numeric, found dtypes {found}")


def read_train_csv(root: str | os.PathLike) -> pd.DataFrame:
    """Read and validate ``root/train.csv``.

    Parameters
    ----------
    root : path
        A Kaggle HMS data folder.

    Returns
    -------
    pandas.DataFrame
        One row per labelled window with the competition's 15 columns (vote columns as integers).

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        The file is empty, not CSV, misses columns, has non-numeric ids/offsets/votes or negative votes.
    """
    path = Path(root) / "train.csv"
    df = _read_table(path, "train.csv")
    _check_columns(df, TRAIN_COLUMNS, path)
    numeric = tuple(c for c in TRAIN_COLUMNS if c != "expert_consensus")
    _check_numeric(df, numeric, path)
    if len(df) == 0:
        raise ValueError(f"{path}: train.csv has a header but no rows")
    votes = df[list(VOTE_COLUMNS)].to_numpy()
    if (votes < 0).any():
        rows = np.flatnonzero((votes < 0).any(axis=1))[:5].tolist()
        raise ValueError(f"{path}: negative votes in rows {rows}")
    return df


def read_test_csv(root: str | os.PathLike) -> pd.DataFrame:
    """Read and validate ``root/test.csv`` (columns ``spectrogram_id, eeg_id, patient_id``).

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`read_train_csv`.
    """
    path = Path(root) / "test.csv"
    df = _read_table(path, "test.csv")
    _check_columns(df, TEST_COLUMNS, path)
    _check_numeric(df, TEST_COLUMNS, path)
    return df


def read_sample_submission(root: str | os.PathLike) -> pd.DataFrame:
    """Read and validate ``root/sample_submission.csv`` (``eeg_id`` + the six vote columns)."""
    path = Path(root) / "sample_submission.csv"
    df = _read_table(path, "sample_submission.csv")
    _check_columns(df, ("eeg_id", *VOTE_COLUMNS), path)
    return df


# --------------------------------------------------------------------------------------------------
# parquet files
# --------------------------------------------------------------------------------------------------


def _read_parquet(path: Path, what: str) -> pd.DataFrame:
    if not path.is_file():
        folder = path.parent
        hint = "" if folder.is_dir() else f" (folder {folder} does not exist either)"
        raise FileNotFoundError(f"{path}: {what} not found{hint}")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: {what} file is empty (0 bytes)")
    try:
        df = pd.read_parquet(path)
    except Exception as err:  # pyarrow raises several types for non-parquet input
        raise ValueError(f"{path}: {what} is not a readable parquet file ({err})") from err
    if len(df) == 0:
        raise ValueError(f"{path}: {what} has no rows")
    return df


def load_eeg(root: str | os.PathLike, eeg_id: int, split: str = "train") -> np.ndarray:
    """Load a whole EEG recording.

    Parameters
    ----------
    root : path
        A Kaggle HMS data folder.
    eeg_id : int
        The EEG id (file name without ``.parquet``).
    split : {"train", "test"}
        Which sub-folder to read (``train_eegs`` or ``test_eegs``).

    Returns
    -------
    numpy.ndarray
        float32, shape ``(20, n_samples)``, microvolts at 200 Hz, rows in ``EEG_CHANNELS`` order.
        NaN stretches of the file are kept as NaN.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Empty or non-parquet file, missing or renamed channel columns, or non-numeric columns.
    """
    path = eeg_path(root, eeg_id, split)
    df = _read_parquet(path, f"EEG {eeg_id}")
    _check_columns(df, EEG_CHANNELS, path)
    _check_numeric(df, EEG_CHANNELS, path)
    return np.ascontiguousarray(df[list(EEG_CHANNELS)].to_numpy(dtype=np.float32).T)


def _cut(
    data: np.ndarray, start: int, length: int, *, pad: bool, fill_value: float, source: str
) -> np.ndarray:
    """Cut ``data[..., start:start+length]``, padding at the end only when ``pad`` is set."""
    n = data.shape[-1]
    if start < 0:
        raise ValueError(f"{source}: window start {start} is negative")
    if start + length <= n:
        return data[..., start : start + length]
    if not pad:
        raise ValueError(
            f"{source}: window [{start}, {start + length}) runs past the end of the recording "
            f"({n} columns); pass pad=True to pad with {fill_value}"
        )
    out = np.full(data.shape[:-1] + (length,), fill_value, dtype=data.dtype)
    available = max(0, n - start)
    out[..., :available] = data[..., start:n]
    warnings.warn(
        f"{source}: padded {length - available} of {length} columns with {fill_value}",
        PaddingWarning,
        stacklevel=3,
    )
    return out


def eeg_window(
    eeg: np.ndarray,
    offset_s: float,
    seconds: float = EEG_WINDOW_SECONDS,
    *,
    sfreq: float = SFREQ,
    pad: bool = False,
    fill_value: float = np.nan,
    source: str = "EEG",
) -> np.ndarray:
    """Cut a window out of an EEG.

    Parameters
    ----------
    eeg : numpy.ndarray
        Shape ``(..., n_samples)`` at ``sfreq``.
    offset_s : float
        Window start, seconds (``eeg_label_offset_seconds``).
    seconds : float
        Window length, seconds (50 s for a labelled window).
    sfreq : float
        Sampling rate, Hz.
    pad : bool
        If the window runs past the end, pad with ``fill_value`` and warn (default: raise).
    fill_value : float
        Value used for padding (NaN so that NaN repair can see it).
    source : str
        Name of the recording for error messages (file or id).

    Returns
    -------
    numpy.ndarray
        Shape ``(..., round(seconds * sfreq))``, a view of ``eeg`` when no padding was needed.

    Raises
    ------
    ValueError
        Negative offset, or a window past the end of the recording without ``pad``.
    """
    start = int(round(offset_s * sfreq))
    return _cut(eeg, start, int(round(seconds * sfreq)), pad=pad, fill_value=fill_value, source=source)


def load_eeg_window(
    root: str | os.PathLike,
    eeg_id: int,
    offset_s: float,
    split: str = "train",
    *,
    seconds: float = EEG_WINDOW_SECONDS,
    pad: bool = False,
) -> np.ndarray:
    """Load one EEG and cut the window at ``offset_s``: float32 ``(20, round(seconds * 200))``.

    Errors name the file; see :func:`load_eeg` and :func:`eeg_window`.
    """
    eeg = load_eeg(root, eeg_id, split)
    return eeg_window(eeg, offset_s, seconds, pad=pad, source=str(eeg_path(root, eeg_id, split)))


def load_spectrogram(
    root: str | os.PathLike, spectrogram_id: int, split: str = "train"
) -> np.ndarray:
    """Load a whole Kaggle spectrogram.

    Parameters
    ----------
    root : path
        A Kaggle HMS data folder.
    spectrogram_id : int
        The spectrogram id (file name without ``.parquet``).
    split : {"train", "test"}
        Which sub-folder to read.

    Returns
    -------
    numpy.ndarray
        float32, shape ``(4, 100, n_times)``: regions LL, RL, LP, RP; 100 frequencies 0.59-19.92 Hz
        (file column order, ascending); one column per 2 s (``time`` = 1, 3, 5, ... s). Power values
        as stored (NaN kept).

    Raises
    ------
    FileNotFoundError
        No such file (the message names the id and the folder).
    ValueError
        Empty or non-parquet file, a missing ``time`` column, a region without 100 columns,
        non-numeric columns, or a ``time`` column that is not 1, 3, 5, ... s.
    """
    path = spectrogram_path(root, spectrogram_id, split)
    df = _read_parquet(path, f"spectrogram {spectrogram_id}")
    if "time" not in df.columns:
        raise ValueError(f"{path}: spectrogram {spectrogram_id} has no 'time' column")
    value_cols = [c for c in df.columns if c != "time"]
    regions = []
    for region in SPEC_REGIONS:
        cols = [c for c in value_cols if c.startswith(f"{region}_")]
        if len(cols) != SPEC_N_FREQS:
            raise ValueError(
                f"{path}: spectrogram {spectrogram_id} has {len(cols)} columns for region {region}, "
                f"expected {SPEC_N_FREQS} named '{region}_<Hz>'"
            )
        regions.append(cols)
    other = [c for c in value_cols if c[:3] not in {f"{r}_" for r in SPEC_REGIONS}]
    if other:
        raise ValueError(f"{path}: spectrogram {spectrogram_id} has unexpected columns {other[:5]}")
    _check_numeric(df, ("time", *value_cols), path)
    times = df["time"].to_numpy(dtype=np.float64)
    expected = 1.0 + SPEC_STEP_SECONDS * np.arange(len(times))
    if not np.allclose(times, expected):
        bad = int(np.flatnonzero(~np.isclose(times, expected))[0])
        raise ValueError(
            f"{path}: spectrogram {spectrogram_id} 'time' must be 1, 3, 5, ... s; row {bad} "
            f"has {times[bad]} (expected {expected[bad]})"
        )
    values = df[[c for cols in regions for c in cols]].to_numpy(dtype=np.float32)
    return np.ascontiguousarray(values.T.reshape(len(SPEC_REGIONS), SPEC_N_FREQS, len(df)))


def spectrogram_window(
    spec: np.ndarray,
    offset_s: float,
    seconds: float = SPEC_WINDOW_SECONDS,
    *,
    pad: bool = False,
    fill_value: float = np.nan,
    source: str = "spectrogram",
) -> np.ndarray:
    """Cut the label window out of a Kaggle spectrogram.

    The window holds the columns whose ``time`` lies in ``[offset_s, offset_s + seconds)``, as in
    ``spec[(time >= offset) & (time < offset + 600)]`` of the public notebooks.

    Parameters
    ----------
    spec : numpy.ndarray
        Shape ``(4, 100, n_times)`` from :func:`load_spectrogram`.
    offset_s : float
        ``spectrogram_label_offset_seconds``.
    seconds : float
        Window length, seconds (600 s -> 300 columns).
    pad, fill_value, source
        As :func:`eeg_window`.

    Returns
    -------
    numpy.ndarray
        Shape ``(4, 100, round(seconds / 2))``.

    Raises
    ------
    ValueError
        Negative offset or a window past the end without ``pad``.
    """
    # first column whose time (1, 3, 5, ... s) is >= offset_s
    start = -1 if offset_s < 0 else max(0, math.ceil((offset_s - 1.0) / SPEC_STEP_SECONDS))
    length = int(round(seconds / SPEC_STEP_SECONDS))
    return _cut(spec, start, length, pad=pad, fill_value=fill_value, source=source)


def load_spectrogram_window(
    root: str | os.PathLike,
    spectrogram_id: int,
    offset_s: float,
    split: str = "train",
    *,
    pad: bool = False,
) -> np.ndarray:
    """Load a Kaggle spectrogram and cut its 600 s label window: float32 ``(4, 100, 300)``."""
    spec = load_spectrogram(root, spectrogram_id, split)
    source = str(spectrogram_path(root, spectrogram_id, split))
    return spectrogram_window(spec, offset_s, pad=pad, source=source)


def check_data_dir(root: str | os.PathLike, split: str = "train") -> Path:
    """Check that ``root`` is laid out like the Kaggle data folder for ``split``.

    Raises
    ------
    FileNotFoundError
        Naming every missing file or folder.
    """
    _check_split(split)
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: data folder does not exist")
    needed = [f"{split}.csv", f"{split}_eegs", f"{split}_spectrograms"]
    if split == "test":
        needed.append("sample_submission.csv")
    missing = [name for name in needed if not (root / name).exists()]
    if missing:
        raise FileNotFoundError(
            f"{root}: not a Kaggle HMS data folder, missing {missing} "
            f"(expected train.csv, test.csv, sample_submission.csv, *_eegs/, *_spectrograms/)"
        )
    return root


def read_recording(path: str | os.PathLike, *, allow_missing: bool = False) -> tuple[np.ndarray, list[str]]:
    """Read a clinical recording (EDF/EDF+, BDF, BrainVision, EEGLAB) as a 200 Hz ``(20, samples)`` EEG.

    See :func:`hmslib.recording.read_recording` (MNE-Python readers, channel-name mapping,
    polyphase resampling); it lives there so that reading the Kaggle folder does not import MNE.
    """
    from hmslib.recording import read_recording as _read_recording

    return _read_recording(path, allow_missing=allow_missing)
