"""Sim-to-real: models trained on synthetic EEG only, scored on the real expert-labelled windows.

Trains, through the one config route (:func:`hmslib.config.training_config`), on the synthetic
``bench`` preset (``--patients N`` of it; fold 0 of ``--n-folds`` held out):

- ``sparcnet10s``: braindecode's SPaRCNet over the central 10 s of the 16 bipolar signals,
  standardised per lead and per pair (``bipolar_center_z``, SPaRCNet's input), compact size on CPU
  (``--published-size``: the published width);
- ``effnet_lite0``: the demo's 50 s model, ImageNet EfficientNet-Lite0 over ``chain_mel``;

then predicts, with the hemisphere-swap TTA (:func:`hmslib.predict.predict_features`), the real
labelled windows of ``$HMS_SAMPLES`` (default ``../shared/hms-samples``):

- ``centre10s``: the 11 real centre windows of ``real_windows/elektra_center10s`` (10 s, z-scored
  per lead; only the 10 s model can read them);
- ``seizure EEG``: the 9 labelled 50 s windows of EEG 1628180742 (all Seizure, 3 votes each);
- ``EEG 1000913311``: the 50 s EEG of ``real_eegs`` (one label period, 100% Other);

and prints, per set, the KL against the windows' votes and the argmax accuracy (ties split, so that
the uniform predictor scores 1/6) of each model beside the uniform and the class-prior predictors
(the prior of the synthetic training windows), each model's confusion (rows: expert consensus,
columns: argmax), and its skill on the synthetic held-out fold (KL on >= 10-vote windows and the
share of the gap between class prior and Bayes floor it closes). These 21 windows show a direction,
not a score to tune on; and a single training seed moves the KL on them by +-0.3, so compare
generators over several seeds (``--seeds``, default 0 1 2): each model's row is the mean probability
of its seeds (the seed ensemble), and a second table gives the mean, min and max of the single
seeds' scores. ``--set key=value`` changes every model's recipe (as ``hms train --set``; its runs go
to a folder of their own), to measure a training change on the real windows.

    python benchmarks/bench_sim2real.py [--patients 200] [--epochs 6] [--stage2-epochs 2] [--seeds 0 1 2]
    python benchmarks/bench_sim2real.py --seeds 0    # one seed: a third of the time
    python benchmarks/bench_sim2real.py --smoke      # tiny: seconds to a minute
    python benchmarks/bench_sim2real.py --models sparcnet10s --set augment.mixup=0.5   # a recipe change

Data, caches and runs go under ``outputs/bench_sim2real/`` (git-ignored) and are reused.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from hmslib import io
from hmslib.checkpoints import load_model
from hmslib.cli import parse_set_option
from hmslib.config import training_config
from hmslib.constants import (
    CENTER_SAMPLES,
    CLASSES,
    CONSENSUS_NAMES,
    EEG_CHANNELS,
    HIGH_AGREEMENT_VOTES,
    PRED_COLUMNS,
    TRUE_COLUMNS,
    VOTE_COLUMNS,
)
from hmslib.labels import class_prior
from hmslib.metrics import consensus, kaggle_kl
from hmslib.pipeline import EXAMPLE_EEG_ID, samples_dir
from hmslib.predict import predict_features
from hmslib.representations import compute_representation, representation_info
from hmslib.synthetic import ensure_generated
from hmslib.train import fit_fold

OUT = Path(__file__).resolve().parents[1] / "outputs" / "bench_sim2real"
#: The real EEG of the samples labelled 100% Other.
OTHER_EEG_ID = 1000913311
#: The compact SPaRCNet trained on CPU (the published model: 4 layers per block, growth 16).
COMPACT_SPARCNET = {"model.block_layers": 2, "model.growth_rate": 8, "model.bottleneck_size": 8}

#: model name -> (row label, training_config keywords, recipe overrides).
MODELS: dict[str, tuple[str, dict, dict]] = {
    "sparcnet10s": (
        "SPaRCNet 10 s z",
        dict(model="sparcnet10s", backbone="sparcnet"),
        {"lr": 2e-3, "sample_by": "window", **COMPACT_SPARCNET},
    ),
    "effnet_lite0": ("Lite0 chain_mel 50 s", dict(model="effnet_lite0"), {}),
}


# --------------------------------------------------------------------------------------------------
# the real labelled windows
# --------------------------------------------------------------------------------------------------


@dataclass
class RealSet:
    """Real labelled windows: EEG ``(n, 20, samples)``, votes ``(n, 6)`` and consensus ``(n,)``."""

    name: str
    eeg: np.ndarray
    votes: np.ndarray
    truth: np.ndarray
    ids: list[str]


def _read_eeg(path: Path) -> np.ndarray:
    """``(20, samples)`` float32 from a parquet EEG file (columns ``EEG_CHANNELS``)."""
    return pd.read_parquet(path, columns=list(EEG_CHANNELS)).to_numpy(np.float32).T.copy()


def _truth(names: pd.Series) -> np.ndarray:
    return np.array([CONSENSUS_NAMES.index(n) for n in names], dtype=np.int64)


def real_sets(samples: Path) -> list[RealSet]:
    """The real labelled windows of the samples folder (see the module docstring)."""
    folder = samples / "real_windows" / "elektra_center10s"
    table = pd.read_csv(folder / "labels.csv")
    centre = np.stack([_read_eeg(folder / f) for f in table.file])
    if centre.shape[-1] != CENTER_SAMPLES:
        raise ValueError(f"{folder}: expected {CENTER_SAMPLES} samples, found {centre.shape}")
    sets = [
        RealSet(
            "centre10s",
            centre,
            table[list(VOTE_COLUMNS)].to_numpy(np.float64),
            _truth(table.expert_consensus),
            [f"{c}/{lid}" for c, lid in zip(table.expert_consensus, table.label_id, strict=True)],
        )
    ]
    rows = io.read_train_csv(samples).query(f"eeg_id == {EXAMPLE_EEG_ID}")
    eeg = io.load_eeg(samples, EXAMPLE_EEG_ID)
    sets.append(
        RealSet(
            "seizure EEG",
            io.eeg_windows(eeg, rows.eeg_label_offset_seconds.to_numpy(), source=str(EXAMPLE_EEG_ID)),
            rows[list(VOTE_COLUMNS)].to_numpy(np.float64),
            _truth(rows.expert_consensus),
            [f"{EXAMPLE_EEG_ID}@{o:g}s" for o in rows.eeg_label_offset_seconds],
        )
    )
    periods = pd.read_csv(samples / "labels" / "eeg_periods_vote_fractions.csv")
    votes = periods.loc[periods.eeg_id == OTHER_EEG_ID, list(VOTE_COLUMNS)].to_numpy(np.float64)
    sets.append(
        RealSet(
            f"EEG {OTHER_EEG_ID}",
            _read_eeg(samples / "real_eegs" / f"{OTHER_EEG_ID}.parquet")[None],
            votes,
            consensus(votes),
            [str(OTHER_EEG_ID)],
        )
    )
    return sets


# --------------------------------------------------------------------------------------------------
# scores
# --------------------------------------------------------------------------------------------------


def argmax_accuracy(truth: np.ndarray, probs: np.ndarray) -> float:
    """Share of windows whose consensus is the predicted argmax, ties split (uniform: 1/6)."""
    top = probs >= probs.max(axis=1, keepdims=True) - 1e-12
    hit = top[np.arange(len(truth)), truth]
    return float(np.mean(hit / top.sum(axis=1)))


def confusion(truth: np.ndarray, probs: np.ndarray) -> pd.DataFrame:
    """Counts ``(6, 6)``: rows the expert consensus, columns the predicted argmax."""
    counts = np.zeros((len(CLASSES), len(CLASSES)), dtype=np.int64)
    np.add.at(counts, (truth, probs.argmax(axis=1)), 1)
    names = list(CONSENSUS_NAMES)
    return pd.DataFrame(counts, index=pd.Index(names, name="consensus"), columns=names)


def score_table(sets: list[RealSet], predictions: dict[str, dict[str, np.ndarray]]) -> pd.DataFrame:
    """KL and argmax accuracy of each predictor on each set, on the 50 s windows and on all.

    ``predictions[predictor][set name]`` is ``(n, 6)``; a set a predictor cannot read is absent
    (its cells are NaN, and so are the pooled ones that would need it).
    """
    groups = {s.name: [s] for s in sets}
    groups["50 s windows"] = [s for s in sets if s.eeg.shape[-1] != CENTER_SAMPLES]
    groups["all"] = list(sets)
    rows = []
    for predictor, by_set in predictions.items():
        row = {"predictor": predictor}
        for group, members in groups.items():
            n = sum(len(s.votes) for s in members)
            if all(s.name in by_set for s in members):
                probs = np.concatenate([by_set[s.name] for s in members])
                votes = np.concatenate([s.votes for s in members])
                truth = np.concatenate([s.truth for s in members])
                row[f"KL {group} ({n})"] = kaggle_kl(votes, probs)
                row[f"acc {group}"] = argmax_accuracy(truth, probs)
            else:
                row[f"KL {group} ({n})"] = row[f"acc {group}"] = np.nan
        rows.append(row)
    return pd.DataFrame(rows).set_index("predictor")


def synthetic_skill(data: Path, oof: pd.DataFrame, prior: np.ndarray) -> dict:
    """KL of the held-out synthetic fold (>= 10 votes) and the share of prior -> floor it closes."""
    many = oof[oof.total_votes >= HIGH_AGREEMENT_VOTES]
    if len(many) == 0:
        many = oof
    votes = many[list(VOTE_COLUMNS)].to_numpy(np.float64)
    kl = kaggle_kl(votes, many[list(PRED_COLUMNS)].to_numpy())
    prior_kl = kaggle_kl(votes, np.broadcast_to(prior, votes.shape))
    truth = pd.read_csv(data / "truth.csv").set_index("label_id")
    if not set(TRUE_COLUMNS) <= set(truth.columns):
        return {"synthetic KL": kl, "prior KL": prior_kl, "floor KL": np.nan, "gap closed": np.nan}
    floor_kl = kaggle_kl(votes, truth.loc[many.label_id, list(TRUE_COLUMNS)].to_numpy())
    closed = (prior_kl - kl) / (prior_kl - floor_kl) if prior_kl > floor_kl else np.nan
    return {"synthetic KL": kl, "prior KL": prior_kl, "floor KL": floor_kl, "gap closed": closed}


# --------------------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------------------


def synthetic_data(out: Path, patients: int | None) -> Path:
    """The synthetic bench preset (``patients`` overriding its size), generated once per generator version."""
    return ensure_generated(out / f"data-bench-{patients or 'all'}", "bench", 0, patients, progress=False)


@torch.inference_mode()
def predict_sets(checkpoint: Path, sets: list[RealSet], *, tta: bool) -> dict[str, np.ndarray]:
    """One trained model's probabilities for every real set its representation can read."""
    model, config, _ = load_model(checkpoint)
    info = representation_info(config.representation)
    out = {}
    for s in sets:
        if s.eeg.shape[-1] == CENTER_SAMPLES and not info.center_input:
            continue
        x = compute_representation(config.representation, s.eeg)
        out[s.name] = predict_features(model, config, x, tta=tta).double().numpy()
    return out


