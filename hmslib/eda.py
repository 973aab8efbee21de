"""Exploratory tables and figures for the EDA and preprocessing notebooks (01, 02).

Each function is one notebook cell's work: a table of the label file or the recordings, or a figure
that a reader would rather look at than read.
"""

from __future__ import annotations

import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from hmslib import io, labels
from hmslib.constants import CLASSES, SFREQ, SPEC_REGIONS


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
            "rows with >= 10 votes": int((votes >= labels.HIGH_AGREEMENT_VOTES).sum()),
        },
        name="count",
    )


def class_balance(train: pd.DataFrame) -> pd.DataFrame:
    """Share of each majority class per vote-count group: rows = group, columns = ``CLASSES``."""
    table = pd.crosstab(labels.vote_group(train), labels.majority_class(train), normalize="index")
    order = [g for g, *_ in labels.VOTE_GROUPS if g in table.index]
    return table.reindex(index=order, columns=list(CLASSES), fill_value=0.0)


def plot_votes(train: pd.DataFrame) -> Figure:
    """Two panels: histogram of votes per window, and class balance by vote-count group."""
    fig, (ax_hist, ax_bal) = plt.subplots(1, 2, figsize=(12, 3.8))
    votes = labels.total_votes(train)
    ax_hist.hist(votes, bins=np.arange(0.5, votes.max() + 1.5), color="0.35")
    ax_hist.set(xlabel="votes per window", ylabel="windows", title="How many experts labelled each window")
    class_balance(train).plot.barh(stacked=True, ax=ax_bal, colormap="tab10", width=0.8)
    ax_bal.set(xlabel="share of windows (majority class)", ylabel="votes", title="Class balance by vote count")
    ax_bal.legend(ncol=3, fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


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
        eeg = io.load_eeg(data_dir, eeg_id)[:19]
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


def plot_recordings(table: pd.DataFrame) -> Figure:
    """Histograms of recording length, NaN share and lead amplitude from :func:`recording_table`."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    axes[0].hist(table.seconds, bins=30, color="0.35")
    axes[0].set(xlabel="seconds", ylabel="EEGs", title="Recording length")
    axes[1].hist(100 * table.nan_share, bins=30, color="tab:red")
    axes[1].set(xlabel="% NaN samples", title="Missing samples")
    axes[2].hist(table.median_std_uv.dropna(), bins=30, color="tab:blue")
    axes[2].set(xlabel="median lead std (µV)", title="Amplitude")
    fig.tight_layout()
    return fig


def plot_spectrogram_comparison(kaggle_window: np.ndarray, eeg_image: np.ndarray, *, title: str = "") -> Figure:
    """The competition's spectrogram of a window beside one computed from its EEG.

    Parameters
    ----------
    kaggle_window : numpy.ndarray
        ``(4, 100, 300)`` Kaggle spectrogram window (regions LL, RL, LP, RP; power).
    eeg_image : numpy.ndarray
        ``(4, n_freqs, n_times)`` EEG-derived image per chain (e.g. ``public_notebook`` output,
        chains LL, LP, RP, RL).
    title : str
        Figure title.
    """
    fig, axes = plt.subplots(2, 4, figsize=(14, 5), sharey="row")
    log_power = np.log1p(np.clip(np.nan_to_num(kaggle_window, nan=0.0), 0, None))
    for i, region in enumerate(SPEC_REGIONS):
        axes[0, i].imshow(log_power[i], origin="lower", aspect="auto", cmap="magma",
                          extent=(0, 600, 0.59, 19.92))  # fmt: skip
        axes[0, i].set_title(f"Kaggle {region} (600 s)", fontsize=9)
    for i, chain in enumerate(("LL", "LP", "RP", "RL")):
        axes[1, i].imshow(eeg_image[i], origin="lower", aspect="auto", cmap="magma",
                          extent=(0, 50, 0, 20))  # fmt: skip
        axes[1, i].set_title(f"EEG {chain} (50 s)", fontsize=9)
    axes[0, 0].set_ylabel("Hz")
    axes[1, 0].set_ylabel("Hz")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_filter_response(
    low: float = 0.5, high: float = 20.0, *, sfreq: float = SFREQ, orders: tuple[int, ...] = (2, 4)
) -> Figure:
    """Magnitude response of the zero-phase band-pass (applied forward and backward) per order."""
    from scipy.signal import sosfreqz

    from hmslib.signal import bandpass_sos

    fig, ax = plt.subplots(figsize=(7, 3.4))
    for order in orders:
        freqs, h = sosfreqz(bandpass_sos(low, high, sfreq, order), worN=4096, fs=sfreq)
        ax.semilogx(freqs[1:], 20 * np.log10(np.abs(h[1:]) ** 2 + 1e-12), label=f"order {order}")
    for edge in (low, high):
        ax.axvline(edge, color="0.6", ls="--", lw=0.8)
    ax.set(xlabel="Hz", ylabel="gain (dB)", ylim=(-80, 5), title=f"Zero-phase band-pass {low}-{high} Hz")
    ax.legend()
    fig.tight_layout()
    return fig


def plot_representation(x: np.ndarray, name: str, *, title: str | None = None, max_channels: int = 16) -> Figure:
    """Show one window's representation: images channel by channel, 1-D inputs as stacked traces.

    Parameters
    ----------
    x : numpy.ndarray
        ``(C, H, W)`` image channels or ``(C, T)`` raw channels of one window.
    name : str
        Representation name (for the title).
    title : str, optional
        Figure title (default: name and shape).
    max_channels : int
        Show at most this many channels.
    """
    x = np.asarray(x)
    n = min(len(x), max_channels)
    if x.ndim == 2:
        fig, ax = plt.subplots(figsize=(12, 0.45 * n + 1))
        spread = 4 * np.nanstd(x[:n]) + 1e-6
        t = np.arange(x.shape[1]) / SFREQ
        for i in range(n):
            ax.plot(t, x[i] - i * spread, lw=0.5, color="k")
        ax.set(yticks=[], xlabel="s")
    else:
        cols = min(n, 4)
        rows = int(np.ceil(n / cols))
        fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False)
        for i, ax in enumerate(axes.ravel()):
            if i < n:
                ax.imshow(x[i], origin="lower", aspect="auto", cmap="magma")
                ax.set_title(f"channel {i}", fontsize=8)
            ax.axis("off")
    fig.suptitle(title or f"{name}: shape {tuple(x.shape)}")
    fig.tight_layout()
    return fig

