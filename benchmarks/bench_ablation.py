"""Ranked tricks: the same base model trained with one switch changed at a time.

The base is the demo profile's ImageNet CNN (``tf_efficientnet_lite0`` over ``chain_mel``, from
:func:`hmslib.config.training_config`, sizes set by the flags below). Each switch changes one thing
(:data:`SWITCHES`): stage 2 off, no ImageNet weights, label smoothing, vote-count loss weights,
decaying few-vote weights, one offset per EEG with its averaged target, channel zeroing, a narrower
band-pass, a +-20 s shift, time reversal, no hemisphere swap in training, hemisphere-swap TTA,
mixup, a random gain, entmax, stochastic depth, stronger head dropout, stronger weight decay, and
the other representations. Every run of a seed uses that seed's
patient folds, so a switch and its reference predict the same OOF windows; the difference of their
per-window KL on the >= 10-vote windows is averaged and given a 95% interval by a bootstrap over patients
(:func:`hmslib.metrics.bootstrap_mean`): an interval below 0 says the switch helps. Most switches
are compared with the base; a switch that only acts in a different setting is compared with that
setting alone (channel zeroing needs channels kept apart, so it is compared with ``mel16``; the
band-pass and the re-cut shift act on raw windows, so they are compared with ``source_raw``).

Resumable: one row per finished run (switch, seed) is appended to ``ablation.csv``; a rerun skips
the rows there (and :func:`hmslib.train.fit_fold` resumes an interrupted fit). The summary, pooled
over seeds, goes to ``ablation_summary.csv`` (one block of rows per setup) and ``ablation.png`` (the
setup just run) beside it; its pooled intervals need
the runs' OOF files (git-ignored), so a fresh checkout keeps the committed summary's rows for the
runs it did not redo (:func:`summarise`).

    python benchmarks/bench_ablation.py [--seeds 0 1] [--switches mixup entmax ...]
    python benchmarks/bench_ablation.py --summary-only      # table and plot from the runs so far
    python benchmarks/bench_ablation.py --smoke             # seconds: one switch, one seed, tiny

Data, caches and runs go under ``outputs/bench_ablation/`` (git-ignored) and are reused; results
under ``benchmarks/results/`` (``--smoke``: under the work folder). The default sizes (``small`` preset,
all four folds, so that every window has an OOF prediction, 6 + 2 epochs) take about a minute per run
of the base on 2 CPU cores. ``ablation.csv`` keeps the rows of every setup (the generator version and
the sizes, its ``setup`` column); a run compares and summarises only its own setup's rows.

The TTA row re-predicts the base run's validation windows through :class:`hmslib.predict.Predictor`
(from raw windows) while the base OOF comes from the training loop (from the feature cache); without
TTA the two agree to about 2e-4 in probability, far below the differences the table resolves.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from hmslib import io
from hmslib._checks import check_option, write_csv_atomic
from hmslib.checkpoints import fold_paths
from hmslib.config import training_config
from hmslib.constants import HIGH_AGREEMENT_VOTES, PRED_COLUMNS, VOTE_COLUMNS
from hmslib.metrics import bootstrap_mean, kaggle_kl, kl_rows
from hmslib.representations import representation_info
from hmslib.synthetic import GENERATOR_VERSION, ensure_generated

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "outputs" / "bench_ablation"
RESULTS = ROOT / "benchmarks" / "results"
#: The profile and model of the base run (the one config route: ``training_config``).
BASE_PROFILE, BASE_MODEL = "demo", "effnet_lite0"
#: Name of every run's model folder (one run folder per switch and seed).
MODEL_NAME = "ablation"


@dataclass(frozen=True)
class Switch:
    """One change from the base: recipe overrides (dotted, :func:`hmslib.config.apply_overrides`),
    or hemisphere-swap TTA at prediction; compared with the run ``reference``."""

    group: str
    description: str
    overrides: dict = field(default_factory=dict)
    tta: bool = False
    reference: str = "base"


_RAW = {"source": "raw"}
SWITCHES: dict[str, Switch] = {
    "base": Switch("base", "demo CNN: lite0 ImageNet, chain_mel, stage 2, hemisphere swap 0.5"),
    "stage2_off": Switch("trick", "no stage 2 (>= 10-vote fine-tuning)", {"stage2_epochs": 0}),
    "scratch": Switch("trick", "no ImageNet weights", {"model.pretrained": False}),
    "label_smoothing": Switch("trick", "0.5 pseudo-votes per class", {"label_smoothing": 0.5}),
    "vote_weight": Switch("trick", "loss weight min(votes / 20, 1)", {"vote_weight": True}),
    "few_vote_decay": Switch("trick", "few-vote loss weight x0.5 per epoch", {"few_vote_decay": 0.5}),
    "sample_by_eeg": Switch("trick", "one offset per EEG, averaged target", {"sample_by": "eeg"}),
    "channel_zero": Switch(
        "trick", "zero 1-8 bipolar channels, p 0.5 (on mel16)",
        {"model.representation": "mel16", "augment.channel_zero": 0.5}, reference="mel16",
    ),
    "source_raw": Switch("trick", "representations computed per batch from raw windows", _RAW),
    "bandpass": Switch(
        "trick", "random narrower band-pass, p 0.5", {**_RAW, "augment.bandpass": 0.5},
        reference="source_raw",
    ),
    "time_shift": Switch(
        "trick", "+-20 s re-cut shift", {**_RAW, "augment.time_shift_s": 20.0},
        reference="source_raw",
    ),
    "time_reverse": Switch("trick", "time reversal, p 0.5", {"augment.time_reverse": 0.5}),
    "no_hemisphere_swap": Switch(
        "trick", "no hemisphere swap in training", {"augment.hemisphere_swap": 0.0}
    ),
    "hemisphere_tta": Switch("trick", "hemisphere-swap TTA on the base model", tta=True),
    "mixup": Switch("trick", "mixup, p 0.5", {"augment.mixup": 0.5}),
    "gain": Switch("trick", "random gain x0.33-3 (log-uniform), p 0.5", {"augment.gain": 0.5}),
    "entmax": Switch("trick", "1.5-entmax output", {"model.output": "entmax15"}),
    "drop_path": Switch("trick", "stochastic depth 0.2 in the backbone", {"model.drop_path_rate": 0.2}),
    "dropout": Switch("trick", "head dropout 0.5 (base 0.2)", {"model.drop_rate": 0.5}),
    "weight_decay": Switch("trick", "AdamW weight decay 0.1 (base 0.01)", {"weight_decay": 0.1}),
    **{
        name: Switch("representation", f"{name} input", {"model.representation": name})
        for name in ("mel16", "mel16_zoom", "tiles_kaggle_eeg", "cwt", "raw_image")
    },
    "bipolar_raw": Switch(
        "representation", "wavenet1d on bipolar_raw (no ImageNet)",
        {"model.kind": "raw", "model.backbone": "wavenet1d", "model.representation": "bipolar_raw",
         "model.pretrained": False, "lr": 2e-3},
    ),
}  # fmt: skip

RUN_COLUMNS = (
    "setup", "switch", "group", "reference", "seed", "n_val", "n_val10", "kl10", "kl_all",
    "diff10", "diff10_lo", "diff10_hi", "train_s", "epochs_run", "description",
)  # fmt: skip


# --------------------------------------------------------------------------------------------------
# sizes and data
# --------------------------------------------------------------------------------------------------


def setup_name(args: argparse.Namespace) -> str:
    """The generator version and a run's sizes as one string: rows of another setup are never
    compared with this one's."""
    return (
        f"g{GENERATOR_VERSION}-{args.preset}-p{args.patients or 'all'}-f{args.folds}of{args.n_folds}-"
        f"e{args.epochs}+{args.stage2_epochs}-b{args.batch_size}-m{args.max_train_samples or 'all'}"
    )


