"""Ensembling on out-of-fold predictions: aligned OOF, simplex weights, a bias stack, nested comparison.

Three ways to combine ``m`` models' probabilities ``P_j`` (each ``(n, 6)``) into one distribution:

- **equal**: ``mean_j P_j``;
- **nelder_mead** (the public seed recipe): ``sum_j w_j P_j`` with ``w`` on the simplex, chosen by
  ``scipy.optimize.minimize(method="Nelder-Mead")`` on the OOF KL (:func:`hmslib.metrics.kaggle_kl`),
  ``w = softmax(theta)`` so any ``theta`` gives valid weights;
- **stack** (the 3rd place blend): ``softmax(log(sum_j w_j P_j) + b)``, simplex weights plus a
  per-class bias ``b`` on the log-probabilities, which corrects a class the models over- or
  under-predict (the write-up found it worth 0.001-0.003 KL). With ``b = 0`` it is the weighted mean.

Fitting weights on the same OOF rows they are scored on flatters them, so
:func:`compare_ensembles` scores every method with nested, patient-grouped folds: fitted on the
outer-train rows, scored on the outer-held-out rows only. The chosen ensemble is saved as
``ensemble.json`` and applied at inference by :func:`blend`.
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
from hmslib.constants import CLASSES, OOF_ID_COLUMNS, PRED_COLUMNS, VOTE_COLUMNS
from hmslib.labels import vote_probabilities
from hmslib.metrics import EPSILON, kaggle_kl

#: Ensemble methods known to ``ensemble.json``.
METHODS: tuple[str, ...] = ("single", "equal", "nelder_mead", "stack")
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


def apply_stack(preds: np.ndarray, weights: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """Combine several models' probabilities with simplex weights and an optional class bias.

    Parameters
    ----------
    preds : numpy.ndarray
        ``(m, n, 6)`` probabilities of ``m`` models.
    weights : numpy.ndarray
        ``(m,)`` weights (on the simplex).
    bias : numpy.ndarray or None
        ``(6,)`` log-probability bias of a stack; None for the plain weighted mean.

    Returns
    -------
    numpy.ndarray
        float64 ``(n, 6)``: ``sum_j w_j P_j`` when ``bias`` is None, otherwise
        ``softmax(log(max(sum_j w_j P_j, 1e-15)) + bias)``; rows sum to 1.

    Raises
    ------
    ValueError
        ``preds`` is not 3-D or ``weights`` does not have one entry per model.
    """
    preds = np.asarray(preds, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    if preds.ndim != 3 or weights.shape != preds.shape[:1]:
        raise ValueError(
            f"expected preds (m, n, 6) and weights (m,), got {preds.shape} and {weights.shape}"
        )
    mix = _mix(preds, weights)
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


def compare_ensembles(
    preds: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    *,
    names: list[str] | None = None,
    n_outer: int = 5,
    seed: int = 0,
) -> pd.DataFrame:
    """Score single models, equal weights, Nelder-Mead and the stack with nested folds.

    For each outer fold of :func:`nested_splits`, every method is fitted on the other folds' rows
    and applied to the held-out rows; the held-out predictions of all folds are then scored
    together with :func:`hmslib.metrics.kaggle_kl`. Single models and equal weights fit nothing,
    so their nested and in-sample KL coincide.

    Parameters
    ----------
    preds : numpy.ndarray
        ``(m, n, 6)`` OOF probabilities (:func:`align_oof`).
    y : numpy.ndarray
        ``(n, 6)`` vote probabilities.
    groups : numpy.ndarray
        ``(n,)`` patient per row, so a patient's rows are never split between fit and score.
    names : list of str, optional
        Model names for the single-model rows (default ``model0``, ``model1``, ...).
    n_outer : int
        Number of outer folds.
    seed : int
        Seed of the outer folds and of Nelder-Mead.

    Returns
    -------
    pandas.DataFrame
        Index ``method`` (``single:<name>`` per model, ``equal``, ``nelder_mead``, ``stack``),
        columns ``kl_nested`` (held-out KL, all rows), ``kl_fold_std`` (std of the per-fold
        held-out KL), ``kl_in_sample`` (fitted and scored on all rows: optimistic) and ``optimism``
        (``kl_nested - kl_in_sample``). Nats.

    Raises
    ------
    ValueError
        Shapes that do not match, ``names`` of the wrong length or ``n_outer`` out of range.
    """
    preds, y = _check_preds(preds, y)
    m = preds.shape[0]
    names = [f"model{j}" for j in range(m)] if names is None else list(names)
    if len(names) != m:
        raise ValueError(f"names has {len(names)} entries for {m} models")
    if len(groups) != y.shape[0]:
        raise ValueError(f"groups has {len(groups)} entries for {y.shape[0]} rows")
    methods = [f"single:{j}" for j in range(m)] + ["equal", "nelder_mead", "stack"]
    splits = nested_splits(groups, n_outer=n_outer, seed=seed)
    held_out = np.empty((len(methods), *y.shape))
    fold_kl = np.empty((len(methods), n_outer))
    for k, (fit_rows, score_rows) in enumerate(splits):
        for i, method in enumerate(methods):
            weights, bias = _fit_method(method, preds[:, fit_rows], y[fit_rows], seed)
            held_out[i, score_rows] = apply_stack(preds[:, score_rows], weights, bias)
            fold_kl[i, k] = kaggle_kl(y[score_rows], held_out[i, score_rows])
    rows = []
    for i, method in enumerate(methods):
        weights, bias = _fit_method(method, preds, y, seed)
        nested = kaggle_kl(y, held_out[i])
        in_sample = kaggle_kl(y, apply_stack(preds, weights, bias))
        rows.append((nested, fold_kl[i].std(), in_sample, nested - in_sample))
    index = [f"single:{n}" for n in names] + methods[m:]
    columns = ["kl_nested", "kl_fold_std", "kl_in_sample", "optimism"]
    return pd.DataFrame(rows, index=pd.Index(index, name="method"), columns=columns)


# --------------------------------------------------------------------------------------------------
# ensemble.json
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Ensemble:
    """A fitted ensemble: which models, their weights, an optional per-class bias.

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
    """

    models: tuple[str, ...]
    weights: np.ndarray
    bias: np.ndarray | None = None
    method: str = "nelder_mead"
    oof_kl: float | None = None

    def __post_init__(self) -> None:
        _validate(self.models, self.weights, self.bias, self.method, self.oof_kl, what="ensemble")
        object.__setattr__(self, "models", tuple(self.models))
        object.__setattr__(self, "weights", np.asarray(self.weights, dtype=np.float64))
        if self.bias is not None:
            object.__setattr__(self, "bias", np.asarray(self.bias, dtype=np.float64))
        if self.oof_kl is not None:
            object.__setattr__(self, "oof_kl", float(self.oof_kl))

    def to_dict(self) -> dict:
        """The ``ensemble.json`` content: plain lists and floats."""
        return {
            "models": list(self.models),
            "weights": self.weights.tolist(),
            "bias": None if self.bias is None else self.bias.tolist(),
            "method": self.method,
            "oof_kl": self.oof_kl,
        }


def _validate(models, weights, bias, method, oof_kl, *, what: str) -> None:
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


def fit_ensemble(
    preds: np.ndarray,
    y: np.ndarray,
    names: list[str],
    *,
    method: str = "nelder_mead",
    seed: int = 0,
) -> Ensemble:
    """Fit one ensemble method on all OOF rows and record its (in-sample) OOF KL.

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
    seed : int
        Nelder-Mead seed.

    Returns
    -------
    Ensemble

    Raises
    ------
    ValueError
        Unknown method, ``names`` of the wrong length, or ``"single"`` with several models.
    """
    preds, y = _check_preds(preds, y)
    if len(names) != preds.shape[0]:
        raise ValueError(f"names has {len(names)} entries for {preds.shape[0]} models")
    check_option("ensemble method", method, METHODS)
    if method == "single" and preds.shape[0] != 1:
        raise ValueError(f"method 'single' needs one model, got {len(names)}: pick one by name")
    weights, bias = _fit_method("single:0" if method == "single" else method, preds, y, seed)
    oof_kl = kaggle_kl(y, apply_stack(preds, weights, bias))
    return Ensemble(tuple(names), weights, bias, method, oof_kl)


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
        ``path``. The file holds ``{"models", "weights", "bias", "method", "oof_kl"}``.
    """
    return write_json_atomic(ensemble.to_dict(), path)


