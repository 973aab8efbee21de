"""Exploratory tables of a Kaggle-layout data folder: the label file, the class mix, the recordings.

Each function is one notebook cell's table (01_eda); :mod:`hmslib.viz` draws their figures.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from hmslib import io, labels
from hmslib.constants import CLASSES, HIGH_AGREEMENT_VOTES, SCALP_CHANNELS, SFREQ


def dataset_summary(train: pd.DataFrame) -> pd.Series:
    """Counts of a train.csv: label rows, EEGs, spectrograms, patients, windows per EEG, vote totals."""
    votes = labels.total_votes(train)
    per_eeg = train.groupby("eeg_id").size()
    return pd.Series(
        {
            "label rows": len(train),
            "EEGs": train.eeg_id.nunique(),
            "spectrograms": train.spectrogram_id.nunique(),
            "patients": train.patient_id.nunique(),
            "windows per EEG (median)": float(per_eeg.median()),
            "windows per EEG (max)": int(per_eeg.max()),
            "consolidated groups": len(labels.consolidate_windows(train)),
            "votes per window (median)": float(np.median(votes)),
            "rows with >= 10 votes": int((votes >= HIGH_AGREEMENT_VOTES).sum()),
        },
        name="count",
    )


def class_balance(train: pd.DataFrame) -> pd.DataFrame:
    """Share of each majority class per vote-count group: rows = group, columns = ``CLASSES``."""
    table = pd.crosstab(labels.vote_group(train), labels.majority_class(train), normalize="index")
    order = [g for g, *_ in labels.VOTE_GROUPS if g in table.index]
    return table.reindex(index=order, columns=list(CLASSES), fill_value=0.0)


def recording_table(
    data_dir: str | os.PathLike,
    train: pd.DataFrame,
    *,
    max_eegs: int | None = 200,
    seed: int = 0,
) -> pd.DataFrame:
    """Per-EEG length, NaN share, flat channels and amplitude (a random sample of ``max_eegs``).

    Parameters
    ----------
    data_dir : path
        Kaggle-layout folder.
    train : pandas.DataFrame
        Its train.csv rows.
    max_eegs : int, optional
        Read at most this many EEG files (None: all; the real data has 17,089).
    seed : int
        Which EEGs are sampled.

    Returns
    -------
    pandas.DataFrame
        One row per EEG: ``eeg_id, patient_id, seconds, nan_share`` (share of NaN samples over the 19
        scalp leads), ``nan_channels`` (leads with any NaN), ``flat_channels`` (leads with a standard
        deviation below 0.1 µV), ``median_std_uv`` (median lead standard deviation, µV).
    """
    eegs = train.drop_duplicates("eeg_id")[["eeg_id", "patient_id"]]
    if max_eegs is not None and len(eegs) > max_eegs:
        eegs = eegs.sample(max_eegs, random_state=seed)
    rows = []
    for eeg_id, patient_id in eegs.itertuples(index=False):
        eeg = io.load_eeg(data_dir, eeg_id)[: len(SCALP_CHANNELS)]
        nan = np.isnan(eeg)
        with np.errstate(invalid="ignore"):
            std = np.nanstd(eeg, axis=1)
        rows.append(
            {
                "eeg_id": eeg_id,
                "patient_id": patient_id,
                "seconds": eeg.shape[1] / SFREQ,
                "nan_share": float(nan.mean()),
                "nan_channels": int(nan.any(axis=1).sum()),
                "flat_channels": int((np.nan_to_num(std, nan=0.0) < 0.1).sum()),
                "median_std_uv": float(np.nanmedian(std)) if np.isfinite(std).any() else np.nan,
            }
        )
    return pd.DataFrame(rows)
