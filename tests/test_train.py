"""Tests of hmslib.train: loss vs the metric, training, checkpoints, resume, bad input, DDP, CLI."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal

from hmslib import cli, io, losses, train
from hmslib.augment import AugmentConfig
from hmslib.checkpoints import load_model
from hmslib.config import Environment, Recipe, TrainConfig, training_config
from hmslib.constants import PRED_COLUMNS, VOTE_COLUMNS
from hmslib.ensemble import Ensemble
from hmslib.labels import make_folds, total_votes
from hmslib.metrics import kaggle_kl, kl_rows
from hmslib.models import ModelConfig, probabilities
from hmslib.predict import Predictor

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.filterwarnings("ignore:The least populated class:UserWarning")


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Two pytest workers share 2 cores: one torch thread each avoids oversubscription."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Tiny synthetic set whose first training fold holds both few-vote and >= 10-vote windows."""
    from hmslib.synthetic import generate

    return generate(tmp_path_factory.mktemp("train") / "data", preset="small", n_patients=4, seed=0, progress=False)


@pytest.fixture(scope="module")
def caches(data, tmp_path_factory) -> Path:
    """Folder of feature caches shared by the tests (built once for the test representation)."""
    from hmslib.cache import build_cache

    folder = tmp_path_factory.mktemp("caches")
    build_cache(data, folder, representation="chain_mel", progress=False)
    return folder


def _config(data: Path, caches: Path, out: Path, **changes) -> TrainConfig:
    """The test recipe; ``changes`` may name Recipe fields and Environment fields alike."""
    model = ModelConfig(
        name="tiny", backbone="test_efficientnet", representation="chain_mel", drop_rate=0.2
    )
    env = dict(data_dir=data, out_dir=out, cache_dir=caches, device="cpu")
    base = dict(
        model=model,
        n_folds=2,
        epochs=2,
        stage2_epochs=1,
        min_votes_stage2=3,
        batch_size=8,
        lr=3e-3,
        patience=0,
        augment=AugmentConfig(
            hemisphere_swap=0.5, time_shift_s=5.0, time_masks=1, freq_masks=1, mixup=0.5
        ),
    )
    env_fields = {f.name for f in dataclasses.fields(Environment)}
    env.update({k: v for k, v in changes.items() if k in env_fields})
    base.update({k: v for k, v in changes.items() if k not in env_fields})
    return TrainConfig(Recipe(**base), Environment(**env))


def _replace(config: TrainConfig, **changes) -> TrainConfig:
    """``config`` with Recipe and/or Environment fields replaced."""
    env_fields = {f.name for f in dataclasses.fields(Environment)}
    env = {k: v for k, v in changes.items() if k in env_fields}
    recipe = {k: v for k, v in changes.items() if k not in env_fields}
    return TrainConfig(
        dataclasses.replace(config.recipe, **recipe), dataclasses.replace(config.env, **env)
    )


def _one_model_predictor(model, model_config: ModelConfig, *, tta: bool = False) -> Predictor:
    """A Predictor over one (model, fold): the one prediction path, without a run folder."""
    return Predictor(
        {model_config.name: [(model, model_config)]},
        Ensemble((model_config.name,), np.ones(1), method="single"),
        device=torch.device("cpu"),
        tta=tta,
    )


def _cached_validation_inputs(config: TrainConfig, oof: pd.DataFrame) -> torch.Tensor:
    from hmslib.cache import build_cache, open_cache

    cache = open_cache(
        build_cache(
            config.env.data_dir, config.env.cache_dir, representation="chain_mel", progress=False
        )
    )
    rows = cache.rows_for(oof.label_id.to_numpy())
    return torch.from_numpy(np.asarray(cache.features[rows], dtype=np.float32))


# --------------------------------------------------------------------------------------------------
# loss
# --------------------------------------------------------------------------------------------------


