"""The competition metric, and the clinical metrics reported beside it.

Kaggle's scorer (``kaggle_kl_div``, micro-averaged): solution rows are vote distributions
(normalised per row), the submission is clipped to ``[1e-15, 1 - 1e-15]`` column by column *without*
renormalising, and each row contributes ``sum_c y_c * log(y_c / p_c)`` over the classes with
``y_c > 0``; the score is the mean over rows.

Beside it, what clinical EEG papers report (SPaRCNet, VIPEEGNet):

- per-class AUROC, one class against the rest, against the *consensus* (the vote argmax) of
  high-agreement windows (:func:`class_auroc`), with 95% intervals from a bootstrap over patients;
- the expected calibration error of each class's probability against its observed vote share
  (:func:`expected_calibration_error`; the reliability diagram draws the same bins).

Intervals resample *patients*, not windows (:func:`patient_bootstrap`): windows of one patient are
correlated, and a window bootstrap would give intervals that are too narrow.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from hmslib._checks import check_number, check_votes
from hmslib.constants import CLASSES, HIGH_AGREEMENT_VOTES, VOTE_COLUMNS

EPSILON = 1e-15
ID_COLUMNS = ("eeg_id", "label_id", "id")
#: Bootstrap draws held in memory at a time, as a number of (draw, window) weights.
_BOOT_CHUNK = 4_000_000


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


# --------------------------------------------------------------------------------------------------
# clinical metrics: AUROC, calibration, patient bootstrap
# --------------------------------------------------------------------------------------------------


def consensus(votes: np.ndarray) -> np.ndarray:
    """The experts' consensus class of each window: the vote argmax (ties: first in ``CLASSES``).

    Parameters
    ----------
    votes : numpy.ndarray
        ``(n, 6)`` vote counts or shares in ``CLASSES`` order.

    Returns
    -------
    numpy.ndarray
        int64 ``(n,)`` class indices.
    """
    votes = check_votes(np.asarray(votes, dtype=np.float64), what="consensus")
    return votes.argmax(axis=1).astype(np.int64)


def auroc(positive: np.ndarray, scores: np.ndarray, *, weights: np.ndarray | None = None):
    """Area under the ROC curve (Mann-Whitney), optionally weighted, for many weightings at once.

    ``sum_{i pos, j neg} w_i w_j ([s_i > s_j] + [s_i = s_j] / 2) / (W_pos W_neg)``: with unit
    weights, :func:`sklearn.metrics.roc_auc_score`; with weights, its ``sample_weight``. A 2-D
    ``weights`` computes one AUROC per row in one vectorised pass (bootstrap draws).

    Parameters
    ----------
    positive : numpy.ndarray
        ``(n,)`` bool, True for the positive class.
    scores : numpy.ndarray
        ``(n,)`` scores (e.g. the predicted probability of the class).
    weights : numpy.ndarray, optional
        ``(n,)`` or ``(n_draws, n)`` non-negative weights per window.

    Returns
    -------
    float or numpy.ndarray
        The AUROC (float64 ``(n_draws,)`` for 2-D ``weights``); NaN where there are no positive or
        no negative windows (of positive weight).

    Raises
    ------
    ValueError
        Shapes that do not match, or non-finite scores.
    """
    positive = np.asarray(positive, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    n = len(scores)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    if positive.shape != (n,) or scores.ndim != 1 or w.shape[-1:] != (n,) or w.ndim > 2:
        raise ValueError(
            f"auroc: expected positive (n,), scores (n,) and weights (n,) or (draws, n), got "
            f"{positive.shape}, {scores.shape} and {w.shape}"
        )
    if not np.isfinite(scores).all():
        raise ValueError("auroc: scores must be finite")
    w2 = np.atleast_2d(w)
    if n == 0:
        out = np.full(len(w2), np.nan)
    else:
        order = np.argsort(scores, kind="stable")
        ranked = scores[order]
        starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])  # one block per tied score
        w_sorted = w2[:, order]
        w_pos = np.where(positive[order], w_sorted, 0.0)
        pos = np.add.reduceat(w_pos, starts, axis=1)
        neg = np.add.reduceat(w_sorted - w_pos, starts, axis=1)
        below = np.cumsum(neg, axis=1) - neg
        pairs = pos.sum(axis=1) * neg.sum(axis=1)
        wins = (pos * (below + 0.5 * neg)).sum(axis=1)
        out = np.where(pairs > 0, wins / np.where(pairs > 0, pairs, 1.0), np.nan)
    return out if w.ndim == 2 else float(out[0])


def patient_bootstrap(
    groups: np.ndarray, *, n_boot: int = 1000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap draws over patients: how often each patient is drawn, and each window's patient.

    Each draw takes as many patients as there are, with replacement; a window counts as many
    times as its patient was drawn, so a patient's windows always enter a draw together.

    Parameters
    ----------
    groups : numpy.ndarray
        ``(n,)`` patient (any hashable label) of each window.
    n_boot : int
        Number of draws (>= 1).
    seed : int
        Seed of the draws.

    Returns
    -------
    counts : numpy.ndarray
        float64 ``(n_boot, n_patients)``: times each patient is drawn (each row sums to
        ``n_patients``); patients in ``numpy.unique`` order.
    row_patient : numpy.ndarray
        int64 ``(n,)``: column of ``counts`` of each window, so ``counts[:, row_patient]`` are the
        window weights of every draw.

    Raises
    ------
    ValueError
        ``n_boot < 1``.
    """
    check_number("n_boot", n_boot, low=1, integer=True)
    _, row_patient = np.unique(np.asarray(groups), return_inverse=True)
    n_patients = int(row_patient.max()) + 1 if len(row_patient) else 0
    rng = np.random.default_rng(seed)
    if n_patients == 0:
        return np.zeros((n_boot, 0)), row_patient.astype(np.int64)
    counts = rng.multinomial(n_patients, np.full(n_patients, 1.0 / n_patients), size=n_boot)
    return counts.astype(np.float64), row_patient.astype(np.int64)


