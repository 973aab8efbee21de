"""hmslib.labels on the real label rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hmslib import io, labels
from hmslib.constants import CLASSES, VOTE_COLUMNS


def test_seizure_rows_probability_and_consolidation(hms_samples):
    df = io.read_train_csv(hms_samples)
    probs = labels.vote_probabilities(df)
    np.testing.assert_array_equal(probs, np.tile([1.0, 0, 0, 0, 0, 0], (9, 1)))
    np.testing.assert_array_equal(labels.total_votes(df), np.full(9, 3))
    groups = labels.consolidate_windows(df)
    assert len(groups) == 1
    row = groups.iloc[0]
    assert row.n_windows == 9 and row.total_votes == 3
    assert row.eeg_offsets == [0.0, 6.0, 8.0, 18.0, 24.0, 26.0, 30.0, 36.0, 40.0]
    assert sorted(row.label_ids) == sorted(df.label_id)


def test_consolidation_splits_on_vote_change():
    df = pd.DataFrame(
        {
            "eeg_id": [1, 1, 1, 2],
            "patient_id": [7, 7, 7, 8],
            "spectrogram_id": [5, 5, 5, 6],
            "label_id": [10, 11, 12, 13],
            "eeg_label_offset_seconds": [0.0, 2.0, 4.0, 0.0],
            "spectrogram_label_offset_seconds": [0.0, 2.0, 4.0, 0.0],
            **{c: [1, 1, 0, 1] if c == "lpd_vote" else [0, 0, 2, 0] for c in VOTE_COLUMNS},
        }
    )
    groups = labels.consolidate_windows(df)
    assert groups.eeg_id.tolist() == [1, 1, 2]
    assert groups.label_ids.tolist() == [[10, 11], [12], [13]]


def test_vote_probabilities_rejects_empty_rows():
    df = pd.DataFrame({c: [0] for c in VOTE_COLUMNS})
    with pytest.raises(ValueError, match="no votes"):
        labels.vote_probabilities(df)


def test_vote_probabilities_rejects_negative_and_missing_votes():
    df = pd.DataFrame({c: [2, 1] if c == "gpd_vote" else [0, 1] for c in VOTE_COLUMNS})
    df.loc[1, "gpd_vote"] = -1
    with pytest.raises(ValueError, match=r"label table: negative votes .*row 1 gpd_vote=-1"):
        labels.vote_probabilities(df)
    df.loc[1, "gpd_vote"] = np.nan
    with pytest.raises(ValueError, match=r"label table: missing or infinite votes .*row 1 gpd_vote=nan"):
        labels.vote_probabilities(df)


def test_high_agreement_and_groups():
    df = pd.DataFrame({c: [3, 12, 0] if c == "other_vote" else [0, 0, 25] for c in VOTE_COLUMNS})
    assert labels.high_agreement(df).index.tolist() == [1, 2]
    assert labels.vote_group(df).tolist() == ["3-9", "10-19", "20+"]


@pytest.fixture(scope="module")
def tenplus(hms_samples):
    return pd.read_csv(hms_samples / "labels" / "train_rows_10plus_votes.csv")


def test_folds_keep_patients_apart_and_classes_balanced(tenplus):
    assert len(tenplus) == 5939 and tenplus.patient_id.nunique() == 1063
    folds = labels.make_folds(tenplus, n_folds=5, seed=0)
    assert set(folds) == {0, 1, 2, 3, 4}
    assert (tenplus.groupby("patient_id").apply(lambda g: folds[g.index].min() == folds[g.index].max(),
                                                include_groups=False)).all()
    majority = labels.vote_probabilities(tenplus).argmax(axis=1)
    overall = np.bincount(majority, minlength=6) / len(majority)
    for k in range(5):
        share = np.bincount(majority[folds == k], minlength=6) / (folds == k).sum()
        np.testing.assert_allclose(share, overall, atol=0.04, err_msg=f"fold {k} class shares")
    sizes = np.bincount(folds)
    assert sizes.min() > 0.8 * len(tenplus) / 5


def test_folds_deterministic_by_seed(tenplus):
    a = labels.make_folds(tenplus, seed=3)
    np.testing.assert_array_equal(a, labels.make_folds(tenplus, seed=3))
    assert (a != labels.make_folds(tenplus, seed=4)).any()


def test_folds_too_many():
    df = pd.DataFrame({"patient_id": [1, 2], **{c: [1, 1] for c in VOTE_COLUMNS}})
    with pytest.raises(ValueError, match=r"n_folds must be in \[2, 2\]"):
        labels.make_folds(df, n_folds=3)


def test_class_prior_and_majority(hms_samples):
    df = io.read_train_csv(hms_samples)
    np.testing.assert_allclose(labels.class_prior(df), [1, 0, 0, 0, 0, 0])
    assert set(labels.majority_class(df)) == {CLASSES[0]}