def _votes(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    votes = rng.multinomial(rng.integers(1, 20), rng.dirichlet(np.ones(6) * 0.5), size=n)
    votes[votes.sum(axis=1) == 0, 0] = 1
    return votes


def test_kl_loss_equals_kaggle_kl_on_a_batch():
    votes = _votes(64, 0)
    logits = torch.randn(64, 6, dtype=torch.float64) * 3
    target = torch.from_numpy(votes / votes.sum(axis=1, keepdims=True))
    loss = losses.kl_loss(logits, target).item()
    assert_allclose(loss, kaggle_kl(votes, torch.softmax(logits, -1).numpy()), rtol=1e-6)

    weights = torch.rand(64, dtype=torch.float64)
    per_row = kl_rows(votes, torch.softmax(logits, -1).numpy()).sum(axis=1)
    assert_allclose(
        losses.kl_loss(logits, target, weights).item(), np.mean(weights.numpy() * per_row), rtol=1e-5
    )

    # entmax can give exact zeros: the loss clips them at 1e-15, as Kaggle's scorer does
    p = probabilities(logits * 3, "entmax15")
    assert (p == 0).any()
    assert_allclose(
        losses.kl_loss(logits * 3, target, output="entmax15").item(),
        kaggle_kl(votes, p.double().numpy()),
        rtol=1e-5,
    )
    with pytest.raises(ValueError, match="batch, n_classes"):
        losses.kl_loss(logits[:, :5], target)


def test_loss_weights_by_votes_and_decay():
    votes = torch.tensor([1.0, 5.0, 10.0, 20.0, 28.0])
    assert (
        losses.loss_weights(votes, vote_weight=False, few_vote_decay=1.0, min_votes=10, epoch=3)
        is None
    )
    w = losses.loss_weights(votes, vote_weight=True, few_vote_decay=1.0, min_votes=10, epoch=0)
    assert_allclose(w.numpy(), [0.05, 0.25, 0.5, 1.0, 1.0])
    w = losses.loss_weights(votes, vote_weight=False, few_vote_decay=0.5, min_votes=10, epoch=2)
    assert_allclose(w.numpy(), [0.25, 0.25, 1.0, 1.0, 1.0])


def test_train_config_json_round_trip(tmp_path):
    config = TrainConfig(
        Recipe(
            model=ModelConfig(backbone="resnet18", representation="chain_mel"),
            augment=AugmentConfig(mixup=0.3),
            label_smoothing=1.0,
        ),
        Environment(data_dir="d"),
    )
    path = config.to_json(tmp_path / "c.json")
    again = TrainConfig.from_json(path)
    assert again == config and again.model.backbone == "resnet18"
    assert again.recipe.augment.mixup == 0.3 and again.recipe.label_smoothing == 1.0
    d = config.to_dict()
    assert set(d) == {"recipe", "env"} and d["env"]["data_dir"] == "d"
    with pytest.raises(ValueError, match=r"Recipe: unknown keys \['learning_rate'\]"):
        TrainConfig.from_dict({**d, "recipe": {**d["recipe"], "learning_rate": 1}})
    with pytest.raises(ValueError, match=r"Environment: unknown keys \['gpus'\]"):
        TrainConfig.from_dict({**d, "env": {**d["env"], "gpus": 2}})
    with pytest.raises(ValueError, match=r"TrainConfig: expected keys \['env', 'recipe'\]"):
        TrainConfig.from_dict({**d, "learning_rate": 1})
    with pytest.raises(ValueError, match="unknown Recipe.sample_by 'patient'"):
        dataclasses.replace(config.recipe, sample_by="patient")


# --------------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------------


def test_a_few_steps_lower_the_loss(data, caches):
    from hmslib.cache import build_cache
    from hmslib.datasets import CacheDataset, training_units
    from hmslib.models import build_model

    units = training_units(io.read_train_csv(data), by="window")
    batch = CacheDataset(build_cache(data, caches, representation="chain_mel", progress=False), units)[
        np.arange(16)
    ]
    torch.manual_seed(0)
    model = build_model(
        ModelConfig(backbone="test_efficientnet", representation="chain_mel", drop_rate=0.0)
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)

    def loss() -> float:
        model.eval()
        with torch.no_grad():
            return losses.kl_loss(model(batch["x"]), batch["target"]).item()

    before = loss()
    model.train()
    for _ in range(15):
        optimizer.zero_grad()
        losses.kl_loss(model(batch["x"]), batch["target"]).backward()
        optimizer.step()
    assert loss() < 0.7 * before


def test_fit_fold_writes_checkpoint_metrics_and_oof(data, caches, tmp_path):
    config = _config(data, caches, tmp_path / "run", min_votes_stage2=10)
    result = train.fit_fold(config, 1, progress=False)

    df = io.read_train_csv(data)
    val = df[make_folds(df, 2, config.recipe.seed) == 1]
    oof = pd.read_parquet(result["oof"])
    from hmslib.analysis import check_oof
    from hmslib.constants import OOF_COLUMNS

    assert list(oof.columns) == list(OOF_COLUMNS)
    check_oof(oof)
    assert sorted(oof.label_id) == sorted(val.label_id) and (oof.fold == 1).all()
    assert_array_equal(
        oof.set_index("label_id").loc[val.label_id, list(VOTE_COLUMNS)], val[list(VOTE_COLUMNS)]
    )
    many = oof.total_votes >= 10
    preds = oof[list(PRED_COLUMNS)].to_numpy()
    assert_allclose(
        result["val_kl"], kaggle_kl(oof.loc[many, list(VOTE_COLUMNS)].to_numpy(), preds[many])
    )
    assert_allclose(result["val_kl_all"], kaggle_kl(oof[list(VOTE_COLUMNS)].to_numpy(), preds))

    metrics = pd.read_csv(result["metrics"])
    assert metrics[["stage", "epoch"]].values.tolist() == [[1, 0], [1, 1], [2, 0]]
    assert_allclose(metrics.val_kl.min(), result["val_kl"])
    train_rows = df[make_folds(df, 2, config.recipe.seed) == 0]
    # every checkpoint stores the class prior of the fold's training rows (what no signal gets)
    votes = train_rows[list(VOTE_COLUMNS)].to_numpy(dtype=np.float64)
    prior = (votes / votes.sum(axis=1, keepdims=True)).mean(axis=0)
    for kind in ("checkpoint", "last"):
        path = result["checkpoint"] if kind == "checkpoint" else Path(result["checkpoint"]).with_name("fold1_last.pt")
        assert_allclose(torch.load(path, weights_only=False)["class_prior"], prior, rtol=1e-12)

    assert metrics.n_train.iloc[-1] < metrics.n_train.iloc[0]  # stage 2: only >= 10-vote groups
    assert (total_votes(train_rows) < 10).any()

    # checkpoint round trip: the reloaded model reproduces the OOF predictions exactly
    model, model_config, train_config = load_model(result["checkpoint"])
    assert model_config == config.model and train_config.recipe == config.recipe
    assert train_config.recipe.n_folds == 2 and not model.training
    with torch.no_grad():
        again = probabilities(model(_cached_validation_inputs(config, oof))).double().numpy()
    assert_allclose(again, preds, rtol=0, atol=1e-6)

    # and from raw windows (computing the representation; the cache stores float16)
    eeg = np.stack(
        [
            io.load_eeg_window(data, e, o)
            for e, o in zip(val.eeg_id, val.eeg_label_offset_seconds, strict=True)
        ]
    )
    raw = _one_model_predictor(model, model_config).predict(eeg, batch_size=5)
    assert_allclose(
        raw, oof.set_index("label_id").loc[val.label_id, list(PRED_COLUMNS)], atol=2e-3
    )
    tta = _one_model_predictor(model, model_config, tta=True).predict(eeg[:3])
    from hmslib.predict import predict_features
    from hmslib.representations import compute_representation, swap_hemispheres

    x = compute_representation("chain_mel", eeg[:3])
    with torch.no_grad():
        mirrored = probabilities(model(swap_hemispheres(x, "chain_mel")))
        one = predict_features(model, model_config, x, tta=True).double().numpy()
    assert_allclose(tta, 0.5 * (raw[:3] + mirrored.double().numpy()), atol=1e-6)
    assert_allclose(one, tta, atol=1e-6)

    # a finished fold is returned as is; a different configuration is refused
    assert train.fit_fold(config, 1, progress=False)["resumed"]
    with pytest.raises(ValueError, match=r"checkpoint from another recipe \(lr: 0\.003 -> 0\.01\)"):
        train.fit_fold(_replace(config, lr=1e-2), 1, progress=False)


def test_epochs_score_only_the_early_stopping_windows(data, caches, tmp_path, monkeypatch):
    evaluate, scored = train._evaluate, []

    def recording(model, fold_data, rows, *args, **kwargs):
        scored.append(np.asarray(rows).copy())
        return evaluate(model, fold_data, rows, *args, **kwargs)

    monkeypatch.setattr(train, "_evaluate", recording)
    # every epoch scores worse than the one before, so the best weights are the first epoch's
    epoch_scores = iter(range(1, 100))
    monkeypatch.setattr(train, "kaggle_kl", lambda votes, preds: float(next(epoch_scores)))
    config = _config(data, caches, tmp_path / "run", val_min_votes=10)
    result = train.fit_fold(config, 1, progress=False)

    df = io.read_train_csv(data)
    val = df[make_folds(df, 2, config.recipe.seed) == 1].reset_index(drop=True)
    many = np.flatnonzero(total_votes(val) >= 10)
    assert 0 < len(many) < len(val)
    metrics = pd.read_csv(result["metrics"])
    assert len(scored) == len(metrics) + 1
    for rows in scored[:-1]:
        assert_array_equal(rows, many)
    assert_array_equal(scored[-1], np.setdiff1d(np.arange(len(val)), many))
    assert (metrics.n_val == len(many)).all()
    assert result["n_val"] == len(val) and result["n_val_min_votes"] == len(many)
    assert metrics.best.tolist() == [True, False, False] and result["best_epoch"] == 0

    # the few-vote windows were predicted with the best epoch's weights, not the last epoch's
    oof = pd.read_parquet(result["oof"])
    inputs = _cached_validation_inputs(config, oof)
    model, _, _ = load_model(result["checkpoint"])
    last = torch.load(Path(result["last_checkpoint"]), weights_only=False)["state_dict"]
    with torch.no_grad():
        best = probabilities(model(inputs)).double().numpy()
        model.load_state_dict(last)
        final = probabilities(model(inputs)).double().numpy()
    preds = oof[list(PRED_COLUMNS)].to_numpy()
    assert_allclose(preds, best, rtol=0, atol=1e-6)
    assert np.abs(preds - final).max() > 1e-3


def test_a_fold_without_high_agreement_windows_stops_on_all_windows(data, caches, tmp_path, monkeypatch):
    evaluate, scored = train._evaluate, []

    def recording(model, fold_data, rows, *args, **kwargs):
        scored.append(len(rows))
        return evaluate(model, fold_data, rows, *args, **kwargs)

    monkeypatch.setattr(train, "_evaluate", recording)
    result = train.fit_fold(_config(data, caches, tmp_path / "run", val_min_votes=1000), 1, progress=False)
    oof = pd.read_parquet(result["oof"])
    metrics = pd.read_csv(result["metrics"])
    assert scored == [len(oof)] * len(metrics)  # no second pass: every window was scored
    assert np.isnan(result["val_kl"]) and result["n_val_min_votes"] == 0
    all_kl = kaggle_kl(oof[list(VOTE_COLUMNS)].to_numpy(), oof[list(PRED_COLUMNS)].to_numpy())
    assert_allclose(result["val_kl_all"], all_kl)
    assert_allclose(metrics.val_kl.min(), all_kl)


def test_fit_fold_from_raw_windows_matches_predict_windows(data, tmp_path):
    model = ModelConfig(name="raw", kind="raw", backbone="wavenet1d", representation="bipolar_raw",
                        widths=(2, 4), strides=(25, 10), dilations=(1, 2), hidden=4, temporal="gem")  # fmt: skip
    augment = AugmentConfig(
        time_shift_s=20.0, time_reverse=0.5, bandpass=0.5, channel_zero=0.5, time_masks=1
    )
    config = TrainConfig(
        Recipe(model=model, source="raw", n_folds=2, epochs=1, stage2_epochs=1,
               min_votes_stage2=3, batch_size=8, augment=augment),
        Environment(data_dir=data, out_dir=tmp_path, device="cpu"),
    )  # fmt: skip
    result = train.fit_fold(config, 0, progress=False)
    assert not (tmp_path / "cache").exists()
    oof = pd.read_parquet(result["oof"])
    rows = io.read_train_csv(data).set_index("label_id").loc[oof.label_id]
    eeg = np.stack([io.load_eeg_window(data, e, o) for e, o in
                    zip(rows.eeg_id, rows.eeg_label_offset_seconds, strict=True)])  # fmt: skip
    loaded, model_config, _ = load_model(result["checkpoint"])
    preds = _one_model_predictor(loaded, model_config).predict(eeg, batch_size=7)
    assert_allclose(preds, oof[list(PRED_COLUMNS)].to_numpy(), atol=1e-6)


@pytest.mark.parametrize("interrupt_at", [2, 3, 4])  # 4: the final pass over the few-vote windows
def test_resume_after_an_interruption_equals_an_uninterrupted_run(
    data, caches, tmp_path, monkeypatch, interrupt_at
):
    config = _config(
        data,
        caches,
        tmp_path / "whole",
        source="cache",
        sample_by="eeg",
        label_smoothing=0.5,
        vote_weight=True,
        few_vote_decay=0.7,
    )
    whole = train.fit_fold(config, 0, progress=False)

    cut = _replace(config, out_dir=str(tmp_path / "cut"))
    evaluate, calls = train._evaluate, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if (
            len(calls) == interrupt_at
        ):  # after training epoch interrupt_at - 1, before its checkpoint
            raise KeyboardInterrupt
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(train, "_evaluate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train.fit_fold(cut, 0, progress=False)
    monkeypatch.setattr(train, "_evaluate", evaluate)
    resumed = train.fit_fold(cut, 0, progress=False)

    assert resumed["resumed"] and not whole["resumed"]
    a = torch.load(whole["checkpoint"], weights_only=False)["state_dict"]
    b = torch.load(resumed["checkpoint"], weights_only=False)["state_dict"]
    for key in a:
        assert torch.equal(a[key], b[key]), key
    pd.testing.assert_frame_equal(pd.read_parquet(whole["oof"]), pd.read_parquet(resumed["oof"]))
    drop = ["seconds"]
    pd.testing.assert_frame_equal(
        pd.read_csv(whole["metrics"]).drop(columns=drop),
        pd.read_csv(resumed["metrics"]).drop(columns=drop),
    )
    # the final fold0_last.pt of the resumed fit holds what a clean run's holds (no optimizer,
    # scheduler or RNG state left over from the resume)
    last_a = torch.load(tmp_path / "whole" / "models" / "tiny" / "fold0_last.pt", weights_only=False)
    last_b = torch.load(tmp_path / "cut" / "models" / "tiny" / "fold0_last.pt", weights_only=False)
    assert sorted(last_a) == sorted(last_b) and "optimizer" not in last_b and last_b["finished"]
    for key in last_a["state_dict"]:
        assert torch.equal(last_a["state_dict"][key], last_b["state_dict"][key]), key
    assert_allclose(last_a["class_prior"], last_b["class_prior"])
    size_a, size_b = (tmp_path / d / "models" / "tiny" / "fold0_last.pt" for d in ("whole", "cut"))
    assert abs(size_a.stat().st_size - size_b.stat().st_size) < 0.05 * size_a.stat().st_size


def test_truncated_resume_checkpoint_says_how_to_start_fresh(data, caches, tmp_path, capsys):
    config = _config(data, caches, tmp_path / "run", epochs=1, stage2_epochs=0)
    last = tmp_path / "run" / "models" / "tiny" / "fold0_last.pt"
    last.parent.mkdir(parents=True)
    last.write_bytes(b"PK\x03\x04 half a zip")  # a copy cut short
    with pytest.raises(ValueError, match=r"fold0_last\.pt: not a readable checkpoint .*cannot resume "
                       r"from it: delete it, or start over with `hms train --restart`"):  # fmt: skip
        train.fit_fold(config, 0, progress=False)
    assert not (last.parent / "fold0.pt").exists()


# --------------------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------------------


def test_bad_input_fails_before_any_training(data, caches, tmp_path, capsys):
    config = _config(data, caches, tmp_path / "run")
    with pytest.raises(ValueError, match=r"fold must be an integer in \[0, 1\]"):
        train.fit_fold(config, 2, progress=False)
    raw_model = ModelConfig(
        name="raw", kind="raw", backbone="wavenet1d", representation="bipolar_raw"
    )
    chain_cache = next(caches.glob("train-chain_mel-*"))
    with pytest.raises(
        ValueError, match="holds representation 'chain_mel' but model 'raw' expects 'bipolar_raw'"
    ):
        train.fit_fold(
            _replace(config, model=raw_model, cache_dir=str(chain_cache)),
            0,
            progress=False,
        )
    assert not (tmp_path / "run" / "models").exists()

    code = cli.main(
        ["train", str(data), "--backbone", "resnet10tt", "--fold", "0", "--out",
         str(tmp_path / "cli")]
    )  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("hms train: error: unknown backbone 'resnet10tt'") and "resnet10t" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "cli").exists()


def test_load_model_rejects_foreign_or_incompatible_files(data, caches, tmp_path):
    config = _config(data, caches, tmp_path / "run", epochs=1, stage2_epochs=0)
    path = train.fit_fold(config, 0, progress=False)["checkpoint"]
    ckpt = torch.load(path, weights_only=False)
    assert ckpt["format"] == 2 and "model_config" not in ckpt
    ckpt["train_config"]["recipe"]["model"]["backbone"] = "resnet18"
    torch.save(ckpt, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="weights do not fit"):
        load_model(tmp_path / "other.pt")
    torch.save({"weights": 1}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="not an hmslib checkpoint"):
        load_model(tmp_path / "foreign.pt")
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "absent.pt")


