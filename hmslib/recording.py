"""Clinical EEG recordings (EDF/EDF+, BDF, BrainVision, EEGLAB): read, map, resample, score a timeline.

A hospital recording is not a competition parquet file: it has its own sampling rate (256, 500, 512 Hz
...), its own channel names (``EEG Fp1-REF``, ``FP1``, ``T7`` for T3, ``EKG1``), extra channels and
hours of signal. :func:`load_recording` reads it with MNE-Python, maps the channel names onto the 19
leads of the 10-20 system (+ EKG) in ``EEG_CHANNELS`` order and resamples to 200 Hz with a polyphase
filter. :func:`score_recording` then slides the 50 s context of the competition over the recording and
predicts the six probabilities with a trained run's ensemble, window batch by window batch, into a
timeline that :func:`plot_timeline` draws. ``hms score-edf`` does both and writes ``timeline.csv`` and
``timeline.png``.

Each row of a timeline describes the central 10 s of its 50 s window, because that is what the
experts labelled: window ``k`` covers ``[k * stride, k * stride + 50)`` s of the recording and its row
``[k * stride + 20, k * stride + 30)`` s. The first and last 20 s of a recording are context only.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from hmslib.constants import (
    CHAINS,
    CLASSES,
    EEG_CHANNELS,
    EEG_WINDOW_SECONDS,
    LABEL_CENTER_SECONDS,
    SCALP_CHANNELS,
    SFREQ,
)
from hmslib.io import atomic_path, write_csv_atomic

#: Lowest sampling rate accepted, Hz (the models look at 0.5-20 Hz; below 100 Hz too little is left).
MIN_SFREQ: float = 100.0
#: Fewest 10-20 scalp leads a file must hold, even with ``allow_missing``.
MIN_SCALP_LEADS: int = 10

#: Adjacent leads in the 10-20 layout; a missing lead is filled with the mean of those present.
NEIGHBOURS: dict[str, tuple[str, ...]] = {
    "Fp1": ("Fp2", "F7", "F3"), "Fp2": ("Fp1", "F8", "F4"),
    "F7": ("Fp1", "F3", "T3"), "F3": ("Fp1", "F7", "Fz", "C3"), "Fz": ("F3", "F4", "Cz"),
    "F4": ("Fp2", "Fz", "F8", "C4"), "F8": ("Fp2", "F4", "T4"),
    "T3": ("F7", "C3", "T5"), "C3": ("F3", "T3", "Cz", "P3"), "Cz": ("Fz", "C3", "C4", "Pz"),
    "C4": ("F4", "Cz", "T4", "P4"), "T4": ("F8", "C4", "T6"),
    "T5": ("T3", "P3", "O1"), "P3": ("C3", "T5", "Pz", "O1"), "Pz": ("Cz", "P3", "P4"),
    "P4": ("C4", "Pz", "T6", "O2"), "T6": ("T4", "P4", "O2"),
    "O1": ("T5", "P3", "O2"), "O2": ("T6", "P4", "O1"),
}  # fmt: skip

#: Columns of a timeline, in order.
TIMELINE_COLUMNS: tuple[str, ...] = (
    "start_s", "end_s", *CLASSES, "top_class", "top_prob",
    "nan_frac", "flat_leads", "filled_leads", "bad",
)  # fmt: skip

#: Colour of each class in the timeline figure.
CLASS_COLORS: dict[str, str] = {
    "seizure": "#d62728", "lpd": "#ff7f0e", "gpd": "#bcbd22",
    "lrda": "#2ca02c", "grda": "#1f77b4", "other": "#c7c7c7",
}  # fmt: skip

#: A predictor maps EEG windows ``(b, 20, 10000)`` (µV, 200 Hz, NaN allowed) to ``(b, 6)`` probabilities.
Predictor = Callable[[np.ndarray], np.ndarray]

# Electrode names as written in files (upper case) -> EEG_CHANNELS; T7/T8/P7/P8 are the new names
# of T3/T4/T5/T6 (American Clinical Neurophysiology Society 2006 nomenclature).
_ALIASES: dict[str, str] = {c.upper(): c for c in SCALP_CHANNELS} | {
    "T7": "T3", "T8": "T4", "P7": "T5", "P8": "T6",
}  # fmt: skip
_PREFIX = re.compile(r"^(?:EEG|POL)[\s_:-]*", re.IGNORECASE)
# reference suffixes: "-REF", "-LE" (linked ears), "-AVG", "-A1", "-M2", ... never another electrode
_REF_SUFFIX = re.compile(
    r"[\s_-]+(?:REF|LE|RE|AR|AV|AVG|AVE|CAR|LINKED|A1|A2|A1A2|M1|M2|M1M2)$", re.IGNORECASE
)
_EKG = re.compile(r"^(?:EKG|ECG)(?:[\s_-]*[0-9A-Z+-]*)$", re.IGNORECASE)


# --------------------------------------------------------------------------------------------------
# channel names
# --------------------------------------------------------------------------------------------------


def canonical_channel(name: str) -> str | None:
    """The ``EEG_CHANNELS`` name that a recording's channel name stands for, or None.

    Case-insensitive; understands the old and new 10-20 names (T7/T8/P7/P8 = T3/T4/T5/T6), the
    prefixes ``EEG`` and ``POL``, reference suffixes (``-REF``, ``-LE``, ``-AVG``, ``-A1``, ``-M2``
    ...) and EKG/ECG channels (``ECG``, ``EKG1``, ``EEG EKG1-REF``). A bipolar derivation such as
    ``Fp1-F7`` is not a lead and gives None, as do channels outside the 19 leads (``Fpz``, ``T1``,
    ``Photic``).

    Parameters
    ----------
    name : str
        Channel name as stored in the file.

    Returns
    -------
    str or None
        One of ``EEG_CHANNELS``, or None when the channel is not one of them.
    """
    core = _PREFIX.sub("", name.strip()).rstrip(".").strip()
    core = _REF_SUFFIX.sub("", core)
    if _EKG.fullmatch(core):
        return "EKG"
    return _ALIASES.get(core.upper())


def map_channels(names: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """Map a recording's channel names onto ``EEG_CHANNELS``.

    Parameters
    ----------
    names : sequence of str
        The file's channel names, in file order.

    Returns
    -------
    mapped : dict of str to str
        ``EEG_CHANNELS`` name -> file channel name, in ``EEG_CHANNELS`` order. When two file
        channels stand for the same lead (``T3`` and ``T7``) the first one in the file is used.
    dropped : list of str
        File channels not used, in file order.
    """
    first: dict[str, str] = {}
    for name in names:
        lead = canonical_channel(name)
        if lead is not None and lead not in first:
            first[lead] = name
    mapped = {lead: first[lead] for lead in EEG_CHANNELS if lead in first}
    used = set(mapped.values())
    return mapped, [name for name in names if name not in used]


def _bipolar_hint(names: Sequence[str]) -> str:
    """A hint for files that hold bipolar derivations (``Fp1-F7``) instead of referential leads."""
    pairs = [
        n for n in names if len(n.split("-")) == 2 and all(map(canonical_channel, n.split("-")))
    ]
    if not pairs:
        return ""
    return (
        f"; the file holds bipolar derivations ({', '.join(pairs[:4])}...), but scoring needs the "
        "referential leads (each electrode against a common reference)"
    )


# --------------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordingReport:
    """What :func:`load_recording` found in a file and did with it.

    Attributes
    ----------
    path : pathlib.Path
        The recording.
    sfreq : float
        The file's sampling rate, Hz (the returned EEG is always at 200 Hz).
    duration_s : float
        Length of the recording, seconds.
    mapped : dict of str to str
        ``EEG_CHANNELS`` name -> file channel name of every lead read from the file.
    dropped : tuple of str
        File channels not used (other electrodes, bipolar derivations, photic, annotations...).
    missing : tuple of str
        ``EEG_CHANNELS`` names not found in the file (their rows are filled or NaN).
    filled : tuple of str
        Scalp leads that were missing and filled by interpolation from their neighbours.
    """

    path: Path
    sfreq: float
    duration_s: float
    mapped: dict[str, str]
    dropped: tuple[str, ...]
    missing: tuple[str, ...]
    filled: tuple[str, ...]

    def summary(self) -> str:
        """A few lines for people: file, rate, length, mapped / dropped / missing / filled."""
        renamed = [f"{src}->{lead}" for lead, src in self.mapped.items() if src != lead]
        resampled = f" (resampled to {SFREQ:g} Hz)" if self.sfreq != SFREQ else ""
        lines = [
            f"{self.path}: {self.duration_s:.1f} s at {self.sfreq:g} Hz{resampled}",
            f"  mapped  {len(self.mapped)}/{len(EEG_CHANNELS)}: {', '.join(self.mapped)}",
        ]
        if renamed:
            lines.append(f"  renamed {', '.join(renamed)}")
        lines.append(f"  dropped {len(self.dropped)}: {', '.join(self.dropped) or '-'}")
        lines.append(f"  missing {len(self.missing)}: {', '.join(self.missing) or '-'}")
        if self.filled:
            lines.append(f"  filled by interpolation from neighbours: {', '.join(self.filled)}")
        return "\n".join(lines)


def _check_edf_size(path: Path) -> None:
    """Raise if an EDF/BDF file is shorter than its header says (a truncated copy)."""
    with open(path, "rb") as fh:
        head = fh.read(256)
        if len(head) < 256:
            raise ValueError(f"{path}: not an EDF/BDF file (only {len(head)} bytes, header is 256)")
        try:
            header_bytes = int(head[184:192])
            n_records = int(head[236:244])
            record_s = float(head[244:252])
            n_signals = int(head[252:256])
        except ValueError as err:
            raise ValueError(f"{path}: not an EDF/BDF file (unreadable header: {err})") from err
        fh.seek(256 + 216 * n_signals)
        field = fh.read(8 * n_signals)
    try:
        per_record = sum(int(field[8 * i : 8 * i + 8]) for i in range(n_signals))
    except ValueError as err:
        raise ValueError(f"{path}: not an EDF/BDF file (unreadable signal header: {err})") from err
    if per_record <= 0 or header_bytes < 256:
        raise ValueError(
            f"{path}: not an EDF/BDF file (header of {header_bytes} bytes, {per_record} samples "
            "per record)"
        )
    if n_records < 0:  # -1: recording not closed; MNE infers the length from the file size
        return
    sample_bytes = 3 if head[:1] == b"\xff" else 2
    expected = header_bytes + n_records * per_record * sample_bytes
    size = path.stat().st_size
    if size < expected:
        complete = max(0, (size - header_bytes) // (per_record * sample_bytes))
        raise ValueError(
            f"{path}: truncated file: the header promises {n_records} records "
            f"({n_records * record_s:g} s, {expected} bytes) but the file has {size} bytes "
            f"({complete} complete records, {complete * record_s:g} s); copy the file again"
        )


def _read_raw(path: Path):
    """Open a recording with MNE (header only), with errors that name the file."""
    import mne

    if not path.is_file():
        raise FileNotFoundError(f"{path}: recording not found")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: recording file is empty (0 bytes)")
    if path.suffix.lower() in {".edf", ".bdf"}:
        _check_edf_size(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return mne.io.read_raw(path, preload=False, verbose="error")
    except Exception as err:  # MNE's readers raise many types for unreadable files
        raise ValueError(
            f"{path}: cannot read this file as an EEG recording ({type(err).__name__}: {err}); "
            "readable: EDF/EDF+ (.edf), BDF (.bdf), BrainVision (.vhdr), EEGLAB (.set) and the "
            "other formats of mne.io.read_raw"
        ) from err


def resample_to_sfreq(x: np.ndarray, sfreq: float, *, target: float = SFREQ) -> np.ndarray:
    """Resample signals to ``target`` Hz with a polyphase anti-aliasing filter.

    NaN stretches survive: they are bridged linearly for filtering and set back to NaN at every
    output sample next to a NaN input sample.

    Parameters
    ----------
    x : numpy.ndarray
        Shape ``(channels, samples)`` at ``sfreq``.
    sfreq : float
        Sampling rate of ``x``, Hz.
    target : float
        Output sampling rate, Hz.

    Returns
    -------
    numpy.ndarray
        float32 ``(channels, ceil(samples * target / sfreq))`` (the ratio is the nearest fraction
        with a denominator up to 1000, exact for 250, 256, 500, 512, 1000, 1024, 2048 Hz ...).
    """
    from scipy.signal import resample_poly

    x = np.asarray(x, dtype=np.float64)
    if sfreq == target:
        return x.astype(np.float32)
    ratio = (Fraction(target) / Fraction(sfreq)).limit_denominator(1000)
    up, down = ratio.numerator, ratio.denominator
    nan = np.isnan(x)
    if nan.any():
        x = x.copy()
        t = np.arange(x.shape[-1])
        for row in np.flatnonzero(nan.any(axis=-1)):  # a few channels, not windows
            ok = ~nan[row]
            x[row] = np.interp(t, t[ok], x[row, ok]) if ok.any() else 0.0
    # padtype="line": EEG leads carry large DC offsets that a zero pad would turn into edge ringing
    out = resample_poly(x, up, down, axis=-1, padtype="line").astype(np.float32)
    if nan.any():
        pos = np.arange(out.shape[-1]) * (down / up)
        lo = np.minimum(np.floor(pos).astype(np.int64), x.shape[-1] - 1)
        hi = np.minimum(lo + 1, x.shape[-1] - 1)
        out[nan[:, lo] | nan[:, hi]] = np.nan
    return out


def fill_missing(
    eeg: np.ndarray, missing: Sequence[str], *, source: str = "recording"
) -> np.ndarray:
    """Fill missing scalp leads with the mean of their present neighbours in the 10-20 layout.

    Parameters
    ----------
    eeg : numpy.ndarray
        Shape ``(20, samples)`` in ``EEG_CHANNELS`` order; the rows of ``missing`` are ignored.
    missing : sequence of str
        Scalp leads (``SCALP_CHANNELS`` names) to fill; see :data:`NEIGHBOURS`.
    source : str
        Name of the recording for error messages.

    Returns
    -------
    numpy.ndarray
        A copy of ``eeg`` with the ``missing`` rows filled.

    Raises
    ------
    ValueError
        A name is not a scalp lead, or a missing lead has none of its neighbours present.
    """
    bad = [m for m in missing if m not in NEIGHBOURS]
    if bad:
        raise ValueError(f"{source}: cannot interpolate {bad}: not 10-20 scalp leads")
    present = [c for c in SCALP_CHANNELS if c not in missing]
    weights = np.zeros((len(missing), len(present)), dtype=np.float32)
    for i, lead in enumerate(missing):
        near = [present.index(n) for n in NEIGHBOURS[lead] if n in present]
        if not near:
            raise ValueError(
                f"{source}: cannot interpolate {lead}: none of its neighbours "
                f"{list(NEIGHBOURS[lead])} is in the file"
            )
        weights[i, near] = 1.0 / len(near)
    out = eeg.copy()
    rows = [EEG_CHANNELS.index(m) for m in missing]
    out[rows] = weights @ eeg[[EEG_CHANNELS.index(p) for p in present]]
    return out


def load_recording(
    path: str | os.PathLike, *, allow_missing: bool = False
) -> tuple[np.ndarray, RecordingReport]:
    """Read a clinical EEG recording as a 200 Hz ``EEG_CHANNELS`` array, with a report.

    Parameters
    ----------
    path : str or path-like
        EDF/EDF+ (``.edf``), BDF (``.bdf``), BrainVision (``.vhdr``), EEGLAB (``.set``), or any
        other format that ``mne.io.read_raw`` reads.
    allow_missing : bool
        Fill scalp leads that the file lacks with the mean of their neighbours
        (:func:`fill_missing`) instead of refusing; the report lists them.

    Returns
    -------
    eeg : numpy.ndarray
        float32 ``(20, samples)`` in microvolts at 200 Hz, rows in ``EEG_CHANNELS`` order; the EKG
        row is NaN when the file has no EKG/ECG channel.
    report : RecordingReport
        Mapped, dropped, missing and filled channels, the file's rate and length.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Empty, unreadable or truncated file; sampling rate below 100 Hz; fewer than 10 of the 19
        scalp leads; missing scalp leads without ``allow_missing`` (the message names them);
        shorter than 50 s.
    """
    path = Path(path)
    raw = _read_raw(path)
    sfreq = float(raw.info["sfreq"])
    duration = raw.n_times / sfreq
    if sfreq < MIN_SFREQ:
        raise ValueError(
            f"{path}: sampling rate {sfreq:g} Hz is below {MIN_SFREQ:g} Hz; the models need "
            f"0.5-20 Hz sampled at {SFREQ:g} Hz"
        )
    if duration < EEG_WINDOW_SECONDS:
        raise ValueError(
            f"{path}: recording is {duration:.1f} s long; scoring needs at least "
            f"{EEG_WINDOW_SECONDS:g} s (one 50 s window)"
        )
    names = list(raw.ch_names)
    mapped, dropped = map_channels(names)
    missing = tuple(c for c in EEG_CHANNELS if c not in mapped)
    missing_scalp = [c for c in missing if c != "EKG"]
    n_scalp = len(SCALP_CHANNELS) - len(missing_scalp)
    if n_scalp < MIN_SCALP_LEADS:
        raise ValueError(
            f"{path}: only {n_scalp} of the 19 10-20 scalp leads found "
            f"({', '.join(mapped) or 'none'}), at least {MIN_SCALP_LEADS} needed; "
            f"file channels: {names[:30]}{_bipolar_hint(names)}"
        )
    if missing_scalp and not allow_missing:
        raise ValueError(
            f"{path}: missing EEG leads {missing_scalp} (file channels: {names[:30]}); pass "
            "allow_missing=True (hms score-edf --allow-missing) to fill them by interpolation "
            "from neighbouring leads"
        )
    picks = [names.index(src) for src in mapped.values()]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = raw.get_data(picks=picks) * 1e6  # volts -> microvolts
    except Exception as err:
        raise ValueError(
            f"{path}: cannot read the signal data ({type(err).__name__}: {err})"
        ) from err
    data = resample_to_sfreq(data, sfreq)
    eeg = np.full((len(EEG_CHANNELS), data.shape[-1]), np.nan, dtype=np.float32)
    eeg[[EEG_CHANNELS.index(lead) for lead in mapped]] = data
    if missing_scalp:
        eeg = fill_missing(eeg, missing_scalp, source=str(path))
    report = RecordingReport(
        path=path,
        sfreq=sfreq,
        duration_s=duration,
        mapped=mapped,
        dropped=tuple(dropped),
        missing=missing,
        filled=tuple(missing_scalp),
    )
    return eeg, report


def read_recording(
    path: str | os.PathLike, *, allow_missing: bool = False
) -> tuple[np.ndarray, list[str]]:
    """Read a clinical EEG recording (EDF/EDF+, BDF, BrainVision, EEGLAB) at 200 Hz.

    Parameters
    ----------
    path : str or path-like
        The recording; see :func:`load_recording`.
    allow_missing : bool
        Fill missing scalp leads by interpolation from their neighbours instead of refusing.

    Returns
    -------
    eeg : numpy.ndarray
        float32 ``(20, samples)``, µV at 200 Hz, ``EEG_CHANNELS`` order (EKG row NaN if absent).
    mapped : list of str
        The ``EEG_CHANNELS`` names read from the file, in that order (filled leads are not in
        it); :func:`load_recording` also says which file channel each came from.

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`load_recording`.
    """
    eeg, report = load_recording(path, allow_missing=allow_missing)
    return eeg, list(report.mapped)


# --------------------------------------------------------------------------------------------------
# windows and quality flags
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# prediction
# --------------------------------------------------------------------------------------------------


def load_run_predictor(run_dir: str | os.PathLike, *, device: str = "cpu") -> Predictor:
    """A :data:`Predictor` from a trained run: each ensembled model's folds averaged, then blended.

    Models whose representation needs the Kaggle spectrogram cannot score a recording (it has
    none): they are skipped with a warning and the remaining ensemble weights renormalised. Each
    representation is computed once per batch and shared by every fold and model that reads it
    (``hmslib.train.predict_windows`` would compute it again for each checkpoint).

    Parameters
    ----------
    run_dir : str or path-like
        A run folder with ``ensemble.json`` and ``models/<model>/fold<k>.pt``.
    device : str
        Torch device (``"cpu"``, ``"cuda"``, ``"auto"``).

    Returns
    -------
    Predictor

    Raises
    ------
    FileNotFoundError
        No ``ensemble.json`` or missing fold checkpoints (the message names them).
    ValueError
        Every model of the ensemble needs the Kaggle spectrogram.
    """
    import torch

    from hmslib.ensemble import Ensemble, blend, load_ensemble
    from hmslib.inference import fold_checkpoints
    from hmslib.spectrogram import compute_representation, representation_info
    from hmslib.train import load_checkpoint, probabilities, resolve_device

    run_dir = Path(run_dir)
    device = resolve_device("auto") if device == "auto" else torch.device(device)
    ensemble = load_ensemble(run_dir / "ensemble.json")
    folds: dict[str, list] = {}
    for name in ensemble.models:
        loaded = [load_checkpoint(p, device=device)[:2] for p in fold_checkpoints(run_dir, name)]
        repr_name = loaded[0][1].repr
        if representation_info(repr_name).uses_kaggle_spectrogram:
            warnings.warn(
                f"{run_dir}: model {name!r} uses representation {repr_name!r}, which needs the "
                "Kaggle spectrogram that a recording does not have; scoring without it",
                UserWarning,
                stacklevel=2,
            )
            continue
        folds[name] = loaded
    if not folds:
        raise ValueError(
            f"{run_dir}: every model of the ensemble ({list(ensemble.models)}) needs the Kaggle "
            "spectrogram; train a model on an EEG representation to score recordings"
        )
    keep = [i for i, name in enumerate(ensemble.models) if name in folds]
    weights = ensemble.weights[keep]
    if weights.sum() <= 0:  # the kept models had weight 0: fall back to equal weights
        weights = np.ones(len(keep))
    subset = Ensemble(
        tuple(ensemble.models[i] for i in keep),
        weights / weights.sum(),
        ensemble.bias,
        ensemble.method,
    )
    reprs = sorted({cfg.repr for models in folds.values() for _, cfg in models})

    @torch.inference_mode()
    def predict(windows: np.ndarray) -> np.ndarray:
        eeg = torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32))
        inputs = {r: compute_representation(r, eeg, None, device=device) for r in reprs}
        probs = {
            name: torch.stack([probabilities(m(inputs[cfg.repr]), cfg.output) for m, cfg in models])
            .mean(dim=0)
            .double()
            .cpu()
            .numpy()
            for name, models in folds.items()
        }
        return blend(probs, subset)

    return predict


def predict_run(
    run_dir: str | os.PathLike | Predictor,
    windows: np.ndarray,
    *,
    batch_size: int = 32,
    device: str = "cpu",
    progress: bool = True,
) -> np.ndarray:
    """Probabilities of a run's ensemble for EEG windows, batch by batch with a progress bar.

    Parameters
    ----------
    run_dir : str, path-like or Predictor
        A trained run folder (:func:`load_run_predictor`), or a callable mapping windows
        ``(b, 20, 10000)`` to ``(b, 6)`` probabilities.
    windows : numpy.ndarray
        ``(n, 20, 10000)`` µV at 200 Hz, e.g. the strided view of :func:`sliding_windows`; copied
        one batch at a time.
    batch_size : int
        Windows per batch.
    device : str
        Torch device for a run folder.
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
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    predictor = run_dir if callable(run_dir) else load_run_predictor(run_dir, device=device)
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


