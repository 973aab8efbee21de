"""Tests of hmslib.signal against scipy designs, hand-worked cases and the real sample EEG."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from scipy import signal as sps

from hmslib import signal
from hmslib.constants import EEG_CHANNELS, SCALP_CHANNELS

SFREQ = 200.0


@pytest.fixture(scope="module")
def real_eeg(hms_samples) -> pd.DataFrame:
    return pd.read_parquet(hms_samples / "train_eegs" / "1628180742.parquet")


def _impulse_response(fn, n: int = 2**15) -> tuple[np.ndarray, np.ndarray]:
    """Magnitude of the frequency response of ``fn`` measured on a centred unit impulse."""
    x = np.zeros(n)
    x[n // 2] = 1.0
    y = fn(x)
    return np.fft.rfftfreq(n, 1.0 / SFREQ), np.abs(np.fft.rfft(y))


# --------------------------------------------------------------------------------------------------
# filters
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("low", "high", "order", "btype", "edges"),
    [
        (0.5, 20.0, 4, "bandpass", [0.5, 20.0]),
        (1.0, 30.0, 2, "bandpass", [1.0, 30.0]),
        (None, 20.0, 4, "lowpass", 20.0),
        (0.5, None, 3, "highpass", 0.5),
    ],
)
def test_bandpass_response_matches_scipy_design(low, high, order, btype, edges):
    # forward-backward filtering has the squared magnitude of the one-pass design
    sos = sps.butter(order, edges, btype=btype, fs=SFREQ, output="sos")
    freqs, measured = _impulse_response(lambda x: signal.bandpass(x, low, high, SFREQ, order))
    _, h = sps.sosfreqz(sos, worN=freqs, fs=SFREQ)
    assert_allclose(measured, np.abs(h) ** 2, atol=2e-4)


def test_bandpass_sine_sweep_pass_and_stop_band():
    t = np.arange(int(60 * SFREQ)) / SFREQ
    freqs = np.array([0.05, 0.1, 2.0, 5.0, 10.0, 15.0, 40.0, 60.0, 80.0])
    x = np.sin(2 * np.pi * freqs[:, None] * t).astype(np.float32)  # one tone per row
    y = signal.bandpass(x, 0.5, 20.0, SFREQ, 4)
    assert y.dtype == np.float32 and y.shape == x.shape
    mid = slice(len(t) // 4, 3 * len(t) // 4)
    gain = np.sqrt(np.mean(y[:, mid] ** 2, axis=1) / np.mean(x[:, mid] ** 2, axis=1))
    passband = (freqs >= 2) & (freqs <= 10)
    assert_allclose(gain[passband], 1.0, atol=0.01)
    # near the edge the gain follows the squared design response (~0.91 at 15 Hz)
    sos = sps.butter(4, [0.5, 20.0], btype="bandpass", fs=SFREQ, output="sos")
    assert_allclose(
        gain[freqs == 15.0], np.abs(sps.sosfreqz(sos, [15.0], fs=SFREQ)[1]) ** 2, atol=0.01
    )
    stopband = (freqs < 0.2) | (freqs > 30)
    assert np.all(gain[stopband] < 0.02), dict(zip(freqs, gain, strict=True))


def test_bandpass_batched_equals_row_by_row():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4000))
    batched = signal.bandpass(x)
    sos = sps.butter(4, [0.5, 20.0], btype="bandpass", fs=SFREQ, output="sos")
    for i in range(2):
        for j in range(3):
            assert_allclose(batched[i, j], sps.sosfiltfilt(sos, x[i, j]), atol=1e-12)


@pytest.mark.parametrize(
    ("low", "high", "order"), [(0.5, 20.0, 4), (1.0, 30.0, 2), (None, 20.0, 4), (0.5, None, 3)]
)
def test_fft_zero_phase_filter_equals_sosfiltfilt(real_eeg, low, high, order):
    """50 s windows (and longer rows) are filtered by FFT; the result is sosfiltfilt's, edges
    (odd extension, steady-state starts) included: float64 to 1e-9 of the signal's peak, float32 to
    1e-5 of it (FFT rounding), a torch tensor the same as the array."""
    leads = real_eeg[list(SCALP_CHANNELS)].to_numpy(np.float64).T[:, :10_000]  # DC offsets, drifts
    rng = np.random.default_rng(3)
    steps = np.cumsum(rng.standard_normal((4, 30_000)), axis=1) + 300.0  # a long, drifting row set
    edges = [f for f in (low, high) if f is not None]
    btype = {2: "bandpass"}.get(len(edges), "lowpass" if high else "highpass")
    sos = sps.butter(order, edges if len(edges) == 2 else edges[0], btype=btype, fs=SFREQ, output="sos")
    for x in (leads, steps):
        expected = sps.sosfiltfilt(sos, x, axis=-1)
        peak = np.abs(x).max()
        ours = signal.bandpass(x, low, high, SFREQ, order)
        assert ours.dtype == np.float64
        assert np.abs(ours - expected).max() < 1e-9 * peak
        edges = np.r_[0:100, x.shape[-1] - 100 : x.shape[-1]]
        assert np.abs(ours[:, edges] - expected[:, edges]).max() < 1e-9 * peak
        single = signal.bandpass(x.astype(np.float32), low, high, SFREQ, order)
        assert single.dtype == np.float32
        assert np.abs(single - expected).max() < 1e-5 * peak
        tensor = signal.bandpass(torch.from_numpy(x.astype(np.float32)), low, high, SFREQ, order)
        assert isinstance(tensor, torch.Tensor) and tensor.dtype == torch.float32
        assert_allclose(tensor.numpy(), single, rtol=0, atol=1e-6 * peak)
    notch_sos = sps.tf2sos(*sps.iirnotch(60.0, 30.0, fs=SFREQ))
    assert np.abs(signal.notch(leads) - sps.sosfiltfilt(notch_sos, leads)).max() < 1e-9 * peak


def test_notch_removes_mains_and_keeps_eeg_band():
    b, a = sps.iirnotch(60.0, 30.0, fs=SFREQ)
    freqs, measured = _impulse_response(lambda x: signal.notch(x, 60.0, SFREQ))
    _, h = sps.freqz(b, a, worN=freqs, fs=SFREQ)
    assert_allclose(measured, np.abs(h) ** 2, atol=2e-4)

    t = np.arange(int(30 * SFREQ)) / SFREQ
    x = np.stack([np.sin(2 * np.pi * 60.0 * t), np.sin(2 * np.pi * 10.0 * t)])
    y = signal.notch(x, freq=60.0)
    mid = slice(len(t) // 4, 3 * len(t) // 4)
    gain = np.abs(y[:, mid]).max(axis=1)
    assert gain[0] < 0.01
    assert_allclose(gain[1], 1.0, atol=0.01)
    # 50 Hz mains variant
    y50 = signal.notch(np.sin(2 * np.pi * 50.0 * t), freq=50.0)
    assert np.abs(y50[mid]).max() < 0.01


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sfreq": 30.0}, "Nyquist"),  # 20 Hz cannot be a band edge at 30 Hz sampling
        ({"low": 25.0, "high": 20.0}, "low < high"),
        ({"low": None, "high": None}, "both are None"),
        ({"order": 0}, "order"),
    ],
)
def test_bandpass_bad_design(kwargs, match):
    with pytest.raises(ValueError, match=match):
        signal.bandpass(np.zeros(1000), **kwargs)


def test_filters_reject_nan_and_short_windows():
    x = np.ones(1000)
    x[10] = np.nan
    with pytest.raises(ValueError, match="1 NaN samples.*repair_nans"):
        signal.bandpass(x)
    with pytest.raises(ValueError, match="too short: 20 samples"):
        signal.bandpass(np.zeros(20))
    with pytest.raises(ValueError, match="Nyquist"):
        signal.notch(np.zeros(1000), freq=60.0, sfreq=100.0)


def test_clip_numpy_and_torch():
    x = np.array([-2000.0, -5.0, 0.0, 1500.0, np.nan])
    assert_array_equal(signal.clip(x, 1024), [-1024.0, -5.0, 0.0, 1024.0, np.nan])
    t = signal.clip(torch.tensor(x), 1024)
    assert isinstance(t, torch.Tensor)
    assert_array_equal(t.numpy(), [-1024.0, -5.0, 0.0, 1024.0, np.nan])
    with pytest.raises(ValueError, match="> 0"):
        signal.clip(x, 0)


# --------------------------------------------------------------------------------------------------
# NaN repair
# --------------------------------------------------------------------------------------------------


def test_repair_nans_hand_worked():
    nan = np.nan
    x = np.array(
        [
            [1.0, nan, nan, 4.0, 5.0, 6.0, 7.0, 8.0],  # short interior gap -> 2, 3
            [nan, nan, 3.0, 4.0, 5.0, 6.0, 7.0, nan],  # short edge gaps -> hold 3 and 7
            [1.0, nan, nan, nan, nan, nan, 3.0, 8.0],  # long gap -> mean of 1, 3, 8 = 4
            [nan] * 8,  # missing channel -> 0, reported
            [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
        ],
        dtype=np.float32,
    )
    original = x.copy()
    clean, report = signal.repair_nans(x, max_gap=2)
    assert clean.dtype == np.float32
    assert_array_equal(x, original)  # input untouched
    expected = np.array(
        [
            [1, 2, 3, 4, 5, 6, 7, 8],
            [3, 3, 3, 4, 5, 6, 7, 7],
            [1, 4, 4, 4, 4, 4, 3, 8],
            [0] * 8,
            [1, 2, 3, 4, 5, 6, 7, 8],
        ],
        dtype=np.float32,
    )
    assert_allclose(clean, expected)
    assert_array_equal(report.n_nan, [2, 3, 5, 8, 0])
    assert_array_equal(report.interpolated, [2, 3, 0, 0, 0])
    assert_array_equal(report.mean_filled, [0, 0, 5, 8, 0])
    assert_array_equal(report.missing, [False, False, False, True, False])
    assert_allclose(report.fraction, [2 / 8, 3 / 8, 5 / 8, 1.0, 0.0])
    assert "1 channel(s) entirely missing" in str(report)


def test_repair_nans_matches_np_interp_batched():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 4, 2000))
    mask = np.zeros(x.shape, dtype=bool)
    for start in rng.integers(5, 1900, size=40):  # short gaps (<= 50 samples), never at the ends
        mask[tuple(rng.integers(0, [3, 4]))][start : start + rng.integers(1, 50)] = True
    dirty = np.where(mask, np.nan, x)
    clean, report = signal.repair_nans(dirty, max_gap=60)
    assert_array_equal(report.n_nan, mask.sum(axis=-1))
    assert_array_equal(report.interpolated, mask.sum(axis=-1))
    idx = np.arange(x.shape[-1])
    for i in range(3):
        for j in range(4):
            ok = ~mask[i, j]
            assert_allclose(clean[i, j], np.interp(idx, idx[ok], dirty[i, j, ok]), atol=1e-12)


def test_repair_nans_bad_input():
    with pytest.raises(ValueError, match="channels, samples"):
        signal.repair_nans(np.zeros(10))
    with pytest.raises(ValueError, match="floating"):
        signal.repair_nans(np.zeros((2, 10), dtype=np.int64))


# --------------------------------------------------------------------------------------------------
# montages
# --------------------------------------------------------------------------------------------------

BANANA = [
    ("Fp1", "F7"), ("F7", "T3"), ("T3", "T5"), ("T5", "O1"),
    ("Fp1", "F3"), ("F3", "C3"), ("C3", "P3"), ("P3", "O1"),
    ("Fp2", "F4"), ("F4", "C4"), ("C4", "P4"), ("P4", "O2"),
    ("Fp2", "F8"), ("F8", "T4"), ("T4", "T6"), ("T6", "O2"),
]  # fmt: skip


def test_double_banana_on_real_sample(real_eeg):
    x = real_eeg[list(EEG_CHANNELS)].to_numpy(np.float32).T[None].copy()  # (1, 20, n)
    data, names = signal.montage(x, "double_banana")
    assert names == [f"{a}-{b}" for a, b in BANANA]
    hand = np.stack([real_eeg[a].to_numpy() - real_eeg[b].to_numpy() for a, b in BANANA])
    assert data.shape == (1, 16, len(real_eeg))
    assert_array_equal(data[0], hand)

    data18, names18 = signal.montage(x, "double_banana_18")
    assert names18[16:] == ["Fz-Cz", "Cz-Pz"]
    assert_array_equal(data18[0, 16], real_eeg["Fz"].to_numpy() - real_eeg["Cz"].to_numpy())
    assert_array_equal(data18[0, 17], real_eeg["Cz"].to_numpy() - real_eeg["Pz"].to_numpy())

    torch_data, _ = signal.montage(torch.from_numpy(x), "double_banana")
    assert_array_equal(torch_data.numpy(), data)


def test_average_and_referential_on_real_sample(real_eeg):
    x = real_eeg[list(EEG_CHANNELS)].to_numpy(np.float64).T.copy()
    avg, names = signal.montage(x, "average")
    assert names == [f"{c}-avg" for c in SCALP_CHANNELS]
    scalp = real_eeg[list(SCALP_CHANNELS)].astype(np.float64)
    assert_allclose(avg, scalp.sub(scalp.mean(axis=1), axis=0).to_numpy().T, atol=1e-9)
    avg_t, _ = signal.montage(torch.from_numpy(x), "average")
    assert_allclose(avg_t.numpy(), avg, atol=1e-9)
    ref, names = signal.montage(x, "referential")
    assert names == list(SCALP_CHANNELS)
    assert_array_equal(ref, scalp.to_numpy().T)


def test_montage_errors():
    x = np.zeros((2, 19, 100))
    no_cz = [c for c in EEG_CHANNELS if c != "Cz"]
    with pytest.raises(ValueError, match=r"needs channels \['Cz'\]"):
        signal.montage(x, "double_banana_18", ch_names=no_cz)
    with pytest.raises(ValueError, match=r"\(\.\.\., 20 channels, samples\).*\(2, 19, 100\)"):
        signal.montage(x, "double_banana")
    with pytest.raises(ValueError, match="unknown montage 'banana'.*double_banana"):
        signal.montage(np.zeros((20, 10)), "banana")


def test_mirror_permutation_double_banana():
    names = signal.montage_names("double_banana")
    perm = signal.mirror_permutation(names)
    swap = {"1": "2", "2": "1", "3": "4", "4": "3", "7": "8", "8": "7", "5": "6", "6": "5"}
    hand = ["".join(swap.get(ch, ch) for ch in n) for n in names]  # Fp1-F7 -> Fp2-F8, ...
    assert [names[i] for i in perm] == hand
    assert_array_equal(np.asarray(perm)[list(perm)], np.arange(16))
    avg = signal.montage_names("average")
    assert [avg[i] for i in signal.mirror_permutation(avg)][8:11] == ["Fz-avg", "Cz-avg", "Pz-avg"]
    with pytest.raises(ValueError, match="mirror 'Fp2-F8'"):
        signal.mirror_permutation(["Fp1-F7"])
