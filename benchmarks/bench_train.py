"""Training speed and quality.

Throughput (default): samples per second of training steps (forward, KL loss, backward, AdamW) of
the demo's image model (``tf_efficientnet_lite0`` over ``DEFAULT_REPR``), fed

- by the real pipeline: feature cache -> ``CacheDataset`` -> ``DataLoader`` -> augmentation -> step;
- baseline, measured in the same run: the same steps on tensors already in memory.

The two alternate step by step and the median step time of each gives its speed, so that load from
other processes on a shared machine hits both alike. The ratio says whether data loading keeps up
with the model (target >= 0.9); a last row times the loading alone. With a GPU, a second table
compares ``efficientnet_b0`` at 512x512 with AMP + channels-last against fp32.

Quality (``--quality``): the models of a profile (default ``full``) on its synthetic preset (``full``:
``bench``; ``--preset`` picks another, ``--patients N`` resizes it), built by the one config route
(:func:`hmslib.config.training_config`) at CPU-sized epochs, plus the scratch twin of its first
ImageNet model, each trained on ``--folds`` folds. Prints the class-prior KL, the Bayes floor (true
distributions vs drawn votes), each model's OOF KL and the share of the learnable gap it closes,
``(prior - model) / (prior - floor)``, on >= 10-vote windows and on all windows, and every blend of
the profile's models (equal, Nelder-Mead, stack, each without and with temperature) fitted on the
>= 10-vote windows and scored in nested patient folds (:func:`hmslib.ensemble.compare_ensembles`).
``--set key=value`` changes every model's recipe (its runs go to a folder of their own), to measure a
recipe change against the profile's recipe.

    python benchmarks/bench_train.py [--steps 20] [--batch-size 32] [--workers 0 2]
    python benchmarks/bench_train.py --quality [--profile full] [--preset bench] [--patients 400] [--folds 1] [--epochs 8]
    python benchmarks/bench_train.py --quality --profile demo --set model.drop_path_rate=0.2   # a recipe change

Data, caches and runs go under ``outputs/bench_train/`` (git-ignored) and are reused.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from hmslib._checks import check_option
from hmslib.augment import AugmentConfig, augment_features
from hmslib.cache import build_cache
from hmslib.cli import parse_set_option
from hmslib.config import get_profile, training_config
from hmslib.constants import CLASSES, HIGH_AGREEMENT_VOTES, PRED_COLUMNS, TRUE_COLUMNS, VOTE_COLUMNS
from hmslib.datasets import CacheDataset, epoch_batches, training_units
from hmslib.ensemble import compare_ensembles
from hmslib.io import read_train_csv
from hmslib.labels import class_prior
from hmslib.losses import kl_loss
from hmslib.metrics import kaggle_kl
from hmslib.models import ModelConfig, build_model
from hmslib.representations import DEFAULT_REPR
from hmslib.synthetic import PRESETS, ensure_generated
from hmslib.train import fit_fold

OUT = Path(__file__).resolve().parents[1] / "outputs" / "bench_train"


def synthetic_data(preset: str, patients: int | None) -> Path:
    """The synthetic data set of ``preset`` (``patients`` overriding its size), generated once per generator version."""
    return ensure_generated(OUT / f"data-{preset}-{patients or 'all'}", preset, 0, patients)


# --------------------------------------------------------------------------------------------------
# throughput
# --------------------------------------------------------------------------------------------------


def _step(model, optimizer, x, target) -> None:
    optimizer.zero_grad(set_to_none=True)
    kl_loss(model(x), target).backward()
    optimizer.step()


def _paired_step_times(preloaded, loader, model, optimizer, warmup: int, augment) -> np.ndarray:
    """Seconds per step, ``(steps, 2)``: a pre-loaded batch, then a batch fetched from ``loader``.

    Alternating the two step by step pairs each loader step with a baseline step taken moments
    before, so load from other processes on a shared machine hits both alike.
    """
    rng = np.random.default_rng(0)
    batches = iter(loader)
    times = []
    for x, target in preloaded:
        started = time.perf_counter()
        _step(model, optimizer, augment(x, rng), target)
        between = time.perf_counter()
        fetched = next(batches)
        _step(model, optimizer, augment(fetched["x"], rng), fetched["target"])
        times.append((between - started, time.perf_counter() - between))
    return np.asarray(times[warmup:])


def throughput(args: argparse.Namespace) -> pd.DataFrame:
    data = synthetic_data("small", None)
    cache = build_cache(data, OUT / "cache", representation=DEFAULT_REPR)
    units = training_units(read_train_csv(data), by="group")
    dataset = CacheDataset(cache, units, seed=0)
    dataset.set_epoch(0)
    n_steps = args.steps + args.warmup
    batches = epoch_batches(len(units), args.batch_size, seed=0, epoch=0, drop_last=True)
    batches = (batches * (n_steps // len(batches) + 1))[:n_steps]
    config = AugmentConfig(hemisphere_swap=0.5, time_masks=1, freq_masks=1)

    def augment(x, rng):
        return augment_features(x, DEFAULT_REPR, config=config, rng=rng)

    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone="tf_efficientnet_lite0", representation=DEFAULT_REPR))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    preloaded = [(dataset[b]["x"], dataset[b]["target"]) for b in batches]
    rows = []
    for workers in args.workers:
        loader = torch.utils.data.DataLoader(
            dataset, sampler=batches, batch_size=None, num_workers=workers
        )
        times = _paired_step_times(preloaded, loader, model, optimizer, args.warmup, augment)
        base, fed = args.batch_size / np.median(times, axis=0)
        rows += [
            (f"pre-loaded tensors (baseline, paired with {workers} workers)", base, 1.0),
            (f"cache + Dataset + DataLoader, {workers} workers", fed, fed / base),
        ]
    started = time.perf_counter()
    loaded = sum(
        len(b["x"]) for b in torch.utils.data.DataLoader(dataset, sampler=batches, batch_size=None)
    )
    loading = loaded / (time.perf_counter() - started)
    rows.append(("loading alone (0 workers, no model)", loading, loading / rows[0][1]))
    table = pd.DataFrame(rows, columns=["feed", "samples/s", "ratio"])
    print(
        f"\nTraining-step throughput, tf_efficientnet_lite0 on {DEFAULT_REPR} "
        f"{tuple(dataset.shape)}, batch {args.batch_size}, {args.steps} timed step pairs "
        f"(median), {torch.get_num_threads()} torch threads (CPU)"
    )
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    return table


def gpu_precision(args: argparse.Namespace) -> pd.DataFrame:
    """efficientnet_b0 at 512x512: AMP + channels-last vs fp32 (CUDA only)."""
    device = torch.device("cuda")
    rows = []
    for label, amp in (("fp32", False), ("AMP + channels_last", True)):
        torch.manual_seed(0)
        model = build_model(ModelConfig(backbone="efficientnet_b0", n_chans=3)).to(device)
        x = torch.randn(args.gpu_batch_size, 3, 512, 512, device=device)
        target = torch.softmax(torch.randn(args.gpu_batch_size, len(CLASSES), device=device), -1)
        if amp:
            model = model.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        scaler = torch.amp.GradScaler("cuda", enabled=amp and dtype == torch.float16)
        for i in range(args.warmup + args.steps):
            if i == args.warmup:
                torch.cuda.synchronize()
                start = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cuda", dtype=dtype, enabled=amp):
                logits = model(x)
            scaler.scale(kl_loss(logits.float(), target)).backward()
            scaler.step(optimizer)
            scaler.update()
        torch.cuda.synchronize()
        rows.append((label, args.steps * args.gpu_batch_size / (time.perf_counter() - start)))
    table = pd.DataFrame(rows, columns=["precision", "samples/s"])
    table["ratio"] = table["samples/s"] / table["samples/s"].iloc[0]
    print(f"\nefficientnet_b0 512x512, batch {args.gpu_batch_size}, {torch.cuda.get_device_name()}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    return table


# --------------------------------------------------------------------------------------------------
# quality
# --------------------------------------------------------------------------------------------------

#: Suffix of the scratch twin of the profile's first ImageNet model (same recipe, no pretraining).
SCRATCH = "_scratch"


def _gap_rows(label: str, votes: np.ndarray, preds: np.ndarray, prior_kl: dict, floor_kl: dict, many) -> dict:
    kl = {"all": kaggle_kl(votes, preds), "10+": kaggle_kl(votes[many], preds[many])}
    return {"model": label, **_gap_columns(kl, prior_kl, floor_kl)}


def _gap_columns(kl: dict, prior_kl: dict, floor_kl: dict) -> dict:
    closed = {k: (prior_kl[k] - kl[k]) / (prior_kl[k] - floor_kl[k]) for k in kl}
    return {"KL 10+": kl["10+"], "gap closed 10+": closed["10+"],
            "KL all": kl["all"], "gap closed all": closed["all"]}  # fmt: skip


def quality_models(profile: str, names: list[str] | None) -> list[tuple[str, dict]]:
    """(model name, overrides) of the quality table: the profile's models, then the scratch twin
    of its first ImageNet model (``names`` picks some, by model name)."""
    specs = get_profile(profile).models
    rows = [(spec.name, {}) for spec in specs]
    pretrained = [spec.name for spec in specs if spec.pretrained]
    if pretrained:
        rows.append((pretrained[0] + SCRATCH, {"model.pretrained": False}))
    if names:
        for name in names:
            check_option("model", name, [n for n, _ in rows])
        rows = [row for row in rows if row[0] in names]
    return rows


def quality(args: argparse.Namespace) -> pd.DataFrame:
    """OOF skill of the profile's models (and their nested ensembles) on its synthetic preset."""
    prof = get_profile(args.profile)
    preset = args.preset or prof.synth_preset
    data = synthetic_data(preset, args.patients)
    truth = pd.read_csv(data / "truth.csv")
    truth = truth[truth.split == "train"].set_index("label_id")
    prior = class_prior(read_train_csv(data))
    out_dir = OUT / (
        f"quality-{args.profile}-{preset}-{args.patients or 'all'}-f{args.n_folds}-"
        f"e{args.epochs}+{args.stage2_epochs}"
        + "".join(f"-{key}={value}" for key, value in args.set)
    )
    common = {"n_folds": args.n_folds, "epochs": args.epochs, "stage2_epochs": args.stage2_epochs, **dict(args.set)}
    results = {}
    for name, overrides in quality_models(args.profile, args.models):
        base = name.removesuffix(SCRATCH)
        config = training_config(
            args.profile,
            model=base,
            data_dir=data,
            out_dir=out_dir,
            overrides={**common, **overrides, "model.name": name},
            cache_dir=OUT / "cache",
            num_workers=args.loader_workers,
        )
        started = time.perf_counter()
        oofs = [pd.read_parquet(fit_fold(config, fold)["oof"]) for fold in range(args.folds)]
        oof = pd.concat(oofs, ignore_index=True).set_index("label_id").sort_index()
        results[name] = (oof, time.perf_counter() - started)

    first = next(iter(results.values()))[0]
    votes = first[list(VOTE_COLUMNS)].to_numpy(np.float64)
    many = first.total_votes.to_numpy() >= HIGH_AGREEMENT_VOTES
    true_p = truth.loc[first.index, list(TRUE_COLUMNS)].to_numpy()
    prior_p = np.broadcast_to(prior, votes.shape)
    prior_kl = {"all": kaggle_kl(votes, prior_p), "10+": kaggle_kl(votes[many], prior_p[many])}
    floor_kl = {"all": kaggle_kl(votes, true_p), "10+": kaggle_kl(votes[many], true_p[many])}
    rows = [
        _gap_rows("class prior", votes, prior_p, prior_kl, floor_kl, many),
        _gap_rows("Bayes floor (true distributions)", votes, true_p, prior_kl, floor_kl, many),
    ]
    for name, (oof, seconds) in results.items():
        preds = oof.loc[first.index, list(PRED_COLUMNS)].to_numpy()
        rows.append({**_gap_rows(name, votes, preds, prior_kl, floor_kl, many), "train s": seconds})
    members = [name for name in results if not name.endswith(SCRATCH)]
    if len(members) > 1:
        try:
            rows += _ensemble_rows(results, members, first, votes, prior_kl, floor_kl, args.seed)
        except ValueError as err:  # too few patients or >= 10-vote windows for nested folds
            print(f"(no ensemble rows: {err})")
    table = pd.DataFrame(rows)
    print(
        f"\nOOF quality of profile {args.profile!r} on {data.name}: {len(votes)} windows "
        f"({int(many.sum())} with >= {HIGH_AGREEMENT_VOTES} votes) of {args.folds} of {args.n_folds} "
        f"folds, {args.epochs} + {args.stage2_epochs} epochs; "
        f"ensembles fitted on >= {HIGH_AGREEMENT_VOTES}-vote windows in nested patient folds"
    )
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}", na_rep=""))
    return table


