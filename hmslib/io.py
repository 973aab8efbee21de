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

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from hmslib._checks import check_option, check_votes
from hmslib.constants import (
    EEG_CHANNELS,
    EEG_WINDOW_SECONDS,
    SFREQ,
    SPEC_N_FREQS,
    SPEC_REGIONS,
    SPEC_STEP_SECONDS,
    SPEC_WINDOW_COLUMNS,
    SPEC_WINDOW_SECONDS,
    TEST_COLUMNS,
    TRAIN_COLUMNS,
    VOTE_COLUMNS,
)

SPLITS = ("train", "test")


class PaddingWarning(UserWarning):
    """A window ran past the end of its recording and was padded because the caller asked for it."""


# --------------------------------------------------------------------------------------------------
# paths
# --------------------------------------------------------------------------------------------------


def _check_split(split: str) -> None:
    check_option("split", split, SPLITS)


def eeg_path(root: str | os.PathLike, eeg_id: int, split: str = "train") -> Path:
    """Path of the parquet file of one EEG: ``root/{split}_eegs/{eeg_id}.parquet``."""
    _check_split(split)
    return Path(root) / f"{split}_eegs" / f"{int(eeg_id)}.parquet"


def spectrogram_path(root: str | os.PathLike, spectrogram_id: int, split: str = "train") -> Path:
    """Path of the parquet file of one Kaggle spectrogram: ``root/{split}_spectrograms/{id}.parquet``."""
    _check_split(split)
    return Path(root) / f"{split}_spectrograms" / f"{int(spectrogram_id)}.parquet"


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
        The file is empty or has a header but no rows, is not CSV, misses columns, has
        non-numeric ids or offsets, or votes that are not non-negative whole numbers (an empty vote
        cell included); the message names the file, the CSV line and the column.
    """
    path = Path(root) / "train.csv"
    df = _read_table(path, "train.csv")
    _check_columns(df, TRAIN_COLUMNS, path)
    if len(df) == 0:  # before the dtype check: a header-only file reads as object columns
        raise ValueError(f"{path}: train.csv has a header but no rows")
    numeric = tuple(c for c in TRAIN_COLUMNS if c != "expert_consensus")
    _check_numeric(df, numeric, path)
    # CSV line numbers: the header is line 1
    check_votes(df[list(VOTE_COLUMNS)], what=str(path), integer=True, row_names=df.index + 2, row_label="line")
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


def _gather(data: np.ndarray, starts: np.ndarray, length: int, *, clip: bool, source: str) -> np.ndarray:
    """Windows ``data[..., s:s + length]`` for every start: ``(k, *data.shape[:-1], length)``."""
    n = data.shape[-1]
    if clip:
        starts = np.clip(starts, 0, max(n - length, 0))
    bad = (starts < 0) | (starts + length > n)
    if bad.any():
        first = int(starts[bad][0])
        raise ValueError(
            f"{source}: window [{first}, {first + length}) does not fit in the recording "
            f"({n} columns)"
        )
    return np.moveaxis(data[..., starts[:, None] + np.arange(length)], -2, 0)


def _spectrogram_start(offsets_s: np.ndarray) -> np.ndarray:
    """First Kaggle spectrogram column whose time (1, 3, 5, ... s) is >= each offset (-1 if < 0)."""
    offsets_s = np.asarray(offsets_s, dtype=np.float64)
    first = np.maximum(0, np.ceil((offsets_s - 1.0) / SPEC_STEP_SECONDS))
    return np.where(offsets_s < 0, -1, first).astype(np.int64)


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


def eeg_windows(
    eeg: np.ndarray,
    offsets_s,
    seconds: float = EEG_WINDOW_SECONDS,
    *,
    sfreq: float = SFREQ,
    clip: bool = False,
    source: str = "EEG",
) -> np.ndarray:
    """Cut many windows out of one EEG at once (the vectorised :func:`eeg_window`).

    Parameters
    ----------
    eeg : numpy.ndarray
        Shape ``(channels, n_samples)`` at ``sfreq``.
    offsets_s : array-like of float
        Window starts, seconds.
    seconds : float
        Window length, seconds.
    sfreq : float
        Sampling rate, Hz.
    clip : bool
        Move windows that run past either end inside the recording (shifted training windows)
        instead of raising.
    source : str
        Name of the recording for error messages.

    Returns
    -------
    numpy.ndarray
        ``(len(offsets_s), channels, round(seconds * sfreq))``, a copy.

    Raises
    ------
    ValueError
        A window outside the recording (without ``clip``); the message names ``source``.
    """
    starts = np.round(np.asarray(offsets_s, dtype=np.float64) * sfreq).astype(np.int64)
    return _gather(eeg, starts.reshape(-1), int(round(seconds * sfreq)), clip=clip, source=source)


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
    start = int(_spectrogram_start(offset_s))
    length = int(round(seconds / SPEC_STEP_SECONDS))
    return _cut(spec, start, length, pad=pad, fill_value=fill_value, source=source)


def spectrogram_windows(
    spec: np.ndarray, offsets_s, *, source: str = "spectrogram"
) -> np.ndarray:
    """Cut many 600 s label windows out of one Kaggle spectrogram (the vectorised
    :func:`spectrogram_window`): float32 ``(len(offsets_s), 4, 100, 300)``.

    Raises
    ------
    ValueError
        A window outside the spectrogram; the message names ``source``.
    """
    starts = _spectrogram_start(np.asarray(offsets_s).reshape(-1))
    return _gather(spec, starts, SPEC_WINDOW_COLUMNS, clip=False, source=source)


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
