"""hmslib.analysis: OOF merging and its errors, KL tables, confusion, reliability.

KL references use scipy.special.rel_entr on float64 arrays, independent of hmslib.metrics. The
figures drawn from these tables (hmslib.viz) are tested in test_viz.py.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from helpers import oof_frame
from scipy.special import rel_entr

from hmslib import analysis
from hmslib.constants import CLASSES, OOF_COLUMNS, PRED_COLUMNS, VOTE_COLUMNS


def _reference_kl(votes: np.ndarray, preds: np.ndarray) -> np.ndarray:
    """Per-row KL in float64 with Kaggle's clipping: ``(n,)``."""
    y = votes / votes.sum(axis=1, keepdims=True)
    return rel_entr(y, np.clip(preds, 1e-15, 1 - 1e-15)).sum(axis=1)



def _write_run(root, models: dict[str, pd.DataFrame]) -> None:
    (root / "oof").mkdir(parents=True, exist_ok=True)
    for name, df in models.items():
        for k, part in df.groupby("fold"):
            part.to_parquet(root / "oof" / f"{name}_fold{k}.parquet", index=False)


@pytest.fixture
def run(tmp_path):
    models = {"tf_efficientnet_lite0": oof_frame(60, 0), "raw_cnn": oof_frame(60, 1)}
    _write_run(tmp_path, models)
    return tmp_path, models


# --------------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------------


def test_load_oof_merges_folds_sorted_by_label_id(run):
    root, models = run
    assert analysis.oof_models(root) == ["raw_cnn", "tf_efficientnet_lite0"]
    merged = analysis.load_oof(root, "tf_efficientnet_lite0")
    source = models["tf_efficientnet_lite0"].sort_values("label_id").reset_index(drop=True)
    assert list(merged.columns) == ["model", *OOF_COLUMNS]
    assert (merged["model"] == "tf_efficientnet_lite0").all()
    pd.testing.assert_frame_equal(merged.drop(columns="model"), source, check_dtype=False)
    both = analysis.load_oof(root)
    assert both["model"].value_counts().to_dict() == {"raw_cnn": 60, "tf_efficientnet_lite0": 60}


def test_load_oof_names_the_missing_fold_file(run):
    root, _ = run
    (root / "oof" / "raw_cnn_fold1.parquet").unlink()
    with pytest.raises(FileNotFoundError, match=r"raw_cnn_fold1\.parquet.*missing \[1\]"):
        analysis.load_oof(root)
    analysis.load_oof(root, "tf_efficientnet_lite0")  # the other model is complete
    with pytest.raises(FileNotFoundError, match=r"tf_efficientnet_lite0_fold3\.parquet"):
        analysis.load_oof(root, "tf_efficientnet_lite0", n_folds=4)


def test_load_oof_rejects_a_window_in_two_folds(tmp_path):
    df = oof_frame(40, 2)
    first = df.index[df["fold"] == 0][0]
    df.loc[df.index[df["fold"] == 2][0], "label_id"] = df.at[first, "label_id"]
    _write_run(tmp_path, {"m": df})
    with pytest.raises(ValueError, match=r"model 'm': 1 label_id values appear in more than one"):
        analysis.load_oof(tmp_path, "m")


def test_load_oof_rejects_bad_files(tmp_path):
    df = oof_frame(40, 3)
    _write_run(tmp_path, {"m": df})
    with pytest.raises(FileNotFoundError, match=r"model 'n'.*\['m'\]"):
        analysis.load_oof(tmp_path, "n")
    path = tmp_path / "oof" / "m_fold1.parquet"
    part = pd.read_parquet(path)
    part.assign(fold=2).to_parquet(path)
    with pytest.raises(ValueError, match=r"m_fold1\.parquet: file name says fold 1"):
        analysis.load_oof(tmp_path, "m")
    part.assign(pred_seizure=part["pred_seizure"] + 0.1).to_parquet(path)
    with pytest.raises(ValueError, match=r"m_fold1\.parquet: \d+ rows whose predictions"):
        analysis.load_oof(tmp_path, "m")
    part.drop(columns="pred_other").to_parquet(path)
    with pytest.raises(ValueError, match=r"m_fold1\.parquet: missing columns \['pred_other'\]"):
        analysis.load_oof(tmp_path, "m")
    with pytest.raises(FileNotFoundError, match="no OOF folder"):
        analysis.oof_models(tmp_path / "elsewhere")


# --------------------------------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------------------------------


