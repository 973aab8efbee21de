"""Clinical EEG recordings (EDF/EDF+, BDF, BrainVision, EEGLAB): read, map channels, resample, write.

A hospital recording is not a competition parquet file: it has its own sampling rate (256, 500, 512 Hz
...), its own channel names (``EEG Fp1-REF``, ``FP1``, ``T7`` for T3, ``EKG1``), extra channels and
hours of signal. :func:`load_recording` reads it with MNE-Python, maps the channel names onto the 19
leads of the 10-20 system (+ EKG) in ``EEG_CHANNELS`` order and resamples to 200 Hz with a polyphase
filter; :func:`load_raw` does the same for an ``mne.io.Raw`` already in memory (the one path:
:func:`load_recording` opens the file and calls it). :func:`export_edf` writes an EEG as a clinical
system exports it. Scoring a recording window by window is :mod:`hmslib.scoring`.

Discontinuous EDF+ files (``EDF+D``: recording paused and resumed) store the start time of every
data record in the file's ``EDF Annotations`` signal; MNE reads the records as if they were
contiguous (mne-python issue 13429). :func:`edf_segments` reads those record times, and
:func:`load_recording` reports the continuous stretches as :class:`Segment` s
(:attr:`RecordingReport.segments`): the EEG array holds the segments end to end (as MNE reads them,
each resampled on its own), and each segment knows where it starts in the recording.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hmslib._checks import atomic_path, check_eeg
from hmslib.constants import EEG_CHANNELS, SCALP_CHANNELS, SFREQ
from hmslib.signal import resample_to_sfreq

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
class Segment:
    """A continuous stretch of a recording, as held in the 200 Hz array of :func:`load_recording`.

    Attributes
    ----------
    onset_s : float
        Where the stretch starts, seconds from the start of the recording (for an EDF+D file:
        the start time of its first data record).
    start, stop : int
        Its samples ``[start, stop)`` in the 200 Hz EEG array.
    """

    onset_s: float
    start: int
    stop: int

    @property
    def duration_s(self) -> float:
        """Length, seconds at 200 Hz."""
        return (self.stop - self.start) / SFREQ


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
    segments : tuple of Segment
        The continuous stretches of the EEG array, in order: one for a continuous recording,
        several for an EDF+D file with gaps (empty only for a report built by hand, meaning one).
    """

    path: Path
    sfreq: float
    duration_s: float
    mapped: dict[str, str]
    dropped: tuple[str, ...]
    missing: tuple[str, ...]
    filled: tuple[str, ...]
    segments: tuple[Segment, ...] = ()

    @property
    def gaps(self) -> list[tuple[float, float]]:
        """``(start_s, end_s)`` of every gap between consecutive segments, seconds."""
        return [
            (a.onset_s + a.duration_s, b.onset_s)
            for a, b in zip(self.segments[:-1], self.segments[1:], strict=True)
        ]

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
        if len(self.segments) > 1:
            gaps = ", ".join(f"{a:.1f}-{b:.1f} s" for a, b in self.gaps[:5])
            more = "..." if len(self.gaps) > 5 else ""
            lines.append(
                f"  discontinuous: {len(self.segments)} segments, gaps {gaps}{more} (scored apart)"
            )
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


def _edf_layout(path: Path) -> dict:
    """The EDF/BDF header fields needed to find the record times (labels, samples per record...)."""
    with open(path, "rb") as fh:
        head = fh.read(256)
        n_signals = int(head[252:256])
        signal_head = fh.read(256 * n_signals)
    labels = [signal_head[16 * i : 16 * i + 16].decode("latin-1").strip() for i in range(n_signals)]
    at = 216 * n_signals
    per_record = [int(signal_head[at + 8 * i : at + 8 * i + 8]) for i in range(n_signals)]
    return {
        "header_bytes": int(head[184:192]),
        "reserved": head[192:236].decode("latin-1").strip(),
        "n_records": int(head[236:244]),
        "record_s": float(head[244:252]),
        "labels": labels,
        "per_record": per_record,
        "sample_bytes": 3 if head[:1] == b"\xff" else 2,
    }