def _chunks(n_draws: int, n_rows: int):
    """Slices of the draws small enough to hold ``(draws, rows)`` weights in memory."""
    step = max(1, _BOOT_CHUNK // max(n_rows, 1))
    return [slice(i, min(i + step, n_draws)) for i in range(0, n_draws, step)]


def _interval(draws: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of the draws (axis 0), ignoring NaN draws; NaN where all are NaN."""
    tail = 100 * (1 - level) / 2
    draws = np.asarray(draws, dtype=np.float64)
    lo = np.full(draws.shape[1:], np.nan)
    hi = np.full(draws.shape[1:], np.nan)
    some = np.isfinite(draws).any(axis=0)
    if np.any(some):
        lo[some], hi[some] = np.nanpercentile(draws[:, some], [tail, 100 - tail], axis=0)
    return lo, hi


def bootstrap_mean(
    values: np.ndarray,
    groups: np.ndarray,
    *,
    counts: np.ndarray | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """A mean over windows with a patient-bootstrap interval (e.g. a paired KL difference).

    For a paired comparison of two predictions of the same windows, pass the per-window difference
    of their KL: the interval is then that of the difference, the pairing kept.

    Parameters
    ----------
    values : numpy.ndarray
        ``(n,)`` one value per window; or, with ``counts``, the *sum* over ``counts[i]`` windows
        (e.g. one entry per patient: its summed KL).
    groups : numpy.ndarray
        ``(n,)`` patient of each entry.
    counts : numpy.ndarray, optional
        ``(n,)`` windows each entry of ``values`` sums over (default 1 each).
    n_boot : int
        Bootstrap draws.
    level : float
        Coverage of the interval, in (0, 1).
    seed : int
        Seed of the draws.

    Returns
    -------
    mean, lo, hi : float
        ``sum(values) / sum(counts)`` and the percentile interval of the bootstrap means.

    Raises
    ------
    ValueError
        Shapes that do not match, no windows, or ``level`` outside (0, 1).
    """
    values = np.asarray(values, dtype=np.float64)
    counts = np.ones_like(values) if counts is None else np.asarray(counts, dtype=np.float64)
    if values.ndim != 1 or counts.shape != values.shape or len(groups) != len(values):
        raise ValueError(
            f"bootstrap_mean: values, counts and groups must be (n,), got {values.shape}, "
            f"{counts.shape} and {np.shape(groups)}"
        )
    if counts.sum() <= 0:
        raise ValueError("bootstrap_mean: no windows to average")
    check_number("level", level, low=0, high=1, low_open=True)
    draws, row_patient = patient_bootstrap(groups, n_boot=n_boot, seed=seed)
    n_patients = draws.shape[1]
    sums = np.bincount(row_patient, weights=values, minlength=n_patients)
    sizes = np.bincount(row_patient, weights=counts, minlength=n_patients)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = (draws @ sums) / (draws @ sizes)
    lo, hi = _interval(means[:, None], level)
    return float(values.sum() / counts.sum()), float(lo[0]), float(hi[0])


def class_auroc(
    votes: np.ndarray,
    preds: np.ndarray,
    *,
    groups: np.ndarray | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """One-vs-rest AUROC of each class against the consensus, with patient-bootstrap intervals.

    Window ``i`` is a positive of class ``c`` when ``c`` is its consensus (:func:`consensus`);
    its score is the predicted probability of ``c``. Pass high-agreement windows only (the top
    solutions and the clinical papers score those): few-vote consensus labels are mostly noise.

    Parameters
    ----------
    votes : numpy.ndarray
        ``(n, 6)`` vote counts.
    preds : numpy.ndarray
        ``(n, 6)`` predicted probabilities.
    groups : numpy.ndarray, optional
        ``(n,)`` patient of each window; needed for the intervals (None: no intervals).
    n_boot : int
        Bootstrap draws (over patients).
    level : float
        Coverage of the intervals.
    seed : int
        Seed of the draws.

    Returns
    -------
    pandas.DataFrame
        Index ``class``: the six classes then ``macro`` (the mean of the classes that have
        positives and negatives; in each draw likewise). Columns ``auroc``, ``lo``, ``hi`` (NaN
        without ``groups``, or where a class has no positives), ``n_pos`` (windows whose consensus
        is the class; ``n`` on the macro row).

    Raises
    ------
    ValueError
        Shapes that do not match, invalid votes or non-finite predictions.
    """
    votes = np.asarray(votes, dtype=np.float64)
    preds = np.asarray(preds, dtype=np.float64)
    k = len(CLASSES)
    if votes.ndim != 2 or votes.shape[1] != k or preds.shape != votes.shape:
        raise ValueError(f"class_auroc: expected two (n, {k}) arrays, got {votes.shape} and {preds.shape}")
    label = consensus(votes) if len(votes) else np.zeros(0, dtype=np.int64)
    point = np.array([auroc(label == c, preds[:, c]) for c in range(k)])
    lo = hi = np.full(k + 1, np.nan)
    if groups is not None and len(votes):
        if len(groups) != len(votes):
            raise ValueError(f"class_auroc: groups has {len(groups)} entries for {len(votes)} windows")
        draws, row_patient = patient_bootstrap(groups, n_boot=n_boot, seed=seed)
        boot = np.empty((n_boot, k))
        for part in _chunks(n_boot, len(votes)):
            weights = draws[part][:, row_patient]
            for c in range(k):
                boot[part, c] = auroc(label == c, preds[:, c], weights=weights)
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a draw with no class defined
            macro = np.nanmean(boot, axis=1)
        lo, hi = _interval(np.column_stack([boot, macro]), level)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        macro_point = np.nanmean(point) if np.isfinite(point).any() else np.nan
    n_pos = np.bincount(label, minlength=k)
    return pd.DataFrame(
        {
            "auroc": [*point, macro_point],
            "lo": lo,
            "hi": hi,
            "n_pos": [*n_pos, len(votes)],
        },
        index=pd.Index([*CLASSES, "macro"], name="class"),
    )


def calibration_bins(
    solution: pd.DataFrame | np.ndarray, submission: pd.DataFrame | np.ndarray, *, n_bins: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per class, windows binned by predicted probability: counts and sums of prediction and share.

    Bins are ``n_bins`` equal-width intervals over [0, 1] (the last includes 1).

    Parameters
    ----------
    solution, submission
        As :func:`kaggle_kl`: votes and predicted probabilities.
    n_bins : int
        Number of bins (>= 1).

    Returns
    -------
    count, pred_sum, observed_sum : numpy.ndarray
        float64 ``(6, n_bins)``: windows in each (class, bin), their summed predicted probability
        of the class and their summed vote share of it.

    Raises
    ------
    ValueError
        ``n_bins < 1``, or invalid votes or predictions (as :func:`kaggle_kl`).
    """
    check_number("n_bins", n_bins, low=1, integer=True)
    y, p = _as_arrays(solution, submission, None)
    p = np.clip(p, 0.0, 1.0)
    k = len(CLASSES)
    bins = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)
    flat = (np.arange(k) * n_bins + bins).ravel()  # (n, 6) -> class-major bin id per entry
    size = k * n_bins
    count = np.bincount(flat, minlength=size).astype(np.float64)
    pred_sum = np.bincount(flat, weights=p.ravel(), minlength=size)
    observed_sum = np.bincount(flat, weights=y.ravel(), minlength=size)
    return tuple(a.reshape(k, n_bins) for a in (count, pred_sum, observed_sum))


def class_calibration_errors(
    solution: pd.DataFrame | np.ndarray, submission: pd.DataFrame | np.ndarray, *, n_bins: int = 10
) -> pd.Series:
    """Expected calibration error of each class's probability against its observed vote share.

    ``ECE_c = sum_b (n_b / n) |mean predicted p_c in bin b - mean vote share of c in bin b|``,
    over the bins of :func:`calibration_bins` (what the reliability diagram shows).

    Parameters
    ----------
    solution, submission
        As :func:`kaggle_kl`: votes and predicted probabilities.
    n_bins : int
        Equal-width probability bins per class (>= 1).

    Returns
    -------
    pandas.Series
        Index ``CLASSES``, values in [0, 1]; NaN without windows.

    Raises
    ------
    ValueError
        As :func:`calibration_bins`.
    """
    count, pred_sum, observed_sum = calibration_bins(solution, submission, n_bins=n_bins)
    n = count.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        errors = np.abs(pred_sum - observed_sum).sum(axis=1) / n
    return pd.Series(errors, index=list(CLASSES), name="ece")


def expected_calibration_error(
    solution: pd.DataFrame | np.ndarray, submission: pd.DataFrame | np.ndarray, *, n_bins: int = 10
) -> float:
    """Class-wise expected calibration error: the mean over classes of
    :func:`class_calibration_errors` (0 = every bin's mean prediction equals its vote share).

    Parameters
    ----------
    solution, submission
        As :func:`kaggle_kl`.
    n_bins : int
        Equal-width probability bins per class.

    Returns
    -------
    float
        In [0, 1]; NaN without windows.
    """
    return float(class_calibration_errors(solution, submission, n_bins=n_bins).mean())
