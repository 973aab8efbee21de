"""Throughput of EEG spectrogram images: the public notebook's librosa loop vs hmslib, in one process.

Prints one table: windows per second of

* the public notebook's loop (one ``librosa.feature.melspectrogram`` call per bipolar pair), the
  baseline, and hmslib's batched preset on the same windows (ratio and max abs difference);
* every hmslib representation (``DEFAULT_REPR`` first);
* the whole cache build (parquet reads included) with 1 and 2 worker processes;
* the same on the GPU when one is available.

Windows come from the real sample EEGs (``HMS_SAMPLES``, default ``../shared/hms-samples``) when
present, otherwise from a small synthetic data set; the cache build always uses a synthetic data
set written to a temporary folder (or ``--data DIR``).

Usage: ``python benchmarks/bench_spectrogram.py [--windows 16] [--data DIR] [--patients 8] [--threads N]``
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import librosa
import numpy as np
import pandas as pd
import torch

from hmslib import cache, io
from hmslib import representations as S
from hmslib.constants import CHAINS, EEG_CHANNELS

CH = {c: i for i, c in enumerate(EEG_CHANNELS)}


def notebook_loop(window: np.ndarray) -> np.ndarray:
    """The public notebook's per-pair librosa loop for one window ``(20, 10000)`` -> (4, 128, 256)."""
    img = np.zeros((4, 128, 256), dtype=np.float32)
    for k, chain in enumerate(CHAINS.values()):
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--windows", type=int, default=16, help="windows per timing")
    parser.add_argument(
        "--data", type=Path, help="data folder for the cache build (default: synthetic)"
    )
    parser.add_argument("--patients", type=int, default=8, help="synthetic train patients")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

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


if __name__ == "__main__":
    main()