def synthetic_data(args: argparse.Namespace) -> Path:
    """The synthetic data set of the preset (``--patients`` overriding its size), generated once per generator version."""
    folder = Path(args.work) / f"data-{args.preset}-{args.patients or 'all'}"
    return ensure_generated(folder, args.preset, 0, args.patients)


def _size_overrides(args: argparse.Namespace, seed: int) -> dict:
    return {
        "n_folds": args.n_folds,
        "seed": seed,
        "epochs": args.epochs,
        "stage2_epochs": args.stage2_epochs,
        "batch_size": args.batch_size,
        "max_train_samples": args.max_train_samples,
        "model.name": MODEL_NAME,
    }


def _run_dir(args: argparse.Namespace, switch: str, seed: int) -> Path:
    return Path(args.work) / setup_name(args) / f"{switch}-seed{seed}"


def _oof_paths(args: argparse.Namespace, switch: str, seed: int) -> list[Path]:
    run_dir = _run_dir(args, switch, seed)
    return [fold_paths(run_dir, MODEL_NAME, k)["oof"] for k in range(args.folds)]


def _read_oof(paths: list[Path]) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True).sort_values(
        "label_id", kind="stable"
    )


# --------------------------------------------------------------------------------------------------
# one run
# --------------------------------------------------------------------------------------------------