def load_ensemble(path: str | os.PathLike) -> Ensemble:
    """Read and validate an ``ensemble.json``.

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
        unknown method); the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: ensemble file not found (fit one in 05_ensemble first)")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    keys = {"models", "weights", "bias", "method", "oof_kl"}
    if not isinstance(data, dict) or set(data) != keys:
        found = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{path}: expected an object with keys {sorted(keys)}, found {found}")
    _validate(
        data["models"],
        data["weights"],
        data["bias"],
        data["method"],
        data["oof_kl"],
        what=str(path),
    )
    return Ensemble(
        tuple(data["models"]),
        np.asarray(data["weights"]),
        data["bias"],
        data["method"],
        data["oof_kl"],
    )


def blend(probs_by_model: dict[str, np.ndarray], ensemble: Ensemble) -> np.ndarray:
    """Combine per-model probabilities (e.g. on the test set) as ``ensemble`` says.

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
    return apply_stack(np.stack(arrays), ensemble.weights, ensemble.bias)


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
        The ensemble to apply.
    name : str, optional
        Value of the ``model`` column (default: ``ensemble.method``).

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
    probs = apply_stack(preds, ensemble.weights, ensemble.bias)
    out = rows.assign(**{c: probs[:, i] for i, c in enumerate(PRED_COLUMNS)})
    out.insert(0, "model", name if name is not None else ensemble.method)
    return out
