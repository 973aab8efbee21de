"""Every figure of the project: label tables, EEG windows, representations, OOF analysis, timelines.

Each function draws one figure a reader would rather look at than read and returns a
:class:`matplotlib.figure.Figure` (drawn into ``ax``'s figure when an ``ax`` is given). matplotlib is
imported inside the functions, so importing hmslib for training or inference does not load it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from hmslib import io, labels
from hmslib import signal as hsignal
from hmslib._checks import check_option
from hmslib.analysis import confusion, kl_breakdown, model_column, reliability, select_model
from hmslib.constants import (
    CHAIN_NAMES,
    CHAINS,
    CLASSES,
    CONSENSUS_NAMES,
    LABEL_CENTER_SECONDS,
    SFREQ,
    SPEC_REGIONS,
)
from hmslib.eda import class_balance
from hmslib.labels import VOTE_GROUPS, total_votes, vote_probabilities

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# --------------------------------------------------------------------------------------------------
# the label table and the recordings
# --------------------------------------------------------------------------------------------------


def plot_votes(train: pd.DataFrame) -> Figure:
    """Two panels: histogram of votes per window, and class balance by vote-count group."""
    import matplotlib.pyplot as plt

    fig, (ax_hist, ax_bal) = plt.subplots(1, 2, figsize=(12, 3.8))
    votes = labels.total_votes(train)
    ax_hist.hist(votes, bins=np.arange(0.5, votes.max() + 1.5), color="0.35")
    ax_hist.set(xlabel="votes per window", ylabel="windows", title="How many experts labelled each window")
    class_balance(train).plot.barh(stacked=True, ax=ax_bal, colormap="tab10", width=0.8)
    ax_bal.set(xlabel="share of windows (majority class)", ylabel="votes", title="Class balance by vote count")
    ax_bal.legend(ncol=3, fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def plot_recordings(table: pd.DataFrame) -> Figure:
    """Histograms of recording length, NaN share and lead amplitude from :func:`recording_table`."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    axes[0].hist(table.seconds, bins=30, color="0.35")
    axes[0].set(xlabel="seconds", ylabel="EEGs", title="Recording length")
    axes[1].hist(100 * table.nan_share, bins=30, color="tab:red")
    axes[1].set(xlabel="% NaN samples", title="Missing samples")
    axes[2].hist(table.median_std_uv.dropna(), bins=30, color="tab:blue")
    axes[2].set(xlabel="median lead std (µV)", title="Amplitude")
    fig.tight_layout()
    return fig