def _train(args: argparse.Namespace, data: Path, switch: str, seed: int) -> dict:
    """Fit the folds of one (switch, seed); returns seconds and epochs run."""
    from hmslib.train import fit_fold

    overrides = {**_size_overrides(args, seed), **SWITCHES[switch].overrides}
    config = training_config(
        BASE_PROFILE,
        model=BASE_MODEL,
        data_dir=data,
        out_dir=_run_dir(args, switch, seed),
        overrides=overrides,
        cache_dir=Path(args.work) / "cache",
        num_workers=args.loader_workers,
    )
    started = time.perf_counter()
    epochs = sum(fit_fold(config, k, progress=False)["epochs_run"] for k in range(args.folds))
    return {"train_s": time.perf_counter() - started, "epochs_run": epochs}


def _label_windows(data: Path, rows: pd.DataFrame, needs_spec: bool):
    """EEG (and Kaggle spectrogram) windows of the OOF label windows, in ``rows`` order."""
    train = io.read_train_csv(data).set_index("label_id").loc[rows["label_id"]].reset_index()
    eeg = np.empty((len(train), 20, 10_000), dtype=np.float32)
    spec = None
    for eeg_id, part in train.groupby("eeg_id").groups.items():
        idx = np.asarray(part)
        recording = io.load_eeg(data, eeg_id)
        eeg[idx] = io.eeg_windows(recording, train.loc[idx, "eeg_label_offset_seconds"].to_numpy())
    if needs_spec:
        spec = np.empty((len(train), 4, 100, 300), dtype=np.float32)
        for spec_id, part in train.groupby("spectrogram_id").groups.items():
            idx = np.asarray(part)
            whole = io.load_spectrogram(data, spec_id)
            offsets = train.loc[idx, "spectrogram_label_offset_seconds"].to_numpy()
            spec[idx] = io.spectrogram_windows(whole, offsets)
    return eeg, spec


def _predict_tta(args: argparse.Namespace, data: Path, seed: int) -> dict:
    """The reference run's OOF windows predicted again, averaged with their mirror image, through
    the one prediction path (:class:`hmslib.predict.Predictor`); written as that switch's OOF."""
    import torch

    from hmslib.checkpoints import load_model
    from hmslib.ensemble import Ensemble
    from hmslib.predict import Predictor

    started = time.perf_counter()
    reference = SWITCHES["hemisphere_tta"].reference
    ref_dir = _run_dir(args, reference, seed)
    for k, (src, dst) in enumerate(
        zip(_oof_paths(args, reference, seed), _oof_paths(args, "hemisphere_tta", seed), strict=True)
    ):
        rows = pd.read_parquet(src)
        model, model_config, _ = load_model(fold_paths(ref_dir, MODEL_NAME, k)["best"])
        predictor = Predictor(
            {MODEL_NAME: [(model, model_config)]},
            Ensemble((MODEL_NAME,), np.ones(1), method="single"),
            device=torch.device("cpu"),
            tta=True,
        )
        needs_spec = representation_info(model_config.representation).uses_kaggle_spectrogram
        eeg, spec = _label_windows(data, rows, needs_spec)
        probs = predictor.predict_models(eeg, spec, batch_size=args.batch_size)[MODEL_NAME]
        dst.parent.mkdir(parents=True, exist_ok=True)
        rows.assign(**dict(zip(PRED_COLUMNS, probs.T, strict=True))).to_parquet(dst, index=False)
    return {"train_s": time.perf_counter() - started, "epochs_run": 0}


