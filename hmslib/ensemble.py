"""Ensembling on out-of-fold predictions: aligned OOF, simplex weights, a bias stack, temperature
scaling, nested comparison.

Three ways to combine ``m`` models' probabilities ``P_j`` (each ``(n, 6)``) into one distribution:

- **equal**: ``mean_j P_j``;
- **nelder_mead** (the public seed recipe): ``sum_j w_j P_j`` with ``w`` on the simplex, chosen by
  ``scipy.optimize.minimize(method="Nelder-Mead")`` on the OOF KL (:func:`hmslib.metrics.kaggle_kl`),
  ``w = softmax(theta)`` so any ``theta`` gives valid weights;
- **stack** (the 3rd place blend): ``softmax(log(sum_j w_j P_j) + b)``, simplex weights plus a
  per-class bias ``b`` on the log-probabilities, which corrects a class the models over- or
  under-predict (the write-up found it worth 0.001-0.003 KL). With ``b = 0`` it is the weighted mean.

Each method also comes with **temperature scaling** (:mod:`hmslib.calibration`): one temperature
per model, fitted first, the blend then fitted on the calibrated probabilities.

Every fit uses the OOF windows with at least ``fit_min_votes`` votes (default 10): the test set was
labelled by the expert pool of the high-agreement windows, while few-vote windows come from a
differently biased rater pool, so weights fitted on all rows chase the wrong distribution (the top
solutions fitted and validated on >= 10 votes). Fitting on the same OOF rows the weights are scored
on flatters them, so :func:`compare_ensembles` scores every method with nested, patient-grouped
folds: fitted on the outer-train rows, scored on the outer-held-out rows only, on the
high-agreement rows and on all rows. The chosen ensemble is saved as ``ensemble.json`` (weights,
bias, temperatures) and applied at inference by :func:`blend`.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import log_softmax, softmax

from hmslib._checks import check_number, check_option, write_json_atomic
from hmslib.analysis import check_oof
from hmslib.calibration import apply_temperatures, fit_temperatures
from hmslib.constants import (
    CLASSES,
    HIGH_AGREEMENT_VOTES,
    OOF_ID_COLUMNS,
    PRED_COLUMNS,
    VOTE_COLUMNS,
)
from hmslib.labels import vote_probabilities
from hmslib.metrics import EPSILON, kaggle_kl

#: Ensemble methods known to ``ensemble.json``.
METHODS: tuple[str, ...] = ("single", "equal", "nelder_mead", "stack")
#: Suffix of a method's row label when it scales the models' temperatures first.
TEMPERATURE_SUFFIX = " + temperature"
_SUM_TOL = 1e-6


# --------------------------------------------------------------------------------------------------
# aligned OOF arrays
# --------------------------------------------------------------------------------------------------


def align_oof(
    oofs: dict[str, pd.DataFrame], *, return_frame: bool = False
) -> tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Stack several models' OOF predictions on the same label windows.

    Parameters
    ----------
    oofs : dict of str to pandas.DataFrame
        Model name -> its merged OOF table (:func:`hmslib.analysis.load_oof`), at least one.
    return_frame : bool
        Also return the shared row identifiers.

    Returns
    -------
    y : numpy.ndarray
        float64 ``(n, 6)`` expert vote probabilities, rows sorted by ``label_id``.
    preds : numpy.ndarray
        float64 ``(m, n, 6)`` predictions, models in the order of ``oofs``.
    rows : pandas.DataFrame
        Only when ``return_frame``: ``OOF_ID_COLUMNS`` and the vote columns of those ``n`` rows
        (``patient_id`` gives the groups for :func:`compare_ensembles`).

    Raises
    ------
    ValueError
        No models, an invalid OOF table, a repeated ``label_id`` within a model, models that do not
        cover the same label windows (the model and the number of differing rows are named), or
        models that disagree on a window's votes.
    """
    if not oofs:
        raise ValueError("align_oof needs at least one model's OOF table, got none")
    names = list(oofs)
    tables = {}
    for name, df in oofs.items():
        check_oof(df, what=f"OOF of model {name!r}")
        dup = df["label_id"].duplicated()
        if dup.any():
            raise ValueError(
                f"OOF of model {name!r} repeats {int(dup.sum())} label_id values, "
                f"e.g. {df.loc[dup, 'label_id'].head(3).tolist()}"
            )
        tables[name] = df.set_index("label_id").sort_index()
    ref_name = names[0]
    ref = tables[ref_name]
    for name in names[1:]:
        ids = tables[name].index
        lacks, extra = ref.index.difference(ids), ids.difference(ref.index)
        if len(lacks) or len(extra):
            raise ValueError(
                f"models have different OOF rows: {name!r} lacks {len(lacks)} of the "
                f"{len(ref)} rows of {ref_name!r} (e.g. label_id {lacks[:3].tolist()}) and has "
                f"{len(extra)} rows it lacks (e.g. label_id {extra[:3].tolist()}); train every "
                "model on the same folds and data"
            )
        differ = (tables[name][list(VOTE_COLUMNS)] != ref[list(VOTE_COLUMNS)]).any(axis=1)
        if differ.any():
            raise ValueError(
                f"models {ref_name!r} and {name!r} disagree on the votes of {int(differ.sum())} "
                f"rows, e.g. label_id {differ.index[differ][:3].tolist()}"
            )
    y = vote_probabilities(ref)
    preds = np.stack([tables[n][list(PRED_COLUMNS)].to_numpy(dtype=np.float64) for n in names])
    if return_frame:
        rows = ref.reset_index()[[*OOF_ID_COLUMNS, *VOTE_COLUMNS]]
        return y, preds, rows
    return y, preds