def plot_spectrogram_comparison(
    kaggle_window: np.ndarray, eeg_image: np.ndarray, *, title: str = "", chains=CHAIN_NAMES
) -> Figure:
    """The competition's spectrogram of a window beside one computed from its EEG.

    Parameters
    ----------
    kaggle_window : numpy.ndarray
        ``(4, 100, 300)`` Kaggle spectrogram window (regions LL, RL, LP, RP; power).
    eeg_image : numpy.ndarray
        ``(4, n_freqs, n_times)`` EEG-derived image per chain (e.g. ``public_notebook`` output).
    title : str
        Figure title.
    chains : sequence of str
        Chain of each image of ``eeg_image`` (default LL, LP, RP, RL; the ``public_notebook``
        images come in ``representations.PUBLIC_NOTEBOOK_CHAINS`` order).
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 4, figsize=(14, 5), sharey="row")
    log_power = np.log1p(np.clip(np.nan_to_num(kaggle_window, nan=0.0), 0, None))
    for i, region in enumerate(SPEC_REGIONS):
        axes[0, i].imshow(log_power[i], origin="lower", aspect="auto", cmap="magma",
                          extent=(0, 600, 0.59, 19.92))  # fmt: skip
        axes[0, i].set_title(f"Kaggle {region} (600 s)", fontsize=9)
    for i, chain in enumerate(chains):
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
    import matplotlib.pyplot as plt
    from scipy.signal import sosfreqz

    fig, ax = plt.subplots(figsize=(7, 3.4))
    for order in orders:
        freqs, h = sosfreqz(hsignal.bandpass_sos(low, high, sfreq, order), worN=4096, fs=sfreq)
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
    import matplotlib.pyplot as plt

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


# --------------------------------------------------------------------------------------------------
# EEG windows in the double banana
# --------------------------------------------------------------------------------------------------


#: Trace colours by hemisphere (left, right, midline).
_COLOURS = {"L": "tab:blue", "R": "tab:red", "M": "0.2"}


def _chain_of(names: list[str]) -> list[str]:
    """Chain name (LL, LP, RP, RL or Z for the midline) of each bipolar derivation."""
    pair_chain = {
        f"{a}-{b}": chain
        for chain, electrodes in CHAINS.items()
        for a, b in zip(electrodes, electrodes[1:], strict=False)
    }
    return [pair_chain.get(name, "Z") for name in names]


def plot_eeg_window(
    eeg: np.ndarray,
    *,
    sfreq: float = SFREQ,
    ax=None,
    title: str | None = None,
    montage: str = "double_banana",
    scale_uv: float = 100.0,
    band: tuple[float, float] | None = (0.5, 20.0),
    highlight_center: bool = True,
    center_s: float = LABEL_CENTER_SECONDS,
    negative_up: bool = True,
):
    """Draw one EEG window in a bipolar montage, the way it is read clinically.

    Parameters
    ----------
    eeg : numpy.ndarray
        Shape ``(20, n_samples)``: the Kaggle columns in ``EEG_CHANNELS`` order, microvolts
        (NaN allowed: drawn as gaps).
    sfreq : float
        Sampling rate, Hz.
    ax : matplotlib.axes.Axes, optional
        Where to draw (default: a new figure).
    title : str, optional
        Axes title.
    montage : {"double_banana", "double_banana_18"}
        The 16 chain derivations (LL, LP, RP, RL), or the same plus Fz-Cz, Cz-Pz.
    scale_uv : float
        Microvolts per trace spacing (the display sensitivity); a bar of this height is drawn.
    band : (float, float) or None
        Display band-pass, Hz (:func:`hmslib.signal.bandpass`); None shows the signal unfiltered.
    highlight_center : bool
        Shade the central ``center_s`` seconds (the part the experts labelled).
    center_s : float
        Width of the shaded centre, seconds.
    negative_up : bool
        Clinical convention: negative potentials deflect upwards.

    Returns
    -------
    matplotlib.figure.Figure
        The figure of ``ax`` (or a new one): one line per derivation, top to bottom in montage
        order.

    Raises
    ------
    ValueError
        ``eeg`` is not ``(20, n)``, ``scale_uv`` is not positive or the montage is not bipolar.
    """
    import matplotlib.pyplot as plt

    eeg = np.asarray(eeg, dtype=np.float32)
    if eeg.ndim != 2 or eeg.shape[0] != 20:
        raise ValueError(
            f"plot_eeg_window expects one window of shape (20, n_samples), got {eeg.shape}"
        )
    if not scale_uv > 0:
        raise ValueError(f"scale_uv must be > 0 microvolts, got {scale_uv}")
    check_option("bipolar montage", montage, ("double_banana", "double_banana_18"))
    gaps, _ = hsignal.montage(np.isnan(eeg).astype(np.float32), name=montage)
    data, names = hsignal.montage(hsignal.repair_nans(eeg)[0], name=montage)
    if band is not None:
        data = hsignal.bandpass(data, low=band[0], high=band[1], sfreq=sfreq)
    data = np.where(gaps != 0, np.nan, data)

    chains = _chain_of(names)
    group = np.cumsum([i > 0 and c != chains[i - 1] for i, c in enumerate(chains)])
    offsets = -(np.arange(len(names)) + 0.8 * group)
    sign = -1.0 if negative_up else 1.0
    if ax is None:
        _, ax = plt.subplots(figsize=(12, 0.45 * len(names) + 1.5), layout="constrained")
    n = eeg.shape[1]
    t = np.arange(n) / sfreq
    for trace, offset, chain in zip(data, offsets, chains, strict=True):
        colour = _COLOURS["M" if chain == "Z" else chain[0]]
        ax.plot(t, offset + sign * trace / scale_uv, color=colour, lw=0.6)
    if highlight_center:
        mid = n / sfreq / 2
        ax.axvspan(mid - center_s / 2, mid + center_s / 2, color="gold", alpha=0.18, lw=0)
    # scale bar: scale_uv vertically, 1 s horizontally, in the top right corner
    x_bar, y_bar = t[-1] + 0.01 * t[-1], offsets[0] + 0.5
    ax.plot([x_bar, x_bar], [y_bar, y_bar - 1.0], color="k", lw=1.5, clip_on=False)
    ax.plot([x_bar - 1.0, x_bar], [y_bar, y_bar], color="k", lw=1.5, clip_on=False)
    ax.text(x_bar + 0.01 * t[-1], y_bar - 0.5, f"{scale_uv:g} µV\n1 s", va="center", fontsize=8)
    ax.set_yticks(offsets, names, fontsize=8)
    ax.set_ylim(offsets[-1] - 1.2, offsets[0] + 1.2)
    ax.set_xlim(0, t[-1])
    ax.set_xlabel("time (s)")
    ax.spines[["top", "right", "left"]].set_visible(False)
    ax.tick_params(axis="y", length=0)
    if title:
        ax.set_title(title, fontsize=10, loc="left")
    return ax.figure


def plot_class_examples(
    data_dir: str | os.PathLike,
    *,
    seed: int = 0,
    seconds: float = 20.0,
    min_votes: int = 10,
    top: int = 5,
    scale_uv: float = 100.0,
):
    """One high-agreement window of each class of a data folder, in double-banana view.

    For each class, among the train rows where it has the most votes -- only those with at least
    ``min_votes`` votes and a 60 % share when there are any -- one of the ``top`` rows with the
    highest share of votes for that class is picked at random (``seed``).

    Parameters
    ----------
    data_dir : path
        A Kaggle-layout folder (real or synthetic).
    seed : int
        Which of the top rows to show.
    seconds : float
        Width of the view around the window centre, seconds (at most 50).
    min_votes : int
        Least number of votes of the rows preferred.
    top : int
        Number of highest-agreement rows to draw from.
    scale_uv : float
        Display sensitivity, microvolts per trace spacing.

    Returns
    -------
    matplotlib.figure.Figure
        Six panels in ``CLASSES`` order; a class without any row says so in its panel.

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`hmslib.io.read_train_csv` and :func:`hmslib.io.load_eeg_window`; ``seconds`` not
        in ``(0, 50]``.
    """
    import matplotlib.pyplot as plt

    if not 0 < seconds <= 50:
        raise ValueError(f"seconds must be in (0, 50], got {seconds}")
    train = io.read_train_csv(data_dir)
    probs = vote_probabilities(train)
    votes = total_votes(train)
    majority = probs.argmax(axis=1)
    rng = np.random.default_rng(seed)
    fig, axes = plt.subplots(3, 2, figsize=(16, 16), layout="constrained")
    for k, ax in enumerate(axes.ravel()):
        rows = np.flatnonzero(majority == k)
        if not len(rows):
            ax.text(
                0.5,
                0.5,
                f"{CONSENSUS_NAMES[k]}: no window with this majority vote",
                ha="center",
                va="center",
                transform=ax.transAxes,
            )
            ax.set_axis_off()
            continue
        confident = rows[(votes[rows] >= min_votes) & (probs[rows, k] >= 0.6)]
        if len(confident):
            rows = confident
        best = rows[np.lexsort((-votes[rows], -probs[rows, k]))[:top]]  # share, then votes
        pos = int(rng.choice(best))
        row = train.iloc[pos]
        eeg = io.load_eeg_window(
            data_dir, int(row["eeg_id"]), float(row["eeg_label_offset_seconds"])
        )
        half = int(round(seconds * SFREQ / 2))
        mid = eeg.shape[1] // 2
        title = (
            f"{CONSENSUS_NAMES[k]}: {probs[pos, k]:.0%} of {votes[pos]} votes"
            f" | eeg {int(row['eeg_id'])} at {row['eeg_label_offset_seconds']:g} s"
        )
        plot_eeg_window(eeg[:, mid - half : mid + half], ax=ax, title=title, scale_uv=scale_uv)
    return fig


# --------------------------------------------------------------------------------------------------
# out-of-fold analysis
# --------------------------------------------------------------------------------------------------


def _axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    """``ax`` and its figure, or a new single-axes figure."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=figsize, layout="constrained")
        return fig, ax
    return ax.figure, ax


