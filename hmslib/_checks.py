"""Validators and atomic writes shared by every module, so that every error has one shape.

Validators raise :class:`ValueError` (or :class:`TypeError` for a wrong type) with a message that
starts with what was checked (a file, a parameter, a config field) and ends with what was expected:

- :func:`check_option`: ``unknown <what> 'x'; expected one of [...]`` (with close names);
- :func:`check_number`: ``<what> must be >= 1, got 0`` and the like;
- :func:`check_eeg`: EEG windows of the competition's shape ``(batch, 20, 10000)``;
- :func:`check_votes`: vote counts (finite, non-negative, optionally whole numbers, a vote per row).

Writes go through :func:`atomic_path`: a temporary file beside the target is renamed onto it only when
the write succeeded, so an interrupted or failed write never leaves a half file under the final name.
A full disk becomes one :class:`OSError` naming the file and the space that was free.
"""

from __future__ import annotations

import difflib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from hmslib.constants import CLASSES, EEG_CHANNELS, EEG_WINDOW_SAMPLES, SFREQ

# --------------------------------------------------------------------------------------------------
# validators
# --------------------------------------------------------------------------------------------------


def check_option(what: str, value, allowed: Collection) -> None:
    """Raise unless ``value`` is one of ``allowed``.

    Parameters
    ----------
    what : str
        What the value names, for the message (``"montage"``, ``"TrainConfig.device"``).
    value : object
        The value given.
    allowed : collection
        The accepted values, listed in the message in their order.

    Raises
    ------
    ValueError
        ``unknown <what> <value>; expected one of [...]``, with close names when some are close.
    """
    if value in allowed:
        return
    options = list(allowed)
    close = difflib.get_close_matches(str(value), [str(v) for v in options], n=4, cutoff=0.6)
    hint = f" (close: {close})" if close else ""
    raise ValueError(f"unknown {what} {value!r}; expected one of {options}{hint}")


def check_number(
    what: str,
    value,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    integer: bool = False,
) -> None:
    """Raise unless ``value`` is a number in the given range.

    Parameters
    ----------
    what : str
        Name for the message.
    value : object
        The value given.
    low, high : float, optional
        Bounds (``high`` inclusive; ``low`` inclusive unless ``low_open``).
    low_open : bool
        ``value`` must be strictly greater than ``low``.
    integer : bool
        ``value`` must be an integer (``bool`` is not).

    Raises
    ------
    ValueError
        ``<what> must be >= 1, got 0``, ``<what> must be in [0, 1], got 2``, ...
    """
    is_number = isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool
    )
    if integer and not (is_number and isinstance(value, int | np.integer)):
        raise ValueError(f"{what} must be an integer, got {value!r}")
    if not is_number or not np.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    below = low is not None and (value <= low if low_open else value < low)
    above = high is not None and value > high
    if below or above:
        if low is not None and high is not None:
            bracket = "(" if low_open else "["
            rule = f"in {bracket}{low:g}, {high:g}]"
        elif low is not None:
            rule = f"{'>' if low_open else '>='} {low:g}"
        else:
            rule = f"<= {high:g}"
        raise ValueError(f"{what} must be {rule}, got {value!r}")


def check_eeg(
    eeg,
    *,
    what: str,
    batched: bool = True,
    n_times: int | None = EEG_WINDOW_SAMPLES,
    sfreq: float = SFREQ,
):
    """Check EEG in the competition's layout: ``(batch, 20, n_times)`` or ``(20, n_times)``.

    Parameters
    ----------
    eeg : numpy.ndarray or torch.Tensor
        The EEG (microvolts, ``EEG_CHANNELS`` rows).
    what : str
        Who is checking, for the message.
    batched : bool
        Expect a leading batch axis.
    n_times : int or None
        Samples per window (default 10,000 = 50 s at 200 Hz); None accepts any length.
    sfreq : float
        The caller's sampling rate, which must be 200 Hz.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        ``eeg`` unchanged.

    Raises
    ------
    ValueError
        Another sampling rate, number of axes, channels or samples.
    """
    if sfreq != SFREQ:
        raise ValueError(
            f"{what}: expected EEG sampled at {SFREQ:g} Hz, got sfreq={sfreq:g} Hz; resample first"
        )
    if eeg is None:
        raise ValueError(f"{what}: needs EEG, got None")
    shape = tuple(eeg.shape)
    times = "samples" if n_times is None else str(n_times)
    expected = f"({'batch, ' if batched else ''}{len(EEG_CHANNELS)}, {times})"
    if len(shape) != (3 if batched else 2) or shape[-2] != len(EEG_CHANNELS):
        raise ValueError(
            f"{what}: expected EEG of shape {expected} (channels {', '.join(EEG_CHANNELS)}), "
            f"found shape {shape}"
        )
    if n_times is not None and shape[-1] != n_times:
        raise ValueError(
            f"{what}: expected {n_times} samples per window ({n_times / SFREQ:g} s at "
            f"{SFREQ:g} Hz), found {shape[-1]}"
        )
    return eeg


