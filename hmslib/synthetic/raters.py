"""Raters and labels: from a pattern's parameters to the distribution each rater pool votes from.

The class distribution of an event is a smooth function of its parameters
(:func:`class_distribution`), following the ACNS definitions; events with 1-9 votes come from a larger,
less expert rater pool that over-calls seizures and is noisier; events with >= 10 votes and the test
set follow the experts.
"""

from __future__ import annotations

import numpy as np

from hmslib._checks import check_option
from hmslib.constants import CLASSES

#: Rater models: exponent applied to the memberships (< 1 flattens: a noisier pool), per-class
#: multiplicative bias (the pool over-calls seizure) and uniform lapse rate.
RATERS: dict[str, tuple[float, np.ndarray, float]] = {
    "expert": (1.0, np.ones(6), 0.01),
    "pool": (0.8, np.array([1.5, 1.0, 1.0, 1.0, 1.0, 0.85]), 0.02),
}

#: Class each event is drawn around, per rater group (expert windows are mostly "other", as in the
#: competition's >= 10-vote rows; the pool saw more patterns and seizures).
ARCHETYPE_PRIOR: dict[str, np.ndarray] = {
    "expert": np.array([0.025, 0.18, 0.11, 0.02, 0.05, 0.615]),
    "pool": np.array([0.20, 0.18, 0.11, 0.035, 0.125, 0.35]),
}

#: Votes per window: the pool's 1-9 (mostly 3: the real histogram of the rows with < 10 votes of
#: ``labels/train_rows_1000_per_class.csv``) and the experts' 10-28 (the real histogram of
#: train.csv rows with >= 10 votes, ``labels/train_rows_10plus_votes.csv`` of the samples).
POOL_VOTES = (np.arange(1, 10), np.array([68, 30, 699, 84, 109, 10, 0, 0, 0]) / 1000)

EXPERT_VOTES = (
    np.arange(10, 29),
    np.array([98, 320, 693, 1145, 623, 1409, 664, 302, 307, 72, 212, 49, 23, 10, 3, 5, 2, 1, 1])
    / 5939,
)

#: Share of train events labelled by the expert pool (>= 10 votes).
EXPERT_SHARE = 0.4


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function."""
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def class_memberships(
    strength: np.ndarray,
    sharpness: np.ndarray,
    lateralization: np.ndarray,
    evolution: np.ndarray,
    frequency: np.ndarray,
) -> np.ndarray:
    """How much a pattern with these parameters belongs to each class (rows sum to 1).

    A hierarchy of smooth soft decisions following the ACNS definitions: is a pattern present
    (strength against the background)? If so, is it a seizure (evolving, or sharp discharges faster
    than about 2.75 Hz; ACNS: > 2.5 Hz)? If not, periodic discharges (sharp) or rhythmic delta (smooth), lateralized or
    generalized.

    Parameters
    ----------
    strength, sharpness, lateralization, evolution : array_like
        In ``[0, 1]``; broadcast together. ``strength`` 0.3 is the present/absent boundary; 0.5 is the
        boundary of the others.
    frequency : array_like
        Repetition rate of the pattern, Hz (sharp patterns above ~2.75 Hz count as seizure).

    Returns
    -------
    numpy.ndarray
        float64 ``(..., 6)`` in ``CLASSES`` order.
    """
    a, s, lat, e, f = np.broadcast_arrays(
        *(
            np.asarray(v, dtype=np.float64)
            for v in (strength, sharpness, lateralization, evolution, frequency)
        )
    )
    present = _sigmoid(12.0 * (a - 0.3))
    sharp = _sigmoid(10.0 * (s - 0.5))
    lateral = _sigmoid(10.0 * (lat - 0.5))
    evolving = _sigmoid(10.0 * (e - 0.5))
    fast = _sigmoid(4.0 * (f - 2.75)) * sharp
    seizure = 1.0 - (1.0 - evolving) * (1.0 - fast)
    rest = present * (1.0 - seizure)
    return np.stack(
        [
            present * seizure,
            rest * sharp * lateral,
            rest * sharp * (1.0 - lateral),
            rest * (1.0 - sharp) * lateral,
            rest * (1.0 - sharp) * (1.0 - lateral),
            1.0 - present,
        ],
        axis=-1,
    )


def class_distribution(
    strength: np.ndarray,
    sharpness: np.ndarray,
    lateralization: np.ndarray,
    evolution: np.ndarray,
    frequency: np.ndarray,
    *,
    rater: str = "expert",
) -> np.ndarray:
    """The distribution a rater pool's votes are drawn from, for patterns with these parameters.

    ``p ∝ bias * m**gamma``, then mixed with a uniform lapse ``eps``: the experts use the
    memberships ``m`` of :func:`class_memberships` almost as they are (``gamma = 1``, ``eps = 0.01``);
    the larger, less expert pool of the few-vote windows is noisier (``gamma = 0.8``,
    ``eps = 0.02``) and over-calls seizure (bias 1.5) at the expense of "other" (0.85).

    Parameters
    ----------
    strength, sharpness, lateralization, evolution, frequency : array_like
        As :func:`class_memberships`.
    rater : {"expert", "pool"}
        Which rater model.

    Returns
    -------
    numpy.ndarray
        float64 ``(..., 6)`` in ``CLASSES`` order, rows summing to 1, every entry > 0.

    Raises
    ------
    ValueError
        Unknown ``rater``.
    """
    check_option("rater pool", rater, sorted(RATERS))
    gamma, bias, eps = RATERS[rater]
    m = class_memberships(strength, sharpness, lateralization, evolution, frequency)
    logits = gamma * np.log(m + 1e-4) + np.log(bias)
    p = np.exp(logits - logits.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    return (1.0 - eps) * p + eps / len(CLASSES)