# --------------------------------------------------------------------------------------------------
# scoring
# --------------------------------------------------------------------------------------------------


def score_eeg(
    eeg: np.ndarray,
    run_dir: str | os.PathLike | Predictor,
    *,
    stride_s: float = 10.0,
    filled: Sequence[str] = (),
    batch_size: int = 32,
    device: str = "cpu",
    progress: bool = True,
    flat_uv: float = 1.0,
    min_flat_s: float = 5.0,
) -> pd.DataFrame:
    """Score a 200 Hz ``EEG_CHANNELS`` array window by window into a timeline.

    Parameters
    ----------
    eeg : numpy.ndarray
        float32 ``(20, samples)``, µV at 200 Hz (:func:`load_recording`); NaN allowed.
    run_dir : str, path-like or Predictor
        As :func:`predict_run`.
    stride_s : float
        Seconds between consecutive 50 s windows.
    filled : sequence of str
        Leads filled by interpolation, copied into every row's ``filled_leads``.
    batch_size, device, progress
        As :func:`predict_run`.
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
    probs = predict_run(run_dir, windows, batch_size=batch_size, device=device, progress=progress)
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
    run_dir: str | os.PathLike | Predictor,
    *,
    stride_s: float = 10.0,
    allow_missing: bool = False,
    batch_size: int = 32,
    device: str = "cpu",
    progress: bool = True,
) -> pd.DataFrame:
    """Read a clinical recording and score it window by window with a trained run.

    Parameters
    ----------
    path : str or path-like
        EDF/EDF+, BDF, BrainVision, EEGLAB... (:func:`load_recording`).
    run_dir : str, path-like or Predictor
        A trained run folder (``ensemble.json`` + ``models/``), or a :data:`Predictor`.
    stride_s : float
        Seconds between consecutive 50 s windows (10 s tiles the recording with the scored
        central 10 s of each window).
    allow_missing : bool
        Fill missing scalp leads by interpolation from neighbours (marked in ``filled_leads``).
    batch_size, device, progress
        As :func:`predict_run`.

    Returns
    -------
    pandas.DataFrame
        The timeline of :func:`score_eeg`: each row's ``start_s``/``end_s`` is the central 10 s
        of its 50 s window, in seconds from the start of the recording.

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`load_recording` and :func:`load_run_predictor`.
    """
    eeg, report = load_recording(path, allow_missing=allow_missing)
    return score_eeg(
        eeg,
        run_dir,
        stride_s=stride_s,
        filled=report.filled,
        batch_size=batch_size,
        device=device,
        progress=progress,
    )


# --------------------------------------------------------------------------------------------------
# figure
# --------------------------------------------------------------------------------------------------


def _overview_spectrogram(
    eeg: np.ndarray, *, sfreq: float, max_columns: int, fmax: float = 20.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Log power of each double-banana chain: times (T,), freqs (F,), power (4, F, T)."""
    from scipy.signal import spectrogram

    from hmslib.signal import montage

    bipolar = np.nan_to_num(montage(eeg, "double_banana")[0])  # (16, samples), chain by chain
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

    x = np.concatenate([start, end[-1:]])
    y = np.concatenate([probs, probs[-1:]]).T
    ax_p.stackplot(x, y, step="post", colors=colors, labels=CLASSES, linewidth=0)
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

    times, freqs, power = _overview_spectrogram(eeg, sfreq=sfreq, max_columns=max_columns)
    image = power[::-1].reshape(-1, power.shape[-1])  # rows from the bottom: RL 0.5-20 Hz ... LL
    lo, hi = np.percentile(image, [2, 98])
    half = (times[1] - times[0]) / 2 if len(times) > 1 else times[0]
    extent = (times[0] - half, times[-1] + half, 0, len(CHAINS))
    ax_s.imshow(image, aspect="auto", origin="lower", cmap="viridis", vmin=lo, vmax=hi,
                extent=extent, interpolation="nearest")  # fmt: skip
    ax_s.set_yticks(np.arange(len(CHAINS)) + 0.5, labels=list(CHAINS)[::-1])
    for y in range(1, len(CHAINS)):
        ax_s.axhline(y, color="white", linewidth=0.8)
    ax_s.set_ylabel(f"0.5-{freqs[-1]:.0f} Hz\nper chain")
    ax_s.set_xlabel("time (h:mm:ss)")
    ax_s.set_xlim(0, eeg.shape[-1] / sfreq)
    ax_s.xaxis.set_major_formatter(FuncFormatter(_format_hms))
    if title:
        fig.suptitle(title)
    return fig


