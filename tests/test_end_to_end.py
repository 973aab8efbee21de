"""The main job end to end on the quick profile, then prediction, the CLI and the Kaggle bundle on it.

The quick run is written to ``outputs/quick`` (fresh each session), where the notebook tests
(``HMS_PROFILE=quick pytest --nbval-lax notebooks``, run by ``make test`` after this) find it.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import papermill
import pytest

from hmslib import bundle, cli, io, pipeline, predict
from hmslib.config import get_profile
from hmslib.constants import CLASSES, TIMELINE_COLUMNS, VOTE_COLUMNS
from hmslib.ensemble import load_ensemble

RUN = pipeline.repo_root() / "outputs" / "quick"


@pytest.fixture(scope="module")
def quick_run():
    shutil.rmtree(RUN, ignore_errors=True)
    pipeline.run(run_dir=RUN, profile="quick", log=lambda _: None)
    return RUN


def test_run_writes_every_output(quick_run):
    prof = get_profile("quick")
    executed = {p.stem for p in (quick_run / "notebooks").glob("*.ipynb")}
    assert {"01_eda", "02_preprocess", "04_oof_analysis", "05_ensemble", "06_submission",
            "07_score_recording"} <= executed  # fmt: skip
    for spec in prof.models:
        for k in range(prof.n_folds):
            assert (quick_run / "models" / spec.name / f"fold{k}.pt").is_file()
            assert (quick_run / "oof" / f"{spec.name}_fold{k}.parquet").is_file()
            assert f"03_train-{spec.name}-fold{k}" in executed
    ensemble = load_ensemble(quick_run / "ensemble.json")
    assert set(ensemble.models) <= {m.name for m in prof.models}
    data = quick_run / "data"
    submission = pd.read_csv(quick_run / "submission.csv")
    predict.check_submission(submission, io.read_sample_submission(data))
    assert len(submission) == len(io.read_test_csv(data))
    # 07_score_recording scored the example recording with the run's ensemble
    timeline = pd.read_csv(quick_run / "recordings" / "example" / "timeline.csv")
    assert len(timeline) > 0 and list(timeline.columns) == list(TIMELINE_COLUMNS)
    np.testing.assert_allclose(timeline[list(CLASSES)].sum(axis=1), 1.0, atol=1e-5)
    assert (quick_run / "recordings" / "example" / "timeline.png").is_file()
    figures = {p.name for p in (quick_run / "figures").glob("*.png")}
    assert {"votes.png", "class_examples.png", "filter_response.png", "oof_kl_by_group.png"} <= figures


def test_kl_table_has_prior_floor_models_and_ensemble(quick_run):
    table = pd.read_csv(quick_run / "kl_table.csv").set_index("model")
    names = [m.name for m in get_profile("quick").models]
    assert {"prior", "floor", *names} <= set(table.index)
    assert any(i.startswith("ensemble") for i in table.index)
    assert table.loc["floor", "test_kl"] < table.loc["prior", "test_kl"]
    assert table.loc["floor", "oof_kl_all"] < table.loc["prior", "oof_kl_all"]
    assert np.isfinite(table[["oof_kl_all", "test_kl"]].to_numpy()).all()


def test_test_share_and_intervals_match_a_hand_computation(quick_run):
    table = pd.read_csv(quick_run / "kl_table.csv").set_index("model")
    truth = pd.read_csv(quick_run / "data" / "truth.csv").query("split == 'test'").set_index("eeg_id")
    submission = pd.read_csv(quick_run / "submission.csv").set_index("eeg_id").loc[truth.index]
    y = truth[list(VOTE_COLUMNS)].to_numpy(float)
    y /= y.sum(axis=1, keepdims=True)
    p = np.clip(submission[list(VOTE_COLUMNS)].to_numpy(), 1e-15, 1 - 1e-15)
    ensemble_kl = np.where(y > 0, y * np.log(np.where(y > 0, y, 1) / p), 0).sum(axis=1)
    ensemble = next(i for i in table.index if i.startswith("ensemble"))
    prior, floor = table.loc["prior", "test_kl"], table.loc["floor", "test_kl"]
    assert table.loc[ensemble, "test_kl"] == pytest.approx(ensemble_kl.mean(), rel=1e-9)
    assert table.loc[ensemble, "test_share"] == pytest.approx((prior - ensemble_kl.mean()) / (prior - floor))
    assert table.loc["prior", "test_share"] == 0 and table.loc["floor", "test_share"] == pytest.approx(1)
    # the interval is that of the mean over a resample of the test patients
    lo, hi = table.loc[ensemble, ["test_kl_lo", "test_kl_hi"]]
    rng = np.random.default_rng(0)
    means = [ensemble_kl[rng.integers(0, len(y), len(y))].mean() for _ in range(2000)]
    ref_lo, ref_hi = np.percentile(means, [2.5, 97.5])
    spread = ref_hi - ref_lo
    assert abs(lo - ref_lo) < 0.25 * spread and abs(hi - ref_hi) < 0.25 * spread
    ok = table[["test_kl_lo", "test_kl", "test_kl_hi"]].dropna()
    assert (ok.test_kl_lo <= ok.test_kl + 1e-12).all() and (ok.test_kl <= ok.test_kl_hi + 1e-12).all()


def test_rerun_skips_finished_steps(quick_run):
    lines: list[str] = []
    pipeline.run(run_dir=quick_run, profile="quick", log=lines.append)
    steps = [line for line in lines if line.startswith("[")]
    assert steps and all("skipped" in line for line in steps)


def test_predict_cli_on_real_public_test(quick_run, hms_samples, tmp_path):
    out = tmp_path / "submission.csv"
    assert cli.main(["predict", "--data", str(hms_samples), "--models", str(quick_run), "--out", str(out)]) == 0
    submission = pd.read_csv(out)
    assert submission.eeg_id.tolist() == [3911565283]
    np.testing.assert_allclose(submission[list(VOTE_COLUMNS)].sum(axis=1), 1.0, atol=1e-6)


def test_submission_notebook_on_real_public_test(quick_run, hms_samples, tmp_path):
    out = tmp_path / "submission.csv"
    papermill.execute_notebook(
        str(pipeline.notebooks_dir() / "06_submission.ipynb"), str(tmp_path / "executed.ipynb"),
        parameters={"data_dir": str(hms_samples), "run_dir": str(quick_run), "submission_path": str(out)},
        kernel_name="python3", progress_bar=False,
    )  # fmt: skip
    submission = pd.read_csv(out)
    predict.check_submission(submission, io.read_sample_submission(hms_samples))
    assert submission.eeg_id.tolist() == [3911565283]


def test_predict_refuses_missing_fold(quick_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(quick_run / "models", run / "models")
    shutil.copy(quick_run / "ensemble.json", run / "ensemble.json")
    model = load_ensemble(run / "ensemble.json").models[0]
    (run / "models" / model / "fold1.pt").unlink()
    with pytest.raises(FileNotFoundError, match=rf"model '{model}' was trained with \d folds but \['fold1\.pt'\]"):
        predict.predict_folder(quick_run / "data", run)


def test_bundle_runs_offline_in_a_kaggle_layout(quick_run, tmp_path, monkeypatch):
    kaggle_input = tmp_path / "kaggle" / "input"
    competition = kaggle_input / "hms-harmful-brain-activity-classification"
    competition.mkdir(parents=True)
    data = quick_run / "data"
    for name in ("test.csv", "sample_submission.csv"):
        shutil.copy(data / name, competition / name)
    for name in ("test_eegs", "test_spectrograms"):
        shutil.copytree(data / name, competition / name)
    slug = "hmslib-quick"
    bundle_dir = bundle.bundle(quick_run, kaggle_input / slug, dataset_slug=slug)
    metadata = json.loads((bundle_dir / "dataset-metadata.json").read_text())
    assert metadata["title"] == slug and list((bundle_dir / "wheels").glob("hmslib-*.whl"))
    notebook = (bundle_dir / "submission.ipynb").read_text()
    assert "/kaggle/input/hms-harmful-brain-activity-classification" in notebook

    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    working = tmp_path / "kaggle" / "working"
    working.mkdir()
    papermill.execute_notebook(
        str(bundle_dir / "submission.ipynb"), str(working / "executed.ipynb"),
        parameters={"data_dir": str(competition), "run_dir": str(bundle_dir / "run"),
                    "wheel_dir": str(bundle_dir / "wheels"), "install_dir": str(working / "hmslib_pkg"),
                    "submission_path": str(working / "submission.csv")},
        kernel_name="python3", progress_bar=False, cwd=str(working),
    )  # fmt: skip
    assert (working / "hmslib_pkg" / "hmslib" / "predict.py").is_file()
    submission = pd.read_csv(working / "submission.csv")
    predict.check_submission(submission, io.read_sample_submission(competition))
    expected = pd.read_csv(quick_run / "submission.csv")
    np.testing.assert_allclose(submission[list(VOTE_COLUMNS)], expected[list(VOTE_COLUMNS)], atol=1e-5)
