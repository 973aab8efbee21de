"""Tests of hmslib.recording: reading clinical EEG files, channel mapping, windows, scoring, timeline.

Recordings are written here by small independent writers (EDF, BrainVision, EEGLAB) from signals
known in closed form, so that what MNE reads and :mod:`hmslib.recording` resamples can be compared
with the same signals evaluated directly at 200 Hz.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.io
import torch
from numpy.testing import assert_allclose, assert_array_equal

from hmslib import io, recording
from hmslib.constants import CLASSES, EEG_CHANNELS, SCALP_CHANNELS
from hmslib.io import load_eeg
from hmslib.recording import (
    CLASS_COLORS,
    TIMELINE_COLUMNS,
    canonical_channel,
    fill_missing,
    load_recording,
    map_channels,
    plot_timeline,
    predict_run,
    read_recording,
    resample_to_sfreq,
    score_eeg,
    score_recording,
    sliding_windows,
    window_quality,
)

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


def band_limited(seconds: float, sfreq: float, n_channels: int, *, seed: int = 0) -> np.ndarray:
    """Sums of sinusoids (0.7-40 Hz, 10-40 µV each) on a -120 µV offset, sampled at ``sfreq``."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sfreq))) / sfreq
    freqs = rng.uniform(0.7, 40.0, size=(n_channels, 6, 1))
    amps = rng.uniform(10.0, 40.0, size=(n_channels, 6, 1))
    phases = rng.uniform(0, 2 * np.pi, size=(n_channels, 6, 1))
    return (amps * np.sin(2 * np.pi * freqs * t + phases)).sum(axis=1) - 120.0


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


def test_read_recording_public_signature(tmp_path):
    path = edf_recording(tmp_path / "rec.edf", 60.0, leads=SCALP_CHANNELS)
    eeg, mapped = io.read_recording(path)  # the public name of the issue
    assert mapped == list(SCALP_CHANNELS)
    assert eeg.shape == (20, 12000) and np.isnan(eeg[19]).all() and np.isfinite(eeg[:19]).all()
    assert_array_equal(read_recording(path)[0], eeg)


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


def test_too_short_recording(tmp_path):
    path = edf_recording(tmp_path / "short.edf", 30.0)
    with pytest.raises(ValueError, match=r"short\.edf: recording is 30\.0 s long.*at least 50 s"):
        load_recording(path)


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


# --------------------------------------------------------------------------------------------------
# windows, quality, scoring
# --------------------------------------------------------------------------------------------------


def test_sliding_windows_is_a_view_of_the_recording():
    eeg = np.random.default_rng(0).normal(size=(20, 200 * 123)).astype(np.float32)
    windows = sliding_windows(eeg, stride_s=7.5)
    n = (200 * 123 - 10000) // 1500 + 1
    assert windows.shape == (n, 20, 10000) and np.shares_memory(windows, eeg)
    for k in (0, 5, n - 1):
        assert_array_equal(windows[k], eeg[:, 1500 * k : 1500 * k + 10000])
    with pytest.raises(ValueError, match="stride_s must be a positive multiple of 1/200"):
        sliding_windows(eeg, stride_s=0.0012)


def _overlap(a0, a1, b0, b1):
    return max(0.0, min(a1, b1) - max(a0, b0))


def test_window_quality_marks_nan_and_flat_stretches():
    rng = np.random.default_rng(1)
    eeg = rng.normal(scale=20.0, size=(20, 200 * 120)).astype(np.float32)
    eeg[EEG_CHANNELS.index("Fp1"), 30 * 200 : 31 * 200] = np.nan  # 1 s of NaN at 30 s
    eeg[EEG_CHANNELS.index("C3"), 60 * 200 : 80 * 200] = 5.0  # C3 flat from 60 to 80 s
    eeg[EEG_CHANNELS.index("O1"), : 20 * 200] = np.nan  # O1 missing for 20 s: NaN, not flat
    eeg[EEG_CHANNELS.index("EKG")] = 0.0  # a flat EKG is not a bad scalp lead
    quality = window_quality(eeg, stride_s=10.0)
    starts = np.arange(8) * 10.0
    nan_s = [_overlap(s, s + 50, 30, 31) + _overlap(s, s + 50, 0, 20) for s in starts]
    nan_expected = np.asarray(nan_s) * 200 / (19 * 10000)
    flat_expected = ["C3" if _overlap(s, s + 50, 60, 80) >= 5 else "" for s in starts]
    assert_allclose(quality["nan_frac"], nan_expected)
    assert quality["flat_leads"].tolist() == flat_expected


