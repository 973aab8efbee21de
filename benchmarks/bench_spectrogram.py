"""Throughput of EEG spectrogram images: the public notebook's librosa loop vs hmslib, in one process.

Prints one table: windows per second of

* the public notebook's loop (one ``librosa.feature.melspectrogram`` call per bipolar pair), the
  baseline, and hmslib's batched preset on the same windows (ratio and max abs difference);
* every hmslib representation (``DEFAULT_REPR`` first);
* the whole cache build (parquet reads included) with 1 and 2 worker processes;
* the same on the GPU when one is available;

and a second table on the zero-phase band-pass (0.5-20 Hz, Butterworth order 4) of a batch of
double-banana windows (default 64 x 16 x 10000 float32 µV): :func:`scipy.signal.sosfiltfilt`, the
baseline, against :func:`hmslib.signal.bandpass` on numpy float32 and on a torch tensor (speed-up
and max abs difference in µV), and the band-pass's share of building the default representation
(``chain_mel``) with hmslib's filter ("after") and with ``hmslib.signal._filtfilt`` swapped, within
this process, for a ``sosfiltfilt`` wrapper ("before", the filter hmslib used until now).

Windows come from the real sample EEGs (``HMS_SAMPLES``, default ``../shared/hms-samples``) when
present, otherwise from a small synthetic data set; the cache build always uses a synthetic data
set written to a temporary folder (or ``--data DIR``).

Usage: ``python benchmarks/bench_spectrogram.py [--windows 16] [--data DIR] [--patients 8] [--threads N]
[--bandpass-batch 64] [--bandpass-only]``
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import librosa
import numpy as np
import pandas as pd
import scipy.signal as sps
import torch

from hmslib import cache, io
from hmslib import representations as S
from hmslib import signal as hsignal
from hmslib.constants import EEG_CHANNELS

CH = {c: i for i, c in enumerate(EEG_CHANNELS)}


#: The public notebook's chains as published (``FEATS``): its 3rd image is the right lateral chain.
NOTEBOOK_FEATS = [
    ["Fp1", "F7", "T3", "T5", "O1"],
    ["Fp1", "F3", "C3", "P3", "O1"],
    ["Fp2", "F8", "T4", "T6", "O2"],
    ["Fp2", "F4", "C4", "P4", "O2"],
]


def notebook_loop(window: np.ndarray) -> np.ndarray:
    """The public notebook's per-pair librosa loop for one window ``(20, 10000)`` -> (4, 128, 256),
    images in the notebook's own chain order (``NOTEBOOK_FEATS``)."""
    img = np.zeros((4, 128, 256), dtype=np.float32)
    for k, chain in enumerate(NOTEBOOK_FEATS):
        for kk in range(4):
            x = window[CH[chain[kk]]] - window[CH[chain[kk + 1]]]
            if np.isnan(x).mean() < 1:
                x = np.nan_to_num(x, nan=np.nanmean(x))
            else:
                x[:] = 0
            mel = librosa.feature.melspectrogram(
                y=x, sr=200, hop_length=len(x) // 256, n_fft=1024, n_mels=128, fmin=0, fmax=20,
                win_length=128,
            )  # fmt: skip
            width = (mel.shape[1] // 32) * 32
            db = librosa.power_to_db(mel, ref=np.max).astype(np.float32)[:, :width]
            img[k] += (db + 40) / 40
        img[k] /= 4.0
    return img


def timed(fn, repeat: int = 5) -> tuple[float, object]:
    """Best wall time of ``repeat`` calls (after one warm-up call) and the last result."""
    out = fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def sample_windows(n: int, synth_dir: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """``n`` EEG windows (n, 20, 10000) and Kaggle spectrogram windows (n, 4, 100, 300)."""
    samples = Path(
        os.environ.get(
            "HMS_SAMPLES", Path(__file__).resolve().parents[1].parent / "shared" / "hms-samples"
        )
    )
    root = samples if (samples / "train.csv").is_file() else synth_dir
    df = io.read_train_csv(root)
    rows = df.iloc[np.arange(n) % len(df)]
    eegs = {e: io.load_eeg(root, e) for e in rows["eeg_id"].unique()}
    specs = {s: io.load_spectrogram(root, s) for s in rows["spectrogram_id"].unique()}
    eeg = np.stack(
        [io.eeg_window(eegs[r.eeg_id], r.eeg_label_offset_seconds) for r in rows.itertuples()]
    )
    spec = np.stack(
        [
            io.spectrogram_window(specs[r.spectrogram_id], r.spectrogram_label_offset_seconds)
            for r in rows.itertuples()
        ]
    )
    return eeg, spec, "real sample EEG" if root == samples else "synthetic EEG"


def sosfiltfilt_filter(sos: np.ndarray, x, what: str):
    """``hmslib.signal._filtfilt`` as it was: :func:`scipy.signal.sosfiltfilt` on the CPU, numpy in
    numpy out (float32 kept), a tensor round-tripped through numpy."""
    if isinstance(x, torch.Tensor):
        dtype = np.float64 if x.dtype == torch.float64 else np.float32
        out = sps.sosfiltfilt(sos, x.detach().cpu().numpy(), axis=-1)
        return torch.from_numpy(np.ascontiguousarray(out, dtype=dtype)).to(x.device)
    x = np.asarray(x)
    dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.float64
    return sps.sosfiltfilt(sos, x, axis=-1).astype(dtype, copy=False)


@contextlib.contextmanager
def timed_filter(impl: Callable) -> Iterator[list[float]]:
    """Within the block, ``hmslib.signal._filtfilt`` is ``impl`` and the seconds of each of its
    calls are appended to the yielded list."""
    spent: list[float] = []
    original = hsignal._filtfilt

    def wrapper(sos, x, what):
        start = time.perf_counter()
        out = impl(sos, x, what)
        spent.append(time.perf_counter() - start)
        return out

    hsignal._filtfilt = wrapper
    try:
        yield spent
    finally:
        hsignal._filtfilt = original


def bandpass_table(eeg: np.ndarray, batches: list[int], repeat: int = 7) -> pd.DataFrame:
    """Band-pass timings on double-banana windows built from ``eeg`` (repeated to each batch size),
    and the band-pass's share of building ``DEFAULT_REPR`` on ``eeg`` before and after."""
    sos = hsignal.bandpass_sos(0.5, 20.0, 200.0, 4)
    rows = []
    for batch in batches:
        windows = np.nan_to_num(eeg[np.arange(batch) % len(eeg)])
        x = np.ascontiguousarray(hsignal.montage(windows, "double_banana")[0], dtype=np.float32)
        xt = torch.from_numpy(x.copy())
        shape = "x".join(map(str, x.shape))
        t_ref, ref = timed(lambda x=x: sps.sosfiltfilt(sos, x, axis=-1), repeat=repeat)
        t_np, out_np = timed(lambda x=x: hsignal.bandpass(x), repeat=repeat)
        t_pt, out_pt = timed(lambda xt=xt: hsignal.bandpass(xt), repeat=repeat)
        rows += [
            (f"scipy sosfiltfilt, numpy float32 {shape}", t_ref, 0.0, None, t_ref),
            (f"hmslib bandpass, numpy float32 {shape}", t_np, float(np.abs(out_np - ref).max()),
             None, t_ref),
            (f"hmslib bandpass, torch float32 {shape}", t_pt,
             float(np.abs(out_pt.numpy() - ref).max()), None, t_ref),
        ]  # fmt: skip
    ref64 = sps.sosfiltfilt(sos, x.astype(np.float64), axis=-1)
    rows += [
        ("  (scipy float32 vs scipy float64)", None, float(np.abs(ref - ref64).max()), None, None),
        ("  (hmslib float32 vs scipy float64)", None, float(np.abs(out_np - ref64).max()), None,
         None),
    ]  # fmt: skip

    # the band-pass inside DEFAULT_REPR, before (sosfiltfilt) and after (hmslib's FFT filter)
    images, t_before = {}, None
    for label, impl in (("before: sosfiltfilt", sosfiltfilt_filter), ("after: hmslib", hsignal._filtfilt)):
        with timed_filter(impl) as spent:
            t_repr, images[label] = timed(
                lambda: S.compute_representation(S.DEFAULT_REPR, eeg), repeat=repeat
            )
        per_build = len(spent) // (repeat + 1)  # filter calls per build (one per chunk)
        t_filter = min(sum(spent[i : i + per_build]) for i in range(0, len(spent), per_build))
        t_before = t_before or t_repr
        rows.append(
            (f"{S.DEFAULT_REPR} ({len(eeg)} windows), {label}", t_repr, None, t_filter / t_repr,
             t_before)
        )  # fmt: skip
    before, after = images.values()
    rows.append(
        (f"  ({S.DEFAULT_REPR} after vs before)", None, float((after - before).abs().max()), None,
         None)
    )  # fmt: skip
    table = pd.DataFrame(
        rows, columns=["what", "seconds", "max_abs_diff", "bandpass_share", "baseline_s"]
    )
    # filter rows against sosfiltfilt on the same batch; DEFAULT_REPR rows against "before"
    table["speedup"] = table.pop("baseline_s").astype(float) / table["seconds"].astype(float)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--windows", type=int, default=16, help="windows per timing")
    parser.add_argument(
        "--data", type=Path, help="data folder for the cache build (default: synthetic)"
    )
    parser.add_argument("--patients", type=int, default=8, help="synthetic train patients")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--bandpass-batch", type=int, nargs="+", default=[16, 64],
                        help="batch sizes (windows) of the band-pass table")  # fmt: skip
    parser.add_argument("--bandpass-only", action="store_true", help="print only the band-pass table")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.bandpass_only:
        with tempfile.TemporaryDirectory() as tmp:
            data = args.data
            if data is None:
                from hmslib.synthetic import generate

                data = generate(Path(tmp) / "data", n_patients=args.patients, progress=False)
            eeg, _, source = sample_windows(args.windows, data)
        print_bandpass(bandpass_table(eeg, args.bandpass_batch), source)
        return

    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            from hmslib.synthetic import generate

            data = generate(Path(tmp) / "data", n_patients=args.patients, progress=False)
        eeg, spec, source = sample_windows(args.windows, data)
        n = len(eeg)
        rows = []

        t_loop, ref = timed(lambda: np.stack([notebook_loop(w) for w in eeg]), repeat=1)
        rows.append(("public notebook: librosa loop", "cpu", n, t_loop, 0.0))
        t_ours, ours = timed(lambda: S.public_notebook_images(eeg))
        diff = float(np.abs(ours.numpy() - ref).max())
        rows.append(("public notebook: hmslib preset", "cpu", n, t_ours, diff))
        for name in sorted(S.REPRESENTATIONS, key=lambda k: k != S.DEFAULT_REPR):
            t, _ = timed(lambda name=name: S.compute_representation(name, eeg, spec))
            label = f"repr {name}" + (" (DEFAULT_REPR)" if name == S.DEFAULT_REPR else "")
            rows.append((label, "cpu", n, t, None))

        n_windows = len(io.read_train_csv(data))
        for workers in (1, 2):
            out = Path(tmp) / f"cache{workers}"
            start = time.perf_counter()
            cache.build_cache(data, out, representation=S.DEFAULT_REPR, workers=workers, progress=False)
            rows.append(
                (f"cache build {S.DEFAULT_REPR}, {workers} worker(s)", "cpu", n_windows,
                 time.perf_counter() - start, None)
            )  # fmt: skip

        if torch.cuda.is_available():

            def on_gpu(fn):
                def run():
                    out = fn()
                    torch.cuda.synchronize()
                    return out

                return run

            gpu_eeg = torch.from_numpy(eeg).cuda()
            t, out = timed(on_gpu(lambda: S.public_notebook_images(gpu_eeg)))
            rows.append(
                (
                    "public notebook: hmslib preset",
                    "cuda",
                    n,
                    t,
                    float(np.abs(out.cpu().numpy() - ref).max()),
                )
            )
            for name in (S.DEFAULT_REPR, "mel16", "cwt"):
                t, _ = timed(
                    on_gpu(
                        lambda name=name: S.compute_representation(
                            name, gpu_eeg, spec, device="cuda"
                        )
                    )
                )
                rows.append((f"repr {name}", "cuda", n, t, None))

    table = pd.DataFrame(rows, columns=["what", "device", "windows", "seconds", "max_abs_diff"])
    table["windows_per_s"] = table["windows"] / table["seconds"]
    table["ratio_vs_loop"] = table["windows_per_s"] / table["windows_per_s"].iloc[0]
    print(
        f"bench_spectrogram: {source}, {n} windows per timing, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), librosa {librosa.__version__}, numpy {np.__version__}"
    )
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}", na_rep="-"))
    print()
    print_bandpass(bandpass_table(eeg, args.bandpass_batch), source)


def print_bandpass(table: pd.DataFrame, source: str) -> None:
    """The band-pass table with its header line."""
    print(
        f"bench_spectrogram band-pass: {source}, 0.5-20 Hz Butterworth order 4, zero phase; "
        f"speedup against sosfiltfilt on the same batch (chain_mel rows: against "
        f"chain_mel before); "
        f"max_abs_diff in uV (chain_mel: in its units); torch {torch.get_num_threads()} threads"
    )
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}", na_rep="-"))


if __name__ == "__main__":
    main()