def edf_segments(path: str | os.PathLike) -> list[tuple[float, float, float]]:
    """The continuous stretches of an EDF/BDF file, from the start times of its data records.

    In an EDF+D (or BDF+D) file the first time-stamped annotation of every data record (in the
    ``EDF Annotations`` signal) is the record's start, seconds from the file's start time; a record
    that starts later than the previous one ends begins a new stretch. Readers that ignore this
    (MNE, mne-python issue 13429) put the records end to end.

    Parameters
    ----------
    path : path
        An ``.edf`` / ``.bdf`` file.

    Returns
    -------
    list of (float, float, float)
        ``(onset_s, start_s, stop_s)`` per stretch: where it starts in the recording, and the span
        ``[start_s, stop_s)`` it occupies in the records laid end to end (the time axis of MNE's
        reading), seconds. One stretch ``(0, 0, n_records * record_s)`` for a continuous file
        (EDF, EDF+C, or EDF+D without gaps).

    Raises
    ------
    ValueError
        An EDF+D file whose record times cannot be read or go backwards (named).
    """
    path = Path(path)
    layout = _edf_layout(path)
    n_records, record_s = layout["n_records"], layout["record_s"]
    record_bytes = sum(layout["per_record"]) * layout["sample_bytes"]
    if n_records < 0:  # not closed: as many complete records as the file holds
        n_records = (path.stat().st_size - layout["header_bytes"]) // record_bytes
    whole = [(0.0, 0.0, n_records * record_s)]
    annotations = [i for i, lab in enumerate(layout["labels"]) if lab in ("EDF Annotations", "BDF Annotations")]
    if not layout["reserved"].endswith("+D") or not annotations or n_records == 0:
        return whole
    ann = annotations[0]
    offset = sum(layout["per_record"][:ann]) * layout["sample_bytes"]
    width = layout["per_record"][ann] * layout["sample_bytes"]
    records = np.memmap(path, dtype=np.uint8, mode="r", offset=layout["header_bytes"],
                        shape=(n_records, record_bytes))  # fmt: skip
    tals = np.asarray(records[:, offset : offset + width])
    del records
    onsets = np.empty(n_records)
    for r, row in enumerate(tals):  # one record header per record (not a window loop)
        try:
            onsets[r] = float(row.tobytes().split(b"\x14", 1)[0])
        except ValueError as err:
            raise ValueError(
                f"{path}: EDF+D record {r} has no readable start time in its annotation "
                f"signal ({err})"
            ) from err
    late = np.diff(onsets) - record_s
    if (late < -1e-6).any():
        r = int(np.flatnonzero(late < -1e-6)[0]) + 1
        raise ValueError(
            f"{path}: EDF+D record {r} starts at {onsets[r]:g} s, before the previous record "
            f"ends ({onsets[r - 1] + record_s:g} s)"
        )
    cuts = np.flatnonzero(late > 1e-6) + 1
    bounds = np.concatenate([[0], cuts, [n_records]])
    return [
        (float(onsets[a]), a * record_s, b * record_s)
        for a, b in zip(bounds[:-1], bounds[1:], strict=True)
    ]


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


