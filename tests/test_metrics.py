"""hmslib.metrics.kaggle_kl against a hand-worked case and an independent float64 computation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from hmslib.constants import VOTE_COLUMNS
from hmslib.metrics import kaggle_kl, kl_per_class, kl_split


def test_hand_worked_example():
    votes = np.array([[3, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 2]])
    sub = np.array([[0.5, 0.1, 0.1, 0.1, 0.1, 0.1], [0.2, 0.2, 0.2, 0.2, 0.0, 0.2]])
    row1 = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.1)
    row2 = 1.0 * math.log(1.0 / 0.2)
    assert kaggle_kl(votes, sub) == pytest.approx((row1 + row2) / 2, rel=1e-12)


def test_zero_prediction_is_clipped_not_renormalised():
    votes = np.array([[0, 1, 0, 0, 0, 0]])
    sub = np.array([[1.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    assert kaggle_kl(votes, sub) == pytest.approx(-math.log(1e-15), rel=1e-12)


def _reference(votes: np.ndarray, sub: np.ndarray) -> float:
    """Row by row in plain Python floats (independent of the vectorised code)."""
    total = 0.0
    for v_row, p_row in zip(votes.tolist(), sub.tolist(), strict=True):
        s = sum(v_row)
        for v, p in zip(v_row, p_row, strict=True):
            if v > 0:
                y = v / s
                total += y * math.log(y / min(max(p, 1e-15), 1 - 1e-15))
    return total / len(votes)


@settings(max_examples=60, deadline=None)
@given(
    votes=arrays(np.int64, (7, 6), elements=st.integers(0, 20)),
    raw=arrays(np.float64, (7, 6), elements=st.floats(0, 1)),
    zero_mask=arrays(np.bool_, (7, 6)),
)
def test_matches_float64_reference(votes, raw, zero_mask):
    votes[votes.sum(axis=1) == 0, 0] = 1
    sub = np.where(zero_mask, 0.0, raw)
    expected = _reference(votes, sub)
    assert kaggle_kl(votes, sub) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    np.testing.assert_allclose(kl_per_class(votes, sub).sum(), expected, rtol=1e-9, atol=1e-12)


def test_dataframes_align_by_id(hms_samples):
    solution = pd.read_csv(hms_samples / "labels" / "train_rows_10plus_votes.csv").head(50)
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(6), size=50)
    sub = pd.DataFrame(probs, columns=list(VOTE_COLUMNS)).assign(eeg_id=solution.eeg_id.to_numpy())
    shuffled = sub.sample(frac=1, random_state=1)
    expected = kaggle_kl(solution[list(VOTE_COLUMNS)].to_numpy(), probs)
    assert kaggle_kl(solution, shuffled) == pytest.approx(expected, rel=1e-12)


def test_uniform_on_real_rows_matches_entropy_formula(hms_samples):
    solution = pd.read_csv(hms_samples / "labels" / "train_rows_10plus_votes.csv")
    y = solution[list(VOTE_COLUMNS)].to_numpy(float)
    y /= y.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        neg_entropy = np.where(y > 0, y * np.log(y), 0).sum(axis=1)
    expected = float(np.mean(neg_entropy + math.log(6)))
    assert kaggle_kl(solution, solution.assign(**{c: 1 / 6 for c in VOTE_COLUMNS})) == pytest.approx(expected)


def test_errors():
    sol = pd.DataFrame({"eeg_id": [1, 2], **{c: [1, 1] for c in VOTE_COLUMNS}})
    with pytest.raises(ValueError, match=r"misses 1 ids.*\[2\]"):
        kaggle_kl(sol, sol.iloc[:1])
    with pytest.raises(ValueError, match="NaN"):
        kaggle_kl(np.ones((1, 6)), np.full((1, 6), np.nan))
    with pytest.raises(ValueError, match=r"\(n, 6\)"):
        kaggle_kl(np.ones((2, 6)), np.ones((2, 5)))
    with pytest.raises(ValueError, match="submission misses columns"):
        kaggle_kl(sol, sol.drop(columns=["gpd_vote"]))
    with pytest.raises(ValueError, match=r"solution: negative votes .*row 1 lpd_vote=-1"):
        kaggle_kl(np.array([[1, 0, 0, 0, 0, 0], [1, -1, 0, 0, 0, 0]]), np.full((2, 6), 1 / 6))
    with pytest.raises(ValueError, match=r"solution: rows \[0\] have no votes"):
        kaggle_kl(np.zeros((1, 6)), np.full((1, 6), 1 / 6))


def test_kl_split_matches_reference_on_each_part():
    rng = np.random.default_rng(3)
    votes = rng.integers(0, 6, size=(40, 6))
    votes[:, 5] += 1
    votes[::3] *= 4  # some rows with >= 10 votes, some without
    preds = rng.dirichlet(np.ones(6), size=40)
    many = votes.sum(axis=1) >= 10
    assert 0 < many.sum() < 40
    kl_many, kl_all, n_many = kl_split(votes, preds)
    assert n_many == int(many.sum())
    assert kl_all == pytest.approx(_reference(votes, preds), rel=1e-12)
    assert kl_many == pytest.approx(_reference(votes[many], preds[many]), rel=1e-12)
    strict = votes.sum(axis=1) >= 20
    kl_20, _, n_20 = kl_split(votes, preds, min_votes=20)
    assert n_20 == int(strict.sum())
    assert kl_20 == pytest.approx(_reference(votes[strict], preds[strict]), rel=1e-12)
    few = np.ones((3, 6), dtype=int)
    kl_none, kl_few, n_none = kl_split(few, np.full((3, 6), 1 / 6))
    assert math.isnan(kl_none) and n_none == 0
    assert kl_few == pytest.approx(0.0, abs=1e-12)