def _check_preds(preds: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float64 ``(m, n, 6)`` predictions and ``(n, 6)`` targets (``(n, 6)`` preds: one model)."""
    preds = np.asarray(preds, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if preds.ndim == 2:
        preds = preds[None]
    k = len(CLASSES)
    if preds.ndim != 3 or preds.shape[2] != k or y.shape != preds.shape[1:]:
        raise ValueError(
            f"expected preds (m, n, {k}) and y (n, {k}), got preds {preds.shape} and y {y.shape}"
        )
    if not np.isfinite(preds).all() or (preds < 0).any():
        raise ValueError("preds must be finite, non-negative probabilities")
    if not np.isfinite(y).all() or (y < 0).any() or (y.sum(axis=1) <= 0).any():
        raise ValueError("y must hold finite, non-negative votes with at least one vote per row")
    return preds, y


def _mix(preds: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted mean of the models' probabilities: ``(m, n, 6), (m,) -> (n, 6)``."""
    return (weights @ preds.reshape(preds.shape[0], -1)).reshape(preds.shape[1:])


def _simplex(theta: np.ndarray) -> np.ndarray:
    """Weights on the simplex from ``m - 1`` free parameters (the first model's logit is 0)."""
    return softmax(np.concatenate([[0.0], theta]))


# --------------------------------------------------------------------------------------------------
# weights
# --------------------------------------------------------------------------------------------------


def equal_weights(n_models: int) -> np.ndarray:
    """Uniform weights.

    Parameters
    ----------
    n_models : int
        Number of models (>= 1).

    Returns
    -------
    numpy.ndarray
        float64 ``(n_models,)``, every entry ``1 / n_models``.

    Raises
    ------
    ValueError
        ``n_models < 1``.
    """
    check_number("n_models", n_models, low=1, integer=True)
    return np.full(n_models, 1.0 / n_models)


def nelder_mead_weights(
    preds: np.ndarray, y: np.ndarray, *, seed: int = 0, n_starts: int = 3
) -> np.ndarray:
    """Simplex weights minimising the KL of the weighted mean of probabilities (the seed recipe).

    ``w = softmax([0, theta])`` and ``theta`` is found by Nelder-Mead on
    ``kaggle_kl(y, sum_j w_j preds[j])``. The first start is equal weights (``theta = 0``); the
    others are drawn from ``N(0, 1)`` with ``seed``; the best result is kept.

    Parameters
    ----------
    preds : numpy.ndarray
        ``(m, n, 6)`` probabilities of ``m`` models (a single ``(n, 6)`` model is accepted).
    y : numpy.ndarray
        ``(n, 6)`` vote counts or probabilities.
    seed : int
        Seed of the extra starting points.
    n_starts : int
        Number of Nelder-Mead runs (>= 1).

    Returns
    -------
    numpy.ndarray
        float64 ``(m,)`` weights, non-negative, summing to 1.

    Raises
    ------
    ValueError
        Shapes that do not match, invalid probabilities or ``n_starts < 1``.
    """
    preds, y = _check_preds(preds, y)
    if n_starts < 1:
        raise ValueError(f"n_starts must be >= 1, got {n_starts}")
    m = preds.shape[0]
    if m == 1:
        return np.ones(1)
    rng = np.random.default_rng(seed)
    starts = np.vstack([np.zeros(m - 1), rng.normal(size=(n_starts - 1, m - 1))])

    def objective(theta: np.ndarray) -> float:
        return kaggle_kl(y, _mix(preds, _simplex(theta)))

    options = {"xatol": 1e-6, "fatol": 1e-10, "maxiter": 400 * m}
    fits = [minimize(objective, x0, method="Nelder-Mead", options=options) for x0 in starts]
    return _simplex(min(fits, key=lambda fit: fit.fun).x)


def _stack_loss(params: np.ndarray, preds: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Cross-entropy of the stack (KL minus the constant entropy of ``y``) and its gradient."""
    m, n = preds.shape[0], preds.shape[1]
    weights, bias = _simplex(params[: m - 1]), params[m - 1 :]
    mix = np.clip(_mix(preds, weights), EPSILON, None)
    log_q = log_softmax(np.log(mix) + bias, axis=1)
    residual = (np.exp(log_q) - y) / n  # d loss / d logits, rows of y sum to 1
    grad_w = np.einsum("ic,jic->j", residual / mix, preds)
    grad_theta = (weights * (grad_w - weights @ grad_w))[1:]
    return float(-(y * log_q).sum() / n), np.concatenate([grad_theta, residual.sum(axis=0)])


def fit_stack(preds: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fit simplex weights and a per-class log-probability bias: ``softmax(log(sum w P) + b)``.

    Minimises the mean cross-entropy to the vote distributions (the KL up to a constant) with
    L-BFGS-B and an analytic gradient, starting from equal weights and no bias.

    Parameters
    ----------
    preds : numpy.ndarray
        ``(m, n, 6)`` probabilities of ``m`` models (a single ``(n, 6)`` model is accepted).
    y : numpy.ndarray
        ``(n, 6)`` vote counts or probabilities.

    Returns
    -------
    weights : numpy.ndarray
        float64 ``(m,)``, non-negative, summing to 1.
    bias : numpy.ndarray
        float64 ``(6,)`` added to the log-probabilities, centred to mean 0 (a constant shift
        does not change the output).

    Raises
    ------
    ValueError
        Shapes that do not match or invalid probabilities.
    """
    preds, y = _check_preds(preds, y)
    y = y / y.sum(axis=1, keepdims=True)
    m = preds.shape[0]
    x0 = np.zeros(m - 1 + len(CLASSES))
    fit = minimize(_stack_loss, x0, args=(preds, y), jac=True, method="L-BFGS-B")
    weights, bias = _simplex(fit.x[: m - 1]), fit.x[m - 1 :]
    return weights, bias - bias.mean()


def apply_stack(
    preds: np.ndarray,
    weights: np.ndarray,
    bias: np.ndarray | None,
    *,
    temperatures: np.ndarray | None = None,
) -> np.ndarray:
    """Combine several models' probabilities with simplex weights and an optional class bias.

    Parameters
    ----------
    preds : numpy.ndarray
        ``(m, n, 6)`` probabilities of ``m`` models.
    weights : numpy.ndarray
        ``(m,)`` weights (on the simplex).
    bias : numpy.ndarray or None
        ``(6,)`` log-probability bias of a stack; None for the plain weighted mean.
    temperatures : numpy.ndarray, optional
        ``(m,)`` temperature of each model, applied to its probabilities before they are combined
        (:func:`hmslib.calibration.apply_temperature`); None: no calibration.

    Returns
    -------
    numpy.ndarray
        float64 ``(n, 6)``: ``sum_j w_j P_j`` when ``bias`` is None, otherwise
        ``softmax(log(max(sum_j w_j P_j, 1e-15)) + bias)``; rows sum to 1.

    Raises
    ------
    ValueError
        ``preds`` is not 3-D or ``weights`` (or ``temperatures``) does not have one entry per model.
    """
    preds = np.asarray(preds, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    if preds.ndim != 3 or weights.shape != preds.shape[:1]:
        raise ValueError(
            f"expected preds (m, n, 6) and weights (m,), got {preds.shape} and {weights.shape}"
        )
    mix = _mix(apply_temperatures(preds, temperatures), weights)
    if bias is None:
        return mix
    logits = np.log(np.clip(mix, EPSILON, None)) + np.asarray(bias, dtype=np.float64)
    return softmax(logits, axis=1)


# --------------------------------------------------------------------------------------------------
# honest comparison
# --------------------------------------------------------------------------------------------------


def nested_splits(
    groups: np.ndarray, *, n_outer: int = 5, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Outer folds for scoring an ensemble fit: ``(fit_rows, score_rows)`` index pairs.

    Rows sharing a group (patient) fall in the same fold; every row is scored exactly once.

    Parameters
    ----------
    groups : numpy.ndarray
        ``(n,)`` group label per row (``patient_id``).
    n_outer : int
        Number of outer folds (2 <= n_outer <= number of groups).
    seed : int
        Shuffling seed for assigning groups to folds.

    Returns
    -------
    list of (numpy.ndarray, numpy.ndarray)
        ``n_outer`` pairs of sorted int64 row indices, disjoint within each pair.

    Raises
    ------
    ValueError
        ``n_outer`` out of range.
    """
    from sklearn.model_selection import GroupKFold

    groups = np.asarray(groups)
    n_groups = len(np.unique(groups))
    if not 2 <= n_outer <= n_groups:
        raise ValueError(f"n_outer must be in [2, {n_groups}] (number of groups), got {n_outer}")
    splitter = GroupKFold(n_splits=n_outer, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(groups)), groups=groups))


@dataclass(frozen=True)
class _Fit:
    """A fitted combination: weights, optional class bias, optional per-model temperatures."""

    weights: np.ndarray
    bias: np.ndarray | None
    temperatures: np.ndarray | None

    def apply(self, preds: np.ndarray) -> np.ndarray:
        return apply_stack(preds, self.weights, self.bias, temperatures=self.temperatures)


def _fit_method(
    method: str, preds: np.ndarray, y: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """``(weights, bias or None)`` of a fitted ``method`` (``"single:<j>"`` picks model ``j``)."""
    if method.startswith("single:"):
        weights = np.zeros(preds.shape[0])
        weights[int(method.split(":", 1)[1])] = 1.0
        return weights, None
    if method == "equal":
        return equal_weights(preds.shape[0]), None
    if method == "nelder_mead":
        return nelder_mead_weights(preds, y, seed=seed), None
    return fit_stack(preds, y)


def _fit_all(
    methods: list[str], preds: np.ndarray, y: np.ndarray, seed: int
) -> dict[tuple[str, bool], _Fit]:
    """Every method fitted on these rows, without and with per-model temperatures.

    The temperatures are fitted once per model on the rows and shared by every method; the blend
    is then fitted on the calibrated probabilities.
    """
    temperatures = fit_temperatures(preds, y)
    calibrated = apply_temperatures(preds, temperatures)
    fits = {}
    for method in methods:
        fits[method, False] = _Fit(*_fit_method(method, preds, y, seed), None)
        fits[method, True] = _Fit(*_fit_method(method, calibrated, y, seed), temperatures)
    return fits


def method_label(method: str, temperature: bool) -> str:
    """Row label of a method in :func:`compare_ensembles`: ``"stack"``, ``"stack + temperature"``."""
    return f"{method}{TEMPERATURE_SUFFIX if temperature else ''}"


def _fit_mask(n_votes, n_rows: int, fit_min_votes: int, what: str) -> np.ndarray:
    """Boolean ``(n,)``: the rows blends are fitted on (``n_votes >= fit_min_votes``)."""
    check_number("fit_min_votes", fit_min_votes, low=0, integer=True)
    if n_votes is None:
        if fit_min_votes > 0:
            raise ValueError(
                f"{what}: pass n_votes (the votes of each window) to fit on windows with >= "
                f"{fit_min_votes} votes, or fit_min_votes=0 to fit on every window"
            )
        return np.ones(n_rows, dtype=bool)
    n_votes = np.asarray(n_votes, dtype=np.float64)
    if n_votes.shape != (n_rows,):
        raise ValueError(f"{what}: n_votes has shape {n_votes.shape} for {n_rows} rows")
    mask = n_votes >= fit_min_votes
    if not mask.any():
        raise ValueError(f"{what}: no window has >= {fit_min_votes} votes to fit on")
    return mask


def nested_predictions(
    preds: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    *,
    n_votes: np.ndarray | None,
    fit_min_votes: int = HIGH_AGREEMENT_VOTES,
    n_outer: int = 5,
    seed: int = 0,
) -> dict[tuple[str, bool], np.ndarray]:
    """Held-out predictions of every method, without and with temperature scaling.

    For each outer fold of :func:`nested_splits`, the temperatures and then every blend are fitted
    on the other folds' rows with at least ``fit_min_votes`` votes and applied to the fold's rows.

    Parameters
    ----------
    preds : numpy.ndarray
        ``(m, n, 6)`` OOF probabilities (:func:`align_oof`).
    y : numpy.ndarray
        ``(n, 6)`` vote probabilities.
    groups : numpy.ndarray
        ``(n,)`` patient per row, so a patient's rows are never split between fit and score.
    n_votes : numpy.ndarray or None
        ``(n,)`` votes per row; None only with ``fit_min_votes=0``.
    fit_min_votes : int
        Fit on rows with at least this many votes (10: the high-agreement windows the test set
        resembles; 0: every row).
    n_outer : int
        Number of outer folds.
    seed : int
        Seed of the outer folds and of Nelder-Mead.

    Returns
    -------
    dict
        ``(method, temperature)`` -> float64 ``(n, 6)`` held-out probabilities, methods
        ``single:<j>`` per model, ``equal``, ``nelder_mead``, ``stack``.

    Raises
    ------
    ValueError
        Shapes that do not match, ``n_outer`` out of range, or an outer fold without rows to fit on.
    """
    preds, y = _check_preds(preds, y)
    fit_mask = _fit_mask(n_votes, y.shape[0], fit_min_votes, "nested_predictions")
    if len(groups) != y.shape[0]:
        raise ValueError(f"groups has {len(groups)} entries for {y.shape[0]} rows")
    methods = _methods(preds.shape[0])
    held_out = {(m, t): np.empty(y.shape) for m in methods for t in (False, True)}
    for k, (fit_rows, score_rows) in enumerate(nested_splits(groups, n_outer=n_outer, seed=seed)):
        fit_rows = fit_rows[fit_mask[fit_rows]]
        if not len(fit_rows):
            raise ValueError(
                f"outer fold {k}: no window outside it has >= {fit_min_votes} votes to fit on; "
                "use fewer outer folds or fit_min_votes=0"
            )
        for key, fit in _fit_all(methods, preds[:, fit_rows], y[fit_rows], seed).items():
            held_out[key][score_rows] = fit.apply(preds[:, score_rows])
    return held_out


def _methods(n_models: int) -> list[str]:
    return [f"single:{j}" for j in range(n_models)] + ["equal", "nelder_mead", "stack"]


def _kl_on(y: np.ndarray, p: np.ndarray, rows: np.ndarray) -> float:
    """KL on the masked rows (NaN when there are none)."""
    return kaggle_kl(y[rows], p[rows]) if rows.any() else float("nan")


def compare_ensembles(
    preds: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    *,
    n_votes: np.ndarray | None,
    names: list[str] | None = None,
    fit_min_votes: int = HIGH_AGREEMENT_VOTES,
    min_votes: int = HIGH_AGREEMENT_VOTES,
    n_outer: int = 5,
    seed: int = 0,
) -> pd.DataFrame:
    """Score single models, equal weights, Nelder-Mead and the stack, each without and with
    per-model temperature scaling, with nested folds.

    Every fit -- temperatures and blend weights -- uses only the outer-train rows with at least
    ``fit_min_votes`` votes (:func:`nested_predictions`); the held-out predictions of all folds are
    then scored together with :func:`hmslib.metrics.kaggle_kl`, on the high-agreement rows (the
    leaderboard-like number the choice is made on) and on every row. Single models and equal
    weights without temperature fit nothing, so their nested and in-sample KL coincide.

    Parameters
    ----------
    preds : numpy.ndarray
        ``(m, n, 6)`` OOF probabilities (:func:`align_oof`).
    y : numpy.ndarray
        ``(n, 6)`` vote probabilities.
    groups : numpy.ndarray
        ``(n,)`` patient per row, so a patient's rows are never split between fit and score.
    n_votes : numpy.ndarray or None
        ``(n,)`` votes per row (``total_votes``); None only with ``fit_min_votes=0``.
    names : list of str, optional
        Model names for the single-model rows (default ``model0``, ``model1``, ...).
    fit_min_votes : int
        Fit on rows with at least this many votes (0: every row).
    min_votes : int
        The high-agreement rows of the ``kl_nested`` column.
    n_outer : int
        Number of outer folds.
    seed : int
        Seed of the outer folds and of Nelder-Mead.

    Returns
    -------
    pandas.DataFrame
        Index ``method`` (``single:<name>``, ``equal``, ``nelder_mead``, ``stack``, each also as
        ``<method> + temperature``); columns ``blend`` (``single``, ``equal``, ``nelder_mead``,
        ``stack``), ``temperature`` (bool), ``kl_nested`` (held-out KL on rows with >=
        ``min_votes`` votes), ``kl_nested_all`` (held-out KL, every row), ``kl_fold_std`` (std of
        the per-fold held-out KL on the high-agreement rows), ``kl_in_sample`` (fitted on every fit
        row, scored on the high-agreement rows: optimistic) and ``optimism`` (``kl_nested -
        kl_in_sample``). Nats.

    Raises
    ------
    ValueError
        Shapes that do not match, ``names`` of the wrong length, ``n_outer`` out of range, or no
        rows to fit on.
    """
    preds, y = _check_preds(preds, y)
    m = preds.shape[0]
    names = [f"model{j}" for j in range(m)] if names is None else list(names)
    if len(names) != m:
        raise ValueError(f"names has {len(names)} entries for {m} models")
    fit_mask = _fit_mask(n_votes, y.shape[0], fit_min_votes, "compare_ensembles")
    many = (
        np.ones(y.shape[0], dtype=bool)
        if n_votes is None
        else np.asarray(n_votes, dtype=np.float64) >= min_votes
    )
    held_out = nested_predictions(
        preds, y, groups, n_votes=n_votes, fit_min_votes=fit_min_votes, n_outer=n_outer, seed=seed
    )
    splits = nested_splits(groups, n_outer=n_outer, seed=seed)
    in_sample = _fit_all(_methods(m), preds[:, fit_mask], y[fit_mask], seed)
    rows, index = [], []
    for (method, temperature), probs in held_out.items():
        fold_kl = [_kl_on(y[s], probs[s], many[s]) for _, s in splits]
        nested = _kl_on(y, probs, many)
        fitted = _kl_on(y, in_sample[method, temperature].apply(preds), many)
        single = method.startswith("single:")
        label = f"single:{names[int(method.split(':')[1])]}" if single else method
        index.append(method_label(label, temperature))
        rows.append(
            {
                "blend": "single" if single else method,
                "temperature": temperature,
                "kl_nested": nested,
                "kl_nested_all": kaggle_kl(y, probs),
                "kl_fold_std": float(np.nanstd(fold_kl)) if np.isfinite(fold_kl).any() else np.nan,
                "kl_in_sample": fitted,
                "optimism": nested - fitted,
            }
        )
    return pd.DataFrame(rows, index=pd.Index(index, name="method"))


def choose_method(comparison: pd.DataFrame, method: str = "best") -> tuple[str, bool]:
    """The blend to fit for ``ensemble.json``: the lowest nested KL, or the one asked for.

    Parameters
    ----------
    comparison : pandas.DataFrame
        From :func:`compare_ensembles`.
    method : str
        ``"best"`` (lowest ``kl_nested`` among the blends; ``kl_nested_all`` when no row has enough
        votes), or a row label of the blends (``"stack"``, ``"nelder_mead + temperature"``, ...).
        With one model the blends are that model without and with temperature.

    Returns
    -------
    method : str
        For :func:`fit_ensemble` (``"single"`` with one model).
    temperature : bool
        Whether to fit per-model temperatures.

    Raises
    ------
    ValueError
        An unknown ``method``.
    """
    n_models = int((comparison["blend"] == "single").sum() // 2)
    blends = comparison[(comparison["blend"] == "single") == (n_models == 1)]
    if method == "best":
        column = "kl_nested" if blends["kl_nested"].notna().any() else "kl_nested_all"
        row = blends.loc[blends[column].idxmin()]
    else:
        check_option("ensemble choice", method, ["best", *blends.index])
        row = blends.loc[method]
    return str(row["blend"]), bool(row["temperature"])


# --------------------------------------------------------------------------------------------------
# ensemble.json
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Ensemble:
    """A fitted ensemble: which models, their weights, an optional per-class bias and temperatures.

    Attributes
    ----------
    models : tuple of str
        Model names (``<run_dir>/models/<name>/``), unique, non-empty.
    weights : numpy.ndarray
        float64 ``(m,)``, non-negative, summing to 1.
    bias : numpy.ndarray or None
        float64 ``(6,)`` log-probability bias of a stack, or None for a weighted mean.
    method : str
        One of :data:`METHODS`.
    oof_kl : float or None
        KL of the ensemble on the OOF rows it was fitted on.
    temperatures : numpy.ndarray or None
        float64 ``(m,)`` temperature of each model, applied to its probabilities before the blend
        (:mod:`hmslib.calibration`); None: no temperature scaling.
    fit_min_votes : int
        The weights (and temperatures) were fitted on the OOF windows with at least this many
        votes (0: every window).
    """

    models: tuple[str, ...]
    weights: np.ndarray
    bias: np.ndarray | None = None
    method: str = "nelder_mead"
    oof_kl: float | None = None
    temperatures: np.ndarray | None = None
    fit_min_votes: int = 0

    def __post_init__(self) -> None:
        _validate(
            self.models, self.weights, self.bias, self.method, self.oof_kl, self.temperatures,
            self.fit_min_votes, what="ensemble",
        )  # fmt: skip
        object.__setattr__(self, "models", tuple(self.models))
        object.__setattr__(self, "weights", np.asarray(self.weights, dtype=np.float64))
        if self.bias is not None:
            object.__setattr__(self, "bias", np.asarray(self.bias, dtype=np.float64))
        if self.oof_kl is not None:
            object.__setattr__(self, "oof_kl", float(self.oof_kl))
        if self.temperatures is not None:
            object.__setattr__(self, "temperatures", np.asarray(self.temperatures, dtype=np.float64))
        object.__setattr__(self, "fit_min_votes", int(self.fit_min_votes))

    @property
    def label(self) -> str:
        """``method``, with ``" + temperature"`` when it scales the models' temperatures."""
        return method_label(self.method, self.temperatures is not None)

    def subset(self, models: list[str] | tuple[str, ...]) -> Ensemble:
        """The ensemble restricted to some of its models, weights renormalised (equal weights
        when the kept models had weight 0); bias and temperatures kept."""
        keep = [self.models.index(name) for name in models]
        weights = self.weights[keep]
        weights = np.ones(len(keep)) if weights.sum() <= 0 else weights
        temperatures = None if self.temperatures is None else self.temperatures[keep]
        return Ensemble(
            tuple(models), weights / weights.sum(), self.bias, self.method, None, temperatures,
            self.fit_min_votes,
        )  # fmt: skip

    def to_dict(self) -> dict:
        """The ``ensemble.json`` content: plain lists and floats."""
        return {
            "models": list(self.models),
            "weights": self.weights.tolist(),
            "bias": None if self.bias is None else self.bias.tolist(),
            "method": self.method,
            "oof_kl": self.oof_kl,
            "temperatures": None if self.temperatures is None else self.temperatures.tolist(),
            "fit_min_votes": self.fit_min_votes,
        }


def _validate(
    models, weights, bias, method, oof_kl, temperatures, fit_min_votes, *, what: str
) -> None:
    """Raise a ValueError naming ``what`` unless the fields form a valid ensemble."""
    if isinstance(models, str) or not all(isinstance(m, str) and m for m in models) or not models:
        raise ValueError(
            f"{what}: 'models' must be a non-empty list of model names, got {models!r}"
        )
    if len(set(models)) != len(models):
        raise ValueError(f"{what}: 'models' repeats names: {list(models)}")
    try:
        w = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{what}: 'weights' must be a list of numbers, got {weights!r}") from err
    if w.shape != (len(models),):
        raise ValueError(f"{what}: {len(models)} models but 'weights' has shape {w.shape}")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"{what}: 'weights' must be finite and non-negative, got {w.tolist()}")
    if abs(w.sum() - 1.0) > _SUM_TOL:
        raise ValueError(f"{what}: 'weights' must sum to 1, they sum to {w.sum():.8g}")
    if bias is not None:
        try:
            b = np.asarray(bias, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{what}: 'bias' must be null or 6 numbers, got {bias!r}") from err
        if b.shape != (len(CLASSES),) or not np.isfinite(b).all():
            raise ValueError(f"{what}: 'bias' must be null or 6 finite numbers, got {bias!r}")
    try:
        check_option("ensemble method", method, METHODS)
    except ValueError as err:  # name the file first, as every other message here does
        raise ValueError(f"{what}: {err}") from None
    valid_kl = isinstance(oof_kl, int | float) and not isinstance(oof_kl, bool) and oof_kl >= 0
    if oof_kl is not None and not (valid_kl and math.isfinite(oof_kl)):
        raise ValueError(f"{what}: 'oof_kl' must be null or a non-negative number, got {oof_kl!r}")
    if temperatures is not None:
        try:
            t = np.asarray(temperatures, dtype=np.float64)
        except (TypeError, ValueError):
            t = np.full(0, np.nan)
        if t.shape != (len(models),) or not (np.isfinite(t).all() and (t > 0).all()):
            raise ValueError(
                f"{what}: 'temperatures' must be null or {len(models)} positive numbers (one per "
                f"model), got {temperatures!r}"
            )
    valid_votes = isinstance(fit_min_votes, int | np.integer) and not isinstance(fit_min_votes, bool)
    if not (valid_votes and fit_min_votes >= 0):
        raise ValueError(
            f"{what}: 'fit_min_votes' must be a non-negative integer, got {fit_min_votes!r}"
        )


def fit_ensemble(
    preds: np.ndarray,
    y: np.ndarray,
    names: list[str],
    *,
    method: str = "nelder_mead",
    temperature: bool = False,
    n_votes: np.ndarray | None = None,
    fit_min_votes: int = HIGH_AGREEMENT_VOTES,
    seed: int = 0,
) -> Ensemble:
    """Fit one ensemble method (optionally with per-model temperatures) on the OOF rows with at
    least ``fit_min_votes`` votes, and record its (in-sample) KL on them.

    Parameters
    ----------
    preds : numpy.ndarray
        ``(m, n, 6)`` OOF probabilities (:func:`align_oof`).
    y : numpy.ndarray
        ``(n, 6)`` vote probabilities.
    names : list of str
        The ``m`` model names.
    method : str
        ``"equal"``, ``"nelder_mead"`` or ``"stack"``; ``"single"`` needs exactly one model.
    temperature : bool
        First fit a temperature per model (:func:`hmslib.calibration.fit_temperature`), then the
        blend on the calibrated probabilities.
    n_votes : numpy.ndarray, optional
        ``(n,)`` votes per row; needed unless ``fit_min_votes`` is 0.
    fit_min_votes : int
        Fit on the rows with at least this many votes (10: the high-agreement windows the test set
        resembles; 0: every row).
    seed : int
        Nelder-Mead seed.

    Returns
    -------
    Ensemble

    Raises
    ------
    ValueError
        Unknown method, ``names`` of the wrong length, ``"single"`` with several models, or no rows
        to fit on.
    """
    preds, y = _check_preds(preds, y)
    if len(names) != preds.shape[0]:
        raise ValueError(f"names has {len(names)} entries for {preds.shape[0]} models")
    check_option("ensemble method", method, METHODS)
    if method == "single" and preds.shape[0] != 1:
        raise ValueError(f"method 'single' needs one model, got {len(names)}: pick one by name")
    rows = _fit_mask(n_votes, y.shape[0], fit_min_votes, "fit_ensemble")
    preds, y = preds[:, rows], y[rows]
    temperatures = fit_temperatures(preds, y) if temperature else None
    weights, bias = _fit_method(
        "single:0" if method == "single" else method, apply_temperatures(preds, temperatures), y, seed
    )
    oof_kl = kaggle_kl(y, apply_stack(preds, weights, bias, temperatures=temperatures))
    return Ensemble(tuple(names), weights, bias, method, oof_kl, temperatures, fit_min_votes)


def save_ensemble(path: str | os.PathLike, ensemble: Ensemble) -> Path:
    """Write ``ensemble.json`` atomically (a temporary file renamed into place).

    Parameters
    ----------
    path : str or path-like
        Destination, usually ``<run_dir>/ensemble.json``; parent folders are created.
    ensemble : Ensemble
        The ensemble to save (already validated by its constructor).

    Returns
    -------
    pathlib.Path
        ``path``. The file holds ``{"models", "weights", "bias", "method", "oof_kl",
        "temperatures", "fit_min_votes"}``.
    """
    return write_json_atomic(ensemble.to_dict(), path)


_REQUIRED_KEYS = frozenset({"models", "weights", "bias", "method", "oof_kl"})
#: Keys added later, with the value an older file means.
_OPTIONAL_KEYS = {"temperatures": None, "fit_min_votes": 0}


def load_ensemble(path: str | os.PathLike) -> Ensemble:
    """Read and validate an ``ensemble.json``.

    Files written before temperature scaling (without ``temperatures`` and ``fit_min_votes``)
    load as an ensemble without temperatures fitted on every row.

    Parameters
    ----------
    path : str or path-like
        File written by :func:`save_ensemble`.

    Returns
    -------
    Ensemble

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        Not JSON, not an object, missing or unexpected keys, or invalid fields (weights not
        summing to 1 or negative, names missing or repeated, a bias that is not 6 numbers, an
        unknown method, temperatures that are not one positive number per model); the message
        names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: ensemble file not found (fit one in 05_ensemble first)")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    return _from_dict(data, what=str(path))


def _from_dict(data, *, what: str) -> Ensemble:
    """An :class:`Ensemble` from the parsed content of an ``ensemble.json`` (errors name ``what``)."""
    keys = set(data) if isinstance(data, dict) else set()
    if not isinstance(data, dict) or not _REQUIRED_KEYS <= keys <= _REQUIRED_KEYS | set(_OPTIONAL_KEYS):
        found = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ValueError(
            f"{what}: expected an object with keys {sorted(_REQUIRED_KEYS)} (and optionally "
            f"{sorted(_OPTIONAL_KEYS)}), found {found}"
        )
    fields = {**_OPTIONAL_KEYS, **data}
    _validate(
        fields["models"],
        fields["weights"],
        fields["bias"],
        fields["method"],
        fields["oof_kl"],
        fields["temperatures"],
        fields["fit_min_votes"],
        what=what,
    )
    return Ensemble(
        tuple(fields["models"]),
        np.asarray(fields["weights"]),
        fields["bias"],
        fields["method"],
        fields["oof_kl"],
        fields["temperatures"],
        fields["fit_min_votes"],
    )


def fit_blends(
    preds: np.ndarray,
    y: np.ndarray,
    names: list[str],
    *,
    n_votes: np.ndarray | None,
    fit_min_votes: int = HIGH_AGREEMENT_VOTES,
    seed: int = 0,
) -> dict[str, Ensemble]:
    """Every blend :func:`compare_ensembles` scores, fitted once on all the fit rows.

    The temperatures are fitted once per model and shared by the blends that use them (as in
    :func:`compare_ensembles`); each blend is what :func:`fit_ensemble` returns for its method.

    Parameters
    ----------
    preds : numpy.ndarray
        ``(m, n, 6)`` OOF probabilities (:func:`align_oof`).
    y : numpy.ndarray
        ``(n, 6)`` vote probabilities.
    names : list of str
        The ``m`` model names.
    n_votes : numpy.ndarray or None
        ``(n,)`` votes per row; None only with ``fit_min_votes=0``.
    fit_min_votes : int
        Fit on rows with at least this many votes (0: every row).
    seed : int
        Nelder-Mead seed.

    Returns
    -------
    dict of str to Ensemble
        Label (:func:`method_label`: ``"stack"``, ``"stack + temperature"``, ...) -> the blend;
        ``equal``, ``nelder_mead``, ``stack`` with several models, ``single`` with one, each
        without and with temperature. ``oof_kl`` is the in-sample KL on the fit rows.

    Raises
    ------
    ValueError
        Shapes that do not match, ``names`` of the wrong length, or no rows to fit on.
    """
    preds, y = _check_preds(preds, y)
    if len(names) != preds.shape[0]:
        raise ValueError(f"names has {len(names)} entries for {preds.shape[0]} models")
    rows = _fit_mask(n_votes, y.shape[0], fit_min_votes, "fit_blends")
    preds, y = preds[:, rows], y[rows]
    methods = ["single:0"] if preds.shape[0] == 1 else ["equal", "nelder_mead", "stack"]
    out = {}
    for (method, temperature), fit in _fit_all(methods, preds, y, seed).items():
        name = "single" if method.startswith("single:") else method
        out[method_label(name, temperature)] = Ensemble(
            tuple(names), fit.weights, fit.bias, name, kaggle_kl(y, fit.apply(preds)),
            fit.temperatures, fit_min_votes,
        )  # fmt: skip
    return out


def save_blends(path: str | os.PathLike, blends: dict[str, Ensemble]) -> Path:
    """Write the blends of :func:`fit_blends` as one JSON object, label -> ``ensemble.json``
    content, atomically.

    Parameters
    ----------
    path : str or path-like
        Destination, usually ``<run_dir>/blends.json``.
    blends : dict of str to Ensemble

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    return write_json_atomic({label: e.to_dict() for label, e in blends.items()}, path)


def load_blends(path: str | os.PathLike) -> dict[str, Ensemble]:
    """Read and validate a file of :func:`save_blends`.

    Returns
    -------
    dict of str to Ensemble

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        Not JSON, not an object of objects, or an invalid blend (as :func:`load_ensemble`; the
        message names the file and the blend).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: blends file not found (05_ensemble writes it)")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected an object of blends, found {type(data).__name__}")
    return {label: _from_dict(d, what=f"{path} blend {label!r}") for label, d in data.items()}


def blend(probs_by_model: dict[str, np.ndarray], ensemble: Ensemble) -> np.ndarray:
    """Combine per-model probabilities (e.g. on the test set) as ``ensemble`` says: each model at
    its temperature (when the ensemble has them), then weights and bias.

    Parameters
    ----------
    probs_by_model : dict of str to numpy.ndarray
        Model name -> ``(n, 6)`` probabilities; must hold every model of the ensemble (others are
        ignored).
    ensemble : Ensemble
        From :func:`load_ensemble` or :func:`fit_ensemble`.

    Returns
    -------
    numpy.ndarray
        float64 ``(n, 6)``, rows summing to 1.

    Raises
    ------
    ValueError
        A model of the ensemble is missing, or the arrays differ in shape.
    """
    missing = [m for m in ensemble.models if m not in probs_by_model]
    if missing:
        raise ValueError(
            f"ensemble needs predictions of models {missing}, got {sorted(probs_by_model)}"
        )
    arrays = [np.asarray(probs_by_model[m], dtype=np.float64) for m in ensemble.models]
    shapes = {m: a.shape for m, a in zip(ensemble.models, arrays, strict=True)}
    if len(set(shapes.values())) != 1 or arrays[0].ndim != 2 or arrays[0].shape[1] != len(CLASSES):
        raise ValueError(f"every model's predictions must be the same (n, 6) shape, got {shapes}")
    return apply_stack(
        np.stack(arrays), ensemble.weights, ensemble.bias, temperatures=ensemble.temperatures
    )


def blend_oof(
    oofs: dict[str, pd.DataFrame], ensemble: Ensemble, *, name: str | None = None
) -> pd.DataFrame:
    """The ensemble's OOF table, in the OOF file format, for :mod:`hmslib.analysis`.

    Parameters
    ----------
    oofs : dict of str to pandas.DataFrame
        Model name -> merged OOF table; must hold the ensemble's models (aligned by
        :func:`align_oof`).
    ensemble : Ensemble
        The ensemble to apply (in sample: it was fitted on these rows).
    name : str, optional
        Value of the ``model`` column (default: ``ensemble.label``).

    Returns
    -------
    pandas.DataFrame
        ``model`` plus ``OOF_COLUMNS``, one row per label window, sorted by ``label_id``.

    Raises
    ------
    ValueError
        A model of the ensemble has no OOF table, or the tables do not align (:func:`align_oof`).
    """
    missing = [m for m in ensemble.models if m not in oofs]
    if missing:
        raise ValueError(f"ensemble needs OOF of models {missing}, got {sorted(oofs)}")
    _, preds, rows = align_oof({m: oofs[m] for m in ensemble.models}, return_frame=True)
    probs = apply_stack(preds, ensemble.weights, ensemble.bias, temperatures=ensemble.temperatures)
    return oof_frame(rows, probs, name if name is not None else ensemble.label)


def oof_frame(rows: pd.DataFrame, probs: np.ndarray, name: str) -> pd.DataFrame:
    """Probabilities of the aligned OOF rows as an OOF table (the ``model`` column set to ``name``).

    Parameters
    ----------
    rows : pandas.DataFrame
        The row identifiers and votes of :func:`align_oof` (``return_frame=True``).
    probs : numpy.ndarray
        ``(n, 6)`` probabilities of those rows.
    name : str
        Value of the ``model`` column.

    Returns
    -------
    pandas.DataFrame
        ``model`` plus ``OOF_COLUMNS``.
    """
    out = rows.assign(**{c: probs[:, i] for i, c in enumerate(PRED_COLUMNS)})
    out.insert(0, "model", name)
    return out
