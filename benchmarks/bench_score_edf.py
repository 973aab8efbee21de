"""Real-time factor of ``hms score-edf``: seconds of recording scored per second of compute.

A 1-hour synthetic recording (the EEGs of a small ``hmslib.synthetic`` data set laid end to end,
resampled to 256 Hz, under clinical channel names such as ``EEG T7-REF``, plus a photic channel) is
written as EDF and scored every 10 s with the demo run's ensemble (``outputs/demo``). When no demo run
exists, freshly built untrained models of the demo profile's architectures stand in (same compute,
meaningless probabilities); the table says which. Target: >= 120x real time on 2 CPU cores.

Levers, measured in the same run on the same windows (each the best of ``--repeats`` timings, so that
other processes on a shared machine disturb it less), cumulative from a baseline that scores one
window at a time the way a loop would (every fold computing its own representation, autograd on):

1. each representation computed once per window for all folds and models;
2. ``torch.inference_mode``;
3. batches of windows (:class:`hmslib.predict.Predictor`, the product path);
4. channels-last layout of the image models (kept only when it is faster here);

then the thread count and batch size are swept on the result, and bfloat16 autocast (opt-in:
probabilities change by ~1e-2) is shown for information. Each lever's share is its part of the
total saving.

Memory: peak resident memory (``VmHWM`` of a fresh subprocess minus its resident memory after the
imports) and the peak of the allocations ``tracemalloc`` sees (numpy's included) of reading and scoring a 1 h and an 8 h EDF (written record by record, 256 Hz), against the size of
the 200 Hz float32 signal itself. Those rows use a constant predictor (the class prior): the models
add only their weights and one batch, and would make the 8 h row take minutes.

    python benchmarks/bench_score_edf.py [--minutes 60] [--run outputs/demo] [--memory-hours 1 8]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from hmslib import recording, scoring, viz
from hmslib.checkpoints import save_checkpoint
from hmslib.config import Environment, Recipe, TrainConfig, get_profile
from hmslib.constants import CLASSES, EEG_CHANNELS, SFREQ
from hmslib.ensemble import Ensemble, save_ensemble
from hmslib.io import load_eeg
from hmslib.models import ModelConfig, build_model
from hmslib.pipeline import default_run_dir
from hmslib.predict import Predictor, predict_features
from hmslib.representations import compute_representation
from hmslib.synthetic import generate

EDF_SFREQ = 256
TARGET = 120.0


def write_synthetic_edf(folder: Path, seconds: float) -> Path:
    """A ``seconds`` long EDF at 256 Hz from synthetic EEGs (NaN gaps become 0 µV, as in EDF)."""
    data = generate(folder / "data", preset="small", n_patients=4, seed=0, progress=False)
    files = sorted((data / "train_eegs").glob("*.parquet"))
    eeg = np.concatenate([load_eeg(data, int(p.stem)) for p in files], axis=1)
    n = int(seconds * SFREQ)
    eeg = np.tile(eeg, (1, -(-n // eeg.shape[1])))[:, :n]
    photic = np.zeros(int(n * EDF_SFREQ / SFREQ))
    return recording.export_edf(
        eeg, folder / "synthetic_1h.edf", target_sfreq=EDF_SFREQ, extra={"Photic": photic}
    )


def write_long_edf(path: Path, hours: float, *, seed: int = 0) -> Path:
    """A plain EDF of ``hours`` at 256 Hz, 1 s records written 10 minutes at a time (little memory):
    sums of sinusoids on every lead (10-40 µV, 0.7-20 Hz), 0.1 µV steps."""
    n_records, names = int(hours * 3600), [recording.CLINICAL_NAMES[c] for c in EEG_CHANNELS]
    rng = np.random.default_rng(seed)
    t = np.arange(600 * EDF_SFREQ) / EDF_SFREQ
    block = sum(rng.uniform(10, 40, (20, 1)) * np.sin(2 * np.pi * rng.uniform(0.7, 20, (20, 1)) * t
                + rng.uniform(0, 6.3, (20, 1))) for _ in range(4))  # fmt: skip
    digital = np.round(block * 10).astype("<i2").reshape(20, 600, EDF_SFREQ).transpose(1, 0, 2)

    def field(value, width):
        return str(value)[:width].ljust(width).encode("ascii")

    ns = len(names)
    head = (field("0", 8) + field("X", 80) + field("X", 80) + field("01.01.20", 8)
            + field("00.00.00", 8) + field(256 * (ns + 1), 8) + field("", 44) + field(n_records, 8)
            + field(1, 8) + field(ns, 4))  # fmt: skip
    head += b"".join(field(n, 16) for n in names) + field("", 80) * ns + field("uV", 8) * ns
    head += field(-3276.8, 8) * ns + field(3276.7, 8) * ns + field(-32768, 8) * ns
    head += field(32767, 8) * ns + field("", 80) * ns + field(EDF_SFREQ, 8) * ns + field("", 32) * ns
    with open(path, "wb") as fh:
        fh.write(head)
        for start in range(0, n_records, 600):
            fh.write(np.ascontiguousarray(digital[: min(600, n_records - start)]).tobytes())
    return path


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
            payload = {
                "train_config": train_config.to_dict(),
                "class_prior": np.full(len(CLASSES), 1 / len(CLASSES)).tolist(),
                "state_dict": build_model(config).state_dict(),
            }
            save_checkpoint(payload, folder / "models" / spec.name / f"fold{fold}.pt")
        names.append(spec.name)
    weights = np.full(len(names), 1.0 / len(names))
    save_ensemble(folder / "ensemble.json", Ensemble(tuple(names), weights, method="equal"))
    return folder


def _timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def _best(fn, repeats: int) -> float:
    """The fastest of ``repeats`` runs of ``fn()``, seconds (after one warm-up run)."""
    fn()
    return min(_timed(fn)[1] for _ in range(repeats))


def _loop(predictor: Predictor, windows: np.ndarray, *, once: bool, inference: bool) -> None:
    """Score windows one at a time, as a plain loop would (the baseline and levers 1-2)."""
    for k in range(len(windows)):  # the baseline is the per-window loop
        x = torch.from_numpy(np.ascontiguousarray(windows[k : k + 1]))
        with torch.inference_mode() if inference else torch.enable_grad():
            inputs = {r: compute_representation(r, x) for r in predictor.representations} if once else {}
            for models in predictor.folds.values():
                for model, cfg in models:
                    rep = inputs[cfg.representation] if once else compute_representation(cfg.representation, x)
                    predict_features(model, cfg, rep)


def _layout(p: Predictor, channels_last: bool, bfloat16: bool = False) -> Predictor:
    """The same models in one memory layout (the fold models are shared, so set it before timing)."""
    return Predictor(p.folds, p.ensemble, device=p.device, class_prior=p.class_prior,
                     channels_last=channels_last, bfloat16=bfloat16)  # fmt: skip


def levers(run: Path, windows: np.ndarray, *, batch_size: int, repeats: int) -> dict:
    """Per-window milliseconds of each cumulative lever; the fastest configuration found."""
    n = len(windows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = Predictor.from_run(run, eeg_only=True)
    ms = {}
    ms["baseline: 1 window, each fold its representation, autograd"] = _best(
        lambda: _loop(plain, windows, once=False, inference=False), repeats)  # fmt: skip
    ms["+ each representation once for all folds"] = _best(
        lambda: _loop(plain, windows, once=True, inference=False), repeats)  # fmt: skip
    ms["+ torch.inference_mode"] = _best(lambda: _loop(plain, windows, once=True, inference=True), repeats)
    batched = f"+ batches of {batch_size} windows (Predictor)"
    ms[batched] = _best(lambda: plain.predict(windows, batch_size=batch_size), repeats)
    last = _layout(plain, True)
    t_cl = _best(lambda: last.predict(windows, batch_size=batch_size), repeats)
    channels_last = t_cl < ms[batched]
    ms["+ channels-last image models" + ("" if channels_last else " (slower here: not kept)")] = t_cl
    best = _layout(plain, channels_last)
    threads0 = torch.get_num_threads()
    sweep = {}
    for threads in sorted({1, threads0}):
        torch.set_num_threads(threads)
        for b in (8, 16, 32, 64):
            sweep[(threads, b)] = _best(lambda b=b: best.predict(windows, batch_size=b), repeats)
    threads, batch = min(sweep, key=sweep.get)
    torch.set_num_threads(threads)
    bf16 = _layout(plain, channels_last, bfloat16=True)
    t_bf16 = _best(lambda: bf16.predict(windows, batch_size=batch), repeats)
    diff = np.abs(bf16.predict(windows[:8]) - best.predict(windows[:8])).max()
    return {
        "ms": {k: 1e3 * v / n for k, v in ms.items()},
        "sweep": {k: 1e3 * v / n for k, v in sweep.items()},
        "threads": threads,
        "batch": batch,
        "channels_last": channels_last,
        "bf16_ms": 1e3 * t_bf16 / n,
        "bf16_diff": float(diff),
        "best": _layout(plain, channels_last),
    }


_CHILD = """
import json, sys, tracemalloc, warnings
import numpy as np
from hmslib import scoring
from hmslib.constants import CLASSES

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1])

