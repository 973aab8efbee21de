"""Clinical views of EEG windows: the double-banana montage as a neurologist reads it.

:func:`plot_eeg_window` draws one window as bipolar traces grouped by chain (left lateral, left
parasagittal, right parasagittal, right lateral, Fp1-F7 on top) with a gap between chains, negative
up, the central 10 s that the experts labelled shaded. :func:`plot_class_examples` shows one
high-agreement window of each class of a data folder (real or synthetic).
"""

from __future__ import annotations

import os

import matplotlib.pyplot as plt
import numpy as np

from hmslib import io
from hmslib.constants import CHAINS, CONSENSUS_NAMES, LABEL_CENTER_SECONDS, SFREQ
from hmslib.labels import total_votes, vote_probabilities

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
    matplotlib.axes.Axes
        The axes, one line per derivation, top to bottom in montage order.

    Raises
    ------
    ValueError
        ``eeg`` is not ``(20, n)``, ``scale_uv`` is not positive or the montage is not bipolar.
    """
    from hmslib.signal import bandpass, repair_nans
    from hmslib.signal import montage as make_montage

    eeg = np.asarray(eeg, dtype=np.float32)
    if eeg.ndim != 2 or eeg.shape[0] != 20:
        raise ValueError(
            f"plot_eeg_window expects one window of shape (20, n_samples), got {eeg.shape}"
        )
    if not scale_uv > 0:
        raise ValueError(f"scale_uv must be > 0 microvolts, got {scale_uv}")
    if montage not in ("double_banana", "double_banana_18"):
        raise ValueError(f"montage must be 'double_banana' or 'double_banana_18', got {montage!r}")
    gaps, _ = make_montage(np.isnan(eeg).astype(np.float32), name=montage)
    data, names = make_montage(repair_nans(eeg)[0], name=montage)
    if band is not None:
        data = bandpass(data, low=band[0], high=band[1], sfreq=sfreq)
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
    return ax


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