def check_votes(
    votes, *, what: str, integer: bool = False, row_names=None, row_label: str = "row"
) -> np.ndarray:
    """Check a vote table ``(n, 6)`` and return it as float64.

    Parameters
    ----------
    votes : array-like
        Vote counts (or vote shares) in ``CLASSES`` order.
    what : str
        Where the votes come from, for the message (a file or table name).
    integer : bool
        Votes must be whole numbers (counts as in train.csv).
    row_names : array-like, optional
        Labels of the rows used in messages (default: row positions).
    row_label : str
        What a row is called in messages (``"row"``, ``"line"`` for a CSV file).

    Returns
    -------
    numpy.ndarray
        float64 ``(n, 6)``.

    Raises
    ------
    ValueError
        Wrong shape, a missing (NaN) or infinite vote, a negative or (with ``integer``) fractional
        vote, or a row without any vote; the message names up to five rows and the column.
    """
    array = np.asarray(votes, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != len(CLASSES):
        raise ValueError(f"{what}: expected votes of shape (n, {len(CLASSES)}), got {array.shape}")
    names = np.arange(len(array)) if row_names is None else np.asarray(row_names)
    columns = [f"{c}_vote" for c in CLASSES]
    problems = (
        (~np.isfinite(array), "missing or infinite"),
        (np.isfinite(array) & (array < 0), "negative"),
        (np.isfinite(array) & (array != np.round(array)) if integer else None, "non-integer"),
    )
    for mask, kind in problems:
        if mask is not None and mask.any():
            rows, cols = np.nonzero(mask)
            cells = zip(rows[:5], cols[:5], strict=True)
            first = ", ".join(f"{row_label} {names[r]} {columns[c]}={array[r, c]:g}" for r, c in cells)
            raise ValueError(
                f"{what}: {kind} votes ({int(mask.sum())} cells, e.g. {first}); votes must be "
                f"{'non-negative whole numbers' if integer else 'finite and non-negative'}"
            )
    empty = array.sum(axis=1) <= 0
    if empty.any():
        raise ValueError(
            f"{what}: {row_label}s {names[empty][:5].tolist()} have no votes; cannot form a probability "
            "distribution"
        )
    return array


# --------------------------------------------------------------------------------------------------
# atomic writes
# --------------------------------------------------------------------------------------------------


def _no_space(path: Path, err: OSError, needed: int | None = None) -> OSError:
    """An OSError naming ``path``, the space needed (when known) and the space free."""
    free = shutil.disk_usage(path.parent).free if path.parent.exists() else 0
    need = f"{needed / 2**20:.1f} MiB needed, " if needed else ""
    return OSError(
        err.errno, f"{path}: not enough disk space to write it ({need}{free / 2**20:.1f} MiB free)"
    )


def check_free_space(path: str | os.PathLike, nbytes: int) -> None:
    """Raise an OSError naming ``path`` unless its file system has ``nbytes`` free.

    Raises
    ------
    OSError
        (ENOSPC) with the space needed and the space free.
    """
    path = Path(path)
    folder = next(p for p in (path, *path.parents) if p.exists())
    free = shutil.disk_usage(folder).free
    if free < nbytes:
        raise OSError(
            errno.ENOSPC,
            f"{path}: not enough disk space ({nbytes / 2**20:.1f} MiB needed, "
            f"{free / 2**20:.1f} MiB free)",
        )


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    An interrupted or failed write therefore never leaves a half-written file under the final name;
    a full disk is reported as an OSError naming ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise _no_space(path, err) from err
        raise
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_csv_atomic(df, path: str | os.PathLike, **kwargs) -> Path:
    """Write a DataFrame to CSV at ``path`` atomically (``index=False`` unless given)."""
    kwargs.setdefault("index", False)
    with atomic_path(path) as tmp:
        df.to_csv(tmp, **kwargs)
    return Path(path)


def write_parquet_atomic(df, path: str | os.PathLike) -> Path:
    """Write a DataFrame to parquet at ``path`` atomically, without the pandas index."""
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)
    return Path(path)


def write_json_atomic(data, path: str | os.PathLike) -> Path:
    """Write ``data`` as indented JSON (ending in a newline) at ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")
    return Path(path)
