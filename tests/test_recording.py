"""Tests of hmslib.recording: reading clinical EEG files, channel mapping, resampling to 200 Hz.

Recordings are written here by small independent writers (EDF, BrainVision, EEGLAB) from signals
known in closed form, so that what MNE reads and :mod:`hmslib.recording` resamples can be compared
with the same signals evaluated directly at 200 Hz. Scoring a recording window by window
(hmslib.scoring) is tested in test_scoring.py, its timeline figure (hmslib.viz) in test_viz.py.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from helpers import band_limited
from numpy.testing import assert_allclose, assert_array_equal

from hmslib.constants import EEG_CHANNELS, SCALP_CHANNELS
from hmslib.io import load_eeg
from hmslib.recording import canonical_channel, fill_missing, load_recording, map_channels
from hmslib.signal import resample_to_sfreq

# New-style names with the prefixes and suffixes of clinical exports, one per EEG_CHANNELS lead.
NEW_STYLE = {
    "Fp1": "EEG FP1-REF", "F3": "EEG F3-REF", "C3": "C3", "P3": "p3", "F7": "EEG F7-Ref",
    "T3": "T7", "T5": "EEG P7-REF", "O1": "O1-LE", "Fz": "FZ", "Cz": "EEG CZ-REF", "Pz": "Pz-AVG",
    "Fp2": "Fp2", "F4": "F4-A2", "C4": "C4", "P4": "P4", "F8": "F8", "T4": "T8", "T6": "EEG P8-REF",
    "O2": "O2", "EKG": "EEG EKG1-REF",
}  # fmt: skip


# --------------------------------------------------------------------------------------------------
# writers (independent of hmslib; MNE reads what they write)
# --------------------------------------------------------------------------------------------------


def _field(value, width: int) -> bytes:
    return str(value)[:width].ljust(width).encode("ascii")


def write_edf(
    path: Path, data_uv: np.ndarray, names: list[str], sfreq: float, *, bdf: bool = False
) -> Path:
    """Plain EDF (16-bit) or BDF (24-bit, ``bdf=True``), 1 s records, of ``data_uv`` in µV."""
    data_uv = np.asarray(data_uv, dtype=np.float64)
    n_sig, n = data_uv.shape
    spr = int(round(sfreq))
    n_rec = n // spr
    data_uv = data_uv[:, : n_rec * spr]
    pmax = np.round(np.abs(data_uv).max(axis=1) + 1.0, 1)
    pmin = -pmax
    dmin, dmax = (-(2**23), 2**23 - 1) if bdf else (-32768, 32767)
    digital = (data_uv - pmin[:, None]) * (dmax - dmin) / (pmax - pmin)[:, None] + dmin
    digital = np.clip(np.round(digital), dmin, dmax).astype("<i4")
    version = b"\xffBIOSEMI" if bdf else _field(0, 8)
    header = b"".join([
        version, _field("X X X X", 80), _field("Startdate X X X X", 80),
        _field("01.01.24", 8), _field("00.00.00", 8), _field(256 * (n_sig + 1), 8), _field("", 44),
        _field(n_rec, 8), _field(1, 8), _field(n_sig, 4),
    ])  # fmt: skip
    columns = [
        (names, 16), (["AgAgCl"] * n_sig, 80), (["uV"] * n_sig, 8), (pmin, 8), (pmax, 8),
        ([dmin] * n_sig, 8), ([dmax] * n_sig, 8), ([""] * n_sig, 80), ([spr] * n_sig, 8),
        ([""] * n_sig, 32),
    ]  # fmt: skip
    header += b"".join(_field(v, w) for values, w in columns for v in values)
    records = digital.reshape(n_sig, n_rec, spr).transpose(1, 0, 2)
    width = 3 if bdf else 2  # little-endian two's complement: the low bytes of the int32
    path.write_bytes(header + records[..., None].view(np.uint8)[..., :width].tobytes())
    return path


def write_brainvision(path: Path, data_uv: np.ndarray, names: list[str], sfreq: float) -> Path:
    """BrainVision (.vhdr/.vmrk/.eeg, float32 multiplexed) of ``data_uv`` in µV."""
    stem = path.with_suffix("")
    channels = "\n".join(f"Ch{i + 1}={n},,1,µV" for i, n in enumerate(names))
    path.write_text(
        "Brain Vision Data Exchange Header File Version 1.0\n\n[Common Infos]\nCodepage=UTF-8\n"
        f"DataFile={stem.name}.eeg\nMarkerFile={stem.name}.vmrk\nDataFormat=BINARY\n"
        f"DataOrientation=MULTIPLEXED\nNumberOfChannels={len(names)}\n"
        f"SamplingInterval={1e6 / sfreq:g}\n\n[Binary Infos]\nBinaryFormat=IEEE_FLOAT_32\n\n"
        f"[Channel Infos]\n{channels}\n",
        encoding="utf-8",
    )
    stem.with_suffix(".vmrk").write_text(
        "Brain Vision Data Exchange Marker File, Version 1.0\n\n[Common Infos]\nCodepage=UTF-8\n"
        f"DataFile={stem.name}.eeg\n\n[Marker Infos]\nMk1=New Segment,,1,1,0\n",
        encoding="utf-8",
    )
    stem.with_suffix(".eeg").write_bytes(np.asarray(data_uv, dtype="<f4").T.tobytes())
    return path


def write_eeglab(path: Path, data_uv: np.ndarray, names: list[str], sfreq: float) -> Path:
    """EEGLAB .set (MATLAB v5, data inside) of ``data_uv`` in µV."""
    chanlocs = np.zeros(len(names), dtype=[("labels", object)])
    chanlocs["labels"] = names
    n = data_uv.shape[-1]
    eeg = {
        "setname": "test", "nbchan": len(names), "pnts": n, "trials": 1, "srate": sfreq,
        "xmin": 0.0, "xmax": (n - 1) / sfreq, "data": np.asarray(data_uv, dtype=np.float32),
        "chanlocs": chanlocs, "event": np.array([]), "icawinv": np.array([]),
        "icasphere": np.array([]), "icaweights": np.array([]),
    }  # fmt: skip
    scipy.io.savemat(path, {"EEG": eeg}, appendmat=False)
    return path


WRITERS = {
    ".edf": write_edf,
    ".bdf": partial(write_edf, bdf=True),
    ".vhdr": write_brainvision,
    ".set": write_eeglab,
}



def edf_recording(path: Path, seconds: float, *, sfreq: float = 256.0, leads=EEG_CHANNELS) -> Path:
    """An EDF of ``seconds`` at ``sfreq`` holding ``leads`` under new-style names (+ Photic)."""
    data = band_limited(seconds, sfreq, len(leads) + 1)
    return write_edf(path, data, [NEW_STYLE[c] for c in leads] + ["Photic"], sfreq)


# --------------------------------------------------------------------------------------------------
# channel names
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "lead"),
    [
        ("Fp1", "Fp1"), ("FP1", "Fp1"), ("fp1", "Fp1"), ("EEG Fp1-REF", "Fp1"),
        ("EEG FP1-Ref", "Fp1"), ("Fp1-LE", "Fp1"), ("EEG FP1-LE", "Fp1"), ("Fp1-A1", "Fp1"),
        ("POL Fp1", "Fp1"), ("Fp1.", "Fp1"), (" Fp1 ", "Fp1"), ("EEG_FP1_REF", "Fp1"),
        ("T7", "T3"), ("T8", "T4"), ("P7", "T5"), ("P8", "T6"), ("EEG T8-REF", "T4"),
        ("P8-AVG", "T6"), ("p7-m1", "T5"), ("T3", "T3"), ("EEG T5-REF", "T5"),
        ("FZ", "Fz"), ("EEG CZ-REF", "Cz"), ("pz", "Pz"), ("O2-RE", "O2"),
        ("EKG", "EKG"), ("ECG", "EKG"), ("EKG1", "EKG"), ("EEG EKG1-REF", "EKG"),
        ("ECG II", "EKG"), ("ecg", "EKG"),
        ("Fp1-F7", None), ("C3-Cz", None), ("Fpz", None), ("EEG T1-REF", None), ("A1", None),
        ("Photic", None), ("EMG", None), ("EEG", None), ("X1", None), ("Resp", None),
    ],
)  # fmt: skip
def test_canonical_channel_table(name, lead):
    assert canonical_channel(name) == lead


def test_map_channels_keeps_first_of_duplicates_and_lists_dropped():
    names = ["Photic", "EEG T3-REF", "EEG FP1-REF", "EEG T7-REF", "Fp1-F7", "ECG"]
    mapped, dropped = map_channels(names)
    assert mapped == {"Fp1": "EEG FP1-REF", "T3": "EEG T3-REF", "EKG": "ECG"}
    assert list(mapped) == ["Fp1", "T3", "EKG"]  # EEG_CHANNELS order
    assert dropped == ["Photic", "EEG T7-REF", "Fp1-F7"]


# --------------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("suffix", "sfreq"), [(".edf", 256.0), (".bdf", 512.0), (".vhdr", 500.0), (".set", 250.0)]
)
def test_recording_round_trips_to_the_200hz_signal(tmp_path, suffix, sfreq):
    seconds = 64.0
    leads = list(EEG_CHANNELS)
    path = WRITERS[suffix](
        tmp_path / f"rec{suffix}",
        band_limited(seconds, sfreq, len(leads) + 1),
        [NEW_STYLE[c] for c in leads] + ["Photic"],
        sfreq,
    )
    eeg, report = load_recording(path)

    # the same sinusoids evaluated at 200 Hz
    expected = band_limited(seconds, 200.0, len(leads) + 1)[: len(leads)]
    assert eeg.dtype == np.float32 and eeg.shape == expected.shape
    inner = slice(100, -100)  # the filter's edge transients: 0.5 s at each end
    error = np.abs(eeg[:, inner] - expected[:, inner])
    assert error.max() < 0.005 * np.abs(expected - expected.mean(axis=1, keepdims=True)).max()
    assert_allclose(eeg.mean(axis=1), expected.mean(axis=1), atol=1.0)
    assert report.sfreq == sfreq and report.duration_s == pytest.approx(seconds)
    assert report.mapped == {c: NEW_STYLE[c] for c in leads}
    assert report.dropped == ("Photic",) and report.missing == () and report.filled == ()


def test_recording_without_ekg_is_read_with_a_nan_ekg_row(tmp_path):
    path = edf_recording(tmp_path / "rec.edf", 60.0, leads=SCALP_CHANNELS)
    eeg, report = load_recording(path)  # io.read_recording / recording.read_recording are gone
    assert list(report.mapped) == list(SCALP_CHANNELS)  # their second value
    assert eeg.shape == (20, 12000) and np.isnan(eeg[19]).all() and np.isfinite(eeg[:19]).all()
    assert report.missing == ("EKG",) and report.filled == ()  # the EKG is not interpolated
    assert_array_equal(load_recording(path, allow_missing=True)[0], eeg)


def test_edf_at_200hz_is_read_without_resampling(tmp_path, hms_samples):
    eeg_200 = load_eeg(hms_samples, 1628180742)  # 90 s of the real seizure sample
    names = [NEW_STYLE[c] for c in EEG_CHANNELS]
    path = write_edf(tmp_path / "seizure.edf", eeg_200, names, 200.0)
    eeg, report = load_recording(path)
    assert report.sfreq == 200.0 and report.mapped == dict(zip(EEG_CHANNELS, names, strict=True))
    step = 2 * (np.abs(eeg_200).max(axis=1, keepdims=True) + 1.0) / 65535  # 16-bit resolution
    assert np.all(np.abs(eeg - eeg_200) <= step)


def test_missing_leads_are_refused_then_interpolated(tmp_path):
    leads = [c for c in EEG_CHANNELS if c not in ("Cz", "Pz")]
    path = edf_recording(tmp_path / "nocz.edf", 60.0, leads=leads)
    with pytest.raises(
        ValueError, match=r"nocz\.edf: missing EEG leads \['Cz', 'Pz'\].*allow_missing"
    ):
        load_recording(path)

    eeg, report = load_recording(path, allow_missing=True)
    row = {c: eeg[i].astype(np.float64) for i, c in enumerate(EEG_CHANNELS)}
    assert_allclose(row["Cz"], (row["Fz"] + row["C3"] + row["C4"]) / 3, rtol=1e-5, atol=1e-4)
    assert_allclose(row["Pz"], (row["P3"] + row["P4"]) / 2, rtol=1e-5, atol=1e-4)
    assert report.filled == ("Cz", "Pz") and report.missing == ("Cz", "Pz")
    assert "Cz" not in report.mapped and "filled by interpolation" in report.summary()


def test_fill_missing_needs_a_neighbour():
    eeg = np.zeros((20, 10), dtype=np.float32)
    with pytest.raises(ValueError, match=r"rec: cannot interpolate Fp1: none of its neighbours"):
        fill_missing(eeg, ["Fp1", "Fp2", "F7", "F3"], source="rec")


def test_recording_shorter_than_a_window_is_read(tmp_path):
    # reading accepts any length; only scoring needs a 50 s window (test_scoring.py)
    seconds = 30.0
    path = edf_recording(tmp_path / "short.edf", seconds)
    eeg, report = load_recording(path)
    expected = band_limited(seconds, 200.0, len(EEG_CHANNELS) + 1)[: len(EEG_CHANNELS)]
    assert eeg.dtype == np.float32 and eeg.shape == expected.shape == (20, 6000)
    inner = slice(100, -100)
    error = np.abs(eeg[:, inner] - expected[:, inner])
    assert error.max() < 0.005 * np.abs(expected - expected.mean(axis=1, keepdims=True)).max()
    assert report.duration_s == pytest.approx(seconds) and report.missing == ()


def test_low_sampling_rate(tmp_path):
    path = edf_recording(tmp_path / "slow.edf", 60.0, sfreq=64.0)
    with pytest.raises(ValueError, match=r"slow\.edf: sampling rate 64 Hz is below 100 Hz"):
        load_recording(path)


def test_truncated_edf(tmp_path):
    path = edf_recording(tmp_path / "cut.edf", 60.0)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(
        ValueError, match=r"cut\.edf: truncated file: the header promises 60 records"
    ):
        load_recording(path)


def test_unreadable_and_absent_files(tmp_path):
    junk = tmp_path / "junk.edf"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(ValueError, match=r"junk\.edf: not an EDF/BDF file"):
        load_recording(junk)
    text = tmp_path / "notes.txt"
    text.write_text("not an EEG")
    with pytest.raises(ValueError, match=r"notes\.txt: cannot read this file as an EEG recording"):
        load_recording(text)
    with pytest.raises(FileNotFoundError, match=r"absent\.edf: recording not found"):
        load_recording(tmp_path / "absent.edf")


def test_bipolar_only_file_says_so(tmp_path):
    names = ["Fp1-F7", "F7-T3", "T3-T5", "T5-O1", "Fp2-F8", "F8-T4", "T4-T6", "T6-O2"]
    path = write_edf(tmp_path / "bip.edf", band_limited(60.0, 256.0, len(names)), names, 256.0)
    with pytest.raises(ValueError, match=r"only 0 of the 19 .* bipolar derivations"):
        load_recording(path, allow_missing=True)


def test_resample_keeps_nan_stretches_in_place():
    sfreq = 256.0
    x = band_limited(60.0, sfreq, 2)
    x[0, int(20 * sfreq) : int(25 * sfreq)] = np.nan
    out = resample_to_sfreq(x, sfreq)
    expected = band_limited(60.0, 200.0, 2)
    t = np.arange(out.shape[-1]) / 200.0
    assert_array_equal(np.isnan(out[1]), np.zeros_like(t, dtype=bool))
    gap = (t >= 20.0) & (t < 25.0)
    assert np.isnan(out[0, gap]).all()
    assert np.isnan(out[0]).sum() <= gap.sum() + 2  # at most one sample more at each edge
    clean = (np.abs(t - 22.5) > 4.0) & (t > 2.0) & (t < 58.0)
    assert_allclose(out[:, clean], expected[:, clean], atol=2.0)