class _TinyNet(torch.nn.Module):
    """Log standard deviation of each channel -> linear -> 6 logits."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(20, 6)

    def forward(self, x):
        return self.fc(torch.log1p(torch.nan_to_num(x).std(dim=-1)))


def tiny_predictor(seen: list | None = None):
    model = _TinyNet().eval()

    def predict(windows: np.ndarray) -> np.ndarray:
        if seen is not None:
            seen.append(windows.copy())
        with torch.no_grad():
            return torch.softmax(model(torch.from_numpy(windows)), dim=-1).double().numpy()

    return predict


def test_three_minute_recording_is_scored_window_by_window(tmp_path):
    path = edf_recording(tmp_path / "three_min.edf", 180.0)
    seen: list[np.ndarray] = []
    timeline = score_recording(path, tiny_predictor(seen), batch_size=4, progress=False)

    n = (180 - 50) // 10 + 1
    assert list(timeline.columns) == list(TIMELINE_COLUMNS) and len(timeline) == n
    assert_allclose(timeline["start_s"], 20.0 + 10.0 * np.arange(n))
    assert_allclose(timeline["end_s"], timeline["start_s"] + 10.0)
    probs = timeline[list(CLASSES)].to_numpy()
    assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    assert timeline["top_class"].tolist() == [CLASSES[i] for i in probs.argmax(axis=1)]
    assert not timeline["bad"].any() and (timeline["filled_leads"] == "").all()

    eeg, _ = load_recording(path)
    windows = np.concatenate(seen)
    assert [len(b) for b in seen] == [4, 4, 4, 2]
    for k in range(n):
        assert_array_equal(windows[k], eeg[:, 2000 * k : 2000 * k + 10000])
    reference = tiny_predictor()(np.stack([eeg[:, 2000 * k : 2000 * k + 10000] for k in range(n)]))
    assert_allclose(probs, reference, rtol=1e-6)


def test_scoring_marks_filled_and_bad_windows(tmp_path):
    eeg = band_limited(120.0, 200.0, 20).astype(np.float32)
    eeg[EEG_CHANNELS.index("O2"), 100 * 200 :] = np.nan
    timeline = score_eeg(eeg, tiny_predictor(), stride_s=10.0, filled=("Cz",), progress=False)
    assert timeline["bad"].tolist() == [s + 30 > 100 for s in timeline["start_s"]]
    assert (timeline["filled_leads"] == "Cz").all()
    assert_allclose(timeline[list(CLASSES)].sum(axis=1), 1.0, atol=1e-9)


def test_predict_run_checks_the_predictor_output():
    windows = np.zeros((3, 20, 10000), dtype=np.float32)
    with pytest.raises(ValueError, match=r"predictor returned shape \(3, 5\)"):
        predict_run(lambda w: np.full((len(w), 5), 0.2), windows, progress=False)
    with pytest.raises(ValueError, match="do not sum to 1"):
        predict_run(lambda w: np.full((len(w), 6), 0.5), windows, progress=False)


def test_plot_timeline_marks_the_top_class():
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgba

    eeg = band_limited(200.0, 200.0, 20).astype(np.float32)
    timeline = score_eeg(eeg, tiny_predictor(), progress=False)
    top = np.arange(len(timeline)) % len(CLASSES)  # every class in turn
    probs = np.full((len(timeline), len(CLASSES)), 0.1)
    probs[np.arange(len(timeline)), top] = 0.5
    timeline[list(CLASSES)] = probs
    timeline["top_class"] = [CLASSES[i] for i in top]
    timeline.loc[3, "bad"] = True
    fig = plot_timeline(timeline, eeg, title="test")
    assert len(fig.axes) == 3
    strip = fig.axes[1].patches
    assert len(strip) == len(timeline) + 1  # one bar per row, one hatched bar over the bad row
    expected = [to_rgba(CLASS_COLORS[CLASSES[i]]) for i in top]
    assert [p.get_facecolor() for p in strip[: len(timeline)]] == expected
    assert strip[-1].get_x() == timeline.loc[3, "start_s"] and strip[-1].get_hatch() == "////"
    plt.close(fig)


def test_cli_writes_timeline_files(tmp_path, monkeypatch, capsys):
    path = edf_recording(tmp_path / "cli.edf", 100.0, leads=[c for c in EEG_CHANNELS if c != "T4"])
    run_dir = tmp_path / "run"
    loaded = []
    monkeypatch.setattr(
        recording, "load_run_predictor", lambda d, **kw: loaded.append(d) or tiny_predictor()
    )
    assert recording.main([str(path), "--models", str(run_dir)]) == 1
    assert "missing EEG leads ['T4']" in capsys.readouterr().err

    out = tmp_path / "out"
    args = [str(path), "--models", str(run_dir), "--stride", "5", "--out", str(out)]
    assert recording.main([*args, "--allow-missing"]) == 0
    assert loaded == [run_dir]
    timeline = pd.read_csv(out / "timeline.csv", keep_default_na=False)
    assert len(timeline) == (100 - 50) // 5 + 1
    assert (timeline["filled_leads"] == "T4").all()
    assert (out / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert "T7->T3" in printed and "filled by interpolation from neighbours: T4" in printed


def test_overview_spectrogram_shows_a_burst_in_its_chains():
    import matplotlib.pyplot as plt

    t = np.arange(200 * 300) / 200.0
    eeg = np.random.default_rng(2).normal(scale=5.0, size=(20, t.size)).astype(np.float32)
    burst = (t >= 100) & (t < 200)
    eeg[EEG_CHANNELS.index("Fp1")] += np.where(burst, 80.0 * np.sin(2 * np.pi * 15.0 * t), 0.0)
    timeline = score_eeg(eeg, tiny_predictor(), progress=False)
    fig = plot_timeline(timeline, eeg)
    image = np.asarray(fig.axes[2].images[0].get_array())
    plt.close(fig)
    # rows from the bottom: RL, RP, LP, LL, each 0.5, 1.0, ... 20 Hz; columns of 2 s from t = 0
    n_freqs = image.shape[0] // 4
    assert n_freqs == 40
    centres = np.arange(image.shape[1]) * 2.0 + 1.0
    cols = np.flatnonzero((centres > 105) & (centres < 195))
    during = image[:, cols].mean(axis=1)
    row_15hz = int(round((15.0 - 0.5) / 0.5))
    for region, fp1_in_chain in ((3, True), (2, True), (1, False), (0, False)):  # LL LP RP RL
        rows = during[region * n_freqs : (region + 1) * n_freqs]
        assert (rows.argmax() == row_15hz) == fp1_in_chain


def _write_run(run_dir: Path, models: dict[str, str], weights: list[float], n_folds: int = 2):
    """A run folder with untrained tiny models: ``models`` maps model name -> representation."""
    from hmslib.ensemble import Ensemble, save_ensemble
    from hmslib.models import ModelConfig, build_model
    from hmslib.train import TrainConfig

    for i, (name, repr_name) in enumerate(models.items()):
        kind = "raw" if repr_name == "bipolar_raw" else "image"
        backbone = "wavenet1d" if kind == "raw" else "resnet10t"
        config = ModelConfig(name=name, kind=kind, backbone=backbone, repr=repr_name,
                             widths=(2, 4), strides=(25, 10), dilations=(1, 2), hidden=4,
                             temporal="gem")  # fmt: skip
        train_config = TrainConfig(
            data_dir="none", model=config, out_dir=str(run_dir), n_folds=n_folds
        )
        for fold in range(n_folds):
            torch.manual_seed(10 * i + fold)
            payload = {"model_config": config.to_dict(), "train_config": train_config.to_dict(),
                       "state_dict": build_model(config).state_dict()}  # fmt: skip
            (run_dir / "models" / name).mkdir(parents=True, exist_ok=True)
            torch.save(payload, run_dir / "models" / name / f"fold{fold}.pt")
    save_ensemble(run_dir / "ensemble.json", Ensemble(tuple(models), np.asarray(weights)))


def test_run_predictor_averages_folds_and_skips_spectrogram_models(tmp_path):
    from hmslib.train import load_checkpoint, predict_windows

    models = {"raw_a": "bipolar_raw", "spec": "kaggle_spectrogram", "raw_b": "bipolar_raw"}
    _write_run(tmp_path, models, [0.2, 0.5, 0.3])
    eeg = band_limited(60.0, 200.0, 20).astype(np.float32)
    windows = sliding_windows(eeg, stride_s=10.0)
    with pytest.warns(UserWarning, match="'spec' uses representation 'kaggle_spectrogram'"):
        probs = predict_run(tmp_path, windows, batch_size=2, progress=False)

    def folds_mean(name):
        runs = [load_checkpoint(tmp_path / "models" / name / f"fold{k}.pt") for k in range(2)]
        return np.mean(
            [predict_windows(m, c, np.ascontiguousarray(windows)) for m, c, _ in runs], 0
        )

    expected = (0.2 * folds_mean("raw_a") + 0.3 * folds_mean("raw_b")) / 0.5
    assert_allclose(probs, expected, rtol=1e-5, atol=1e-7)


def test_run_of_spectrogram_models_only_cannot_score(tmp_path):
    _write_run(tmp_path, {"spec": "kaggle_spectrogram"}, [1.0], n_folds=1)
    windows = np.zeros((1, 20, 10000), dtype=np.float32)
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="needs the Kaggle spectrogram"):
        predict_run(tmp_path, windows, progress=False)
