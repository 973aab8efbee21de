"""The ``hms`` command: every sub-command's parser, and one error policy.

``hms <command> --help`` shows a command's own options. Each command imports the library modules
it needs when it runs, so that ``hms --help`` and an unknown command answer at once.

Errors are one line on stderr, ``hms <command>: error: <what went wrong>``, and the exit status says
whose they are: 2 for bad input (a wrong option, a missing or malformed file, an unknown name: the
user can fix it), 1 for a failure while working (a notebook that raised, a full disk, a non-finite
loss). Under ``torchrun --nproc_per_node=N -m hmslib.cli train ...`` training runs with DDP.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

#: Exceptions that mean the input was wrong (exit 2); anything else from the library is exit 1.
_BAD_INPUT = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, KeyError)
#: Failures while working (exit 1), a failed notebook of ``hms run`` (a RuntimeError) among them.
_FAILURES = (RuntimeError, OSError, FloatingPointError)


class _Parser(argparse.ArgumentParser):
    """argparse with the project's error style: one line, exit 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parser(command: str, description: str) -> _Parser:
    return _Parser(prog=f"hms {command}", description=description)


# --------------------------------------------------------------------------------------------------
# commands
# --------------------------------------------------------------------------------------------------


def _synth(argv: list[str]) -> int:
    """``hms synth OUT_DIR [--preset small|demo|bench] [--seed S] [--patients N] [--overwrite]``."""
    import time

    from hmslib.synthetic import PRESETS, generate

    parser = _parser(
        "synth", "Write a synthetic HMS data set (Kaggle layout + truth.csv) with known ground truth."
    )
    parser.add_argument("out_dir", help="folder to create (absent or empty unless --overwrite)")
    parser.add_argument(
        "--preset",
        default="demo",
        choices=sorted(PRESETS),
        help="size: " + "; ".join(f"{k}: {v.description}" for k, v in PRESETS.items()),
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (>= 0); same seed -> same files")
    parser.add_argument("--patients", type=int, default=None, help="train patients, overriding the preset")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing synthetic data set")
    parser.add_argument("--workers", type=int, default=None, help="parallel processes (default: CPU count, <= 8)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    path = generate(
        args.out_dir,
        args.preset,
        args.seed,
        args.patients,
        overwrite=args.overwrite,
        progress=not args.quiet,
        workers=args.workers,
    )
    info = json.loads((path / "synthetic.json").read_text())
    c, f = info["counts"], info["bayes_floor"]
    nan = float("nan")
    print(
        f"wrote {path}: {c['patients']} patients, {c['eegs']} EEGs, {c['rows']} labelled windows, "
        f"{c['test_eegs']} test EEGs in {time.perf_counter() - started:.1f} s | KL floor "
        f"{f['floor']:.3f} vs prior {f['prior']:.3f} (>=10 votes: {f.get('floor_10plus', nan):.3f} "
        f"vs {f.get('prior_10plus', nan):.3f}; test: {f.get('floor_test', nan):.3f} vs "
        f"{f.get('prior_test', nan):.3f})"
    )
    return 0


def _preprocess(argv: list[str]) -> int:
    """``hms preprocess DATA_DIR --out CACHE --repr NAME [--workers N]``."""
    import math

    from hmslib.cache import DTYPES, build_cache, open_cache
    from hmslib.io import SPLITS
    from hmslib.representations import DEFAULT_REPR, REPRESENTATIONS

    parser = _parser(
        "preprocess", "Compute a representation for every labelled window into a feature cache."
    )
    parser.add_argument("data_dir", help="Kaggle-layout data folder")
    parser.add_argument("--out", required=True, help="folder that holds caches")
    parser.add_argument("--repr", "--representation", dest="representation", default=DEFAULT_REPR,
                        choices=sorted(REPRESENTATIONS), help="representation to compute")  # fmt: skip
    parser.add_argument("--workers", type=int, default=max(1, min(4, os.cpu_count() or 1)))
    parser.add_argument("--split", default="train", choices=SPLITS)
    parser.add_argument("--dtype", default="float16", choices=DTYPES)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    path = build_cache(
        args.data_dir, args.out, representation=args.representation, workers=args.workers,
        split=args.split, progress=not args.no_progress, dtype=args.dtype,
    )  # fmt: skip
    cache = open_cache(path)
    size = cache.features.nbytes / 2**20
    print(f"{path}  ({len(cache)} windows x {tuple(cache.features.shape[1:])} {args.dtype}, "
          f"{math.ceil(size)} MiB)")  # fmt: skip
    return 0


def _fold(text: str) -> int | str:
    """``--fold``: a fold number or ``all``."""
    if text == "all":
        return text
    try:
        fold = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fold number or 'all', got {text!r}") from None
    if fold < 0:
        raise argparse.ArgumentTypeError(f"a fold number is >= 0, got {fold}")
    return fold


def parse_set_option(text: str) -> tuple[str, object]:
    """``--set key=value`` (a recipe override, :func:`hmslib.config.apply_overrides`): the value as
    JSON when it parses (numbers, booleans, lists), else text. Shared with the benchmarks' ``--set``.

    Raises
    ------
    argparse.ArgumentTypeError
        ``text`` has no ``=`` or no key.
    """
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _train(argv: list[str]) -> int:
    """``hms train DATA_DIR --fold K [--profile P] [--model NAME | --backbone B] [--set k=v ...]``."""
    from hmslib.config import PROFILES, TrainConfig, training_config
    from hmslib.models import OUTPUTS
    from hmslib.train import fit_fold

    parser = _parser(
        "train",
        "Train one (model, fold): checkpoints under RUN_DIR/models/<name>/, OOF under RUN_DIR/oof/. "
        "The model and its recipe start from a profile (as `hms run` and notebook 03 do). Runs "
        "unchanged under `torchrun --nproc_per_node=N -m hmslib.cli train ...`.",
    )
    parser.add_argument("data_dir", help="Kaggle-layout data folder (train.csv, train_eegs/, ...)")
    parser.add_argument("--fold", required=True, type=_fold, help="validation fold in [0, n_folds) or 'all'")
    parser.add_argument("--profile", default="demo", choices=sorted(PROFILES),
                        help="profile whose model recipe is the starting point (default demo)")  # fmt: skip
    parser.add_argument("--model", help="model of the profile (name or backbone), or the name of a new one")
    parser.add_argument("--backbone", help="timm name (e.g. tf_efficientnet_lite0) or a 1-D model (wavenet1d)")
    parser.add_argument("--config", help="start from a train_config.json (its recipe) instead of the profile")
    parser.add_argument("--repr", "--representation", dest="representation",
                        help="input representation (default: the model's)")  # fmt: skip
    parser.add_argument("--epochs", type=int, help="stage 1 epochs")
    parser.add_argument("--stage2-epochs", type=int, help="stage 2 epochs (high-agreement windows)")
    parser.add_argument("--n-folds", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--source", choices=("cache", "raw"), help="cached representations or raw windows")
    parser.add_argument("--max-train-samples", type=int, help="training units per epoch (quick runs)")
    parser.add_argument("--pretrained", action=argparse.BooleanOptionalAction, default=None,
                        help="start from ImageNet weights (offline for tf_efficientnet_lite0/1/2)")  # fmt: skip
    parser.add_argument("--pretrained-path", help="local weights file for the backbone")
    parser.add_argument("--output", choices=OUTPUTS, help="output mapping of the model")
    parser.add_argument("--set", nargs="*", default=[], type=parse_set_option, metavar="KEY=VALUE",
                        help="any other recipe field, e.g. label_smoothing=1 augment.mixup=0.5")  # fmt: skip
    parser.add_argument("--out", default="outputs/run", help="run folder (default outputs/run)")
    parser.add_argument("--cache", help="feature cache folder (default: RUN_DIR/cache, built when missing)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    parser.add_argument("--restart", action="store_true", help="ignore an existing fold<k>_last.pt")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    overrides = {
        "epochs": args.epochs, "stage2_epochs": args.stage2_epochs, "n_folds": args.n_folds,
        "seed": args.seed, "batch_size": args.batch_size, "lr": args.lr, "source": args.source,
        "max_train_samples": args.max_train_samples, "model.representation": args.representation,
        "model.pretrained": args.pretrained, "model.pretrained_path": args.pretrained_path,
        "model.output": args.output, **dict(args.set),
    }  # fmt: skip
    recipe = TrainConfig.from_json(args.config).recipe if args.config else None
    if recipe is not None and (args.model or args.backbone):
        parser.error("--config gives the model; drop --model / --backbone")
    config = training_config(
        args.profile, model=args.model, backbone=args.backbone, data_dir=args.data_dir,
        out_dir=args.out, overrides=overrides, recipe=recipe, cache_dir=args.cache,
        device=args.device, num_workers=args.workers, resume=not args.restart,
    )  # fmt: skip
    folds = range(config.recipe.n_folds) if args.fold == "all" else [args.fold]
    for fold in folds:
        r = fit_fold(config, fold, progress=not args.quiet)
        if int(os.environ.get("RANK", "0")) == 0:
            print(
                f"{r['model']} fold {fold}: val KL {r['val_kl']:.4f} (>= "
                f"{config.recipe.val_min_votes} votes, n={r['n_val_min_votes']}), "
                f"{r['val_kl_all']:.4f} (all, n={r['n_val']}); best stage {r['best_stage']} "
                f"epoch {r['best_epoch']} -> {r['checkpoint']}"
            )
    return 0


def _run(argv: list[str]) -> int:
    """``hms run [--data DIR] [--out DIR] [--profile demo|quick|full] [--models ...]``."""
    from hmslib.config import PROFILES
    from hmslib.pipeline import run

    parser = _parser("run", "Run the notebooks 01-07 in order with papermill (the main job).")
    parser.add_argument("--data", help="Kaggle-layout data folder (default: synthetic demo data)")
    parser.add_argument("--out", help="run folder (default: outputs/<profile>)")
    parser.add_argument("--profile", default="demo", choices=sorted(PROFILES))
    parser.add_argument("--models", "--backbones", dest="models", nargs="+",
                        help="train only these models of the profile (names or backbones)")  # fmt: skip
    args = parser.parse_args(argv)
    run(args.data, args.out, profile=args.profile, models=args.models)
    return 0


def _predict(argv: list[str]) -> int:
    """``hms predict --data DIR --models RUN_DIR --out submission.csv [--tta] [--device D]``."""
    from hmslib.predict import predict_folder

    parser = _parser("predict", "Predict a Kaggle-layout test folder with a trained run.")
    parser.add_argument("--data", required=True, help="Kaggle-layout folder with the test files")
    parser.add_argument("--models", required=True, help="run folder with ensemble.json and models/")
    parser.add_argument("--out", default="submission.csv", help="submission CSV to write")
    parser.add_argument("--tta", action="store_true", help="average with the hemisphere-swapped input")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    args = parser.parse_args(argv)
    submission = predict_folder(args.data, args.models, out=args.out, device=args.device, tta=args.tta)
    print(f"hms predict: wrote {args.out} ({len(submission)} rows)")
    return 0


def _bundle(argv: list[str]) -> int:
    """``hms bundle RUN_DIR --out DIR [--slug NAME]``."""
    from hmslib.bundle import bundle

    parser = _parser("bundle", "Write an offline Kaggle kernel bundle (wheel, checkpoints, notebook).")
    parser.add_argument("run_dir", help="trained run folder")
    parser.add_argument("--out", required=True, help="bundle folder to write")
    parser.add_argument("--slug", help="Kaggle dataset slug (default: hmslib-<run folder name>)")
    args = parser.parse_args(argv)
    path = bundle(args.run_dir, args.out, dataset_slug=args.slug)
    print(f"hms bundle: wrote {path}; upload it as a Kaggle dataset and run submission.ipynb offline")
    return 0


def _export(argv: list[str]) -> int:
    """``hms export RUN_DIR --out DIR [--opset N] [--no-verify] [--overwrite]``."""
    from hmslib.export import ONNX_OPSET, export_run

    parser = _parser(
        "export",
        "Write every fold model of a run's ensemble as ONNX (representation -> logits and "
        "probabilities) with a preprocessing.json beside each model and a manifest.json.",
    )
    parser.add_argument("run_dir", help="trained run folder with ensemble.json and models/")
    parser.add_argument("--out", required=True, help="export folder to write (absent or empty)")
    parser.add_argument("--opset", type=int, default=ONNX_OPSET,
                        help=f"ONNX opset (default {ONNX_OPSET})")  # fmt: skip
    parser.add_argument("--no-verify", action="store_true",
                        help="skip the onnxruntime check against the torch outputs")  # fmt: skip
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    args = parser.parse_args(argv)
    try:
        manifest = export_run(
            args.run_dir, args.out, opset=args.opset, verify=not args.no_verify,
            overwrite=args.overwrite,
        )  # fmt: skip
    except ImportError as err:  # onnx / onnxruntime missing: the message says what to install
        raise RuntimeError(str(err)) from err
    files = json.loads(manifest.read_text())["files"]
    graphs = sum(f["path"].endswith(".onnx") for f in files)
    checked = "" if args.no_verify else ", each checked against torch with onnxruntime"
    print(f"hms export: wrote {graphs} ONNX graphs{checked} -> {manifest}")
    return 0


def _score_edf(argv: list[str]) -> int:
    """``hms score-edf RECORDING --models RUN_DIR [--stride 10] [--tta] [--out DIR]``."""
    from hmslib.constants import CLASSES
    from hmslib.predict import Predictor
    from hmslib.recording import load_recording
    from hmslib.scoring import score_eeg, write_timeline

    parser = _parser(
        "score-edf",
        "Score a clinical EEG recording (EDF/EDF+, BDF, BrainVision, EEGLAB) every few seconds with "
        "a trained run; writes timeline.csv and timeline.png.",
    )
    parser.add_argument("recording", type=Path, help="the recording file (.edf, .bdf, .vhdr, .set)")
    parser.add_argument("--models", type=Path, required=True, metavar="RUN_DIR",
                        help="trained run folder with ensemble.json and models/")  # fmt: skip
    parser.add_argument("--stride", type=float, default=10.0, metavar="S",
                        help="seconds between 50 s windows (default 10)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="output folder (default RUN_DIR/recordings/<recording name>)")  # fmt: skip
    parser.add_argument("--allow-missing", action="store_true",
                        help="fill missing scalp leads by interpolation from their neighbours")  # fmt: skip
    parser.add_argument("--tta", action="store_true", help="average with the hemisphere-swapped input")
    parser.add_argument("--batch-size", type=int, default=32, help="windows per batch (default 32)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    args = parser.parse_args(argv)
    out = args.out or args.models / "recordings" / args.recording.stem
    eeg, report = load_recording(args.recording, allow_missing=args.allow_missing)
    print(report.summary())
    predictor = Predictor.from_run(args.models, device=args.device, tta=args.tta, eeg_only=True)
    timeline = score_eeg(
        eeg, predictor, stride_s=args.stride, filled=report.filled, segments=report.segments,
        batch_size=args.batch_size,
    )  # fmt: skip
    title = f"{args.recording.name}: {report.duration_s:.0f} s"
    csv_path, png_path = write_timeline(timeline, eeg, out, title=title, segments=report.segments)
    shares = timeline["top_class"].value_counts(normalize=True).reindex(CLASSES, fill_value=0.0)
    print(f"scored {len(timeline)} windows ({int(timeline['bad'].sum())} bad) every {args.stride:g} s")
    print("top class share: " + ", ".join(f"{c} {s:.0%}" for c, s in shares.items()))
    print(f"wrote {csv_path}\nwrote {png_path}")
    return 0


#: command -> (function, one-line description).
COMMANDS: dict[str, tuple[Callable[[list[str]], int], str]] = {
    "synth": (_synth, "write a synthetic data set in the Kaggle layout"),
    "preprocess": (_preprocess, "compute a representation for every labelled window into a cache"),
    "train": (_train, "train one (model, fold) and write its checkpoint and OOF"),
    "run": (_run, "run the notebooks in order (the main job)"),
    "predict": (_predict, "predict a Kaggle-layout test folder with a trained run"),
    "bundle": (_bundle, "write an offline Kaggle kernel bundle from a run"),
    "score-edf": (_score_edf, "score a clinical EEG recording window by window"),
    "export": (_export, "write a run's fold models as ONNX with their preprocessing"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: hms <command> [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {desc}" for name, (_, desc) in COMMANDS.items()]
    lines += ["", "hms <command> --help shows the options of one command."]
    return "\n".join(lines)


def _one_line(err: BaseException) -> str:
    """The message of an exception on one line (KeyError quotes its message; unquote it)."""
    text = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    return " ".join(str(text).split())


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hms`` console script; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in {"-h", "--help"}:
        print(_usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"hms: error: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    prog = f"hms {command}"
    try:
        return int(COMMANDS[command][0](rest) or 0)
    except _BAD_INPUT as err:
        print(f"{prog}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except _FAILURES as err:
        print(f"{prog}: error: {_one_line(err)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
