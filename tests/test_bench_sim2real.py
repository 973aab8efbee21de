"""The sim-to-real benchmark runs (``--smoke``) and scores its baselines as independent computations do."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from scipy.special import rel_entr

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_sim2real.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_sim2real", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def _kl(votes: np.ndarray, probs: np.ndarray) -> float:
    p = votes / votes.sum(axis=1, keepdims=True)
    return float(rel_entr(p, np.broadcast_to(probs, p.shape)).sum(axis=1).mean())


def test_accuracy_and_confusion_by_hand(bench):
    truth = np.array([0, 5, 2])
    probs = np.array([[0.5, 0.1, 0.1, 0.1, 0.1, 0.1],  # right
                      [0.3, 0.0, 0.0, 0.0, 0.4, 0.3],  # wrong (GRDA)
                      [0.0, 0.0, 0.5, 0.0, 0.5, 0.0]])  # tie GPD/GRDA: half a hit  # fmt: skip
    assert bench.argmax_accuracy(truth, probs) == pytest.approx((1 + 0 + 0.5) / 3)
    assert bench.argmax_accuracy(truth, np.full((3, 6), 1 / 6)) == pytest.approx(1 / 6)
    table = bench.confusion(truth, probs)
    assert table.loc["Seizure", "Seizure"] == 1 and table.loc["Other", "GRDA"] == 1
    assert table.loc["GPD", "GPD"] == 1 and table.to_numpy().sum() == 3


def test_seed_ensemble_is_the_mean_probability(bench):
    a = {"x": np.array([[0.5, 0.1, 0.1, 0.1, 0.1, 0.1]]), "y": np.full((2, 6), 1 / 6)}
    b = {"x": np.array([[0.1, 0.5, 0.1, 0.1, 0.1, 0.1]]), "y": np.full((2, 6), 1 / 6)}
    both = bench.seed_ensemble([a, b])
    assert_allclose(both["x"], [[0.3, 0.3, 0.1, 0.1, 0.1, 0.1]], rtol=1e-12)
    assert_allclose(both["y"], np.full((2, 6), 1 / 6), rtol=1e-12)


def test_smoke_run(bench, hms_samples, tmp_path, capsys):
    tables = bench.main(
        ["--smoke", "--seeds", "0", "1", "--out", str(tmp_path), "--samples", str(hms_samples)]
    )
    printed = capsys.readouterr().out
    assert "Sim-to-real" in printed and "Confusion" in printed
    scores = tables["scores"]
    ten, fifty = (bench.MODELS[k][0] for k in ("sparcnet10s", "effnet_lite0"))
    assert list(scores.index) == ["uniform", "class prior (synthetic)", ten, fifty]

    sets = {s.name: s for s in bench.real_sets(hms_samples)}
    assert [len(s.votes) for s in sets.values()] == [11, 9, 1]
    centre = sets["centre10s"]
    # uniform: KL = sum p log(6 p); the seizure EEG is all Seizure (one-hot): log 6
    assert scores.loc["uniform", "KL centre10s (11)"] == pytest.approx(
        _kl(centre.votes, np.full(6, 1 / 6)), rel=1e-9
    )
    assert scores.loc["uniform", "KL seizure EEG (9)"] == pytest.approx(np.log(6), rel=1e-9)
    assert_allclose(scores.filter(like="acc").loc["uniform"].to_numpy(), 1 / 6, rtol=1e-12)
    # the class prior of the synthetic training windows: the mean of their vote distributions
    train = pd.read_csv(tmp_path / "data-bench-4" / "train.csv")
    votes = train.filter(like="_vote").to_numpy(np.float64)
    prior = (votes / votes.sum(axis=1, keepdims=True)).mean(axis=0)
    all_votes = np.concatenate([s.votes for s in sets.values()])
    assert scores.loc["class prior (synthetic)", "KL all (21)"] == pytest.approx(
        _kl(all_votes, prior), rel=1e-6
    )
    # the 10 s model reads every window; the 50 s model not the 10 s centre windows
    assert np.isfinite(scores.loc[ten]).all()
    assert np.isnan(scores.loc[fifty, "KL centre10s (11)"])
    assert np.isfinite(scores.loc[fifty, "KL 50 s windows (10)"])
    assert tables[f"confusion:{ten}"].to_numpy().sum() == 21
    assert tables[f"confusion:{fifty}"].to_numpy().sum() == 10
    assert set(tables["skill"].index) == {(m, seed) for m in (ten, fifty) for seed in (0, 1)}
    # each model's row is its seed ensemble: KL is convex in the prediction, so the ensemble's KL
    # is at most the mean of its seeds' (Jensen), and equal only if the seeds agree
    per_seed = tables["per_seed"]
    assert sorted(per_seed.index) == sorted((m, seed) for m in (ten, fifty) for seed in (0, 1))
    for model in (ten, fifty):
        for column in ("KL 50 s windows (10)", "KL seizure EEG (9)"):
            assert scores.loc[model, column] <= per_seed.loc[model, column].mean() + 1e-9


def test_set_changes_every_models_recipe_in_a_run_folder_of_its_own(bench, hms_samples, tmp_path):
    bench.main(
        ["--smoke", "--seeds", "0", "--models", "sparcnet10s", "--out", str(tmp_path),
         "--samples", str(hms_samples), "--set", "augment.mixup=0.5", "label_smoothing=0.1"]
    )  # fmt: skip
    runs = sorted(p.name for p in tmp_path.glob("run-*"))
    assert runs == ["run-4-2f-1+0-s16-augment.mixup=0.5-label_smoothing=0.1"]
    saved = json.loads(next((tmp_path / runs[0]).rglob("train_config.json")).read_text())
    recipe = saved["recipe"]
    assert recipe["augment"]["mixup"] == 0.5 and recipe["label_smoothing"] == 0.1
