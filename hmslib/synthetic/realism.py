"""Realism measures: statistics that tell real EEG windows and label tables from synthetic ones.

The same computations run on real and on synthetic data (``benchmarks/bench_realism.py`` prints
them side by side; the tests of the generator check it against independent scipy computations):

- :func:`window_statistics`: per 50 s window (µV), on the 16 double-banana signals: band powers,
  PSD slope, amplitude, line length, kurtosis, correlation of neighbouring pairs of a chain and of
  homologous left/right pairs, the spread of the derivations' RMS over the chains, NaN and flat
  share, and the EKG channel's rate and amplitude;
- :func:`scale_free_statistics`: the statistics that survive per-channel z-scoring, for 10 s windows
  z-scored per channel as the real centre windows of the samples are (:func:`zscore_channels`),
  with the width of the dominant transients (:func:`discharge_width_ms`);
- :func:`class_medians`: any of those per expert-consensus class, real beside synthetic: where the
  pooled statistics agree, the class-conditional ones show what a model trained on synthetic
  windows learns that real patterns do not share;
- :func:`label_periods` and :func:`label_statistics`: the label side -- class mix, agreement (top
  vote fraction) per class, label periods per EEG and the vote counts of high-agreement rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import signal as sps
from scipy import stats as sst
from scipy.ndimage import maximum_filter1d

from hmslib._checks import check_option
from hmslib.constants import CHAINS, CLASSES, EEG_CHANNELS, SFREQ, VOTE_COLUMNS
from hmslib.signal import bandpass, montage

#: Frequency bands, Hz (gamma stops below the 50/60 Hz line).
BANDS: dict[str, tuple[float, float]] = {
    "delta": (1.0, 4.0),
    "theta": (4.0, 8.0),
    "alpha": (8.0, 13.0),
    "beta": (13.0, 30.0),
    "gamma": (30.0, 45.0),
}

#: Band of the pair correlations, Hz: the models' input band (Butterworth order 4, zero phase).
CORRELATION_BAND: tuple[float, float] = (0.5, 20.0)

#: Range of the PSD slope fit (log10 power against log10 frequency), Hz.
SLOPE_RANGE: tuple[float, float] = (2.0, 40.0)

_CH = {name: i for i, name in enumerate(EEG_CHANNELS)}
_PAIR_NAMES = [f"{a}-{b}" for c in CHAINS.values() for a, b in zip(c, c[1:], strict=False)]
#: Indices (into the 16 double-banana pairs) of neighbouring pairs of a chain (Fp1-F7 / F7-T3, ...).
NEIGHBOUR_PAIRS: tuple[tuple[int, int], ...] = tuple(
    (4 * k + j, 4 * k + j + 1) for k in range(4) for j in range(3)
)
#: Indices of homologous left/right pairs (Fp1-F7 / Fp2-F8, ..., Fp1-F3 / Fp2-F4, ...).
HOMOLOGOUS_PAIRS: tuple[tuple[int, int], ...] = tuple(
    (k, 12 + k) for k in range(4)  # LL <-> RL
) + tuple((4 + k, 8 + k) for k in range(4))  # LP <-> RP

#: Window statistics of :func:`window_statistics`, in column order, with their units.
WINDOW_STATISTICS: dict[str, str] = {
    **{f"log10 {b} power": "log10 uV^2/Hz" for b in BANDS},
    "PSD slope 2-40 Hz": "log-log",
    "PSD slope spread": "log-log",
    "bipolar RMS": "uV",
    "line length": "uV/sample",
    "kurtosis": "excess",
    "neighbour corr": "r",
    "homologous corr": "r",
    "chain RMS spread": "log10",
    "NaN share": "share",
    "flat share": "share",
    "EKG rate": "bpm",
    "log10 EKG amplitude": "log10 uV",
}

#: Statistics of :func:`scale_free_statistics` (per-channel z-scored windows).
SCALE_FREE_STATISTICS: tuple[str, ...] = (
    *(f"rel {b} power" for b in ("delta", "theta", "alpha", "beta")),
    "PSD slope 2-40 Hz",
    "PSD slope spread",
    "kurtosis",
    "neighbour corr",
    "homologous corr",
    "chain RMS spread",
    "discharge FWHM ms",
)

#: Band of the discharge-triggered average of :func:`discharge_width_ms`, Hz.
DISCHARGE_BAND: tuple[float, float] = (0.5, 25.0)
#: Triggers of :func:`discharge_width_ms` are the largest peak of the global field power within
#: this many seconds either side, and the average spans as many seconds either side of them.
_TRIGGER_SPAN_S = 0.3
_TRIGGER_AVERAGE_S = 0.5
_MIN_TRIGGERS = 4

_FLAT_STD_UV = 1.0  # a 1 s stretch of a lead with a standard deviation below this is flat


def _filled(eeg: np.ndarray) -> np.ndarray:
    """float64 copy with each channel's mean removed and NaN set to 0 (its mean)."""
    x = np.asarray(eeg, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        mean = np.nanmean(np.where(np.isnan(x).all(-1, keepdims=True), 0.0, x), -1, keepdims=True)
    return np.nan_to_num(x - mean, nan=0.0)


def _psd(x: np.ndarray, sfreq: float) -> tuple[np.ndarray, np.ndarray]:
    """Welch density of ``(..., samples)`` with 2 s Hann segments, half overlap."""
    return sps.welch(x, fs=sfreq, nperseg=int(2 * sfreq), axis=-1)


def _band_power(f: np.ndarray, p: np.ndarray, band: tuple[float, float]) -> np.ndarray:
    """Mean density in ``[low, high)`` along the last axis."""
    sel = (f >= band[0]) & (f < band[1])
    return p[..., sel].mean(axis=-1)


def _slope(f: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Least-squares slope of log10 density against log10 frequency over :data:`SLOPE_RANGE`."""
    sel = (f >= SLOPE_RANGE[0]) & (f <= SLOPE_RANGE[1])
    lx = np.log10(f[sel])
    ly = np.log10(np.maximum(p[..., sel], 1e-12))
    lx = lx - lx.mean()
    return ((ly - ly.mean(axis=-1, keepdims=True)) * lx).sum(axis=-1) / (lx**2).sum()


def _slope_statistics(f: np.ndarray, p: np.ndarray) -> dict[str, np.ndarray]:
    """The median over the derivations of their :func:`_slope` and its standard deviation over
    them, per window ``(n,)``, from Welch densities ``p`` ``(n, 16, freqs)``."""
    slopes = _slope(f, p)
    return {"PSD slope 2-40 Hz": np.median(slopes, axis=1), "PSD slope spread": slopes.std(axis=1)}


def _pair_corr(b: np.ndarray, pairs: tuple[tuple[int, int], ...]) -> np.ndarray:
    """Median over ``pairs`` of the Pearson correlation of rows of ``b`` ``(n, 16, samples)``."""
    b = b - b.mean(axis=-1, keepdims=True)
    i, j = np.array(pairs).T
    num = (b[:, i] * b[:, j]).sum(axis=-1)
    den = np.sqrt((b[:, i] ** 2).sum(axis=-1) * (b[:, j] ** 2).sum(axis=-1))
    return np.median(num / np.maximum(den, 1e-12), axis=1)


def _band_statistics(b: np.ndarray, sfreq: float) -> dict[str, np.ndarray]:
    """Pair correlations and chain RMS spread of the derivations ``b`` ``(n, 16, t)`` in the
    :data:`CORRELATION_BAND`, per window ``(n,)``."""
    filtered = bandpass(b, *CORRELATION_BAND, sfreq, 4)
    return {
        "neighbour corr": _pair_corr(filtered, NEIGHBOUR_PAIRS),
        "homologous corr": _pair_corr(filtered, HOMOLOGOUS_PAIRS),
        "chain RMS spread": np.log10(filtered.std(axis=-1) + 1e-12).std(axis=1),
    }


def _ekg(ekg: np.ndarray, sfreq: float) -> tuple[np.ndarray, np.ndarray]:
    """Heart rate (bpm, from the autocorrelation peak at 0.33-2 s) and amplitude of EKG rows.

    The rate is taken at the shortest lag whose autocorrelation is within 10 % of the highest in
    that range, so that a lag of two or three beats (as high for a regular rhythm) is not taken.
    """
    x = bandpass(ekg, 5.0, 30.0, sfreq, 2)
    n = x.shape[-1]
    spectrum = np.fft.rfft(x, 2 * n, axis=-1)
    ac = np.fft.irfft(np.abs(spectrum) ** 2, axis=-1)[..., :n]
    lags = np.arange(n) / sfreq
    sel = (lags >= 60.0 / 180.0) & (lags <= 60.0 / 30.0)
    # the first lag whose autocorrelation is within 10 % of the highest: the beat, not a multiple
    seg = ac[..., sel]
    first = (seg >= 0.9 * seg.max(axis=-1, keepdims=True)).argmax(axis=-1)
    rate = 60.0 / lags[sel][first]
    amplitude = (np.percentile(x, 99.5, axis=-1) - np.percentile(x, 0.5, axis=-1)) / 2.0
    return rate, amplitude


def window_statistics(eeg: np.ndarray, *, sfreq: float = SFREQ) -> pd.DataFrame:
    """Realism statistics of EEG windows (one row each; :data:`WINDOW_STATISTICS` columns).

    Each channel's mean is removed and NaN samples set to it (0). On the 16 double-banana signals:
    log10 mean Welch density (2 s Hann segments) of each band of :data:`BANDS` and the least-squares
    slope of log10 density against log10 frequency over 2-40 Hz, both the median over the 16
    derivations, and the standard deviation of that slope over them (``PSD slope spread``: how
    much the spectrum's shape differs between derivations, as where muscle or a poor contact
    adds fast activity to some leads only); the median standard deviation (``bipolar RMS``), mean
    absolute sample difference (``line length``) and excess kurtosis; and, after a 0.5-20 Hz
    band-pass (the models' input band, :data:`CORRELATION_BAND`), the median correlation of
    neighbouring pairs of a chain (:data:`NEIGHBOUR_PAIRS`, which share an electrode) and of
    homologous left/right pairs (:data:`HOMOLOGOUS_PAIRS`), and
    the standard deviation over the 16 derivations of their log10 RMS (``chain RMS spread``: how
    unevenly the activity is spread over the chains; 0 when every derivation has the same RMS). The
    share of NaN samples and of flat 1 s stretches (standard deviation below 1 uV) of the 19 scalp
    leads; the EKG rate (autocorrelation peak of the 5-30 Hz EKG, 30-180 bpm) and log10 amplitude
    (half the 0.5-99.5 percentile range of that signal).

    Parameters
    ----------
    eeg : numpy.ndarray
        ``(n, 20, samples)`` in µV, ``EEG_CHANNELS`` order; NaN allowed.
    sfreq : float
        Sampling rate, Hz.

    Returns
    -------
    pandas.DataFrame
        ``n`` rows, float64 columns of :data:`WINDOW_STATISTICS`.
    """
    raw = np.asarray(eeg)
    x = _filled(raw)
    b, _ = montage(x, "double_banana")
    f, p = _psd(b, sfreq)
    out = {
        f"log10 {name} power": np.median(np.log10(_band_power(f, p, band) + 1e-12), axis=1)
        for name, band in BANDS.items()
    }
    out.update(_slope_statistics(f, p))
    out["bipolar RMS"] = np.median(b.std(axis=-1), axis=1)
    out["line length"] = np.median(np.abs(np.diff(b, axis=-1)).mean(axis=-1), axis=1)
    out["kurtosis"] = np.median(sst.kurtosis(b, axis=-1), axis=1)
    out.update(_band_statistics(b, sfreq))
    scalp = raw[:, :19].astype(np.float64)
    out["NaN share"] = np.isnan(scalp).mean(axis=(1, 2))
    n_sec = scalp.shape[-1] // int(sfreq)
    seconds = scalp[..., : n_sec * int(sfreq)].reshape(*scalp.shape[:2], n_sec, int(sfreq))
    # a second that is all NaN counts as NaN, not flat (its spread is undefined, taken as inf)
    valid = np.isfinite(seconds)
    count = valid.sum(axis=-1)
    filled = np.where(valid, seconds, 0.0)
    mean = filled.sum(axis=-1) / np.maximum(count, 1)
    var = (np.where(valid, seconds - mean[..., None], 0.0) ** 2).sum(axis=-1) / np.maximum(count, 1)
    flat = (count > 0) & (np.sqrt(var) < _FLAT_STD_UV)
    out["flat share"] = flat.mean(axis=(1, 2))
    rate, amplitude = _ekg(x[:, _CH["EKG"]], sfreq)
    out["EKG rate"] = rate
    out["log10 EKG amplitude"] = np.log10(amplitude + 1e-3)
    return pd.DataFrame(out)[list(WINDOW_STATISTICS)]


def zscore_channels(eeg: np.ndarray) -> np.ndarray:
    """Each channel of each window minus its mean, divided by its standard deviation (NaN -> 0).

    The form of the real centre windows of the samples (``real_windows/elektra_center10s``).

    Parameters
    ----------
    eeg : numpy.ndarray
        ``(..., channels, samples)``.

    Returns
    -------
    numpy.ndarray
        float64, same shape; a constant channel becomes 0.
    """
    x = _filled(eeg)
    return x / np.maximum(x.std(axis=-1, keepdims=True), 1e-12)


def discharge_width_ms(bipolar: np.ndarray, *, sfreq: float = SFREQ) -> np.ndarray:
    """Full width at half maximum of each window's discharge-triggered average, ms.

    The transients that dominate a window are found where the global field power (the RMS over the
    signals of ``bipolar`` filtered to :data:`DISCHARGE_BAND`) peaks: each trigger is its largest
    value within +-0.3 s and above its upper quartile plus one interquartile range. Every signal is
    sign-aligned at every trigger and averaged over triggers and signals; the width is that of the
    average's central peak at half its height (to a sample). On periodic discharges it measures the
    discharges; on the four real LPD and GPD centre windows of the samples it gives 60-125 ms.

    Parameters
    ----------
    bipolar : numpy.ndarray
        ``(n, signals, samples)``, any scale (NaN-free).
    sfreq : float
        Sampling rate, Hz.

    Returns
    -------
    numpy.ndarray
        ``(n,)`` float64, ms; NaN for a window with fewer than 4 triggers.
    """
    x = bandpass(np.asarray(bipolar, dtype=np.float64), *DISCHARGE_BAND, sfreq, 2)
    n_times = x.shape[-1]
    gfp = np.sqrt((x**2).mean(axis=1))
    span = int(round(_TRIGGER_SPAN_S * sfreq))
    lags = int(round(_TRIGGER_AVERAGE_S * sfreq))
    q1, q3 = np.percentile(gfp, [25.0, 75.0], axis=-1, keepdims=True)
    trigger = (gfp == maximum_filter1d(gfp, 2 * span + 1, axis=-1)) & (gfp > 2.0 * q3 - q1)
    trigger[:, :lags] = trigger[:, n_times - lags :] = False
    # sum over triggers t of sign(x[c, t]) * x[c, t + lag], as one correlation per signal
    aligned = trigger[:, None, :] * np.sign(x)
    size = 2 * n_times
    corr = np.fft.irfft(
        np.conj(np.fft.rfft(aligned, size, axis=-1)) * np.fft.rfft(x, size, axis=-1), size, axis=-1
    ).sum(axis=1)
    average = np.concatenate([corr[:, size - lags :], corr[:, : lags + 1]], axis=-1)  # lags -L..L
    below = average < average[:, lags : lags + 1] / 2.0
    right = np.argmax(below[:, lags:], axis=-1)
    left = np.argmax(below[:, lags::-1], axis=-1)
    width = np.where((right > 0) & (left > 0), (right + left) * 1000.0 / sfreq, np.nan)
    return np.where(trigger.sum(axis=-1) >= _MIN_TRIGGERS, width, np.nan)


def scale_free_statistics(eeg: np.ndarray, *, sfreq: float = SFREQ) -> pd.DataFrame:
    """Statistics that do not depend on each channel's scale, for per-channel z-scored windows.

    The relative power of delta, theta, alpha and beta (band power over 1-45 Hz power, median over
    the 16 double-banana signals), and the PSD slope and its spread, kurtosis, pair correlations
    and chain RMS spread of :func:`window_statistics`, and the width of the dominant transients
    (:func:`discharge_width_ms`).

    Parameters
    ----------
    eeg : numpy.ndarray
        ``(n, 20, samples)`` (any scale; e.g. :func:`zscore_channels` of 10 s windows).
    sfreq : float
        Sampling rate, Hz.

    Returns
    -------
    pandas.DataFrame
        ``n`` rows, the columns of :data:`SCALE_FREE_STATISTICS`.
    """
    b, _ = montage(_filled(eeg), "double_banana")
    f, p = _psd(b, sfreq)
    sel = (f >= 1.0) & (f < 45.0)
    total = p[..., sel].sum(axis=-1)
    out = {}
    for name in ("delta", "theta", "alpha", "beta"):
        low, high = BANDS[name]
        band = (f >= low) & (f < high)
        out[f"rel {name} power"] = np.median(p[..., band].sum(axis=-1) / total, axis=1)
    out.update(_slope_statistics(f, p))
    out["kurtosis"] = np.median(sst.kurtosis(b, axis=-1), axis=1)
    out.update(_band_statistics(b, sfreq))
    out["discharge FWHM ms"] = discharge_width_ms(b, sfreq=sfreq)
    return pd.DataFrame(out)[list(SCALE_FREE_STATISTICS)]


def class_medians(
    real: pd.DataFrame,
    real_classes: np.ndarray,
    synth: pd.DataFrame,
    synth_classes: np.ndarray,
) -> pd.DataFrame:
    """Median of each statistic per consensus class, real beside synthetic.

    Parameters
    ----------
    real, synth : pandas.DataFrame
        One row per window, the same statistic columns (e.g. :func:`scale_free_statistics`).
    real_classes, synth_classes : numpy.ndarray
        The consensus class of each row, names of ``CLASSES`` (any case).

    Returns
    -------
    pandas.DataFrame
        One row per statistic and a last row ``windows`` (the count); columns ``(class, "real")``
        and ``(class, "synth")`` for each class of ``CLASSES`` the real windows hold, in that order
        (NaN medians and 0 windows where the synthetic ones lack the class).

    Raises
    ------
    ValueError
        A class name outside ``CLASSES``, class arrays not one per row, or columns that differ.
    """
    if list(real.columns) != list(synth.columns):
        raise ValueError(
            f"class_medians: real and synthetic columns differ: {list(real.columns)} vs "
            f"{list(synth.columns)}"
        )
    columns = {}
    for name, stats, classes in (("real", real, real_classes), ("synth", synth, synth_classes)):
        classes = np.char.lower(np.asarray(classes, dtype=str))
        if len(classes) != len(stats):
            raise ValueError(f"class_medians: {len(classes)} {name} classes for {len(stats)} rows")
        for cls in sorted(set(classes)):
            check_option(f"{name} window class (lower-cased)", str(cls), CLASSES)
        columns[name] = classes
    table = {}
    for cls in (c for c in CLASSES if c in set(columns["real"])):
        for name, stats in (("real", real), ("synth", synth)):
            rows = stats[columns[name] == cls]
            table[(cls, name)] = pd.concat([rows.median(), pd.Series({"windows": float(len(rows))})])
    return pd.DataFrame(table)


# --------------------------------------------------------------------------------------------------
# the label side
# --------------------------------------------------------------------------------------------------


def label_periods(train: pd.DataFrame) -> pd.DataFrame:
    """Runs of consecutive windows of an EEG with identical votes, votes as fractions.

    The form of the real ``labels/eeg_periods_vote_fractions.csv`` of the samples (one row per run,
    ``eeg_id`` and the six ``*_vote`` columns as fractions), computed from a train.csv-like table;
    ``n_votes`` and ``n_windows`` are added.

    Parameters
    ----------
    train : pandas.DataFrame
        ``eeg_id``, ``eeg_sub_id`` and the six vote columns (counts).

    Returns
    -------
    pandas.DataFrame
        One row per period.
    """
    rows = train.sort_values(["eeg_id", "eeg_sub_id"])
    votes = rows[list(VOTE_COLUMNS)].to_numpy(dtype=np.float64)
    eeg = rows["eeg_id"].to_numpy()
    new = np.r_[True, (eeg[1:] != eeg[:-1]) | (votes[1:] != votes[:-1]).any(axis=1)]
    starts = np.flatnonzero(new)
    n = votes[starts].sum(axis=1)
    out = pd.DataFrame({"eeg_id": eeg[starts]})
    for k, c in enumerate(VOTE_COLUMNS):
        out[c] = votes[starts, k] / n
    out["n_votes"] = n.astype(np.int64)
    out["n_windows"] = np.diff(np.r_[starts, len(rows)])
    return out


def label_statistics(
    periods: pd.DataFrame, rows_10plus: pd.DataFrame, rows_per_class: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The label-side statistics of a data set, one value per row of the result.

    Parameters
    ----------
    periods : pandas.DataFrame
        Label periods (:func:`label_periods`, or the real ``eeg_periods_vote_fractions.csv``): the
        class mix (share of periods whose top vote is each class), the median and 10 % quantile of
        the top vote fraction per class, and label periods per EEG (mean, share with one).
    rows_10plus : pandas.DataFrame
        Rows with >= 10 votes, one per EEG (as ``train_rows_10plus_votes.csv``), vote counts: the
        vote-count quantiles and the class mix of these rows.
    rows_per_class : pandas.DataFrame, optional
        Rows with vote counts (as ``train_rows_1000_per_class.csv``): the median votes of a row per
        consensus class.

    Returns
    -------
    pandas.Series
        float values indexed by statistic name.
    """
    frac = periods[list(VOTE_COLUMNS)].to_numpy(dtype=np.float64)
    top, top_frac = frac.argmax(axis=1), frac.max(axis=1)
    out: dict[str, float] = {}
    for k, c in enumerate(CLASSES):
        out[f"period share {c}"] = float((top == k).mean())
    for k, c in enumerate(CLASSES):
        sel = top_frac[top == k]
        out[f"top fraction {c} median"] = float(np.median(sel)) if len(sel) else np.nan
        out[f"top fraction {c} 10%"] = float(np.percentile(sel, 10)) if len(sel) else np.nan
    per_eeg = periods.groupby("eeg_id").size()
    out["periods per EEG mean"] = float(per_eeg.mean())
    out["EEGs with one period"] = float((per_eeg == 1).mean())
    n10 = rows_10plus[list(VOTE_COLUMNS)].to_numpy().sum(axis=1)
    for q in (10, 50, 90):
        out[f"10+ votes {q}%"] = float(np.percentile(n10, q))
    top10 = rows_10plus[list(VOTE_COLUMNS)].to_numpy().argmax(axis=1)
    for k, c in enumerate(CLASSES):
        out[f"10+ share {c}"] = float((top10 == k).mean())
    if rows_per_class is not None:
        votes = rows_per_class[list(VOTE_COLUMNS)].to_numpy()
        consensus = votes.argmax(axis=1)
        for k, c in enumerate(CLASSES):
            sel = votes[consensus == k].sum(axis=1)
            out[f"votes per row {c} median"] = float(np.median(sel)) if len(sel) else np.nan
    return pd.Series(out)
