"""Real-time factor of ``hms score-edf``: seconds of recording scored per second of compute.

A 1-hour synthetic recording (the EEGs of a small ``hmslib.synthetic`` data set laid end to end,
resampled to 256 Hz, under clinical channel names such as ``EEG T7-REF``, plus a photic channel) is
written as EDF and scored every 10 s with the demo run's ensemble (``outputs/demo``). When no demo run
exists, freshly built untrained models of the demo profile's architectures stand in (same compute,
meaningless probabilities); the table says which. Target: >= 60x real time on 2 CPU cores.

Baseline measured in the same run: the same models scoring one window at a time (batch 1), the way a
loop over windows would.

    python benchmarks/bench_score_edf.py [--minutes 60] [--run outputs/demo] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from hmslib import recording, scoring, viz
from hmslib.checkpoints import save_checkpoint
from hmslib.config import Environment, Recipe, TrainConfig, get_profile
from hmslib.constants import SFREQ
from hmslib.ensemble import Ensemble, save_ensemble
from hmslib.io import load_eeg
from hmslib.models import ModelConfig, build_model
from hmslib.pipeline import default_run_dir
from hmslib.predict import Predictor
from hmslib.synthetic import generate

EDF_SFREQ = 256


def write_synthetic_edf(folder: Path, seconds: float) -> Path:
    """A ``seconds`` long EDF at 256 Hz from synthetic EEGs (NaN gaps become 0 µV, as in EDF)."""
    data = generate(folder / "data", preset="demo", n_patients=4, seed=0, progress=False)
    files = sorted((data / "train_eegs").glob("*.parquet"))
    eeg = np.concatenate([load_eeg(data, int(p.stem)) for p in files], axis=1)
    n = int(seconds * SFREQ)
    eeg = np.tile(eeg, (1, -(-n // eeg.shape[1])))[:, :n]
    photic = np.zeros(int(n * EDF_SFREQ / SFREQ))
    return recording.export_edf(
        eeg, folder / "synthetic_1h.edf", target_sfreq=EDF_SFREQ, extra={"Photic": photic}
    )


def untrained_demo_run(folder: Path) -> Path:
    """A run folder holding untrained models of the demo profile (every fold), equal weights."""
    profile = get_profile("demo")
    names = []
    for spec in profile.models:
        config = ModelConfig(name=spec.name, backbone=spec.backbone, representation=spec.representation)
        train_config = TrainConfig(
            Recipe(model=config, n_folds=profile.n_folds),
            Environment(data_dir="synthetic", out_dir=str(folder)),
        )
        for fold in range(profile.n_folds):
            torch.manual_seed(fold)
            payload = {"train_config": train_config.to_dict(), "state_dict": build_model(config).state_dict()}
            save_checkpoint(payload, folder / "models" / spec.name / f"fold{fold}.pt")
        names.append(spec.name)
    weights = np.full(len(names), 1.0 / len(names))
    save_ensemble(folder / "ensemble.json", Ensemble(tuple(names), weights, method="equal"))
    return folder


def _timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="recording length (default 60)")
    parser.add_argument("--run", type=Path, default=default_run_dir("demo"), help="trained run")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--baseline-windows", type=int, default=16,
                        help="windows scored one at a time for the baseline (default 16)")  # fmt: skip
    args = parser.parse_args()
    seconds = 60.0 * args.minutes

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        edf = write_synthetic_edf(tmp, seconds)
        trained = (args.run / "ensemble.json").is_file()
        run = args.run if trained else untrained_demo_run(tmp / "run")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            predictor, t_models = _timed(Predictor.from_run, run, eeg_only=True)
        skipped = [str(w.message).split(": ", 1)[1] for w in caught]
        (eeg, report), t_read = _timed(recording.load_recording, edf)
        timeline, t_score = _timed(scoring.score_eeg, eeg, predictor,
                                   batch_size=args.batch_size, progress=False)  # fmt: skip
        _, t_quality = _timed(scoring.window_quality, eeg)
        fig, t_plot = _timed(viz.plot_timeline, timeline, eeg)
        _, t_save = _timed(fig.savefig, tmp / "timeline.png", dpi=120)
        windows = scoring.sliding_windows(eeg)
        n_base = min(args.baseline_windows, len(windows))
        _, t_base = _timed(predictor.predict, windows[:n_base], batch_size=1)

    total = t_read + t_models + t_score + t_plot + t_save
    n = len(timeline)
    models = f"trained run {args.run}" if trained else "UNTRAINED models of the demo profile"
    print(f"bench_score_edf: {seconds:.0f} s EDF at {EDF_SFREQ} Hz, {len(report.mapped)} leads "
          f"mapped, {n} windows (stride 10 s), {models}; torch threads {torch.get_num_threads()}")  # fmt: skip
    for message in skipped:
        print(f"  skipped: {message}")
    rows = [
        ("read EDF + map + resample to 200 Hz", t_read),
        ("load checkpoints", t_models),
        (f"score windows (batches of {args.batch_size})", t_score),
        ("  of which quality flags (NaN / flat)", t_quality),
        ("timeline figure + PNG", t_plot + t_save),
        ("total", total),
    ]
    print(f"\n| {'stage':<38} | {'seconds':>8} | {'share':>6} |")
    print(f"| {'-' * 38} | {'-' * 8}:| {'-' * 6}:|")
    for name, sec in rows:
        print(f"| {name:<38} | {sec:8.2f} | {sec / total:6.1%} |")
    per_window, per_window_base = (t_score - t_quality) / n, t_base / n_base
    rtf = seconds / total
    print(f"\nreal-time factor: {rtf:.0f}x (target >= 60x: {'met' if rtf >= 60 else 'NOT met'})")
    print(f"predict per window: batched {per_window * 1e3:.1f} ms vs batch-1 baseline "
          f"{per_window_base * 1e3:.1f} ms ({n_base} windows): {per_window_base / per_window:.2f}x")  # fmt: skip
    print(f"windows flagged bad (NaN or flat lead): {int(timeline['bad'].sum())} of {n}")


if __name__ == "__main__":
    main()
