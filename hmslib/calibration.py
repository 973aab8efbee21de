"""Temperature scaling: one number per model that makes its probabilities as sharp as they deserve.

A model's probabilities ``p`` are recalibrated to ``softmax(log(p) / T)``: ``T > 1`` softens an
over-confident model, ``T < 1`` sharpens a timid one, ``T = 1`` leaves it as it is. Each window's
ranking of the classes (so its argmax) never changes; the ranking of windows by one class's
probability can (the renormalisation differs from window to window), so a class's AUROC may move a
little. The KL divergence the competition scores rewards calibration, so a well-chosen ``T`` lowers
it at no cost in parameters.

``T`` is fitted on out-of-fold predictions (:func:`fit_temperature`), on the high-agreement windows
the test set resembles; :mod:`hmslib.ensemble` fits it per model inside its nested folds, like the
blend weights, and stores it in ``ensemble.json`` so that prediction applies it.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

from hmslib.constants import CLASSES
from hmslib.metrics import EPSILON, kaggle_kl

#: Range searched for ``T`` (beyond it a model is either uniform or one-hot for practical purposes).
TEMPERATURE_BOUNDS: tuple[float, float] = (0.05, 20.0)


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Recalibrate probabilities: ``softmax(log(max(p, 1e-15)) / T)`` row by row.

    Parameters
    ----------
    probs : numpy.ndarray
        ``(n, 6)`` probabilities (rows summing to 1; exact zeros, e.g. of entmax, are allowed).
    temperature : float
        ``T > 0``; 1 returns the probabilities unchanged (renormalised).

    Returns
    -------
    numpy.ndarray
        float64 ``(n, 6)``, rows summing to 1.

    Raises
    ------
    ValueError
        ``temperature`` not a positive finite number, or ``probs`` not ``(n, 6)``.
    """
    temperature = float(temperature)
    if not np.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature must be a positive finite number, got {temperature!r}")
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] != len(CLASSES):
        raise ValueError(f"apply_temperature: expected probabilities (n, 6), got {probs.shape}")
    return np.exp(log_softmax(np.log(np.clip(probs, EPSILON, None)) / temperature, axis=1))


def fit_temperature(probs: np.ndarray, y: np.ndarray) -> float:
    """The temperature minimising the KL of :func:`apply_temperature` from the vote distributions.

    A bounded one-dimensional search over ``log T`` in :data:`TEMPERATURE_BOUNDS`; the result is
    kept only if it scores better than ``T = 1``, so the fitted temperature never raises the KL of
    the rows it was fitted on.

    Parameters
    ----------
    probs : numpy.ndarray
        ``(n, 6)`` predicted probabilities.
    y : numpy.ndarray
        ``(n, 6)`` vote counts or probabilities of the same windows (at least one row).

    Returns
    -------
    float
        ``T`` in :data:`TEMPERATURE_BOUNDS`.

    Raises
    ------
    ValueError
        No rows, or shapes that do not match.
    """
    probs = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if len(probs) == 0 or probs.shape != y.shape:
        raise ValueError(
            f"fit_temperature: expected probabilities and votes of the same shape (n >= 1, 6), got "
            f"{probs.shape} and {y.shape}"
        )

    def objective(log_t: float) -> float:
        return kaggle_kl(y, apply_temperature(probs, float(np.exp(log_t))))

    low, high = np.log(TEMPERATURE_BOUNDS)
    fit = minimize_scalar(objective, bounds=(low, high), method="bounded", options={"xatol": 1e-5})
    return float(np.exp(fit.x)) if fit.fun < objective(0.0) else 1.0


def fit_temperatures(preds: np.ndarray, y: np.ndarray) -> np.ndarray:
    """One :func:`fit_temperature` per model.

    Parameters
    ----------
    preds : numpy.ndarray
        ``(m, n, 6)`` probabilities of ``m`` models on the same windows.
    y : numpy.ndarray
        ``(n, 6)`` votes.

    Returns
    -------
    numpy.ndarray
        float64 ``(m,)``, each in :data:`TEMPERATURE_BOUNDS`.

    Raises
    ------
    ValueError
        ``preds`` not ``(m, n, 6)``, or shapes that do not match ``y``.
    """
    preds = np.asarray(preds, dtype=np.float64)
    if preds.ndim != 3:
        raise ValueError(f"fit_temperatures: expected predictions (m, n, 6), got {preds.shape}")
    return np.array([fit_temperature(p, y) for p in preds])


def apply_temperatures(preds: np.ndarray, temperatures: np.ndarray | None) -> np.ndarray:
    """Each model's probabilities at its temperature (:func:`apply_temperature`).

    Parameters
    ----------
    preds : numpy.ndarray
        ``(m, n, 6)`` probabilities of ``m`` models.
    temperatures : numpy.ndarray or None
        ``(m,)`` positive temperatures; None returns ``preds`` as they are.

    Returns
    -------
    numpy.ndarray
        float64 ``(m, n, 6)``, rows summing to 1 (unless ``temperatures`` is None).

    Raises
    ------
    ValueError
        ``preds`` not 3-D or ``temperatures`` not one per model, or a non-positive temperature.
    """
    preds = np.asarray(preds, dtype=np.float64)
    if temperatures is None:
        return preds
    temperatures = np.asarray(temperatures, dtype=np.float64)
    if preds.ndim != 3 or temperatures.shape != preds.shape[:1]:
        raise ValueError(
            f"apply_temperatures: expected predictions (m, n, 6) and temperatures (m,), got "
            f"{preds.shape} and {temperatures.shape}"
        )
    return np.stack([apply_temperature(p, t) for p, t in zip(preds, temperatures, strict=True)])