def plot_confusion(
    oof: pd.DataFrame,
    *,
    model: str | None = None,
    normalize: bool = True,
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """Heat map of :func:`confusion` (rows: expert consensus, columns: predicted class).

    Parameters
    ----------
    oof : pandas.DataFrame
        OOF rows.
    model : str, optional
        Model to use when ``oof`` holds several.
    normalize : bool
        Show row shares (default) instead of counts; cells are annotated with both.
    ax : matplotlib.axes.Axes, optional
        Axes to draw into; a new figure is made by default.
    title : str, optional
        Axes title (default: the model name).

    Returns
    -------
    matplotlib.figure.Figure
    """
    counts = confusion(oof, model=model)
    shown = confusion(oof, model=model, normalize=True) if normalize else counts
    fig, ax = _axes(ax, (5.5, 4.8))
    image = ax.imshow(shown.to_numpy(), cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(image, ax=ax, label="share of consensus row" if normalize else "windows")
    ticks = np.arange(len(CLASSES))
    ax.set_xticks(ticks, CLASSES, rotation=45, ha="right")
    ax.set_yticks(ticks, CLASSES)
    ax.set_xlabel("predicted (argmax)")
    ax.set_ylabel("expert consensus (most votes)")
    threshold = 0.5 if normalize else 0.5 * shown.to_numpy().max()  # half the colour scale
    for (i, j), value in np.ndenumerate(shown.to_numpy()):
        text = f"{value:.2f}\n({counts.iat[i, j]})" if normalize else f"{value}"
        color = "white" if value > threshold else "black"
        ax.text(j, i, text, ha="center", va="center", fontsize=7, color=color)
    ax.set_title(title if title is not None else str(model_column(select_model(oof, model)).iat[0]))
    return fig


def plot_reliability(
    oof: pd.DataFrame, n_bins: int = 10, *, model: str | None = None, title: str | None = None
) -> Figure:
    """Reliability diagram per class: mean vote share against mean predicted probability per bin.

    Parameters
    ----------
    oof : pandas.DataFrame
        OOF rows.
    n_bins : int
        Number of probability bins, as :func:`reliability`.
    model : str, optional
        Model to use when ``oof`` holds several.
    title : str, optional
        Figure title (default: the model name).

    Returns
    -------
    matplotlib.figure.Figure
        Six panels (2 x 3), one per class, with the diagonal of perfect calibration; marker area
        grows with the number of windows in the bin; empty bins are not drawn.
    """
    import matplotlib.pyplot as plt

    table = reliability(oof, n_bins, model=model)
    fig, axes = plt.subplots(
        2, 3, figsize=(10, 6.5), sharex=True, sharey=True, layout="constrained"
    )
    sizes = 10 + 90 * np.sqrt(table["n"] / max(int(table["n"].max()), 1))
    for ax, name in zip(axes.ravel(), CLASSES, strict=True):
        rows = (table["class"] == name) & (table["n"] > 0)
        ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1)
        ax.plot(table.loc[rows, "mean_pred"], table.loc[rows, "observed"], color="C0", linewidth=1)
        ax.scatter(
            table.loc[rows, "mean_pred"], table.loc[rows, "observed"], s=sizes[rows], color="C0"
        )
        ax.set(title=name, xlim=(0, 1), ylim=(0, 1), aspect="equal")
    for ax in axes[1]:
        ax.set_xlabel("mean predicted probability")
    for ax in axes[:, 0]:
        ax.set_ylabel("observed vote share")
    fig.suptitle(title if title is not None else str(model_column(select_model(oof, model)).iat[0]))
    return fig


def plot_kl_by_group(
    oof: pd.DataFrame, *, ax: Axes | None = None, title: str | None = "KL by vote count"
) -> Figure:
    """Grouped bars of each model's KL per vote-count group, plus all rows and >= 10 votes.

    Parameters
    ----------
    oof : pandas.DataFrame
        OOF rows of one or more models.
    ax : matplotlib.axes.Axes, optional
        Axes to draw into; a new figure is made by default.
    title : str, optional
        Axes title.

    Returns
    -------
    matplotlib.figure.Figure
        One group of bars per column of :func:`hmslib.analysis.kl_breakdown` (``kl``, ``kl_10plus``, each vote group),
        one bar per model; empty groups are left blank.
    """
    table = kl_breakdown(oof)
    columns = ["kl", "kl_10plus", *(f"kl_votes_{name}" for name, _, _ in VOTE_GROUPS)]
    labels = ["all", ">= 10 votes", *(f"{name} votes" for name, _, _ in VOTE_GROUPS)]
    fig, ax = _axes(ax, (max(6.0, 1.4 * len(columns) + 0.4 * len(table)), 4.0))
    width = 0.8 / len(table)
    x = np.arange(len(columns))
    for i, (model, row) in enumerate(table[columns].iterrows()):
        ax.bar(x + (i - (len(table) - 1) / 2) * width, row.to_numpy(), width, label=str(model))
    ax.set_xticks(x, labels)
    ax.set_ylabel("KL divergence (nats)")
    ax.legend(fontsize=8)
    if title is not None:
        ax.set_title(title)
    return fig


def plot_ablation(
    summary: pd.DataFrame, *, ax: Axes | None = None, title: str | None = "One switch at a time"
) -> Figure:
    """Each switch's paired KL difference from its reference run, with its patient interval.

    Parameters
    ----------
    summary : pandas.DataFrame
        One row per switch with columns ``switch``, ``diff`` (KL of the switch minus KL of its
        reference on the same windows, nats; negative = the switch helps), ``lo`` and ``hi`` (the
        interval; NaN draws no bar) and optionally ``group`` (one colour per group) and
        ``reference`` (shown in the label when it is not ``base``).
    ax : matplotlib.axes.Axes, optional
        Axes to draw into; a new figure is made by default.
    title : str, optional
        Axes title.

    Returns
    -------
    matplotlib.figure.Figure
        One horizontal error bar per switch, best (most negative) at the top, a line at 0.

    Raises
    ------
    ValueError
        ``summary`` lacks one of the required columns.
    """
    missing = [c for c in ("switch", "diff", "lo", "hi") if c not in summary.columns]
    if missing:
        raise ValueError(f"plot_ablation: summary lacks columns {missing}")
    table = summary.sort_values("diff", ascending=False, kind="stable").reset_index(drop=True)
    groups = table["group"] if "group" in table.columns else pd.Series("switch", index=table.index)
    references = table["reference"] if "reference" in table.columns else pd.Series("base", index=table.index)
    labels = [
        name if ref == "base" else f"{name} (vs {ref})"
        for name, ref in zip(table["switch"], references, strict=True)
    ]
    fig, ax = _axes(ax, (7.0, max(2.5, 1.0 + 0.32 * len(table))))
    y = np.arange(len(table))
    diff, lo, hi = (table[c].to_numpy(np.float64) for c in ("diff", "lo", "hi"))
    err = np.vstack([np.nan_to_num(diff - lo), np.nan_to_num(hi - diff)])
    for k, group in enumerate(dict.fromkeys(groups)):
        rows = (groups == group).to_numpy()
        ax.errorbar(diff[rows], y[rows], xerr=err[:, rows], fmt="o", capsize=3, color=f"C{k}", label=str(group))
    ax.axvline(0.0, color="0.3", lw=1)
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xlabel("KL difference from the reference, >= 10-vote windows (nats; < 0 helps)")
    if len(set(groups)) > 1:
        ax.legend(fontsize=8)
    if title is not None:
        ax.set_title(title)
    return fig


def plot_training_curves(
    metrics_csv_paths: Sequence[str | os.PathLike], *, title: str | None = None
) -> Figure:
    """Per-epoch training curves from one or more ``fold<k>_metrics.csv`` files.

    Every numeric column whose name contains ``loss`` is drawn in the left panel and every one
    containing ``kl`` in the right panel, against the epoch counted across stages (row 1, 2, ...
    of the file, since ``epoch`` restarts at each stage); a dotted line marks where a new
    ``stage`` starts. Lines are labelled ``<model>/<file stem>``, the model being the folder name.

    Parameters
    ----------
    metrics_csv_paths : sequence of str or path-like
        Metrics files written by :func:`hmslib.train.fit_fold`.
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        Two panels: losses and KL divergences.

    Raises
    ------
    FileNotFoundError
        A metrics file does not exist.
    ValueError
        No paths, or a file without any ``loss`` or ``kl`` column (the columns found are named).
    """
    import matplotlib.pyplot as plt

    paths = [Path(p) for p in metrics_csv_paths]
    if not paths:
        raise ValueError("metrics_csv_paths is empty; pass at least one fold<k>_metrics.csv")
    fig, (ax_loss, ax_kl) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    for i, path in enumerate(paths):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: metrics file not found")
        df = pd.read_csv(path)
        numeric = df.select_dtypes("number")
        losses = [c for c in numeric.columns if "loss" in c.lower()]
        kls = [c for c in numeric.columns if "kl" in c.lower()]
        if not losses and not kls:
            raise ValueError(
                f"{path}: no column with 'loss' or 'kl' in its name (columns: {list(df.columns)})"
            )
        x = np.arange(1, len(df) + 1)
        starts = (
            np.flatnonzero(df["stage"].diff().fillna(0).to_numpy() != 0) if "stage" in df else []
        )
        name = f"{path.parent.name}/{path.stem}"
        for ax, columns in ((ax_loss, losses), (ax_kl, kls)):
            for start in starts:
                ax.axvline(x[start] - 0.5, color=f"C{i % 10}", linestyle=":", linewidth=0.8)
            for j, column in enumerate(columns):
                style = ("-", "--", ":", "-.")[j % 4]
                ax.plot(
                    x, df[column].to_numpy(), style, color=f"C{i % 10}", label=f"{name} {column}"
                )
    for ax, label in ((ax_loss, "loss"), (ax_kl, "KL divergence (nats)")):
        ax.set_xlabel("epoch (stages in sequence)")
        ax.set_ylabel(label)
        if ax.lines:
            ax.legend(fontsize=7)
    if title is not None:
        fig.suptitle(title)
    return fig

# --------------------------------------------------------------------------------------------------
# a scored recording
# --------------------------------------------------------------------------------------------------


#: Colour of each class in the timeline figure.
CLASS_COLORS: dict[str, str] = {
    "seizure": "#d62728", "lpd": "#ff7f0e", "gpd": "#bcbd22",
    "lrda": "#2ca02c", "grda": "#1f77b4", "other": "#c7c7c7",
}  # fmt: skip


def _overview_spectrogram(
    eeg: np.ndarray, *, sfreq: float, max_columns: int, fmax: float = 20.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Log power of each double-banana chain: times (T,), freqs (F,), power (4, F, T)."""
    from scipy.signal import spectrogram

    bipolar = np.nan_to_num(hsignal.montage(eeg, "double_banana")[0])  # (16, samples), chain by chain
    nperseg = int(round(2 * sfreq))
    n_seg = eeg.shape[-1] // nperseg
    group = max(1, -(-n_seg // max_columns))  # 2 s segments averaged per column
    n_col = n_seg // group
    per_chain = len(bipolar) // len(CHAINS)
    chains = []
    for i in range(len(CHAINS)):  # one chain at a time bounds memory on recordings of many hours
        part = bipolar[i * per_chain : (i + 1) * per_chain]
        freqs, _, power = spectrogram(part, fs=sfreq, nperseg=nperseg, noverlap=0, axis=-1)
        keep = (freqs >= 0.5) & (freqs <= fmax)
        power = power[:, keep, : n_col * group].mean(axis=0)
        power = power.reshape(int(keep.sum()), n_col, group).mean(axis=-1)
        chains.append(np.log10(power + 1e-6))
    times = (np.arange(n_col) + 0.5) * group * nperseg / sfreq
    return times, freqs[keep], np.stack(chains)


def _format_hms(seconds: float, _pos=None) -> str:
    """Axis label ``h:mm:ss`` (or ``m:ss`` under an hour)."""
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    return f"{h}:{rem // 60:02d}:{rem % 60:02d}" if h else f"{rem // 60}:{rem % 60:02d}"


def plot_timeline(
    timeline: pd.DataFrame,
    eeg: np.ndarray,
    *,
    sfreq: float = SFREQ,
    title: str | None = None,
    figsize: tuple[float, float] = (12.0, 6.0),
    max_columns: int = 2000,
    segments=None,
):
    """Stacked class probabilities over time above a spectrogram overview of the recording.

    Three panels share the time axis: the six probabilities stacked (each row drawn over the
    central 10 s it scores); a strip coloured by the top class, hatched where the window is
    ``bad``; and the log power (0.5-20 Hz) of the four double-banana chains LL, LP, RP, RL.

    Parameters
    ----------
    timeline : pandas.DataFrame
        From :func:`score_eeg` / :func:`score_recording`.
    eeg : numpy.ndarray
        ``(20, samples)`` µV in ``EEG_CHANNELS`` order, the recording that was scored.
    sfreq : float
        Sampling rate of ``eeg``, Hz.
    title : str, optional
        Figure title.
    figsize : tuple of float
        Figure size, inches.
    max_columns : int
        Most time columns of the spectrogram (2 s segments are averaged beyond that).
    segments : sequence of hmslib.recording.Segment, optional
        The continuous stretches of a discontinuous (EDF+D) recording: each is drawn at its onset
        in recording time, the gaps between them left grey. None: one stretch from 0 s.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter

    missing = [c for c in ("start_s", "end_s", *CLASSES, "top_class") if c not in timeline.columns]
    if missing:
        raise ValueError(f"timeline lacks columns {missing} (expected those of score_eeg)")
    fig, (ax_p, ax_c, ax_s) = plt.subplots(
        3, 1, sharex=True, height_ratios=[3, 0.4, 2.2], figsize=figsize, layout="constrained"
    )
    start, end = timeline["start_s"].to_numpy(), timeline["end_s"].to_numpy()
    probs = timeline[list(CLASSES)].to_numpy(dtype=np.float64)
    colors = [CLASS_COLORS[c] for c in CLASSES]

    # one stack per continuous stretch of rows, so that nothing is drawn across a gap
    stretch = timeline["segment"].to_numpy() if "segment" in timeline.columns else np.zeros(len(start))
    for k, rows in enumerate(np.split(np.arange(len(start)), np.flatnonzero(np.diff(stretch)) + 1)):
        x = np.concatenate([start[rows], end[rows[-1:]]])
        y = np.concatenate([probs[rows], probs[rows[-1:]]]).T
        ax_p.stackplot(x, y, step="post", colors=colors, labels=CLASSES if k == 0 else (),
                       linewidth=0)  # fmt: skip
    ax_p.set(ylim=(0, 1), ylabel="probability")
    ax_p.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small", frameon=False)

    top = pd.Categorical(timeline["top_class"], categories=CLASSES).codes
    ax_c.bar(start, 1.0, width=end - start, align="edge", color=np.asarray(colors)[top])
    if "bad" in timeline.columns and timeline["bad"].any():
        bad = timeline["bad"].to_numpy(dtype=bool)
        ax_c.bar(start[bad], 1.0, width=(end - start)[bad], align="edge", facecolor="none",
                 edgecolor="black", hatch="////", linewidth=0)  # fmt: skip
        ax_c.legend(handles=[Patch(facecolor="white", edgecolor="black", hatch="////", label="bad")],
                    loc="upper left", bbox_to_anchor=(1.0, 1.2), fontsize="small", frameon=False)  # fmt: skip
    ax_c.set(ylim=(0, 1), yticks=[])
    ax_c.set_ylabel("top", rotation=0, ha="right", va="center")

    stretches = [(0.0, 0, eeg.shape[-1])] if segments is None else [
        (seg.onset_s, seg.start, seg.stop) for seg in segments
    ]
    images = []
    for onset, first, stop in stretches:
        times, freqs, power = _overview_spectrogram(
            eeg[:, first:stop], sfreq=sfreq, max_columns=max_columns
        )
        if len(times):  # a stretch shorter than one 2 s column is left grey
            images.append((onset, onset + times, power[::-1].reshape(-1, power.shape[-1])))
    lo, hi = np.percentile(np.concatenate([image for *_, image in images], axis=1), [2, 98])
    ax_s.set_facecolor("0.85")  # gaps between stretches
    for onset, times, image in images:  # rows from the bottom: RL 0.5-20 Hz ... LL
        half = (times[1] - times[0]) / 2 if len(times) > 1 else times[0] - onset
        extent = (times[0] - half, times[-1] + half, 0, len(CHAINS))
        ax_s.imshow(image, aspect="auto", origin="lower", cmap="viridis", vmin=lo, vmax=hi,
                    extent=extent, interpolation="nearest")  # fmt: skip
    ax_s.set_yticks(np.arange(len(CHAINS)) + 0.5, labels=list(CHAINS)[::-1])
    for y in range(1, len(CHAINS)):
        ax_s.axhline(y, color="white", linewidth=0.8)
    ax_s.set_ylabel(f"0.5-{freqs[-1]:.0f} Hz\nper chain")
    ax_s.set_xlabel("time (h:mm:ss)")
    onset, first, stop = stretches[-1]
    ax_s.set_xlim(0, onset + (stop - first) / sfreq)
    ax_s.xaxis.set_major_formatter(FuncFormatter(_format_hms))
    if title:
        fig.suptitle(title)
    return fig