def test_kl_breakdown_matches_reference_on_every_subset(run):
    root, models = run
    table = analysis.kl_breakdown(analysis.load_oof(root))
    assert list(table.index) == ["raw_cnn", "tf_efficientnet_lite0"]
    for name, df in models.items():
        votes = df[list(VOTE_COLUMNS)].to_numpy(float)
        preds = df[list(PRED_COLUMNS)].to_numpy(float)
        row_kl = _reference_kl(votes, preds)
        total = votes.sum(axis=1)
        row = table.loc[name]
        assert row["n"] == len(df)
        assert row["kl"] == pytest.approx(row_kl.mean(), rel=1e-12)
        assert row["kl_10plus"] == pytest.approx(row_kl[total >= 10].mean(), rel=1e-12)
        y = votes / total[:, None]
        per_class = rel_entr(y, np.clip(preds, 1e-15, 1)).mean(axis=0)
        np.testing.assert_allclose(row[[f"kl_{c}" for c in CLASSES]].to_numpy(float), per_class)
        for group, lo, hi in (("1-2", 1, 2), ("3-9", 3, 9), ("10-19", 10, 19), ("20+", 20, 99)):
            mask = (total >= lo) & (total <= hi)
            expected = row_kl[mask].mean() if mask.any() else np.nan
            np.testing.assert_allclose(row[f"kl_votes_{group}"], expected, rtol=1e-12)


def test_kl_breakdown_leaves_empty_groups_nan():
    df = oof_frame(10, 4)
    df[list(VOTE_COLUMNS)] = np.tile([3, 0, 0, 0, 0, 1], (10, 1))  # every row has 4 votes
    table = analysis.kl_breakdown(df)
    assert table.index.tolist() == ["oof"]
    assert (
        table[["kl_10plus", "kl_votes_1-2", "kl_votes_10-19", "kl_votes_20+"]].isna().all(axis=None)
    )
    assert table.at["oof", "kl_votes_3-9"] == pytest.approx(table.at["oof", "kl"])


def test_kl_per_patient_matches_reference():
    df = oof_frame(80, 5)
    table = analysis.kl_per_patient(df)
    row_kl = _reference_kl(
        df[list(VOTE_COLUMNS)].to_numpy(float), df[list(PRED_COLUMNS)].to_numpy(float)
    )
    expected = pd.Series(row_kl).groupby(df["patient_id"].to_numpy()).mean()
    assert table["kl"].is_monotonic_decreasing
    got = table.set_index("patient_id")
    np.testing.assert_allclose(got.loc[expected.index, "kl"], expected.to_numpy(), rtol=1e-12)
    counts = df.groupby("patient_id").size()
    np.testing.assert_array_equal(got.loc[counts.index, "n"], counts.to_numpy())


def _tiny(votes: list[list[int]], preds: list[list[float]]) -> pd.DataFrame:
    n = len(votes)
    df = pd.DataFrame(
        {"label_id": range(n), "eeg_id": range(n), "patient_id": 0, "fold": 0, "total_votes": 0}
    )
    df[list(VOTE_COLUMNS)] = np.asarray(votes)
    df[list(PRED_COLUMNS)] = np.asarray(preds)
    return df.assign(total_votes=df[list(VOTE_COLUMNS)].sum(axis=1))


def _onehot(k: int, p: float = 0.9) -> list[float]:
    row = [(1 - p) / 5] * 6
    row[k] = p
    return row


def test_confusion_hand_worked():
    # consensus -> predicted: sz->sz, sz->lpd, lpd->lpd, other->other, other->sz
    votes = [
        [3, 1, 0, 0, 0, 0],
        [2, 0, 0, 0, 0, 1],
        [0, 4, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 5],
        [1, 0, 0, 0, 0, 2],
    ]
    preds = [_onehot(0), _onehot(1), _onehot(1), _onehot(5), _onehot(0)]
    counts = analysis.confusion(_tiny(votes, preds))
    expected = np.zeros((6, 6), dtype=int)
    expected[0, 0] = expected[0, 1] = expected[1, 1] = expected[5, 5] = expected[5, 0] = 1
    np.testing.assert_array_equal(counts.to_numpy(), expected)
    assert counts.index.name == "consensus" and list(counts.columns) == list(CLASSES)
    shares = analysis.confusion(_tiny(votes, preds), normalize=True).to_numpy()
    np.testing.assert_allclose(shares[0], [0.5, 0.5, 0, 0, 0, 0])
    np.testing.assert_allclose(shares[2], np.zeros(6))  # no gpd windows


def test_confusion_needs_a_model_when_several(run):
    root, models = run
    oof = analysis.load_oof(root)
    with pytest.raises(ValueError, match=r"2 models \['raw_cnn', 'tf_efficientnet_lite0'\]"):
        analysis.confusion(oof)
    df = models["raw_cnn"]
    expected = pd.crosstab(
        df[list(VOTE_COLUMNS)].to_numpy().argmax(axis=1),
        df[list(PRED_COLUMNS)].to_numpy().argmax(axis=1),
    ).reindex(index=range(6), columns=range(6), fill_value=0)
    np.testing.assert_array_equal(
        analysis.confusion(oof, model="raw_cnn").to_numpy(), expected.to_numpy()
    )


