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

from hmslib import io, train
from hmslib.augment import AugmentConfig
from hmslib.constants import VOTE_COLUMNS
from hmslib.labels import make_folds, total_votes
from hmslib.metrics import kaggle_kl, kl_rows
from hmslib.models import ModelConfig

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
    from hmslib.synthetic import generate

    return generate(tmp_path_factory.mktemp("train") / "data", n_patients=4, seed=1, progress=False)


@pytest.fixture(scope="module")
def caches(data, tmp_path_factory) -> Path:
    """Folder of feature caches shared by the tests (built once for the test representation)."""
    from hmslib.cache import build_cache

    folder = tmp_path_factory.mktemp("caches")
    build_cache(data, folder, repr="chain_mel", progress=False)
    return folder


def _config(data: Path, caches: Path, out: Path, **changes) -> train.TrainConfig:
    model = ModelConfig(name="tiny", backbone="test_efficientnet", repr="chain_mel", drop_rate=0.2)
    base = dict(
        data_dir=data,
        model=model,
        out_dir=out,
        cache_dir=caches,
        n_folds=2,
        epochs=2,
        stage2_epochs=1,
        min_votes_stage2=3,
        batch_size=8,
        lr=3e-3,
        device="cpu",
        patience=0,
        augment=AugmentConfig(
            hemisphere_swap=0.5, time_shift_s=5.0, time_masks=1, freq_masks=1, mixup=0.5
        ),
    )
    base.update(changes)
    return train.TrainConfig(**base)


def _cached_validation_inputs(config: train.TrainConfig, oof: pd.DataFrame) -> torch.Tensor:
    from hmslib.cache import build_cache, open_cache

    cache = open_cache(
        build_cache(config.data_dir, config.cache_dir, repr="chain_mel", progress=False)
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
    loss = train.kl_loss(logits, target).item()
    assert_allclose(loss, kaggle_kl(votes, torch.softmax(logits, -1).numpy()), rtol=1e-6)

    weights = torch.rand(64, dtype=torch.float64)
    per_row = kl_rows(votes, torch.softmax(logits, -1).numpy()).sum(axis=1)
    assert_allclose(
        train.kl_loss(logits, target, weights).item(), np.mean(weights.numpy() * per_row), rtol=1e-5
    )

    # entmax can give exact zeros: the loss clips them at 1e-15, as Kaggle's scorer does
    p = train.probabilities(logits * 3, "entmax15")
    assert (p == 0).any()
    assert_allclose(
        train.kl_loss(logits * 3, target, output="entmax15").item(),
        kaggle_kl(votes, p.double().numpy()),
        rtol=1e-5,
    )
    with pytest.raises(ValueError, match="batch, n_classes"):
        train.kl_loss(logits[:, :5], target)


def test_loss_weights_by_votes_and_decay():
    votes = torch.tensor([1.0, 5.0, 10.0, 20.0, 28.0])
    assert (
        train.loss_weights(votes, vote_weight=False, few_vote_decay=1.0, min_votes=10, epoch=3)
        is None
    )
    w = train.loss_weights(votes, vote_weight=True, few_vote_decay=1.0, min_votes=10, epoch=0)
    assert_allclose(w.numpy(), [0.05, 0.25, 0.5, 1.0, 1.0])
    w = train.loss_weights(votes, vote_weight=False, few_vote_decay=0.5, min_votes=10, epoch=2)
    assert_allclose(w.numpy(), [0.25, 0.25, 1.0, 1.0, 1.0])


def test_train_config_json_round_trip(tmp_path):
    config = train.TrainConfig(
        data_dir="d",
        model=ModelConfig(backbone="resnet18", repr="chain_mel"),
        augment=AugmentConfig(mixup=0.3),
        label_smoothing=1.0,
    )
    path = config.to_json(tmp_path / "c.json")
    again = train.TrainConfig.from_json(path)
    assert again == config and again.model.backbone == "resnet18" and again.augment.mixup == 0.3
    with pytest.raises(ValueError, match="unknown keys"):
        train.TrainConfig.from_dict({**config.to_dict(), "learning_rate": 1})
    with pytest.raises(ValueError, match="sample_by"):
        dataclasses.replace(config, sample_by="patient")


# --------------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------------


def test_a_few_steps_lower_the_loss(data, caches):
    from hmslib.cache import build_cache
    from hmslib.datasets import CacheDataset, training_units
    from hmslib.models import build_model

    units = training_units(io.read_train_csv(data), by="window")
    batch = CacheDataset(build_cache(data, caches, repr="chain_mel", progress=False), units)[
        np.arange(16)
    ]
    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone="test_efficientnet", repr="chain_mel", drop_rate=0.0))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)

    def loss() -> float:
        model.eval()
        with torch.no_grad():
            return train.kl_loss(model(batch["x"]), batch["target"]).item()

    before = loss()
    model.train()
    for _ in range(15):
        optimizer.zero_grad()
        train.kl_loss(model(batch["x"]), batch["target"]).backward()
        optimizer.step()
    assert loss() < 0.7 * before