# --------------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hms score-edf",
        description="Score a clinical EEG recording (EDF/EDF+, BDF, BrainVision, EEGLAB) every "
        "few seconds with a trained run; writes timeline.csv and timeline.png.",
    )
    parser.add_argument("recording", type=Path, help="the recording file (.edf, .bdf, .vhdr, .set)")
    parser.add_argument("--models", type=Path, required=True, metavar="RUN_DIR",
                        help="trained run folder with ensemble.json and models/")  # fmt: skip
    parser.add_argument("--stride", type=float, default=10.0, metavar="S",
                        help="seconds between 50 s windows (default 10)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="output folder (default RUN_DIR/recordings/<recording name>)")  # fmt: skip
    parser.add_argument("--allow-missing", action="store_true",
                        help="fill missing scalp leads by interpolation from their neighbours")  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=32, help="windows per batch (default 32)")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default: cuda if any)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """``hms score-edf RECORDING --models RUN_DIR [--stride 10] [--out DIR] [--allow-missing]``."""
    import matplotlib.pyplot as plt

    args = _parser().parse_args(argv)
    out = args.out or args.models / "recordings" / args.recording.stem
    try:
        eeg, report = load_recording(args.recording, allow_missing=args.allow_missing)
        print(report.summary())
        timeline = score_eeg(
            eeg,
            args.models,
            stride_s=args.stride,
            filled=report.filled,
            batch_size=args.batch_size,
            device=args.device,
        )
    except (FileNotFoundError, ValueError) as err:
        print(f"hms score-edf: error: {err}", file=sys.stderr)
        return 1
    csv_path = write_csv_atomic(timeline, Path(out) / "timeline.csv", float_format="%.6g")
    fig = plot_timeline(timeline, eeg, title=f"{args.recording.name}: {report.duration_s:.0f} s")
    png_path = Path(out) / "timeline.png"
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    shares = timeline["top_class"].value_counts(normalize=True).reindex(CLASSES, fill_value=0.0)
    print(
        f"scored {len(timeline)} windows ({int(timeline['bad'].sum())} bad) every {args.stride:g} s"
    )
    print("top class share: " + ", ".join(f"{c} {s:.0%}" for c, s in shares.items()))
    print(f"wrote {csv_path}\nwrote {png_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