def test_reliability_hand_worked():
    votes = [[1, 1, 0, 0, 0, 0], [0, 2, 0, 0, 0, 0], [3, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 1]]
    preds = [
        [0.8, 0.2, 0, 0, 0, 0],
        [0.1, 0.9, 0, 0, 0, 0],
        [0.6, 0.2, 0, 0, 0, 0.2],
        [0.3, 0.1, 0, 0, 0, 0.6],
    ]
    table = analysis.reliability(_tiny(votes, preds), n_bins=2)
    assert len(table) == 12
    sz = table[table["class"] == "seizure"].set_index("bin")
    # seizure bin [0, 0.5): rows 2 and 4 (p 0.1, 0.3; shares 0, 0); bin [0.5, 1]: rows 1, 3
    assert sz["n"].tolist() == [2, 2]
    np.testing.assert_allclose(sz["mean_pred"], [0.2, 0.7])
    np.testing.assert_allclose(sz["observed"], [0.0, (0.5 + 0.75) / 2])
    gpd = table[table["class"] == "gpd"].set_index("bin")
    assert gpd["n"].tolist() == [4, 0] and math.isnan(gpd.at[1, "mean_pred"])
    other = table[table["class"] == "other"].set_index("bin")
    np.testing.assert_allclose(other["observed"], [0.25 / 3, 1.0])
    with pytest.raises(ValueError, match="n_bins must be >= 1"):
        analysis.reliability(_tiny(votes, preds), n_bins=0)


def test_worst_windows_are_the_largest_kl_rows():
    df = oof_frame(50, 6)
    worst = analysis.worst_windows(df, 5)
    row_kl = _reference_kl(
        df[list(VOTE_COLUMNS)].to_numpy(float), df[list(PRED_COLUMNS)].to_numpy(float)
    )
    order = np.argsort(-row_kl)[:5]
    assert worst["label_id"].tolist() == df["label_id"].to_numpy()[order].tolist()
    np.testing.assert_allclose(worst["kl"], row_kl[order], rtol=1e-12)
    assert worst.at[0, "consensus"] == CLASSES[df[list(VOTE_COLUMNS)].to_numpy()[order[0]].argmax()]


# --------------------------------------------------------------------------------------------------
# clinical metrics
# --------------------------------------------------------------------------------------------------


def test_auroc_table_scores_high_agreement_windows_against_sklearn(run):
    from sklearn.metrics import roc_auc_score

    _, models = run
    oof = pd.concat([df.assign(model=name) for name, df in models.items()], ignore_index=True)
    table = analysis.auroc_table(oof, min_votes=10, n_boot=200, seed=0)
    assert sorted(table.model.unique()) == sorted(models)
    for name, df in models.items():
        high = df[df[list(VOTE_COLUMNS)].sum(axis=1) >= 10]
        votes = high[list(VOTE_COLUMNS)].to_numpy()
        label = votes.argmax(axis=1)
        part = table[table.model == name].set_index("class")
        for c, cls in enumerate(CLASSES):
            if 0 < (label == c).sum() < len(label):
                expected = roc_auc_score(label == c, high[PRED_COLUMNS[c]])
                assert part.at[cls, "auroc"] == pytest.approx(expected, rel=1e-12)
                assert part.at[cls, "lo"] <= part.at[cls, "auroc"] <= part.at[cls, "hi"]
        assert part.at["macro", "n_pos"] == len(high)
    summary = analysis.clinical_summary(oof, n_boot=200)
    macro = table[table["class"] == "macro"].set_index("model")
    np.testing.assert_allclose(summary.loc[macro.index, "auroc"], macro["auroc"])
    np.testing.assert_allclose(summary.loc[macro.index, "auroc_lo"], macro["lo"])
    assert list(summary.columns) == ["auroc", "auroc_lo", "auroc_hi", "ece"]


def test_calibration_table_matches_reliability_bins():
    df = oof_frame(80, 3)
    table = analysis.calibration_table(df, n_bins=5)
    bins = analysis.reliability(df, n_bins=5)
    for cls in CLASSES:
        part = bins[bins["class"] == cls].fillna(0.0)
        expected = (part["n"] * (part["mean_pred"] - part["observed"]).abs()).sum() / len(df)
        assert table.iloc[0][f"ece_{cls}"] == pytest.approx(expected, rel=1e-9)
    assert table.iloc[0]["ece"] == pytest.approx(table.iloc[0][[f"ece_{c}" for c in CLASSES]].mean())
    empty = analysis.calibration_table(df, min_votes=1000)
    assert empty["ece"].isna().all()
