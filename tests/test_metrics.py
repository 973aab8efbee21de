"""hmslib.metrics.kaggle_kl against a hand-worked case and an independent float64 computation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from hmslib.constants import CLASSES, VOTE_COLUMNS
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


# --------------------------------------------------------------------------------------------------
# clinical metrics
# --------------------------------------------------------------------------------------------------


def test_auroc_hand_case_and_sklearn():
    from sklearn.metrics import roc_auc_score

    from hmslib.metrics import auroc

    positive = np.array([1, 0, 1, 0, 0, 1], dtype=bool)
    scores = np.array([0.9, 0.8, 0.8, 0.3, 0.1, 0.05])
    # pairs (pos, neg): 0.9 beats all 3; 0.8 ties 0.8 (1/2) and beats 0.3, 0.1; 0.05 beats none
    assert auroc(positive, scores) == pytest.approx((3 + 2.5 + 0) / 9, rel=1e-12)
    assert auroc(positive, scores) == pytest.approx(roc_auc_score(positive, scores), rel=1e-12)
    rng = np.random.default_rng(0)
    for _ in range(5):
        pos = rng.random(80) < 0.3
        s = np.round(rng.random(80), 1)  # many ties
        w = rng.integers(0, 4, size=(3, 80)).astype(float)
        assert auroc(pos, s) == pytest.approx(roc_auc_score(pos, s), rel=1e-12)
        expected = [roc_auc_score(pos, s, sample_weight=row) for row in w]
        np.testing.assert_allclose(auroc(pos, s, weights=w), expected, rtol=1e-12)
    assert np.isnan(auroc(np.zeros(4, dtype=bool), np.arange(4.0)))


def test_patient_bootstrap_resamples_patients_not_windows():
    from hmslib.metrics import patient_bootstrap

    groups = np.array(["p3"] * 5 + ["p1"] * 2 + ["p2"] * 1 + ["p9"] * 4)
    counts, row_patient = patient_bootstrap(groups, n_boot=4000, seed=1)
    assert counts.shape == (4000, 4)
    np.testing.assert_array_equal(counts.sum(axis=1), 4)  # as many patients as there are
    np.testing.assert_array_equal(np.array(["p1", "p2", "p3", "p9"])[row_patient], groups)
    weights = counts[:, row_patient]  # window weights of every draw
    for patient in np.unique(groups):
        rows = weights[:, groups == patient]
        assert (rows == rows[:, :1]).all()  # a patient's windows enter a draw together
    # each patient is drawn Binomial(4, 1/4) times: mean 1, variance 3/4
    np.testing.assert_allclose(counts.mean(axis=0), 1.0, atol=0.06)
    np.testing.assert_allclose(counts.var(axis=0), 0.75, atol=0.08)


def test_bootstrap_mean_interval_is_that_of_patients():
    from hmslib.metrics import bootstrap_mean

    # one patient with 100 windows of value 1, ten patients with one window of value 0
    values = np.r_[np.ones(100), np.zeros(10)]
    groups = np.r_[np.zeros(100, dtype=int), np.arange(1, 11)]
    mean, lo, hi = bootstrap_mean(values, groups, n_boot=3000, seed=0)
    assert mean == pytest.approx(100 / 110)
    # reference: resample the 11 patients explicitly, rows repeated
    rng = np.random.default_rng(5)
    ref = []
    for _ in range(3000):
        drawn = rng.integers(0, 11, 11)
        rows = np.concatenate([np.flatnonzero(groups == g) for g in drawn])
        ref.append(values[rows].mean())
    ref_lo, ref_hi = np.percentile(ref, [2.5, 97.5])
    assert lo == pytest.approx(ref_lo, abs=0.03) and hi == pytest.approx(ref_hi, abs=0.03)
    assert lo < 0.5  # a window bootstrap would give about [0.86, 0.96]
    # per-patient sums with counts give the same draws
    sums = np.r_[100.0, np.zeros(10)]
    assert bootstrap_mean(sums, np.arange(11), counts=np.r_[100, np.ones(10)], n_boot=3000) == (
        pytest.approx((mean, lo, hi))
    )
    with pytest.raises(ValueError, match="must be \\(n,\\)"):
        bootstrap_mean(values, groups[:5])


def test_class_auroc_against_the_consensus():
    from sklearn.metrics import roc_auc_score

    from hmslib.metrics import class_auroc

    rng = np.random.default_rng(2)
    n = 300
    votes = rng.multinomial(12, np.full(6, 1 / 6), size=n)
    label = votes.argmax(axis=1)
    preds = rng.dirichlet(np.ones(6), size=n)
    preds[np.arange(n), label] += 0.5  # informative
    preds /= preds.sum(axis=1, keepdims=True)
    groups = rng.integers(0, 30, n)
    table = class_auroc(votes, preds, groups=groups, n_boot=300, seed=0)
    assert table.index.tolist() == [*CLASSES, "macro"]
    expected = [roc_auc_score(label == c, preds[:, c]) for c in range(6)]
    np.testing.assert_allclose(table["auroc"].iloc[:6], expected, rtol=1e-12)
    assert table.at["macro", "auroc"] == pytest.approx(np.mean(expected))
    assert (table["lo"] <= table["auroc"]).all() and (table["auroc"] <= table["hi"]).all()
    assert table["n_pos"].iloc[:6].tolist() == np.bincount(label, minlength=6).tolist()
    assert table["lo"].notna().all()
    assert class_auroc(votes, preds)["lo"].isna().all()  # no groups, no intervals


def test_calibration_error_hand_worked():
    from hmslib.metrics import class_calibration_errors, expected_calibration_error

    votes = np.array([[1, 1, 0, 0, 0, 0], [0, 2, 0, 0, 0, 0], [3, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 1]])
    preds = np.array(
        [
            [0.8, 0.2, 0, 0, 0, 0],
            [0.1, 0.9, 0, 0, 0, 0],
            [0.6, 0.2, 0, 0, 0, 0.2],
            [0.3, 0.1, 0, 0, 0, 0.6],
        ]
    )
    errors = class_calibration_errors(votes, preds, n_bins=2)
    # seizure, bin [0, .5): p .1, .3 vs shares 0, 0 -> |.4 - 0|; bin [.5, 1]: p .8, .6 vs .5, .75
    assert errors["seizure"] == pytest.approx((0.4 + abs(1.4 - 1.25)) / 4)
    # lpd: bin 0: p .2, .2, .1 vs .5, 0, 0 -> .0; bin 1: p .9 vs 1 -> .1
    assert errors["lpd"] == pytest.approx((abs(0.5 - 0.5) + 0.1) / 4)
    assert errors["gpd"] == 0.0
    assert expected_calibration_error(votes, preds, n_bins=2) == pytest.approx(errors.mean())
    assert expected_calibration_error(votes, votes / votes.sum(axis=1, keepdims=True)) < 1e-12