def fill_missing(
    eeg: np.ndarray, missing: Sequence[str], *, source: str = "recording", copy: bool = True
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
    copy : bool
        Fill a copy (default); False fills ``eeg`` in place (no second copy of a long recording).

    Returns
    -------
    numpy.ndarray
        ``eeg`` (or its copy) with the ``missing`` rows filled.

    Raises
    ------
    ValueError
        A name is not a scalp lead, or a missing lead has none of its neighbours present.
    """
    bad = [m for m in missing if m not in NEIGHBOURS]
    if bad:
        raise ValueError(f"{source}: cannot interpolate {bad}: not 10-20 scalp leads")
    near = {}
    for lead in missing:
        near[lead] = [EEG_CHANNELS.index(n) for n in NEIGHBOURS[lead] if n not in missing]
        if not near[lead]:
            raise ValueError(
                f"{source}: cannot interpolate {lead}: none of its neighbours "
                f"{list(NEIGHBOURS[lead])} is in the file"
            )
    out = eeg.copy() if copy else eeg
    for lead, rows in near.items():  # a few leads; each reads only its neighbours' rows
        out[EEG_CHANNELS.index(lead)] = out[rows].mean(axis=0)
    return out


def load_recording(
    path: str | os.PathLike, *, allow_missing: bool = False
) -> tuple[np.ndarray, RecordingReport]:
    """Read a clinical EEG recording as a 200 Hz ``EEG_CHANNELS`` array, with a report.

    Opens the file with MNE (header only) and goes through :func:`load_raw`; for EDF/BDF files the
    continuous stretches come from the data record times (:func:`edf_segments`).

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
        row is NaN when the file has no EKG/ECG channel. An EDF+D file's segments lie end to end
        (``report.segments`` says where each starts in the recording).
    report : RecordingReport
        Mapped, dropped, missing and filled channels, the file's rate and length, the segments.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Empty, unreadable or truncated file; sampling rate below 100 Hz; fewer than 10 of the 19
        scalp leads; missing scalp leads without ``allow_missing`` (the message names them).
        A recording of any length is read; scoring it needs at least one 50 s window.
    """
    path = Path(path)
    raw = _read_raw(path)
    spans = edf_segments(path) if path.suffix.lower() in {".edf", ".bdf"} else None
    return _load(raw, path, spans, allow_missing=allow_missing)


def load_raw(raw, *, allow_missing: bool = False) -> tuple[np.ndarray, RecordingReport]:
    """:func:`load_recording` for an ``mne.io.Raw`` already open (e.g. read or built by a researcher).

    The same channel mapping, checks, resampling and filling as :func:`load_recording` (which
    calls the same code). A Raw read from an EDF+D file and not cropped keeps the file's gaps
    (:func:`edf_segments`); any other Raw is one continuous segment starting at 0 s.

    Parameters
    ----------
    raw : mne.io.BaseRaw
        Any MNE Raw (preloaded or not); data in volts, as MNE holds it.
    allow_missing : bool
        As :func:`load_recording`.

    Returns
    -------
    eeg, report
        As :func:`load_recording`; ``report.path`` is the Raw's file, or ``<mne Raw>``.

    Raises
    ------
    TypeError
        ``raw`` is not an MNE Raw.
    ValueError
        As :func:`load_recording`.
    """
    import mne

    if not isinstance(raw, mne.io.BaseRaw):
        raise TypeError(f"load_raw: expected an mne.io.Raw, got {type(raw).__name__}")
    files = [f for f in (raw.filenames or ()) if f is not None]
    source = Path(files[0]) if len(files) == 1 else Path("<mne Raw>")
    spans = None
    if source.suffix.lower() in {".edf", ".bdf"} and source.is_file() and raw.first_samp == 0:
        found = edf_segments(source)
        if abs(found[-1][2] * raw.info["sfreq"] - raw.n_times) < 1:  # the whole file, not cropped
            spans = found
        elif len(found) > 1:
            warnings.warn(
                f"{source}: an EDF+D file with {len(found) - 1} gaps, but this Raw does not hold "
                "all its records; its samples are treated as continuous",
                UserWarning,
                stacklevel=2,
            )
    return _load(raw, source, spans, allow_missing=allow_missing)


def _load(raw, path: Path, spans, *, allow_missing: bool) -> tuple[np.ndarray, RecordingReport]:
    """The one reading path: check, map, read segment by segment and channel by channel, resample."""
    sfreq = float(raw.info["sfreq"])
    duration = raw.n_times / sfreq
    if sfreq < MIN_SFREQ:
        raise ValueError(
            f"{path}: sampling rate {sfreq:g} Hz is below {MIN_SFREQ:g} Hz; the models need "
            f"0.5-20 Hz sampled at {SFREQ:g} Hz"
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
    spans = spans or [(0.0, 0.0, raw.n_times / sfreq)]
    bounds = [(onset, round(a * sfreq), min(round(b * sfreq), raw.n_times)) for onset, a, b in spans]
    rows = [EEG_CHANNELS.index(lead) for lead in mapped]
    picks = [names.index(src) for src in mapped.values()]
    parts, segments, at = [], [], 0
    for onset, a, b in bounds:  # a few segments
        part = None
        for row, pick in zip(rows, picks, strict=True):  # channel by channel: no float64 copy
            try:  # of the whole recording
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    data = raw.get_data(picks=[pick], start=a, stop=b)
            except Exception as err:
                raise ValueError(
                    f"{path}: cannot read the signal data ({type(err).__name__}: {err})"
                ) from err
            data *= 1e6  # volts -> microvolts
            resampled = resample_to_sfreq(data, sfreq)
            if part is None:
                part = np.full((len(EEG_CHANNELS), resampled.shape[-1]), np.nan, dtype=np.float32)
            part[row] = resampled[0]
        parts.append(part)
        segments.append(Segment(onset_s=float(onset), start=at, stop=at + part.shape[-1]))
        at += part.shape[-1]
    eeg = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
    del parts
    if missing_scalp:
        eeg = fill_missing(eeg, missing_scalp, source=str(path), copy=False)
    report = RecordingReport(
        path=path,
        sfreq=sfreq,
        duration_s=duration,
        mapped=mapped,
        dropped=tuple(dropped),
        missing=missing,
        filled=tuple(missing_scalp),
        segments=tuple(segments),
    )
    return eeg, report


#: Channel names a clinical system writes for the ``EEG_CHANNELS`` (the 2006 names T7/T8/P7/P8 for
#: T3/T4/T5/T6, ``EEG <lead>-REF`` in capitals, ``EKG1``), as :func:`export_edf` uses them.
CLINICAL_NAMES: dict[str, str] = {
    c: f"EEG {dict(T3='T7', T4='T8', T5='P7', T6='P8').get(c, c).upper()}-REF" for c in SCALP_CHANNELS
} | {"EKG": "EEG EKG1-REF"}


def export_edf(
    eeg: np.ndarray,
    path: str | os.PathLike,
    *,
    sfreq: float = SFREQ,
    target_sfreq: float = SFREQ,
    names: Sequence[str] | None = None,
    omit: Sequence[str] = (),
    extra: dict[str, np.ndarray] | None = None,
) -> Path:
    """Write an EEG as an EDF file the way a clinical system exports one, atomically.

    Parameters
    ----------
    eeg : numpy.ndarray
        ``(20, samples)`` µV in ``EEG_CHANNELS`` order at ``sfreq``. EDF has no NaN: NaN samples
        are written as 0 µV (a flat stretch, as a real dropout looks in EDF).
    path : path
        The ``.edf`` file to write.
    sfreq : float
        Sampling rate of ``eeg``, Hz.
    target_sfreq : float
        Sampling rate of the file, Hz (polyphase resampling when it differs, e.g. 256 Hz).
    names : sequence of str, optional
        File channel names of the 20 rows (default :data:`CLINICAL_NAMES`).
    omit : sequence of str
        ``EEG_CHANNELS`` leads to leave out of the file (a reduced montage, a broken electrode).
    extra : dict of str to numpy.ndarray, optional
        Further channels to write after them (e.g. ``{"Photic": zeros}``), µV at ``target_sfreq``.

    Returns
    -------
    pathlib.Path
        ``path``. Each channel is stored as 16-bit integers over its own physical range.
    """
    import mne

    check_eeg(eeg, what="export_edf", batched=False, n_times=None)
    names = list(names or (CLINICAL_NAMES[c] for c in EEG_CHANNELS))
    x = np.nan_to_num(np.asarray(eeg, dtype=np.float64))
    if target_sfreq != sfreq:
        x = resample_to_sfreq(x, sfreq, target=target_sfreq).astype(np.float64)
    keep = [i for i, c in enumerate(EEG_CHANNELS) if c not in omit]
    extra = extra or {}
    rows = [x[keep], *(np.asarray(v, dtype=np.float64)[None, : x.shape[1]] for v in extra.values())]
    info = mne.create_info([*(names[i] for i in keep), *extra], target_sfreq, "eeg")
    raw = mne.io.RawArray(np.vstack(rows) * 1e-6, info, verbose="error")  # MNE works in volts
    with atomic_path(path) as tmp:
        mne.export.export_raw(
            tmp, raw, fmt="edf", physical_range="channelwise", overwrite=True, verbose="error"
        )
    return Path(path)