def _train_and_predict(
    args: argparse.Namespace, key: str, seed: int, data: Path, sets: list[RealSet], prior: np.ndarray
) -> tuple[dict[str, np.ndarray], dict]:
    """Train model ``key`` with ``seed`` (fold 0 held out); its real-set predictions and skill row."""
    label, keywords, overrides = MODELS[key]
    overrides = dict(overrides)
    if args.published_size:
        for name in COMPACT_SPARCNET:
            overrides.pop(name, None)
    overrides.update(
        {
            "n_folds": args.n_folds,
            "epochs": args.epochs,
            "stage2_epochs": args.stage2_epochs,
            "batch_size": args.batch_size,
            "max_train_samples": args.max_train,
            "augment.hemisphere_swap": 0.5,
            "seed": seed,
            **dict(args.set),
        }
    )
    out = Path(args.out)
    run_dir = out / (
        f"run-{args.patients or 'all'}-{args.n_folds}f-{args.epochs}+{args.stage2_epochs}"
        f"{'-full' if args.published_size else ''}{'-s' + str(args.max_train) if args.max_train else ''}"
        + "".join(f"-{key}={value}" for key, value in args.set)
        + (f"-seed{seed}" if seed else "")
    )
    config = training_config(
        "demo",
        **keywords,
        data_dir=data,
        out_dir=run_dir,
        overrides=overrides,
        cache_dir=out / "cache",
        device=args.device,
        num_workers=args.workers,
    )
    started = time.perf_counter()
    result = fit_fold(config, 0, progress=False)
    seconds = time.perf_counter() - started
    predicted = predict_sets(Path(result["checkpoint"]), sets, tta=not args.no_tta)
    oof = pd.read_parquet(result["oof"])
    return predicted, {
        "model": label, "seed": seed, **synthetic_skill(data, oof, prior), "train s": seconds
    }