def _ensemble_rows(results, members, first, votes, prior_kl, floor_kl, seed) -> list[dict]:
    """Nested-fold KL of every blend of ``members`` (fitted on >= 10-vote windows only)."""
    preds = np.stack([results[m][0].loc[first.index, list(PRED_COLUMNS)].to_numpy() for m in members])
    y = votes / votes.sum(axis=1, keepdims=True)
    patients = first.patient_id.to_numpy()
    comparison = compare_ensembles(
        preds, y, patients, n_votes=first.total_votes.to_numpy(), names=members,
        n_outer=min(5, len(np.unique(patients))), seed=seed,
    )  # fmt: skip
    blends = comparison[comparison.blend != "single"]
    return [
        {"model": f"ensemble: {method} (nested)",
         **_gap_columns({"10+": row.kl_nested, "all": row.kl_nested_all}, prior_kl, floor_kl)}
        for method, row in blends.iterrows()
    ]  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=20, help="timed steps per throughput row")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument(
        "--workers", type=int, nargs="+", default=[0, 2], help="DataLoader workers to time"
    )
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--gpu-batch-size", type=int, default=32)
    p.add_argument("--quality", action="store_true", help="run the quality table instead")
    p.add_argument(
        "--patients", type=int, help="bench preset with this many patients (default: all)"
    )
    p.add_argument("--n-folds", type=int, default=5)
    p.add_argument("--folds", type=int, default=1, help="folds to train (OOF on their windows)")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--stage2-epochs", type=int, default=3)
    p.add_argument("--loader-workers", type=int, default=0, help="DataLoader workers in --quality")
    p.add_argument("--profile", default="full", help="profile whose models and preset --quality uses")
    p.add_argument("--preset", choices=sorted(PRESETS), help="--quality: synthetic preset (default: the profile's)")
    p.add_argument("--models", nargs="+", help="--quality: these models of the profile (default: all)")
    p.add_argument("--seed", type=int, default=0, help="--quality: seed of the nested ensemble folds")
    p.add_argument(
        "--set", nargs="*", default=[], type=parse_set_option, metavar="KEY=VALUE",
        help="--quality: recipe overrides for every model (as hms train --set), e.g. model.drop_path_rate=0.2",
    )
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quality:
        quality(args)
        return
    throughput(args)
    if torch.cuda.is_available():
        gpu_precision(args)
    else:
        print("\n(no CUDA device: the AMP + channels_last vs fp32 table is skipped)")


if __name__ == "__main__":
    main()