def test_fit_fold_writes_checkpoint_metrics_and_oof(data, caches, tmp_path):
    config = _config(data, caches, tmp_path / "run")
    result = train.fit_fold(config, 1, progress=False)

    df = io.read_train_csv(data)
    val = df[make_folds(df, 2, config.seed) == 1]
    oof = pd.read_parquet(result["oof"])
    from hmslib.analysis import OOF_COLUMNS, check_oof

    assert list(oof.columns) == list(OOF_COLUMNS)
    check_oof(oof)
    assert sorted(oof.label_id) == sorted(val.label_id) and (oof.fold == 1).all()
    assert_array_equal(
        oof.set_index("label_id").loc[val.label_id, list(VOTE_COLUMNS)], val[list(VOTE_COLUMNS)]
    )
    many = oof.total_votes >= 10
    preds = oof[list(train.PRED_COLUMNS)].to_numpy()
    assert_allclose(
        result["val_kl"], kaggle_kl(oof.loc[many, list(VOTE_COLUMNS)].to_numpy(), preds[many])
    )
    assert_allclose(result["val_kl_all"], kaggle_kl(oof[list(VOTE_COLUMNS)].to_numpy(), preds))

    metrics = pd.read_csv(result["metrics"])
    assert metrics[["stage", "epoch"]].values.tolist() == [[1, 0], [1, 1], [2, 0]]
    assert_allclose(metrics.val_kl.min(), result["val_kl"])
    train_rows = df[make_folds(df, 2, config.seed) == 0]
    assert metrics.n_train.iloc[-1] < metrics.n_train.iloc[0]  # stage 2: only >= 3-vote groups
    assert (total_votes(train_rows) < 3).any()

    # checkpoint round trip: the reloaded model reproduces the OOF predictions exactly
    model, model_config, train_config = train.load_checkpoint(result["checkpoint"])
    assert model_config == config.model and train_config.n_folds == 2
    with torch.no_grad():
        again = train.probabilities(model(_cached_validation_inputs(config, oof))).double().numpy()
    assert_allclose(again, preds, rtol=0, atol=1e-6)

    # and from raw windows (computing the representation; the cache stores float16)
    eeg = np.stack(
        [
            io.load_eeg_window(data, e, o)
            for e, o in zip(val.eeg_id, val.eeg_label_offset_seconds, strict=True)
        ]
    )
    raw = train.predict_windows(model, model_config, eeg, batch_size=5)
    assert_allclose(
        raw, oof.set_index("label_id").loc[val.label_id, list(train.PRED_COLUMNS)], atol=2e-3
    )
    tta = train.predict_windows(model, model_config, eeg[:3], tta=True)
    from hmslib.spectrogram import compute_representation, swap_hemispheres

    x = compute_representation("chain_mel", eeg[:3])
    with torch.no_grad():
        mirrored = train.probabilities(model(swap_hemispheres(x, "chain_mel")))
    assert_allclose(tta, 0.5 * (raw[:3] + mirrored.double().numpy()), atol=1e-6)

    # a finished fold is returned as is; a different configuration is refused
    assert train.fit_fold(config, 1, progress=False)["resumed"]
    with pytest.raises(ValueError, match="incompatible configuration.*lr"):
        train.fit_fold(dataclasses.replace(config, lr=1e-2), 1, progress=False)


def test_fit_fold_from_raw_windows_matches_predict_windows(data, tmp_path):
    model = ModelConfig(name="raw", kind="raw", backbone="wavenet1d", repr="bipolar_raw",
                        widths=(2, 4), strides=(25, 10), dilations=(1, 2), hidden=4, temporal="gem")  # fmt: skip
    augment = AugmentConfig(
        time_shift_s=20.0, time_reverse=0.5, bandpass=0.5, channel_zero=0.5, time_masks=1
    )
    config = train.TrainConfig(
        data_dir=data, model=model, out_dir=tmp_path, source="raw", n_folds=2, epochs=1,
        stage2_epochs=1, min_votes_stage2=3, batch_size=8, device="cpu", augment=augment,
    )  # fmt: skip
    result = train.fit_fold(config, 0, progress=False)
    assert not (tmp_path / "cache").exists()
    oof = pd.read_parquet(result["oof"])
    rows = io.read_train_csv(data).set_index("label_id").loc[oof.label_id]
    eeg = np.stack([io.load_eeg_window(data, e, o) for e, o in
                    zip(rows.eeg_id, rows.eeg_label_offset_seconds, strict=True)])  # fmt: skip
    loaded, model_config, _ = train.load_checkpoint(result["checkpoint"])
    preds = train.predict_windows(loaded, model_config, eeg, batch_size=7)
    assert_allclose(preds, oof[list(train.PRED_COLUMNS)].to_numpy(), atol=1e-6)