def _ensure_run(args: argparse.Namespace, data: Path, switch: str, seed: int) -> dict:
    """Train (or predict) ``switch`` unless its OOF files exist; its reference first."""
    sw = SWITCHES[switch]
    if switch != "base":
        _ensure_run(args, data, sw.reference, seed)
    if all(p.is_file() for p in _oof_paths(args, switch, seed)):
        return {"train_s": np.nan, "epochs_run": np.nan}
    if sw.tta:
        return _predict_tta(args, data, seed)
    return _train(args, data, switch, seed)


def paired_difference(
    oof: pd.DataFrame, reference: pd.DataFrame, *, n_boot: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """Per-window KL difference (``oof`` minus ``reference``) on the >= 10-vote windows.

    Returns
    -------
    diff, patient : numpy.ndarray
        ``(n,)`` differences and the windows' patients.
    (mean, lo, hi) : tuple of float
        :func:`hmslib.metrics.bootstrap_mean` of the differences, grouped by patient.
    """
    ref = reference.set_index("label_id").loc[oof["label_id"]]
    votes = oof[list(VOTE_COLUMNS)].to_numpy(np.float64)
    if not np.array_equal(votes, ref[list(VOTE_COLUMNS)].to_numpy(np.float64)):
        raise ValueError("paired_difference: the two runs disagree on the votes of their windows")
    many = votes.sum(axis=1) >= HIGH_AGREEMENT_VOTES
    kl = kl_rows(votes[many], oof[list(PRED_COLUMNS)].to_numpy(np.float64)[many]).sum(axis=1)
    kl_ref = kl_rows(votes[many], ref[list(PRED_COLUMNS)].to_numpy(np.float64)[many]).sum(axis=1)
    patient = oof["patient_id"].to_numpy()[many]
    diff = kl - kl_ref
    if not len(diff):
        return diff, patient, (np.nan, np.nan, np.nan)
    return diff, patient, bootstrap_mean(diff, patient, n_boot=n_boot, seed=seed)


def _result_row(args: argparse.Namespace, switch: str, seed: int, timing: dict) -> dict:
    sw = SWITCHES[switch]
    oof = _read_oof(_oof_paths(args, switch, seed))
    votes = oof[list(VOTE_COLUMNS)].to_numpy(np.float64)
    preds = oof[list(PRED_COLUMNS)].to_numpy(np.float64)
    many = votes.sum(axis=1) >= HIGH_AGREEMENT_VOTES
    reference = "" if switch == "base" else sw.reference
    if switch == "base":
        diff = (0.0, 0.0, 0.0)
    else:
        ref = _read_oof(_oof_paths(args, reference, seed))
        diff = paired_difference(oof, ref, n_boot=args.n_boot)[2]
    return {
        "setup": setup_name(args),
        "switch": switch,
        "group": sw.group,
        "reference": reference,
        "seed": seed,
        "n_val": len(oof),
        "n_val10": int(many.sum()),
        "kl10": kaggle_kl(votes[many], preds[many]) if many.any() else np.nan,
        "kl_all": kaggle_kl(votes, preds),
        "diff10": diff[0],
        "diff10_lo": diff[1],
        "diff10_hi": diff[2],
        **timing,
        "description": sw.description,
    }


# --------------------------------------------------------------------------------------------------
# the table
# --------------------------------------------------------------------------------------------------


def read_results(path: Path) -> pd.DataFrame:
    """The finished runs in ``path``, of every setup (empty without the file).

    Raises
    ------
    ValueError
        The file holds other columns.
    """
    if not path.is_file():
        return pd.DataFrame(columns=list(RUN_COLUMNS))
    table = pd.read_csv(path)
    if list(table.columns) != list(RUN_COLUMNS):
        raise ValueError(f"{path}: expected columns {list(RUN_COLUMNS)}, found {list(table.columns)}")
    return table


SUMMARY_COLUMNS = (
    "setup", "switch", "group", "reference", "n_seeds", "kl10", "diff", "lo", "hi", "verdict", "description",
)  # fmt: skip


def _pooled_from_oof(args: argparse.Namespace, switch: str, seeds) -> tuple[float, float, float] | None:
    """The paired difference pooled over ``seeds`` with its patient-bootstrap interval, from the
    runs' OOF files (None where one of them is gone)."""
    reference = SWITCHES[switch].reference
    diffs, patients = [], []
    for seed in seeds:
        own, ref = _oof_paths(args, switch, seed), _oof_paths(args, reference, seed)
        if not all(p.is_file() for p in own + ref):
            return None
        d, g = paired_difference(_read_oof(own), _read_oof(ref), n_boot=1)[:2]
        diffs.append(d)
        patients.append(g)
    if not sum(map(len, diffs)):
        return None
    return bootstrap_mean(np.concatenate(diffs), np.concatenate(patients), n_boot=args.n_boot, seed=0)


def summarise(args: argparse.Namespace, runs: pd.DataFrame, previous: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per switch, pooled over its seeds: mean KL, and the paired difference from its reference
    with a patient-bootstrap interval.

    The pooled interval comes from the runs' OOF files. Where those are gone (a fresh checkout),
    the row of ``previous`` (the earlier summary of this setup) is kept when it pooled the same
    seeds; failing that, the difference is the mean of the per-seed differences and the interval
    the mean of the per-seed bounds, wider than the pooled one (a conservative verdict).
    """
    setup = setup_name(args)
    earlier = {}
    if previous is not None:
        earlier = previous[previous["setup"] == setup].set_index("switch").to_dict("index")
    rows = []
    for switch, part in runs.groupby("switch", sort=False):
        if switch == "base":
            continue
        reference = part["reference"].iloc[0]
        pooled = _pooled_from_oof(args, switch, part["seed"])
        kept = earlier.get(switch)
        if pooled is not None:
            mean, lo, hi = pooled
        elif kept is not None and kept["n_seeds"] == len(part) and kept["reference"] == reference:
            mean, lo, hi = kept["diff"], kept["lo"], kept["hi"]
        else:
            mean, lo, hi = (float(part[c].mean()) for c in ("diff10", "diff10_lo", "diff10_hi"))
        rows.append(
            {
                "setup": setup,
                "switch": switch,
                "group": part["group"].iloc[0],
                "reference": reference,
                "n_seeds": len(part),
                "kl10": part["kl10"].mean(),
                "diff": mean,
                "lo": lo,
                "hi": hi,
                "verdict": "helps" if hi < 0 else "hurts" if lo > 0 else "unclear",
                "description": part["description"].iloc[0],
            }
        )
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS)).sort_values("diff", kind="stable").reset_index(drop=True)


def write_summary(args: argparse.Namespace, runs: pd.DataFrame) -> pd.DataFrame:
    """Print the runs and the summary; write ``ablation_summary.csv`` (where the rows of other
    setups stay, as in ``ablation.csv``) and ``ablation.png`` (this setup's)."""
    import matplotlib

    matplotlib.use("Agg")
    from hmslib.viz import plot_ablation

    results = Path(args.results)
    summary_path = results / "ablation_summary.csv"
    previous = pd.read_csv(summary_path) if summary_path.is_file() else None
    summary = summarise(args, runs, previous)
    if runs.empty:  # leave the files of another setup's summary as they are
        print(f"\nAblation: no runs of setup {setup_name(args)} in {results / 'ablation.csv'} yet")
        return summary
    kept = [] if previous is None else [previous[previous["setup"] != setup_name(args)]]
    write_csv_atomic(pd.concat([*kept, summary], ignore_index=True), summary_path)
    base = runs[runs["switch"] == "base"]
    print(
        f"\nAblation, setup {setup_name(args)}: {len(runs)} runs; base KL (>= 10 votes) "
        f"{base['kl10'].mean():.4f} over {len(base)} seeds"
    )
    shown = summary.drop(columns=["setup", "description"])
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if len(summary):
        fig = plot_ablation(summary, title=f"Ablation ({setup_name(args)})")
        fig.savefig(results / "ablation.png", dpi=110, bbox_inches="tight")
    return summary


def run(args: argparse.Namespace) -> pd.DataFrame:
    """Every (switch, seed) of this setup not yet in ``ablation.csv``, one row appended per finished
    run; rows of other setups (sizes, generator versions) stay in the file, apart."""
    results = Path(args.results)
    path = results / "ablation.csv"
    setup = setup_name(args)
    table = read_results(path)
    others = table[table["setup"] != setup]
    runs = table[table["setup"] == setup].reset_index(drop=True)
    if args.summary_only:
        return write_summary(args, runs)
    data = synthetic_data(args)
    done = set(zip(runs["switch"], runs["seed"].astype(int), strict=True))
    for seed in args.seeds:
        for switch in ["base", *[s for s in args.switches if s != "base"]]:
            if (switch, seed) in done:
                continue
            timing = _ensure_run(args, data, switch, seed)
            row = _result_row(args, switch, seed, timing)
            runs = pd.concat([runs, pd.DataFrame([row])], ignore_index=True)
            write_csv_atomic(pd.concat([others, runs], ignore_index=True)[list(RUN_COLUMNS)], path)
            done.add((switch, seed))
            print(
                f"{switch:>20} seed {seed}: KL10 {row['kl10']:.4f}, diff {row['diff10']:+.4f} "
                f"[{row['diff10_lo']:+.4f}, {row['diff10_hi']:+.4f}], {row['train_s']:.0f} s",
                flush=True,
            )
    return write_summary(args, runs)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--switches", nargs="+", help="default: every switch (--smoke: label_smoothing)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--preset", default="small", help="synthetic preset (small | demo | bench)")
    p.add_argument("--patients", type=int, help="patients of the preset (default: all)")
    p.add_argument("--n-folds", type=int, default=4)
    p.add_argument("--folds", type=int, default=4, help="folds trained per run (OOF on their windows)")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--stage2-epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-train-samples", type=int, help="training units per epoch (default: all)")
    p.add_argument("--n-boot", type=int, default=1000, help="patient-bootstrap draws")
    p.add_argument("--loader-workers", type=int, default=0)
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--work", default=str(WORK), help="data, caches and runs")
    p.add_argument(
        "--results",
        help=f"folder of ablation.csv and the plot (default {RESULTS}; --smoke: <work>/smoke)",
    )
    p.add_argument("--summary-only", action="store_true", help="table and plot of the runs so far")
    p.add_argument(
        "--smoke", action="store_true",
        help="seconds: label_smoothing (or --switches) vs base, seed 0, 6 patients, 1 short epoch",
    )  # fmt: skip
    args = p.parse_args(argv)
    if args.switches is None:
        args.switches = ["label_smoothing"] if args.smoke else [s for s in SWITCHES if s != "base"]
    if args.smoke:
        args.seeds, args.patients, args.n_folds, args.folds = [0], 6, 2, 1
        args.epochs, args.stage2_epochs, args.batch_size, args.max_train_samples = 1, 0, 16, 32
        args.n_boot = min(args.n_boot, 200)
    if args.results is None:  # a smoke run never writes into the committed table
        args.results = str(Path(args.work) / "smoke") if args.smoke else str(RESULTS)
    for switch in args.switches:
        check_option("switch", switch, list(SWITCHES))
    return args


def main(argv: list[str] | None = None) -> pd.DataFrame:
    args = parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    Path(args.results).mkdir(parents=True, exist_ok=True)
    return run(args)


if __name__ == "__main__":
    main()