def seed_ensemble(by_seed: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The mean probability over the seeds' predictions, per real set."""
    return {name: np.mean([p[name] for p in by_seed], axis=0) for name in by_seed[0]}


def run(args: argparse.Namespace) -> dict[str, pd.DataFrame]:
    """Train, predict and print the tables; returns them (``scores``, ``skill``, ``confusion:*``,
    and with several seeds ``per_seed``)."""
    samples = Path(args.samples) if args.samples else samples_dir()
    sets = real_sets(samples)
    data = synthetic_data(Path(args.out), args.patients)
    train_rows = io.read_train_csv(data)
    prior = class_prior(train_rows)
    predictions: dict[str, dict[str, np.ndarray]] = {
        "uniform": {s.name: np.full((len(s.votes), len(CLASSES)), 1 / len(CLASSES)) for s in sets},
        "class prior (synthetic)": {s.name: np.tile(prior, (len(s.votes), 1)) for s in sets},
    }
    skill, per_seed = [], []
    for key in args.models:
        label = MODELS[key][0]
        by_seed = []
        for seed in args.seeds:
            predicted, row = _train_and_predict(args, key, seed, data, sets, prior)
            by_seed.append(predicted)
            skill.append(row)
            per_seed.append(score_table(sets, {label: predicted}).assign(seed=seed))
        predictions[label] = seed_ensemble(by_seed)

    scores = score_table(sets, predictions)
    n_train = len(train_rows)
    seeds = ", ".join(map(str, args.seeds))
    print(
        f"\nSim-to-real: trained on {data.name} ({n_train} synthetic windows, fold 0 of "
        f"{args.n_folds} held out), {args.epochs} + {args.stage2_epochs} epochs, seed "
        f"{seeds}{' (each model: the mean probability of its seeds)' if len(args.seeds) > 1 else ''}"
        f"; real windows from {samples}; TTA {'off' if args.no_tta else 'on'}"
    )
    fmt = lambda v: f"{v:.3f}"  # noqa: E731
    print(scores.T.to_string(float_format=fmt, na_rep="n/a"))
    tables = {"scores": scores}
    if len(args.seeds) > 1 and per_seed:
        seed_table = pd.concat(per_seed).set_index("seed", append=True)
        spread = seed_table.groupby(level="predictor").agg(["mean", "min", "max"])
        print("\nSingle seeds: mean, min and max of each model's scores over its seeds")
        print(spread.T.to_string(float_format=fmt, na_rep="n/a"))
        tables["per_seed"] = seed_table
    if skill:
        skill_table = pd.DataFrame(skill).set_index(["model", "seed"])
        print(f"\nSkill on the held-out synthetic fold (>= {HIGH_AGREEMENT_VOTES} votes), per seed")
        print(skill_table.to_string(float_format=fmt, na_rep="n/a"))
        tables["skill"] = skill_table
    for key in args.models:
        label = MODELS[key][0]
        by_set = predictions[label]
        read = [s for s in sets if s.name in by_set]
        truth = np.concatenate([s.truth for s in read])
        probs = np.concatenate([by_set[s.name] for s in read])
        table = confusion(truth, probs)
        print(f"\nConfusion of {label} on {len(truth)} real windows (rows: experts, cols: argmax)")
        print(table.to_string())
        tables[f"confusion:{label}"] = table
        detail = pd.DataFrame(
            {
                "window": [i for s in read for i in s.ids],
                "argmax": [CONSENSUS_NAMES[k] for k in probs.argmax(axis=1)],
                "p(top)": probs.max(axis=1),
                "p(consensus)": probs[np.arange(len(truth)), truth],
            }
        )
        print(detail.to_string(index=False, float_format=fmt))
    return tables


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny run (seconds to a minute)")
    p.add_argument("--patients", type=int, default=200, help="patients of the bench preset")
    p.add_argument("--n-folds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--stage2-epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1, 2],
        help="seeds of the folds and the training; each model is their seed ensemble",
    )
    p.add_argument("--max-train", type=int, help="training units per epoch at most")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--published-size", action="store_true", help="SPaRCNet at its published width")
    p.add_argument(
        "--set", nargs="*", default=[], type=parse_set_option, metavar="KEY=VALUE",
        help="recipe overrides for every model (as hms train --set), e.g. augment.mixup=0.5; "
        "their runs go to a folder of their own",
    )  # fmt: skip
    p.add_argument("--no-tta", action="store_true", help="no hemisphere-swap TTA")
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    p.add_argument("--workers", type=int, default=0, help="DataLoader / cache workers")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--samples", help="real samples folder (default $HMS_SAMPLES)")
    p.add_argument("--out", default=str(OUT), help="data, caches and runs")
    args = p.parse_args(argv)
    if args.smoke:
        args.patients, args.n_folds, args.epochs, args.stage2_epochs = 4, 2, 1, 0
        args.batch_size, args.max_train = 8, 16
    return args


def main(argv: list[str] | None = None) -> dict[str, pd.DataFrame]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the offline ImageNet weights, no download
    return run(args)


if __name__ == "__main__":
    main()
