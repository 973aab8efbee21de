"""hmslib.calibration: temperature scaling against a float64 reference and a brute-force grid.

KL references use scipy.special.rel_entr in float64, independent of hmslib.metrics.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import rel_entr

from hmslib import calibration


def _kl(y: np.ndarray, p: np.ndarray) -> float:
    y = y / y.sum(axis=1, keepdims=True)
    return float(rel_entr(y, np.clip(p, 1e-15, 1 - 1e-15)).sum(axis=1).mean())


def _scaled(p: np.ndarray, t: float) -> np.ndarray:
    """``p ** (1 / t)`` renormalised: the same map as softmax(log p / t), written differently."""
    q = np.clip(p, 1e-15, None) ** (1.0 / t)
    return q / q.sum(axis=1, keepdims=True)


def _miscalibrated(seed: int, temperature: float, n: int = 600) -> tuple[np.ndarray, np.ndarray]:
    """Votes drawn from true distributions, and a model reporting them at ``1 / temperature``."""
    rng = np.random.default_rng(seed)
    truth = rng.dirichlet(np.full(6, 0.6), size=n)
    votes = np.stack([rng.multinomial(15, p) for p in truth])
    return _scaled(truth, 1.0 / temperature), votes  # over-confident when temperature > 1


def test_apply_temperature_matches_power_reference():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(6), size=20)
    p[0] = [1, 0, 0, 0, 0, 0]  # exact zeros (entmax) stay finite
    for t in (0.3, 1.0, 2.5):
        out = calibration.apply_temperature(p, t)
        np.testing.assert_allclose(out, _scaled(p, t), rtol=1e-10, atol=1e-300)
        np.testing.assert_allclose(out.sum(axis=1), 1.0)
        assert (out.argmax(axis=1) == p.argmax(axis=1)).all()
    with pytest.raises(ValueError, match="temperature must be a positive"):
        calibration.apply_temperature(p, 0.0)
    with pytest.raises(ValueError, match=r"expected probabilities \(n, 6\)"):
        calibration.apply_temperature(p[:, :5], 1.0)


@pytest.mark.parametrize("true_t", [0.5, 2.0])
def test_fit_temperature_lowers_kl_of_a_miscalibrated_model(true_t):
    probs, votes = _miscalibrated(1, true_t)
    t = calibration.fit_temperature(probs, votes)
    # the grid minimiser of the same objective, computed independently
    grid = np.exp(np.linspace(np.log(0.1), np.log(10), 2001))
    kls = np.array([_kl(votes, _scaled(probs, g)) for g in grid])
    assert t == pytest.approx(grid[kls.argmin()], rel=5e-3)
    assert t == pytest.approx(true_t, rel=0.15)  # it undoes the miscalibration
    assert _kl(votes, _scaled(probs, t)) < _kl(votes, probs) - 0.01


@pytest.mark.parametrize("seed", range(6))
def test_fit_temperature_never_raises_in_sample_kl(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    probs = rng.dirichlet(np.full(6, rng.uniform(0.2, 3)), size=n)
    votes = rng.integers(0, 5, size=(n, 6))
    votes[votes.sum(axis=1) == 0, 0] = 1
    t = calibration.fit_temperature(probs, votes)
    lo, hi = calibration.TEMPERATURE_BOUNDS
    assert lo <= t <= hi
    assert _kl(votes, calibration.apply_temperature(probs, t)) <= _kl(votes, probs) + 1e-12


def test_calibrated_model_keeps_temperature_one():
    rng = np.random.default_rng(3)
    truth = rng.dirichlet(np.full(6, 0.6), size=400)
    assert calibration.fit_temperature(truth, truth) == pytest.approx(1.0, abs=1e-3)


def test_per_model_temperatures():
    a, votes = _miscalibrated(4, 2.0)
    b, _ = _miscalibrated(4, 0.5)
    preds = np.stack([a, b])
    temps = calibration.fit_temperatures(preds, votes)
    np.testing.assert_allclose(
        temps, [calibration.fit_temperature(a, votes), calibration.fit_temperature(b, votes)]
    )
    out = calibration.apply_temperatures(preds, temps)
    np.testing.assert_allclose(out[0], _scaled(a, temps[0]), rtol=1e-10)
    np.testing.assert_allclose(out[1], _scaled(b, temps[1]), rtol=1e-10)
    np.testing.assert_array_equal(calibration.apply_temperatures(preds, None), preds)
    with pytest.raises(ValueError, match=r"temperatures \(m,\)"):
        calibration.apply_temperatures(preds, temps[:1])
    with pytest.raises(ValueError, match="same shape"):
        calibration.fit_temperature(a[:3], votes)
