"""Scoring a whole recording window by window: sliding 50 s windows, quality flags, a timeline.

:func:`score_eeg` slides the 50 s context of the competition over a 200 Hz recording, segment by
continuous segment (an EDF+D file's gaps are never inside a window), gathers the windows of all
segments into batches, judges each batch with the one quality rule of hmslib
(:func:`hmslib.signal.window_quality_flags`) and predicts the six probabilities with a
:class:`hmslib.predict.Predictor` (or any callable); a window without signal gets the class prior.
:func:`score_raw` scores an ``mne.io.Raw`` (:func:`hmslib.recording.load_raw`) and
:func:`score_recording` a file through it; :func:`write_timeline` writes ``timeline.csv`` and the
figure ``timeline.png`` (:func:`hmslib.viz.plot_timeline`), as ``hms score-edf`` does. Memory
beyond the signal is one batch of windows: no copy of the recording is made.

Each row of a timeline describes the central 10 s of its 50 s window, because that is what the
experts labelled: window ``k`` of a segment starting ``onset`` seconds into the recording covers
``[onset + k * stride, onset + k * stride + 50)`` s and its row
``[onset + k * stride + 20, onset + k * stride + 30)`` s. The first and last 20 s of every segment
are context only. Gaps are marked by the ``segment`` column (the index of the continuous segment of
the row, 0 for a continuous recording): rows of consecutive segments are separated by the gap, which
has no rows; a segment shorter than 50 s has none either (see
:attr:`hmslib.recording.RecordingReport.gaps`).
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
    SFREQ,
    TIMELINE_COLUMNS,
)
from hmslib.predict import UNIFORM_PRIOR, Predictor
from hmslib.recording import Segment, load_raw, load_recording
from hmslib.signal import FLAT_UV, MIN_FLAT_S, WindowQuality, window_quality_flags

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
    flat_uv: float = FLAT_UV,
    min_flat_s: float = MIN_FLAT_S,
    batch_size: int = 256,
) -> pd.DataFrame:
    """The quality of every window of :func:`sliding_windows`, by the one rule of hmslib.

    :func:`hmslib.signal.window_quality_flags` applied batch by batch (memory: one batch).

    Parameters
    ----------
    eeg : numpy.ndarray
        Shape ``(20, samples)`` in ``EEG_CHANNELS`` order, µV; only the 19 scalp leads are judged.
    stride_s, window_s, sfreq
        As :func:`sliding_windows`.
    flat_uv, min_flat_s
        As :func:`hmslib.signal.window_quality_flags`.
    batch_size : int
        Windows judged at a time.

    Returns
    -------
    pandas.DataFrame
        One row per window: ``nan_frac`` (share of NaN samples over the scalp leads),
        ``flat_leads`` and ``missing_leads`` (``;``-joined names, ``""`` when none), ``signal_frac``
        and ``no_signal`` (the window gets the class prior).
    """
    check_number("batch_size", batch_size, low=1, integer=True)
    windows = sliding_windows(eeg, stride_s=stride_s, window_s=window_s, sfreq=sfreq)
    quality = WindowQuality.concat([
        window_quality_flags(windows[i : i + batch_size], sfreq=sfreq, flat_uv=flat_uv,
                             min_flat_s=min_flat_s)  # fmt: skip
        for i in range(0, len(windows), batch_size)
    ])
    return pd.DataFrame({
        "nan_frac": quality.nan_frac,
        "flat_leads": WindowQuality.lead_names(quality.flat),
        "missing_leads": WindowQuality.lead_names(quality.missing),
        "signal_frac": quality.signal_frac,
        "no_signal": quality.no_signal,
    })  # fmt: skip


def _window_starts(
    segments: Sequence[Segment], n_samples: int, step: int, stride_s: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sample index, recording time (s) and segment index of every window start, segment by segment."""
    length = int(round(EEG_WINDOW_SECONDS * SFREQ))
    starts, onsets, index = [], [], []
    for i, seg in enumerate(segments):  # a few segments, not windows
        if not 0 <= seg.start <= seg.stop <= n_samples:
            raise ValueError(
                f"segment {i} spans samples [{seg.start}, {seg.stop}), outside the recording's "
                f"{n_samples}"
            )
        k = np.arange(max(0, (seg.stop - seg.start - length) // step + 1))
        starts.append(seg.start + k * step)
        onsets.append(seg.onset_s + k * stride_s)
        index.append(np.full(len(k), i))
    return np.concatenate(starts), np.concatenate(onsets), np.concatenate(index)


def _check_probs(probs, n: int) -> np.ndarray:
    """A predictor's output for ``n`` windows as float64, checked."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape != (n, len(CLASSES)):
        raise ValueError(
            f"predictor returned shape {probs.shape} for {n} windows, expected ({n}, {len(CLASSES)})"
        )
    if not np.isfinite(probs).all() or not np.allclose(probs.sum(axis=1), 1.0, atol=1e-4):
        raise ValueError("predictor returned non-finite probabilities or rows that do not sum to 1")
    return probs / probs.sum(axis=1, keepdims=True)  # float32 models sum to 1 only within ~1e-7


def score_eeg(
    eeg: np.ndarray,
    predictor: WindowPredictor,
    *,
    stride_s: float = 10.0,
    filled: Sequence[str] = (),
    batch_size: int = 32,
    progress: bool = True,
    flat_uv: float = FLAT_UV,
    min_flat_s: float = MIN_FLAT_S,
    segments: Sequence[Segment] | None = None,
    prior=None,
) -> pd.DataFrame:
    """Score a 200 Hz ``EEG_CHANNELS`` array window by window into a timeline.

    The windows of every continuous segment are gathered into batches of ``batch_size`` (one
    batch in memory at a time), judged by :func:`hmslib.signal.window_quality_flags` and predicted;
    a window without signal (``prior_used``) gets the class prior, never the model's guess.

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
        Flat-lead criteria, as :func:`hmslib.signal.window_quality_flags`.
    segments : sequence of Segment, optional
        The continuous segments of ``eeg`` (``report.segments`` of :func:`load_recording`); no
        window straddles two. Default: one segment from 0 s.
    prior : array-like, optional
        ``(6,)`` probabilities for windows without signal; default the predictor's
        ``class_prior`` (a :class:`~hmslib.predict.Predictor`'s), else
        :data:`hmslib.predict.UNIFORM_PRIOR`.

    Returns
    -------
    pandas.DataFrame
        One row per window, columns :data:`TIMELINE_COLUMNS`: ``start_s``/``end_s`` bound the
        central 10 s that the row scores (``window start + 20`` and ``+ 30`` s, in recording
        time); the six class probabilities; ``top_class`` and ``top_prob``; ``nan_frac``,
        ``flat_leads``, ``filled_leads``; ``bad`` is True when the window holds NaN or a flat lead
        or too little signal; ``prior_used`` when it had too little signal and got the prior;
        ``segment`` the index of its continuous segment. Bad windows are still scored, never
        dropped.

    Raises
    ------
    ValueError
        No segment as long as one 50 s window; the predictor returns the wrong shape,
        non-finite values, or rows that do not sum to 1 within 1e-4.
    """
    check_number("batch_size", batch_size, low=1, integer=True)
    step = _stride_samples(stride_s, SFREQ)
    length = int(round(EEG_WINDOW_SECONDS * SFREQ))
    if segments is None or len(segments) == 0:
        segments = (Segment(0.0, 0, eeg.shape[-1]),)
    starts, onsets, index = _window_starts(segments, eeg.shape[-1], step, stride_s)
    if len(starts) == 0:
        if len(segments) == 1:
            sliding_windows(eeg[:, segments[0].start : segments[0].stop], stride_s=stride_s)
        longest = max(seg.duration_s for seg in segments)
        raise ValueError(
            f"recording has {len(segments)} continuous segments, the longest {longest:.1f} s, "
            f"none as long as one {EEG_WINDOW_SECONDS:g} s window"
        )
    if prior is None:
        prior = getattr(predictor, "class_prior", UNIFORM_PRIOR)
    prior = np.asarray(prior, dtype=np.float64)
    # every window start of the recording as a view (no copy): (samples - length + 1, 20, length)
    view = np.lib.stride_tricks.sliding_window_view(eeg, length, axis=-1).transpose(1, 0, 2)
    n = len(starts)
    probs = np.empty((n, len(CLASSES)))
    parts = []
    with tqdm(total=n, desc="scoring windows", unit="win", disable=not progress) as bar:
        for i in range(0, n, batch_size):
            batch = np.asarray(view[starts[i : i + batch_size]], dtype=np.float32)  # one copy
            quality = window_quality_flags(batch, flat_uv=flat_uv, min_flat_s=min_flat_s)
            if isinstance(predictor, Predictor):
                out = predictor.predict(batch, batch_size=len(batch), quality=quality)
            else:
                out = predictor(batch)
            out = _check_probs(out, len(batch))
            out[quality.no_signal] = prior
            probs[i : i + len(batch)] = out
            parts.append(quality)
            bar.update(len(batch))
    quality = WindowQuality.concat(parts)
    start = onsets + (EEG_WINDOW_SECONDS - LABEL_CENTER_SECONDS) / 2
    top = probs.argmax(axis=1)
    timeline = pd.DataFrame({"start_s": start, "end_s": start + LABEL_CENTER_SECONDS})
    timeline[list(CLASSES)] = probs
    timeline["top_class"] = np.asarray(CLASSES, dtype=object)[top]
    timeline["top_prob"] = probs[np.arange(n), top]
    timeline["nan_frac"] = quality.nan_frac
    timeline["flat_leads"] = WindowQuality.lead_names(quality.flat)
    timeline["filled_leads"] = ";".join(filled)
    timeline["bad"] = quality.bad
    timeline["prior_used"] = quality.no_signal
    timeline["segment"] = index
    return timeline[list(TIMELINE_COLUMNS)]


def _predictor_for(
    run_dir: str | os.PathLike | WindowPredictor, *, device: str, tta: bool
) -> WindowPredictor:
    """A predictor as given, or the EEG-only :class:`~hmslib.predict.Predictor` of a run folder."""
    if callable(run_dir):
        return run_dir
    return Predictor.from_run(run_dir, device=device, tta=tta, eeg_only=True)


def score_raw(
    raw,
    run_dir: str | os.PathLike | WindowPredictor,
    *,
    stride_s: float = 10.0,
    allow_missing: bool = False,
    batch_size: int = 32,
    device: str = "cpu",
    tta: bool = False,
    progress: bool = True,
) -> pd.DataFrame:
    """Score an ``mne.io.Raw`` window by window with a trained run.

    The Raw goes through :func:`hmslib.recording.load_raw` (channel names mapped onto the 10-20
    leads, resampled to 200 Hz, missing leads filled on request; a whole EDF+D file keeps its
    gaps), then :func:`score_eeg`.

    Parameters
    ----------
    raw : mne.io.BaseRaw
        The recording, as MNE holds it (volts; any rate of at least 100 Hz).
    run_dir : str, path-like or WindowPredictor
        A trained run folder (``ensemble.json`` + ``models/``), or a predictor.
    stride_s : float
        Seconds between consecutive 50 s windows (10 s tiles the recording with the scored
        central 10 s of each window).
    allow_missing : bool
        Fill missing scalp leads by interpolation from neighbours (marked in ``filled_leads``).
    batch_size : int
        Windows per batch.
    device, tta
        For a run folder: where to compute, and hemisphere-mirror test-time augmentation
        (:meth:`hmslib.predict.Predictor.from_run`).
    progress : bool
        Show a progress bar over windows.

    Returns
    -------
    pandas.DataFrame
        The timeline of :func:`score_eeg`, times in seconds from the start of the recording.

    Raises
    ------
    TypeError, ValueError
        As :func:`hmslib.recording.load_raw`, :meth:`hmslib.predict.Predictor.from_run` and
        :func:`score_eeg` (no continuous segment of 50 s).
    """
    eeg, report = load_raw(raw, allow_missing=allow_missing)
    return _score_loaded(eeg, report, run_dir, stride_s=stride_s, batch_size=batch_size,
                         device=device, tta=tta, progress=progress)  # fmt: skip


def _score_loaded(eeg, report, run_dir, *, stride_s, batch_size, device, tta, progress):
    """:func:`score_eeg` of a loaded recording with its report's filled leads and segments."""
    return score_eeg(
        eeg,
        _predictor_for(run_dir, device=device, tta=tta),
        stride_s=stride_s,
        filled=report.filled,
        batch_size=batch_size,
        progress=progress,
        segments=report.segments,
    )


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

    :func:`hmslib.recording.load_recording` (MNE, with the EDF+D record times) then the path of
    :func:`score_raw`.

    Parameters
    ----------
    path : str or path-like
        EDF/EDF+ (also EDF+D), BDF, BrainVision, EEGLAB... (:func:`load_recording`).
    run_dir, stride_s, allow_missing, batch_size, device, tta, progress
        As :func:`score_raw`.

    Returns
    -------
    pandas.DataFrame
        The timeline of :func:`score_eeg`: each row's ``start_s``/``end_s`` is the central 10 s
        of its 50 s window, in seconds from the start of the recording.

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`hmslib.recording.load_recording` and
        :meth:`hmslib.predict.Predictor.from_run`; a recording without a 50 s continuous segment.
    """
    eeg, report = load_recording(path, allow_missing=allow_missing)
    return _score_loaded(eeg, report, run_dir, stride_s=stride_s, batch_size=batch_size,
                         device=device, tta=tta, progress=progress)  # fmt: skip


def write_timeline(
    timeline: pd.DataFrame,
    eeg: np.ndarray,
    out_dir: str | os.PathLike,
    *,
    title: str | None = None,
    segments: Sequence[Segment] | None = None,
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
    segments : sequence of Segment, optional
        The continuous stretches of an EDF+D recording (``RecordingReport.segments``), drawn at
        their onsets with the gaps left grey.

    Returns
    -------
    (pathlib.Path, pathlib.Path)
        The CSV and PNG paths.
    """
    import matplotlib.pyplot as plt

    from hmslib.viz import plot_timeline

    out_dir = Path(out_dir)
    csv_path = write_csv_atomic(timeline, out_dir / "timeline.csv", float_format="%.6g")
    fig = plot_timeline(timeline, eeg, title=title, segments=segments)
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
