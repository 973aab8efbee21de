"""Synthetic inputs shared by several test modules (plain functions, imported by name)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from hmslib.constants import PRED_COLUMNS, VOTE_COLUMNS


def band_limited(seconds: float, sfreq: float, n_channels: int, *, seed: int = 0) -> np.ndarray:
    """Sums of sinusoids (0.7-40 Hz, 10-40 µV each) on a -120 µV offset, sampled at ``sfreq``."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sfreq))) / sfreq
    freqs = rng.uniform(0.7, 40.0, size=(n_channels, 6, 1))
    amps = rng.uniform(10.0, 40.0, size=(n_channels, 6, 1))
    phases = rng.uniform(0, 2 * np.pi, size=(n_channels, 6, 1))
    return (amps * np.sin(2 * np.pi * freqs * t + phases)).sum(axis=1) - 120.0


def oof_frame(n: int, seed: int, n_folds: int = 3) -> pd.DataFrame:
    """A random OOF table: 12 patients, folds by patient, 1-25 votes per row."""
    rng = np.random.default_rng(seed)
    patients = rng.integers(0, 12, n)
    votes = rng.multinomial(1, np.full(6, 1 / 6), size=(n, 25)).cumsum(axis=1)
    votes = votes[np.arange(n), rng.integers(0, 25, n)]
    preds = rng.dirichlet(np.full(6, 0.8), size=n)
    df = pd.DataFrame(
        {
            "label_id": rng.permutation(10 * n)[:n] + 1000,
            "eeg_id": patients * 10 + rng.integers(0, 2, n),
            "patient_id": patients,
            "fold": patients % n_folds,
            "total_votes": votes.sum(axis=1),
        }
    )
    df[list(VOTE_COLUMNS)] = votes
    df[list(PRED_COLUMNS)] = preds
    return df
