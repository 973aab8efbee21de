"""Labels: expert votes -> probabilities, agreement subsets, window consolidation, patient folds.

A row of train.csv is one labelled 50 s window; its six ``*_vote`` columns count how many raters
chose each class for the central 10 s. Many rows of one EEG are overlapping windows that share the
same vote vector (the raters annotated one event, the organisers cut several windows around it).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hmslib._checks import check_votes
from hmslib.constants import CLASSES, HIGH_AGREEMENT_VOTES, VOTE_COLUMNS

#: Vote-count groups used in analyses: few-vote rows come from a larger, less expert rater pool.
VOTE_GROUPS: tuple[tuple[str, int, int], ...] = (
    ("1-2", 1, 2),
    ("3-9", 3, 9),
    ("10-19", 10, 19),
    ("20+", 20, 10**9),
)


def _votes(df: pd.DataFrame) -> np.ndarray:
    missing = [c for c in VOTE_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"label table misses vote columns {missing} (expected {list(VOTE_COLUMNS)})")
    return df[list(VOTE_COLUMNS)].to_numpy(dtype=np.float64)


def total_votes(df: pd.DataFrame) -> np.ndarray:
    """Total number of votes per row: int64 ``(n,)``."""
    return _votes(df).sum(axis=1).round().astype(np.int64)


def vote_probabilities(df: pd.DataFrame) -> np.ndarray:
    """Normalise the vote columns of each row into a probability distribution.

    Parameters
    ----------
    df : pandas.DataFrame
        Has the six ``*_vote`` columns (counts or already-normalised values).

    Returns
    -------
    numpy.ndarray
        float64 ``(n, 6)`` in ``CLASSES`` order; each row sums to 1.

    Raises
    ------
    ValueError
        Vote columns missing, negative votes or a row with no votes at all.
    """
    votes = check_votes(_votes(df), what="label table")
    return votes / votes.sum(axis=1, keepdims=True)


def high_agreement(df: pd.DataFrame, min_votes: int = HIGH_AGREEMENT_VOTES) -> pd.DataFrame:
    """Rows with at least ``min_votes`` votes (the expert-pool windows the top solutions train on last)."""
    return df.loc[total_votes(df) >= min_votes]


def vote_group(df: pd.DataFrame) -> pd.Series:
    """Vote-count group label per row (``"1-2"``, ``"3-9"``, ``"10-19"``, ``"20+"``)."""
    totals = total_votes(df)
    labels = np.empty(len(totals), dtype=object)
    for name, lo, hi in VOTE_GROUPS:
        labels[(totals >= lo) & (totals <= hi)] = name
    return pd.Series(labels, index=df.index, name="vote_group")


def consolidate_windows(df: pd.DataFrame) -> pd.DataFrame:
    """Merge the overlapping windows of one EEG that share an identical vote vector.

    Parameters
    ----------
    df : pandas.DataFrame
        train.csv rows.

    Returns
    -------
    pandas.DataFrame
        One row per (``eeg_id``, vote vector), in order of first appearance, with columns
        ``eeg_id, patient_id, spectrogram_id``, the six vote columns, ``total_votes``,
        ``n_windows`` and list columns ``label_ids``, ``eeg_offsets``, ``spectrogram_offsets``
        (every offset is kept, so training can sample one of them per epoch). Offsets are seconds.
    """
    votes = df[list(VOTE_COLUMNS)]
    key = pd.MultiIndex.from_frame(pd.concat([df[["eeg_id"]], votes], axis=1))
    group = pd.Series(pd.factorize(key)[0], index=df.index)
    grouped = df.groupby(group, sort=True)
    out = grouped.agg(
        eeg_id=("eeg_id", "first"),
        patient_id=("patient_id", "first"),
        spectrogram_id=("spectrogram_id", "first"),
        **{c: (c, "first") for c in VOTE_COLUMNS},
        n_windows=("eeg_id", "size"),
        label_ids=("label_id", list),
        eeg_offsets=("eeg_label_offset_seconds", list),
        spectrogram_offsets=("spectrogram_label_offset_seconds", list),
    )
    out.insert(len(VOTE_COLUMNS) + 3, "total_votes", total_votes(out))
    return out.reset_index(drop=True)


def make_folds(
    df: pd.DataFrame, n_folds: int = 5, seed: int = 0, *, group_column: str = "patient_id"
) -> np.ndarray:
    """Patient-grouped, class-stratified K folds.

    Stratifies on the majority class of each row's votes, and keeps all rows of one patient in one
    fold so that validation never sees a patient the model trained on.

    Parameters
    ----------
    df : pandas.DataFrame
        Label rows with the vote columns and ``group_column``.
    n_folds : int
        Number of folds (>= 2, <= number of patients).
    seed : int
        Shuffling seed; the same seed gives the same folds.
    group_column : str
        Column whose values must not be split across folds.

    Returns
    -------
    numpy.ndarray
        int64 ``(n,)``, fold id in ``[0, n_folds)`` per row of ``df``.

    Raises
    ------
    ValueError
        Too few patients for ``n_folds`` or a missing column.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    if group_column not in df.columns:
        raise ValueError(f"label table has no {group_column!r} column to group folds by")
    n_groups = df[group_column].nunique()
    if n_folds < 2 or n_folds > n_groups:
        raise ValueError(f"n_folds must be in [2, {n_groups}] (number of patients), got {n_folds}")
    y = vote_probabilities(df).argmax(axis=1)
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    folds = np.full(len(df), -1, dtype=np.int64)
    for k, (_, val) in enumerate(splitter.split(np.zeros(len(df)), y, df[group_column].to_numpy())):
        folds[val] = k
    return folds


def class_prior(df: pd.DataFrame) -> np.ndarray:
    """Mean vote distribution of ``df``: float64 ``(6,)``, the best constant predictor under KL."""
    return vote_probabilities(df).mean(axis=0)


def majority_class(df: pd.DataFrame) -> pd.Series:
    """Name of the class with most votes per row (ties -> first in ``CLASSES`` order)."""
    return pd.Series(np.asarray(CLASSES)[vote_probabilities(df).argmax(axis=1)], index=df.index)
