"""Speed of the synthetic data generator, and of its Kaggle spectrogram against a full-rate reference.

Prints one table: seconds and labelled windows generated per second for the demo preset with one
process (the baseline) and with several, and for ``kaggle_spectrogram`` (decimated to 50 Hz before
its FFTs) against a direct 200 Hz computation of the same definition in float64 (the baseline),
with the largest difference between the two. ``--bench`` adds the bench preset.

    python benchmarks/bench_synthetic.py [--bench] [--workers N]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from hmslib import spectral, synthetic
from hmslib.constants import CHAINS, EEG_CHANNELS, SPEC_REGIONS


def _reference_spectrogram(eeg: np.ndarray) -> np.ndarray:
    """Same definition as ``kaggle_spectrogram``, computed at 200 Hz with 1024-point FFTs, float64."""
    ch = {name: i for i, name in enumerate(EEG_CHANNELS)}
    pairs = [
        (ch[a], ch[b]) for r in SPEC_REGIONS for a, b in zip(CHAINS[r], CHAINS[r][1:], strict=False)
    ]
    bip = np.stack([eeg[a] - eeg[b] for a, b in pairs]).astype(np.float64)
    n_cols = eeg.shape[1] // 400
    padded = np.pad(bip, ((0, 0), (768, 768)))
    window = np.hanning(1025)[:-1]  # periodic Hann
    out = np.empty((16, n_cols, 100))
    for j in range(n_cols):
        centre = 200 + 400 * j + 768
        frames = np.stack(
            [padded[:, centre - 768 : centre + 256], padded[:, centre - 256 : centre + 768]]
        )
        frames -= frames.mean(axis=-1, keepdims=True)
        power = np.abs(np.fft.rfft(frames * window, axis=-1)[..., 3:103]) ** 2
        out[:, j] = power.mean(axis=0) / (200 * np.sum(window**2))
    return out.reshape(4, 4, n_cols, 100).mean(axis=1).transpose(0, 2, 1)


def _time_generate(preset: str, workers: int) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        path = synthetic.generate(
            Path(tmp) / "data", preset=preset, progress=False, workers=workers
        )
        seconds = time.perf_counter() - start
        info = json.loads((path / "synthetic.json").read_text())
    return seconds, info["counts"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", action="store_true", help="also time the bench preset")
    parser.add_argument("--workers", type=int, default=min(os.cpu_count() or 1, 8))
    args = parser.parse_args()

    rows = []
    for preset in ("demo", "bench") if args.bench else ("demo",):
        base = None
        for workers in sorted({1, args.workers}):
            seconds, counts = _time_generate(preset, workers)
            windows = counts["rows"] + counts["test_eegs"]
            base = base or seconds
            rows.append(
                (
                    f"generate {preset}, {workers} process(es)",
                    f"{counts['patients']} patients, {counts['eegs']} EEGs, {windows} windows",
                    seconds,
                    f"{windows / seconds:.0f} windows/s",
                    base / seconds,
                )
            )

    rng = np.random.default_rng(0)
    eeg = (rng.standard_normal((20, 600 * 200)) * 20).astype(np.float32)
    eeg[0] += 60 * np.sin(2 * np.pi * 1.7 * np.arange(eeg.shape[1]) / 200).astype(np.float32)
    timings = {}
    for name, fn in (
        ("reference", _reference_spectrogram),
        ("kaggle_spectrogram", spectral.kaggle_spectrogram),
    ):
        fn(eeg[:, :4000])  # warm up (imports, FFT plans)
        start = time.perf_counter()
        result = fn(eeg)
        timings[name] = (time.perf_counter() - start, result)
    ref_s, ref = timings["reference"]
    fast_s, fast = timings["kaggle_spectrogram"]
    deviation = np.max(np.abs(np.log(fast) - np.log(ref))[:, :, 2:-2])
    rows.append(("spectrogram 600 s, 200 Hz 1024-pt FFT (baseline)", "float64", ref_s, "", 1.0))
    rows.append(
        (
            "spectrogram 600 s, kaggle_spectrogram",
            f"max |log diff| {deviation:.1e}",
            fast_s,
            "",
            ref_s / fast_s,
        )
    )

    print(f"{'what':<52} {'size / check':<44} {'seconds':>8} {'rate':>14} {'speed-up':>9}")
    for what, size, seconds, rate, ratio in rows:
        print(f"{what:<52} {size:<44} {seconds:>8.2f} {rate:>14} {ratio:>8.2f}x")


if __name__ == "__main__":
    main()