warnings.simplefilter("ignore")
predictor = scoring.constant_predictor(np.full(len(CLASSES), 1 / 6))
base = status("VmRSS:")
tracemalloc.start()
timeline = scoring.score_recording(sys.argv[1], predictor, progress=False)
traced = tracemalloc.get_traced_memory()[1]
print(json.dumps({"base_kib": base, "peak_kib": status("VmHWM:"), "traced": traced,
                  "windows": len(timeline)}))
"""


def memory_row(folder: Path, hours: float) -> dict:
    """Peak memory of reading and scoring an ``hours`` long EDF, in a fresh subprocess."""
    path = write_long_edf(folder / f"long_{hours:g}h.edf", hours)
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})  # fmt: skip
    row = json.loads(out.stdout.strip().splitlines()[-1])
    row["seconds"] = time.perf_counter() - start
    row["signal_mib"] = 20 * hours * 3600 * SFREQ * 4 / 2**20
    path.unlink()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="recording length (default 60)")
    parser.add_argument("--run", type=Path, default=default_run_dir("demo"), help="trained run")
    parser.add_argument("--batch-size", type=int, default=32, help="batch of lever 3 (default 32)")
    parser.add_argument("--lever-windows", type=int, default=32,
                        help="windows the levers are timed on (default 32)")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=2, help="timings per lever, best kept")
    parser.add_argument("--memory-hours", type=float, nargs="*", default=[1.0, 8.0])
    args = parser.parse_args()
    seconds = 60.0 * args.minutes

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        edf = write_synthetic_edf(tmp, seconds)
        trained = (args.run / "ensemble.json").is_file()
        run = args.run if trained else untrained_demo_run(tmp / "run")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _, t_models = _timed(Predictor.from_run, run, eeg_only=True)
        skipped = [str(w.message).split(": ", 1)[1] for w in caught]
        (eeg, report), t_read = _timed(recording.load_recording, edf)
        every = scoring.sliding_windows(eeg)  # a view; copy only the windows timed
        pick = np.linspace(0, len(every) - 1, min(args.lever_windows, len(every))).astype(int)
        windows = np.ascontiguousarray(every[pick])
        found = levers(run, windows, batch_size=args.batch_size, repeats=args.repeats)
        torch.set_num_threads(found["threads"])
        timeline, t_score = _timed(scoring.score_eeg, eeg, found["best"], batch_size=found["batch"],
                                   segments=report.segments, progress=False)  # fmt: skip
        _, t_quality = _timed(scoring.window_quality, eeg)
        fig, t_plot = _timed(viz.plot_timeline, timeline, eeg)
        _, t_save = _timed(fig.savefig, tmp / "timeline.png", dpi=120)
        memory = [memory_row(tmp, h) for h in args.memory_hours]

    total = t_read + t_models + t_score + t_plot + t_save
    n = len(timeline)
    models = f"trained run {args.run}" if trained else "UNTRAINED models of the demo profile"
    load = os.getloadavg()[0]
    print(f"bench_score_edf: {seconds:.0f} s EDF at {EDF_SFREQ} Hz, {len(report.mapped)} leads "
          f"mapped, {n} windows (stride 10 s), {models}; {os.cpu_count()} CPUs, load average "
          f"{load:.1f} at the end")  # fmt: skip
    for message in skipped:
        print(f"  note: {message}")

    ms = found["ms"]
    base, final = next(iter(ms.values())), min(list(ms.values())[-2:])
    print(f"\nlevers (ms per window, best of {args.repeats}, {len(windows)} windows, cumulative):")
    print(f"| {'lever':<62} | {'ms/win':>7} | {'x real time':>11} | {'share of saving':>15} |")
    print(f"| {'-' * 62} | {'-' * 6}:| {'-' * 10}:| {'-' * 14}:|")
    prev = None
    for name, value in ms.items():
        share = "" if prev is None else f"{(prev - value) / (base - final):.0%}"
        kept = "not kept" not in name
        print(f"| {name:<62} | {value:7.1f} | {10e3 / value:10.0f}x | {share:>15} |")
        prev = value if kept else prev
    print("\nthreads x batch size (ms per window):")
    for (threads, b), value in found["sweep"].items():
        mark = " <- used" if (threads, b) == (found["threads"], found["batch"]) else ""
        print(f"  {threads} thread(s), batch {b:>2}: {value:6.1f}{mark}")
    print(f"bfloat16 autocast (opt-in, Predictor(bfloat16=True)): {found['bf16_ms']:.1f} ms/win, "
          f"max |p - p_float32| = {found['bf16_diff']:.1e}")  # fmt: skip

    rows = [
        ("read EDF + map + resample to 200 Hz", t_read),
        ("load checkpoints", t_models),
        (f"score windows (batches of {found['batch']}, {found['threads']} threads)", t_score),
        ("  of which quality flags (NaN / flat)", t_quality),
        ("timeline figure + PNG", t_plot + t_save),
        ("total", total),
    ]
    print(f"\n| {'stage':<46} | {'seconds':>8} | {'share':>6} |")
    print(f"| {'-' * 46} | {'-' * 7}:| {'-' * 5}:|")
    for name, sec in rows:
        print(f"| {name:<46} | {sec:8.2f} | {sec / total:6.1%} |")
    rtf = seconds / total
    rtf_base = 10.0 / (base / 1e3)
    print(f"\nreal-time factor: {rtf:.0f}x end to end (target >= {TARGET:.0f}x: "
          f"{'met' if rtf >= TARGET else 'NOT met'}); read + score only: "
          f"{seconds / (t_read + t_score):.0f}x; per-window baseline loop: {rtf_base:.0f}x "
          f"({rtf / rtf_base:.1f}x faster)")  # fmt: skip
    print(f"windows flagged bad (NaN or flat lead): {int(timeline['bad'].sum())} of {n}")

    print("\npeak memory of reading + scoring (constant predictor; fresh subprocess: peak resident "
          "memory above its resident memory after the imports, and tracemalloc's peak):")  # fmt: skip
    print(f"| {'recording':>9} | {'windows':>7} | {'signal MiB':>10} | {'peak RSS MiB':>12} | "
          f"{'RSS / signal':>12} | {'traced MiB':>10} | {'seconds':>7} |")  # fmt: skip
    print(f"| {'-' * 8}:| {'-' * 6}:| {'-' * 9}:| {'-' * 11}:| {'-' * 11}:| {'-' * 9}:| {'-' * 6}:|")
    for hours, row in zip(args.memory_hours, memory, strict=True):
        peak = (row["peak_kib"] - row["base_kib"]) / 1024
        print(f"| {hours:8g}h | {row['windows']:7d} | {row['signal_mib']:10.0f} | {peak:12.0f} | "
              f"{peak / row['signal_mib']:12.2f} | {row['traced'] / 2**20:10.0f} | "
              f"{row['seconds']:7.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()