@pytest.mark.parametrize("interrupt_at", [2, 3])
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

    cut = dataclasses.replace(config, out_dir=str(tmp_path / "cut"))
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


# --------------------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------------------


def test_bad_input_fails_before_any_training(data, caches, tmp_path, capsys):
    config = _config(data, caches, tmp_path / "run")
    with pytest.raises(ValueError, match=r"fold must be an integer in \[0, 1\]"):
        train.fit_fold(config, 2, progress=False)
    raw_model = ModelConfig(name="raw", kind="raw", backbone="wavenet1d", repr="bipolar_raw")
    chain_cache = next(caches.glob("train-chain_mel-*"))
    with pytest.raises(
        ValueError, match="holds representation 'chain_mel' but model 'raw' expects 'bipolar_raw'"
    ):
        train.fit_fold(
            dataclasses.replace(config, model=raw_model, cache_dir=str(chain_cache)),
            0,
            progress=False,
        )
    assert not (tmp_path / "run" / "models").exists()

    code = train.main(
        [str(data), "--backbone", "resnet10tt", "--fold", "0", "--out", str(tmp_path / "cli")]
    )
    assert code == 2
    assert "resnet10t" in capsys.readouterr().err
    assert not (tmp_path / "cli").exists()


def test_load_checkpoint_rejects_foreign_or_incompatible_files(data, caches, tmp_path):
    config = _config(data, caches, tmp_path / "run", epochs=1, stage2_epochs=0)
    path = train.fit_fold(config, 0, progress=False)["checkpoint"]
    ckpt = torch.load(path, weights_only=False)
    ckpt["model_config"] = {**ckpt["model_config"], "backbone": "resnet18"}
    torch.save(ckpt, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="weights do not fit"):
        train.load_checkpoint(tmp_path / "other.pt")
    torch.save({"weights": 1}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="not an hmslib checkpoint"):
        train.load_checkpoint(tmp_path / "foreign.pt")
    with pytest.raises(FileNotFoundError):
        train.load_checkpoint(tmp_path / "absent.pt")


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
    train.load_checkpoint(tmp_path / "run" / "models" / "tiny" / "fold0.pt")


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
        "hmslib.train",
        str(data),
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
        "--name",
        "ddp",
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
    model, _, config = train.load_checkpoint(out / "models" / "ddp" / "fold1.pt")
    with torch.no_grad():
        again = train.probabilities(model(_cached_validation_inputs(config, oof))).double().numpy()
    assert_allclose(again, oof[list(train.PRED_COLUMNS)].to_numpy(), atol=1e-6)
    assert len(pd.read_csv(out / "models" / "ddp" / "fold1_metrics.csv")) == 2


def test_command_line_builds_the_config(tmp_path):
    args = train._parser().parse_args(
        ["data", "--backbone", "wavenet1d", "--fold", "1", "--epochs", "4", "--out", str(tmp_path),
         "--set", "augment.mixup=0.5", "label_smoothing=1", "model.hidden=16", "sample_by=eeg"]
    )  # fmt: skip
    config = train.config_from_args(args)
    assert config.model.kind == "raw" and config.model.repr == "bipolar_raw"
    assert config.model.name == "wavenet1d_bipolar_raw" and config.model.hidden == 16
    assert (config.epochs, config.augment.mixup, config.label_smoothing) == (4, 0.5, 1.0)
    assert config.sample_by == "eeg" and config.out_dir == str(tmp_path)
    path = config.to_json(tmp_path / "c.json")
    again = train.config_from_args(
        train._parser().parse_args(["data", "--config", str(path), "--fold", "0", "--lr", "0.01"])
    )
    assert again == dataclasses.replace(config, lr=0.01)
    with pytest.raises(ValueError, match="unknown field 'mixupp'"):
        train.config_from_args(
            train._parser().parse_args(
                ["d", "--backbone", "resnet18", "--fold", "0", "--set", "augment.mixupp=1"]
            )
        )