def test_nan_loss_names_the_step_and_keeps_the_last_good_checkpoint(
    data, caches, tmp_path, monkeypatch
):
    # a batch larger than the training set: one step per epoch
    config = _config(data, caches, tmp_path / "run", epochs=3, stage2_epochs=0, batch_size=64)
    loss, calls = train.kl_loss, []

    def poisoned(*args, **kwargs):
        calls.append(1)
        value = loss(*args, **kwargs)
        return value * float("nan") if len(calls) == 2 else value  # the 2nd step: epoch 1, step 0

    monkeypatch.setattr(train, "kl_loss", poisoned)
    with pytest.raises(FloatingPointError, match=r"stage 1, epoch 1, step 0 \(batch of label_ids"):
        train.fit_fold(config, 0, progress=False)
    last = torch.load(tmp_path / "run" / "models" / "tiny" / "fold0_last.pt", weights_only=False)
    assert last["epoch"] == 1 and not last["finished"]
    load_model(tmp_path / "run" / "models" / "tiny" / "fold0.pt")


# --------------------------------------------------------------------------------------------------
# command line and DDP
# --------------------------------------------------------------------------------------------------


def test_torchrun_two_processes_gather_the_oof(data, caches, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "hmslib.cli",
        "train",
        str(data),
        "--model",
        "ddp",
        "--backbone",
        "test_efficientnet",
        "--repr",
        "chain_mel",
        "--fold",
        "1",
        "--n-folds",
        "2",
        "--epochs",
        "1",
        "--stage2-epochs",
        "1",
        "--batch-size",
        "4",
        "--device",
        "cpu",
        "--out",
        str(out),
        "--cache",
        str(caches),
        "--quiet",
        "--set",
        "min_votes_stage2=3",
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("ddp fold 1: val KL") == 1  # only rank 0 reports

    oof = pd.read_parquet(out / "oof" / "ddp_fold1.parquet")
    df = io.read_train_csv(data)
    val = df[make_folds(df, 2, 0) == 1]
    assert len(oof) == len(val) and sorted(oof.label_id) == sorted(val.label_id)
    model, model_config, config = load_model(out / "models" / "ddp" / "fold1.pt")
    assert model_config.backbone == "test_efficientnet" and config.recipe.n_folds == 2
    with torch.no_grad():
        again = probabilities(model(_cached_validation_inputs(config, oof))).double().numpy()
    assert_allclose(again, oof[list(PRED_COLUMNS)].to_numpy(), atol=1e-6)
    assert len(pd.read_csv(out / "models" / "ddp" / "fold1_metrics.csv")) == 2


def test_command_line_builds_the_config(tmp_path, monkeypatch, capsys):
    from hmslib.config import get_profile, model_spec

    overrides = {"epochs": 4, "augment.mixup": 0.5, "label_smoothing": 1, "model.hidden": 16,
                 "sample_by": "eeg"}  # fmt: skip
    config = training_config(
        "demo", backbone="wavenet1d", data_dir="data", out_dir=tmp_path, overrides=overrides
    )
    assert config.model.kind == "raw" and config.model.representation == "bipolar_raw"
    # the demo profile's model of that backbone: its name and its recipe where not overridden
    spec = model_spec("demo", backbone="wavenet1d")
    assert config.model.name == spec.name == "wavenet1d" and config.model.hidden == 16
    recipe = config.recipe
    assert (recipe.epochs, recipe.augment.mixup, recipe.label_smoothing) == (4, 0.5, 1.0)
    assert (recipe.stage2_epochs, recipe.batch_size, recipe.lr) == (
        spec.stage2_epochs, spec.batch_size, spec.lr
    )
    assert recipe.n_folds == get_profile("demo").n_folds
    assert recipe.sample_by == "eeg" and config.env.out_dir == str(tmp_path)

    # `hms train` builds exactly this config and hands it to fit_fold
    seen = []

    def fake_fit(cfg, fold, *, progress=True):
        seen.append((cfg, fold, progress))
        return {"model": cfg.model.name, "val_kl": 0.5, "val_kl_all": 0.6, "n_val": 3,
                "n_val_min_votes": 2, "best_stage": 1, "best_epoch": 0, "checkpoint": "ckpt"}  # fmt: skip

    monkeypatch.setattr(train, "fit_fold", fake_fit)
    argv = ["train", "data", "--backbone", "wavenet1d", "--fold", "1", "--epochs", "4", "--out",
            str(tmp_path), "--set", "augment.mixup=0.5", "label_smoothing=1", "model.hidden=16",
            "sample_by=eeg"]  # fmt: skip
    assert cli.main(argv) == 0
    assert seen == [(config, 1, True)]
    assert "wavenet1d fold 1: val KL 0.5000" in capsys.readouterr().out

    path = config.to_json(tmp_path / "c.json")
    again = training_config(
        recipe=TrainConfig.from_json(path).recipe, overrides={"lr": 0.01}, data_dir="data",
        out_dir=tmp_path,
    )  # fmt: skip
    assert again == _replace(config, lr=0.01)
    seen.clear()
    argv = ["train", "data", "--config", str(path), "--fold", "0", "--lr", "0.01", "--out",
            str(tmp_path), "--quiet"]  # fmt: skip
    assert cli.main(argv) == 0
    assert seen == [(again, 0, False)]
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "data", "--config", str(path), "--fold", "0", "--model", "x"])
    assert exit_info.value.code == 2
    assert "--config gives the model" in capsys.readouterr().err

    with pytest.raises(ValueError, match="unknown field 'mixupp'"):
        training_config(
            "demo", backbone="resnet18", data_dir="d", out_dir=tmp_path,
            overrides={"augment.mixupp": 1},
        )  # fmt: skip
    argv = ["train", "d", "--backbone", "resnet18", "--fold", "0", "--set", "augment.mixupp=1"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("hms train: error: ") and "unknown field 'mixupp'" in err
    assert len(seen) == 1  # nothing was trained after the errors
