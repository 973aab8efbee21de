"""The competition metric: KL divergence of the submitted distributions from the vote distributions.

Kaggle's scorer (``kaggle_kl_div``, micro-averaged): solution rows are vote distributions
(normalised per row), the submission is clipped to ``[1e-15, 1 - 1e-15]`` column by column *without*
renormalising, and each row contributes ``sum_c y_c * log(y_c / p_c)`` over the classes with
``y_c > 0``; the score is the mean over rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hmslib._checks import check_votes
from hmslib.constants import CLASSES, HIGH_AGREEMENT_VOTES, VOTE_COLUMNS

EPSILON = 1e-15
ID_COLUMNS = ("eeg_id", "label_id", "id")


def _as_arrays(
    solution: pd.DataFrame | np.ndarray, submission: pd.DataFrame | np.ndarray, id_column: str | None
) -> tuple[np.ndarray, np.ndarray]:
    """Align two tables (by id when DataFrames) and return float64 ``(n, 6)`` arrays."""
    if isinstance(solution, pd.DataFrame) != isinstance(submission, pd.DataFrame):
        raise TypeError("solution and submission must both be DataFrames or both be arrays")
    if isinstance(solution, pd.DataFrame):
        if id_column is None:
            found = [c for c in ID_COLUMNS if c in solution.columns and c in submission.columns]
            if not found:
                raise ValueError(f"no shared id column; expected one of {ID_COLUMNS}")
            id_column = found[0]
        for name, table in (("solution", solution), ("submission", submission)):
            missing = [c for c in (id_column, *VOTE_COLUMNS) if c not in table.columns]
            if missing:
                raise ValueError(f"{name} misses columns {missing}")
            if table[id_column].duplicated().any():
                raise ValueError(f"{name} has duplicated {id_column} values")
        sol_ids = pd.Index(solution[id_column])
        sub_ids = pd.Index(submission[id_column])
        absent = sol_ids.difference(sub_ids)
        if len(absent):
            raise ValueError(f"submission misses {len(absent)} ids of the solution, e.g. {list(absent[:5])}")
        extra = sub_ids.difference(sol_ids)
        if len(extra):
            raise ValueError(f"submission has {len(extra)} ids not in the solution, e.g. {list(extra[:5])}")
        sub = submission.set_index(id_column).loc[solution[id_column], list(VOTE_COLUMNS)]
        y = solution[list(VOTE_COLUMNS)].to_numpy(dtype=np.float64)
        p = sub.to_numpy(dtype=np.float64)
    else:
        y = np.asarray(solution, dtype=np.float64)
        p = np.asarray(submission, dtype=np.float64)
    if y.ndim != 2 or y.shape[1] != len(CLASSES) or y.shape != p.shape:
        raise ValueError(f"expected two (n, 6) arrays, got {y.shape} and {p.shape}")
    if not np.isfinite(p).all():
        raise ValueError("submission contains NaN or infinite values")
    y = check_votes(y, what="solution")
    return y / y.sum(axis=1, keepdims=True), p


def kl_rows(
    solution: pd.DataFrame | np.ndarray,
    submission: pd.DataFrame | np.ndarray,
    *,
    id_column: str | None = None,
) -> np.ndarray:
    """Per-row, per-class KL terms ``y * log(y / clip(p))`` (0 where ``y == 0``): float64 ``(n, 6)``.

    Parameters are as :func:`kaggle_kl`; rows follow the solution's order.
    """
    y, p = _as_arrays(solution, submission, id_column)
    p = np.clip(p, EPSILON, 1 - EPSILON)
    safe_y = np.where(y > 0, y, 1.0)
    return np.where(y > 0, y * np.log(safe_y / p), 0.0)


def kaggle_kl(
    solution: pd.DataFrame | np.ndarray,
    submission: pd.DataFrame | np.ndarray,
    *,
    id_column: str | None = None,
) -> float:
    """Score a submission exactly as the HMS competition did.

    Parameters
    ----------
    solution : pandas.DataFrame or numpy.ndarray
        Votes or vote probabilities, ``(n, 6)`` in ``CLASSES`` order, or a DataFrame with an id
        column and the six ``*_vote`` columns. Rows are normalised to sum to 1.
    submission : pandas.DataFrame or numpy.ndarray
        Predicted probabilities in the same form. Clipped to ``[1e-15, 1 - 1e-15]``, not renormalised.
    id_column : str, optional
        Column to align DataFrames on (default: the first of ``eeg_id``, ``label_id``, ``id``
        present in both).

    Returns
    -------
    float
        Mean over rows of the KL divergence (nats); 0 for a perfect submission.

    Raises
    ------
    ValueError
        Mismatched shapes or ids, missing columns, NaN in the submission or rows without votes.
    """
    return float(kl_rows(solution, submission, id_column=id_column).sum(axis=1).mean())


def kl_per_class(
    solution: pd.DataFrame | np.ndarray,
    submission: pd.DataFrame | np.ndarray,
    *,
    id_column: str | None = None,
) -> pd.Series:
    """Each class's contribution to :func:`kaggle_kl` (the six values sum to the score)."""
    terms = kl_rows(solution, submission, id_column=id_column)
    return pd.Series(terms.mean(axis=0), index=list(CLASSES), name="kl")


def kl_split(
    votes: np.ndarray, preds: np.ndarray, *, min_votes: int = HIGH_AGREEMENT_VOTES
) -> tuple[float, float, int]:
    """The two numbers every table reports: KL on high-agreement rows and KL on all rows.

    Parameters
    ----------
    votes : numpy.ndarray
        ``(n, 6)`` vote counts in ``CLASSES`` order (counts, not shares: the split is by their sum).
    preds : numpy.ndarray
        ``(n, 6)`` predicted probabilities.
    min_votes : int
        Rows with at least this many votes are high-agreement (the expert pool the test set
        resembles).

    Returns
    -------
    kl_many : float
        :func:`kaggle_kl` on the rows with ``>= min_votes`` votes (NaN when there are none).
    kl_all : float
        :func:`kaggle_kl` on every row.
    n_many : int
        Number of high-agreement rows.
    """
    votes = np.asarray(votes, dtype=np.float64)
    preds = np.asarray(preds, dtype=np.float64)
    many = votes.sum(axis=1) >= min_votes
    kl_all = kaggle_kl(votes, preds)
    kl_many = kaggle_kl(votes[many], preds[many]) if many.any() else float("nan")
    return kl_many, kl_all, int(many.sum())
