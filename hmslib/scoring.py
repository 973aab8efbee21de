"""Scoring a whole recording window by window: sliding 50 s windows, quality flags, a timeline.

:func:`score_eeg` slides the 50 s context of the competition over a 200 Hz recording
(:func:`sliding_windows`, a strided view: no copy), predicts the six probabilities with a
:class:`hmslib.predict.Predictor` (or any callable), batch by batch, and flags bad windows
(:func:`window_quality`). :func:`score_recording` reads the file first
(:func:`hmslib.recording.load_recording`); :func:`write_timeline` writes ``timeline.csv`` and the
figure ``timeline.png`` (:func:`hmslib.viz.plot_timeline`), as ``hms score-edf`` does.

Each row of a timeline describes the central 10 s of its 50 s window, because that is what the
experts labelled: window ``k`` covers ``[k * stride, k * stride + 50)`` s of the recording and its row
``[k * stride + 20, k * stride + 30)`` s. The first and last 20 s of a recording are context only.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from hmslib._checks import atomic_path, check_number, write_csv_atomic
from hmslib.constants import (
    CLASSES,
    EEG_WINDOW_SECONDS,
    LABEL_CENTER_SECONDS,
    SCALP_CHANNELS,
    SFREQ,
    TIMELINE_COLUMNS,
)
from hmslib.predict import Predictor
from hmslib.recording import load_recording

#: What scores windows: maps EEG windows ``(b, 20, 10000)`` (µV, 200 Hz, NaN allowed) to ``(b, 6)``
#: probabilities -- a :class:`hmslib.predict.Predictor`, or any function (e.g. the class prior).
WindowPredictor = Callable[[np.ndarray], np.ndarray]


def _stride_samples(stride_s: float, sfreq: float) -> int:
    """The stride in samples; it must be a positive whole number of samples."""
    step = stride_s * sfreq
    if not np.isfinite(step) or step < 1 or abs(step - round(step)) > 1e-6:
        raise ValueError(f"stride_s must be a positive multiple of 1/{sfreq:g} s, got {stride_s!r}")
    return int(round(step))


def sliding_windows(
    eeg: np.ndarray,
    *,
    stride_s: float = 10.0,
    window_s: float = EEG_WINDOW_SECONDS,
    sfreq: float = SFREQ,
) -> np.ndarray:
    """All windows of ``window_s`` seconds that fit in a recording, every ``stride_s`` seconds.

    Parameters
    ----------
    eeg : numpy.ndarray
        Shape ``(channels, samples)``.
    stride_s : float
        Step between window starts, seconds (a whole number of samples).
    window_s : float
        Window length, seconds.
    sfreq : float
        Sampling rate, Hz.

    Returns
    -------
    numpy.ndarray
        A read-only strided view ``(n, channels, round(window_s * sfreq))`` of ``eeg`` (no copy);
        window ``k`` starts at sample ``k * stride_s * sfreq``, and
        ``n = (samples - window) // stride + 1``.

    Raises
    ------
    ValueError
        A stride that is not a positive whole number of samples, or a recording shorter than one
        window.
    """
    step = _stride_samples(stride_s, sfreq)
    length = int(round(window_s * sfreq))
    if eeg.shape[-1] < length:
        raise ValueError(
            f"recording has {eeg.shape[-1]} samples ({eeg.shape[-1] / sfreq:.1f} s), shorter "
            f"than one {window_s:g} s window"
        )
    view = np.lib.stride_tricks.sliding_window_view(eeg, length, axis=-1)[:, ::step]
    return view.transpose(1, 0, 2)


def window_quality(
    eeg: np.ndarray,
    *,
    stride_s: float = 10.0,
    window_s: float = EEG_WINDOW_SECONDS,
    sfreq: float = SFREQ,
    flat_uv: float = 1.0,
    min_flat_s: float = 5.0,
) -> pd.DataFrame:
    """NaN and flat-lead flags of every window of :func:`sliding_windows`.

    Parameters
    ----------
    eeg : numpy.ndarray
        Shape ``(20, samples)`` in ``EEG_CHANNELS`` order, µV; only the 19 scalp leads are judged.
    stride_s, window_s, sfreq
        As :func:`sliding_windows`.
    flat_uv : float
        A lead is flat in a 1 s block whose peak-to-peak amplitude is below this, µV.
    min_flat_s : float
        A lead is listed as flat in a window when it is flat for at least this many seconds of it.

    Returns
    -------
    pandas.DataFrame
        One row per window: ``nan_frac`` (share of NaN samples over the scalp leads of the window)
        and ``flat_leads`` (``;``-joined names of the flat leads, ``""`` when none).
    """
    step = _stride_samples(stride_s, sfreq)
    length = int(round(window_s * sfreq))
    n_windows = (eeg.shape[-1] - length) // step + 1
    starts = np.arange(n_windows) * step
    scalp = eeg[: len(SCALP_CHANNELS)]
    isnan = np.isnan(scalp)
    counts = np.concatenate([[0], np.cumsum(isnan.sum(axis=0, dtype=np.int64))])
    nan_frac = (counts[starts + length] - counts[starts]) / (len(SCALP_CHANNELS) * length)

    block = int(round(sfreq))
    n_blocks = scalp.shape[-1] // block
    blocks = scalp[:, : n_blocks * block].reshape(len(SCALP_CHANNELS), n_blocks, block)
    # fmax/fmin skip NaN (a second that is all NaN gives NaN: counted as NaN, not as flat)
    ptp = np.fmax.reduce(blocks, axis=-1) - np.fmin.reduce(blocks, axis=-1)
    flat = ptp < flat_uv  # (leads, blocks)
    flat_cum = np.concatenate([np.zeros((len(SCALP_CHANNELS), 1), np.int64), flat.cumsum(-1)], -1)
    first = np.minimum(starts // block, n_blocks)
    last = np.minimum((starts + length) // block, n_blocks)
    flat_s = (flat_cum[:, last] - flat_cum[:, first]).T  # (windows, leads), seconds
    is_flat = pd.DataFrame(flat_s >= min_flat_s, columns=list(SCALP_CHANNELS))
    flat_leads = is_flat.dot(pd.Index(SCALP_CHANNELS) + ";").str.rstrip(";")
    return pd.DataFrame({"nan_frac": nan_frac, "flat_leads": flat_leads.to_numpy(dtype=object)})


def _predict_batches(
    predictor: WindowPredictor,
    windows: np.ndarray,
    *,
    batch_size: int = 32,
    progress: bool = True,
) -> np.ndarray:
    """Probabilities for EEG windows, batch by batch with a progress bar, checked.

    Parameters
    ----------
    predictor : WindowPredictor
        A :class:`hmslib.predict.Predictor`, or any callable mapping windows ``(b, 20, 10000)``
        to ``(b, 6)`` probabilities.
    windows : numpy.ndarray
        ``(n, 20, 10000)`` µV at 200 Hz, e.g. the strided view of :func:`sliding_windows`; copied
        one batch at a time.
    batch_size : int
        Windows per batch.
    progress : bool
        Show a tqdm progress bar over windows.

    Returns
    -------
    numpy.ndarray
        float64 ``(n, 6)`` in ``CLASSES`` order, rows summing to 1 (renormalised in float64).

    Raises
    ------
    ValueError
        The predictor returns the wrong shape, non-finite values, or rows that do not sum to 1
        within 1e-4.
    """
    check_number("batch_size", batch_size, low=1, integer=True)
    n = len(windows)
    out = np.empty((n, len(CLASSES)), dtype=np.float64)
    with tqdm(total=n, desc="scoring windows", unit="win", disable=not progress) as bar:
        for i in range(0, n, batch_size):
            batch = np.ascontiguousarray(windows[i : i + batch_size], dtype=np.float32)
            probs = np.asarray(predictor(batch), dtype=np.float64)
            if probs.shape != (len(batch), len(CLASSES)):
                raise ValueError(
                    f"predictor returned shape {probs.shape} for {len(batch)} windows, "
                    f"expected ({len(batch)}, {len(CLASSES)})"
                )
            out[i : i + len(batch)] = probs
            bar.update(len(batch))
    if not np.isfinite(out).all() or not np.allclose(out.sum(axis=1), 1.0, atol=1e-4):
        raise ValueError("predictor returned non-finite probabilities or rows that do not sum to 1")
    return out / out.sum(axis=1, keepdims=True)  # float32 models sum to 1 only within ~1e-7


def score_eeg(
    eeg: np.ndarray,
    predictor: WindowPredictor,
    *,
    stride_s: float = 10.0,
    filled: Sequence[str] = (),
    batch_size: int = 32,
    progress: bool = True,
    flat_uv: float = 1.0,
    min_flat_s: float = 5.0,
) -> pd.DataFrame:
    """Score a 200 Hz ``EEG_CHANNELS`` array window by window into a timeline.

    Parameters
    ----------
    eeg : numpy.ndarray
        float32 ``(20, samples)``, µV at 200 Hz (:func:`load_recording`); NaN allowed.
    predictor : WindowPredictor
        A :class:`hmslib.predict.Predictor`, or any callable mapping windows ``(b, 20, 10000)``
        to ``(b, 6)`` probabilities.
    stride_s : float
        Seconds between consecutive 50 s windows.
    filled : sequence of str
        Leads filled by interpolation, copied into every row's ``filled_leads``.
    batch_size : int
        Windows per batch.
    progress : bool
        Show a progress bar over windows.
    flat_uv, min_flat_s
        Flat-lead criteria, as :func:`window_quality`.

    Returns
    -------
    pandas.DataFrame
        One row per window, columns :data:`TIMELINE_COLUMNS`: ``start_s``/``end_s`` bound the
        central 10 s that the row scores (``window start + 20`` and ``+ 30`` s); the six class
        probabilities; ``top_class`` and ``top_prob``; ``nan_frac``, ``flat_leads``,
        ``filled_leads``; ``bad`` is True when the window holds NaN or a flat lead. Bad windows are
        still scored, never dropped.
    """
    windows = sliding_windows(eeg, stride_s=stride_s)
    probs = _predict_batches(predictor, windows, batch_size=batch_size, progress=progress)
    quality = window_quality(eeg, stride_s=stride_s, flat_uv=flat_uv, min_flat_s=min_flat_s)
    start = np.arange(len(windows)) * stride_s + (EEG_WINDOW_SECONDS - LABEL_CENTER_SECONDS) / 2
    top = probs.argmax(axis=1)
    timeline = pd.DataFrame({"start_s": start, "end_s": start + LABEL_CENTER_SECONDS})
    timeline[list(CLASSES)] = probs
    timeline["top_class"] = np.asarray(CLASSES, dtype=object)[top]
    timeline["top_prob"] = probs[np.arange(len(probs)), top]
    timeline["nan_frac"] = quality["nan_frac"].to_numpy()
    timeline["flat_leads"] = quality["flat_leads"].to_numpy()
    timeline["filled_leads"] = ";".join(filled)
    timeline["bad"] = (timeline["nan_frac"] > 0) | (timeline["flat_leads"] != "")
    return timeline[list(TIMELINE_COLUMNS)]


def score_recording(
    path: str | os.PathLike,
    run_dir: str | os.PathLike | WindowPredictor,
    *,
    stride_s: float = 10.0,
    allow_missing: bool = False,
    batch_size: int = 32,
    device: str = "cpu",
    tta: bool = False,
    progress: bool = True,
) -> pd.DataFrame:
    """Read a clinical recording and score it window by window with a trained run.

    Parameters
    ----------
    path : str or path-like
        EDF/EDF+, BDF, BrainVision, EEGLAB... (:func:`load_recording`).
    run_dir : str, path-like or WindowPredictor
        A trained run folder (``ensemble.json`` + ``models/``), or a predictor.
    stride_s : float
        Seconds between consecutive 50 s windows (10 s tiles the recording with the scored
        central 10 s of each window).
    allow_missing : bool
        Fill missing scalp leads by interpolation from neighbours (marked in ``filled_leads``).
    batch_size : int
        Windows per batch.
    progress : bool
        Show a progress bar over windows.
    device, tta
        For a run folder: where to compute, and hemisphere-mirror test-time augmentation
        (:meth:`hmslib.predict.Predictor.from_run`).

    Returns
    -------
    pandas.DataFrame
        The timeline of :func:`score_eeg`: each row's ``start_s``/``end_s`` is the central 10 s
        of its 50 s window, in seconds from the start of the recording.

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`hmslib.recording.load_recording` and
        :meth:`hmslib.predict.Predictor.from_run`; a recording shorter than 50 s.
    """
    eeg, report = load_recording(path, allow_missing=allow_missing)
    predictor = (
        run_dir
        if callable(run_dir)
        else Predictor.from_run(run_dir, device=device, tta=tta, eeg_only=True)
    )
    return score_eeg(
        eeg,
        predictor,
        stride_s=stride_s,
        filled=report.filled,
        batch_size=batch_size,
        progress=progress,
    )


def write_timeline(
    timeline: pd.DataFrame, eeg: np.ndarray, out_dir: str | os.PathLike, *, title: str | None = None
) -> tuple[Path, Path]:
    """Write ``timeline.csv`` and ``timeline.png`` (:func:`hmslib.viz.plot_timeline`) atomically.

    Parameters
    ----------
    timeline : pandas.DataFrame
        From :func:`score_eeg`.
    eeg : numpy.ndarray
        ``(20, samples)`` µV at 200 Hz, the recording that was scored (for the spectrogram panel).
    out_dir : path
        Folder to write into (created).
    title : str, optional
        Figure title.

    Returns
    -------
    (pathlib.Path, pathlib.Path)
        The CSV and PNG paths.
    """
    import matplotlib.pyplot as plt

    from hmslib.viz import plot_timeline

    out_dir = Path(out_dir)
    csv_path = write_csv_atomic(timeline, out_dir / "timeline.csv", float_format="%.6g")
    fig = plot_timeline(timeline, eeg, title=title)
    png_path = out_dir / "timeline.png"
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return csv_path, png_path


def constant_predictor(probs) -> WindowPredictor:
    """A predictor that gives every window the same distribution (e.g. the class prior).

    Parameters
    ----------
    probs : array-like
        ``(6,)`` probabilities in ``CLASSES`` order.

    Returns
    -------
    WindowPredictor
        Maps windows ``(b, 20, n)`` to ``(b, 6)`` copies of ``probs``.
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape != (len(CLASSES),):
        raise ValueError(f"constant_predictor: expected {len(CLASSES)} probabilities, got {probs.shape}")
    return lambda windows: np.tile(probs, (len(windows), 1))


def match_labels(timeline: pd.DataFrame, labels: pd.DataFrame, starts_s: dict[int, float]) -> pd.DataFrame:
    """Put expert labels on a recording's timeline: the rows of both that score the same 10 s.

    A label at offset ``o`` of a source EEG that starts ``s`` seconds into the recording scores the
    same central 10 s as the timeline row starting at ``s + o + 20`` s.

    Parameters
    ----------
    timeline : pandas.DataFrame
        From :func:`score_eeg`.
    labels : pandas.DataFrame
        train.csv rows of the source EEGs.
    starts_s : dict of int to float
        ``eeg_id`` -> seconds from the start of the recording where that EEG begins.

    Returns
    -------
    pandas.DataFrame
        One row per label with a timeline row at its position (labels between two strides have
        none): the label's columns and the timeline's, joined on ``start_s``.
    """
    centre = (EEG_WINDOW_SECONDS - LABEL_CENTER_SECONDS) / 2
    placed = labels.assign(
        start_s=labels.eeg_id.map(starts_s) + labels.eeg_label_offset_seconds + centre
    )
    return placed.merge(timeline, on="start_s")
