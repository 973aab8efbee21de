"""Tests of the realism of the synthetic generator and of hmslib.synthetic.realism.

The background's spatial and spectral structure is checked with scipy computations made here (direct
electrode subtraction, Welch, Butterworth), not with the generator's or the bench's code; the label
side against the real label tables of the samples (skipped without them).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from scipy import signal

from hmslib.constants import CHAINS, CLASSES, EEG_CHANNELS, VOTE_COLUMNS
from hmslib.synthetic import realism
from hmslib.synthetic.cohort import _draw_patients
from hmslib.synthetic.render import _background, _scene
from hmslib.synthetic.writer import draw_preset_layout

_CH = {name: i for i, name in enumerate(EEG_CHANNELS)}
_CHAIN_PAIRS = [
    [(_CH[a], _CH[b]) for a, b in zip(names, names[1:], strict=False)] for names in CHAINS.values()
]


def _bipolar(x: np.ndarray) -> list[np.ndarray]:
    """Per chain, the derivations ``(4, n)`` by direct electrode subtraction."""
    return [np.stack([x[a] - x[b] for a, b in chain]) for chain in _CHAIN_PAIRS]


def _neighbour_corr(x: np.ndarray) -> float:
    """Median correlation (0.5-20 Hz) of consecutive derivations of each chain (Fp1-F7 / F7-T3 ...)."""
    sos = signal.butter(4, [0.5, 20.0], btype="band", fs=200, output="sos")
    corr = []
    for chain in _bipolar(x):
        b = signal.sosfiltfilt(sos, chain)
        corr += [np.corrcoef(b[k], b[k + 1])[0, 1] for k in range(3)]
    return float(np.median(corr))


def _derivation_slopes(x: np.ndarray) -> list[float]:
    """Least-squares slope of log10 Welch density vs log10 frequency, 2-40 Hz, of each derivation."""
    b = np.concatenate(_bipolar(x))
    f, p = signal.welch(b, fs=200, nperseg=400)
    sel = (f >= 2) & (f <= 40)
    return [np.polyfit(np.log10(f[sel]), np.log10(q[sel]), 1)[0] for q in p]


def _slope(x: np.ndarray) -> float:
    """The median derivation's :func:`_derivation_slopes`."""
    return float(np.median(_derivation_slopes(x)))


@pytest.fixture(scope="module")
def backgrounds() -> tuple[pd.DataFrame, list[np.ndarray]]:
    """50 s of background (no pattern, no artifact) for 24 drawn patients, 200 Hz, (19, 10000)."""
    rng = np.random.default_rng(7)
    patients = _draw_patients(rng, 24)
    out = []
    for pat in patients.to_dict("records"):
        x = np.empty((19, 10_000), dtype=np.float32)
        _background(rng, pat, _scene(rng, pat, 60.0), x, 0.0, 200.0)
        out.append(x.astype(np.float64))
    return patients, out


def test_spatial_model_gives_positively_correlated_neighbouring_pairs(backgrounds):
    _, xs = backgrounds
    corr = np.array([_neighbour_corr(x) for x in xs])
    assert np.median(corr) > 0.1, corr
    assert (corr > -0.1).mean() >= 0.8, corr
    # control: the same computation on independent electrodes gives the -0.5 of a shared electrode
    rng = np.random.default_rng(0)
    assert _neighbour_corr(rng.standard_normal((19, 10_000))) < -0.35


def test_background_psd_slope_is_in_the_real_range(backgrounds):
    _, xs = backgrounds
    slopes = np.array([_slope(x) for x in xs])
    # real EEG: about -2 (Donoghue et al. 2020); the real centre windows of the samples -1.1 .. -2.7
    assert -2.6 < np.median(slopes) < -1.4, slopes
    assert (slopes < -0.9).all() and (slopes > -3.2).all(), slopes
    # control: the same fit on white electrodes gives a flat spectrum
    assert abs(_slope(np.random.default_rng(0).standard_normal((19, 10_000)))) < 0.15


def test_background_amplitude_is_in_the_real_range(backgrounds):
    _, xs = backgrounds
    rms = np.array([np.median(np.concatenate(_bipolar(x)).std(axis=1)) for x in xs])
    assert 10.0 < np.median(rms) < 40.0, rms  # real bipolar RMS of the samples: 20-83 uV


def test_window_statistics_on_known_signals():
    rng = np.random.default_rng(1)
    n = 10_000
    white = rng.standard_normal((2, 20, n)) * 10.0
    brown = np.cumsum(rng.standard_normal((2, 20, n)), axis=-1)
    t = np.arange(n) / 200
    beats = (np.mod(t, 60.0 / 90.0) < 0.02).astype(float) * 500.0  # 90 bpm pulses
    beats += rng.standard_normal(n) * 5.0
    white[:, _CH["EKG"]] = beats
    stats = realism.window_statistics(np.r_[white, brown])
    # independent electrodes: neighbouring derivations share one electrode with opposite signs
    assert_allclose(stats["neighbour corr"][:2], -0.5, atol=0.05)
    assert_allclose(stats["homologous corr"][:2], 0.0, atol=0.05)
    assert_allclose(stats["PSD slope 2-40 Hz"][:2], 0.0, atol=0.1)
    assert_allclose(stats["PSD slope 2-40 Hz"][2:], -2.0, atol=0.2)
    assert_allclose(stats["bipolar RMS"][:2], 10.0 * np.sqrt(2), rtol=0.05)
    assert_allclose(stats["EKG rate"][:2], 90.0, rtol=0.03)
    nan = white[:1].copy()
    nan[0, 3, :2000] = np.nan
    nan[0, 5, 4000:4600] = 3.0  # three flat seconds (4000-4600 covers seconds 20-22)
    stats = realism.window_statistics(nan)
    assert_allclose(stats["NaN share"], 2000 / (19 * n))
    assert_allclose(stats["flat share"], 3 / (19 * 50))


def test_chain_rms_spread_of_independent_electrodes_of_known_scales():
    rng = np.random.default_rng(2)
    scales = np.exp(rng.uniform(-1.0, 1.0, 20))
    x = rng.standard_normal((1, 20, 10_000)) * scales[None, :, None]
    # independent white electrodes: each derivation's RMS is sqrt(s_a^2 + s_b^2) times the share
    # of white power in the band, the same for all, which the log10 spread ignores
    pairs = [pair for chain in _CHAIN_PAIRS for pair in chain]
    expected = np.log10([np.hypot(scales[a], scales[b]) for a, b in pairs]).std()
    assert expected > 0.1
    assert_allclose(realism.window_statistics(x)["chain RMS spread"], expected, atol=0.01)
    assert_allclose(realism.scale_free_statistics(x)["chain RMS spread"], expected, atol=0.01)
    # per-channel z-scoring makes every derivation of independent electrodes equal
    z = realism.scale_free_statistics(realism.zscore_channels(x))["chain RMS spread"]
    assert z.iloc[0] < 0.03  # sampling noise of the RMS only


def test_psd_slope_spread_against_polyfit_per_derivation():
    rng = np.random.default_rng(3)
    white = rng.standard_normal((20, 10_000))
    brown = np.cumsum(rng.standard_normal((20, 10_000)), axis=-1)
    mixed = np.where((np.arange(20) % 3 == 0)[:, None], brown, white)  # some leads slow, most white
    stats = realism.window_statistics(np.stack([white, mixed]) * 10.0)
    expected = [np.std(_derivation_slopes(x)) for x in (white, mixed)]
    assert_allclose(stats["PSD slope spread"], expected, rtol=1e-6)
    assert expected[0] < 0.1 < 0.5 < expected[1]  # one shape everywhere vs two kinds of lead
    assert_allclose(
        realism.scale_free_statistics(np.stack([white, mixed]))["PSD slope spread"],
        expected,
        rtol=1e-6,
    )


def _real_tables(hms_samples):
    labels = hms_samples / "labels"
    periods = labels / "eeg_periods_vote_fractions.csv"
    if not periods.is_file():
        pytest.skip(f"{periods}: real label periods not in the samples")
    return pd.read_csv(periods), pd.read_csv(labels / "train_rows_10plus_votes.csv")


def _class_mix(votes: np.ndarray) -> np.ndarray:
    """Share of rows whose top vote is each class (CLASSES order)."""
    return np.bincount(votes.argmax(axis=1), minlength=len(CLASSES)) / len(votes)


def test_label_statistics_match_the_real_tables(hms_samples):
    real_periods, real_10plus = _real_tables(hms_samples)
    layout = draw_preset_layout("bench", 0)
    train = layout.labels[layout.labels["split"] == "train"]
    periods = realism.label_periods(train)
    # class mix of the label periods: within 0.08 of the real one for every class
    mix_real = _class_mix(real_periods[list(VOTE_COLUMNS)].to_numpy())
    mix_synth = _class_mix(periods[list(VOTE_COLUMNS)].to_numpy())
    assert np.abs(mix_synth - mix_real).max() < 0.08, (mix_real, mix_synth)
    # label periods per EEG: mean within 0.15, share of EEGs with one period within 0.1
    per_real = real_periods.groupby("eeg_id").size()
    per_synth = periods.groupby("eeg_id").size()
    assert abs(per_synth.mean() - per_real.mean()) < 0.15
    assert abs((per_synth == 1).mean() - (per_real == 1).mean()) < 0.1
    # >= 10-vote rows (one per EEG): vote-count quartiles within 1 vote, class mix within 0.08
    many = train[train[list(VOTE_COLUMNS)].sum(axis=1) >= 10].drop_duplicates("eeg_id")
    n_real = real_10plus[list(VOTE_COLUMNS)].sum(axis=1)
    n_synth = many[list(VOTE_COLUMNS)].sum(axis=1)
    for q in (0.25, 0.5, 0.75):
        assert abs(n_synth.quantile(q) - n_real.quantile(q)) <= 1.0, q
    mix_real = _class_mix(real_10plus[list(VOTE_COLUMNS)].to_numpy())
    mix_synth = _class_mix(many[list(VOTE_COLUMNS)].to_numpy())
    assert np.abs(mix_synth - mix_real).max() < 0.08, (mix_real, mix_synth)


# --------------------------------------------------------------------------------------------------
# ACNS modifiers and the evolving seizure field
# --------------------------------------------------------------------------------------------------


def _pattern(archetype: str, plus: int, seed: int = 0) -> tuple[dict, np.ndarray]:
    """Parameters of a strong pattern of ``archetype`` with modifier ``plus`` and 20 s of its wave."""
    from hmslib.synthetic.patterns import draw_params, pattern_wave

    rng = np.random.default_rng(seed)
    prm = {k: v[0] for k, v in draw_params(rng, np.array([CLASSES.index(archetype)])).items()}
    prm.update(plus=plus, strength=0.9, frequency_hz=1.5, fast_hz=15.0, evolution=0.0)
    gate = np.ones(4000)
    return prm, pattern_wave(np.random.default_rng(seed), prm, 38.0, 0.0, gate, 200.0)


def test_plus_f_adds_fast_activity_and_plus_s_sharp_waves():
    from hmslib.synthetic.patterns import PLUS_MODIFIERS

    def fast_share(w):
        f, p = signal.welch(w, fs=200, nperseg=400)
        return p[(f >= 13) & (f <= 17)].sum() / p[(f >= 0.5) & (f <= 20)].sum()

    plain = [fast_share(_pattern("lpd", 0, s)[1]) for s in range(4)]
    plus_f = [fast_share(_pattern("lpd", PLUS_MODIFIERS.index("+F"), s)[1]) for s in range(4)]
    # discharges vary in width from one to the next, so a plain one can be sharp enough to reach 15 Hz
    assert (np.array(plus_f) > 2 * np.array(plain)).all(), (plain, plus_f)
    assert np.median(plus_f) > 5 * np.median(plain), (plain, plus_f)
    # +S on rhythmic delta: brief sharp transients raise the kurtosis of the wave
    kurt = lambda w: float(pd.Series(w).kurt())  # noqa: E731
    rda = [kurt(_pattern("grda", 0, s)[1]) for s in range(4)]
    rda_s = [kurt(_pattern("grda", PLUS_MODIFIERS.index("+S"), s)[1]) for s in range(4)]
    assert np.median(rda_s) > np.median(rda) + 0.5, (rda, rda_s)


def test_seizure_field_spreads_over_the_event():
    from hmslib.synthetic.render import _add_pattern

    prm = {
        "lateralization": 0.95, "side": -1, "focus_y": 0.0, "field_width": 0.3, "frontal": 0.5,
        "spread": 2.0, "evolution_period_s": 20.0, "start_s": 0.0,
    }  # fmt: skip
    t = np.arange(8000) / 200
    x = np.zeros((19, len(t)), dtype=np.float32)
    wave = np.sin(2 * np.pi * 3.0 * t).astype(np.float32)
    _add_pattern(np.random.default_rng(0), x, prm, 0.5, wave, t, 200.0)
    left = [_CH[c] for c in ("Fp1", "F7", "T3", "T5", "O1", "F3", "C3", "P3")]
    right = [_CH[c] for c in ("Fp2", "F8", "T4", "T6", "O2", "F4", "C4", "P4")]

    def asymmetry(sl):
        power = (x[:, sl] ** 2).mean(axis=1)
        return np.log(power[left].sum() / power[right].sum())

    early, late = asymmetry(slice(0, 600)), asymmetry(slice(7400, 8000))
    assert early > 1.0  # focal: one hemisphere
    assert late < early - 0.5, (early, late)  # spread towards the other one


def test_every_window_centre_lies_in_its_own_event_only():
    """The centre-10 s rule with several events per EEG: a window's central 10 s is inside its
    event and outside every other event of its EEG."""
    layout = draw_preset_layout("bench", 3)
    lab, ev, eegs = layout.labels, layout.events, layout.eegs
    start = eegs["start_s"].to_numpy()[ev["eeg"].to_numpy()]
    ev_lo, ev_hi = ev["start_s"].to_numpy() - start, ev["end_s"].to_numpy() - start
    eeg_index = pd.Index(eegs["eeg_id"]).get_indexer(lab["eeg_id"])
    centre = lab["eeg_label_offset_seconds"].to_numpy() + 25.0
    own = lab["event"].to_numpy()
    assert (ev_lo[own] <= centre - 5.0 + 1e-9).all() and (ev_hi[own] >= centre + 5.0 - 1e-9).all()
    per_eeg = ev.groupby("eeg").size()
    assert per_eeg.max() >= 3  # several events in some EEGs
    for k in np.flatnonzero(per_eeg.to_numpy()[eeg_index] > 1):
        others = np.flatnonzero((ev["eeg"].to_numpy() == eeg_index[k]) & (np.arange(len(ev)) != own[k]))
        overlap = (ev_lo[others] < centre[k] + 5.0) & (ev_hi[others] > centre[k] - 5.0)
        assert not overlap.any(), (k, ev_lo[others], ev_hi[others], centre[k])


def _wave(archetype: str, seed: int, seconds: float, **fixed) -> tuple[dict, np.ndarray]:
    """Parameters of an ``archetype`` pattern (``fixed`` overriding) and ``seconds`` of its wave."""
    from hmslib.synthetic.patterns import draw_params, pattern_wave

    rng = np.random.default_rng(seed)
    prm = {k: v[0] for k, v in draw_params(rng, np.array([CLASSES.index(archetype)])).items()}
    prm.update(plus=0, **fixed)
    gate = np.ones(int(seconds * 200))
    return prm, pattern_wave(np.random.default_rng(seed), prm, 38.0, 0.0, gate, 200.0)


def test_rhythms_are_quasi_periodic_not_lines():
    """The rate wanders, so a rhythm's spectral peak is broad; without the wander it is a line."""

    def peak_share(w):  # share of 0.3-20 Hz power in the 0.1 Hz around the peak (scipy Welch)
        f, p = signal.welch(w, fs=200, nperseg=6000)
        band = (f >= 0.3) & (f <= 20)
        k = np.argmax(np.where(band, p, 0))
        return p[k - 1 : k + 2].sum() / p[band].sum()

    fixed = dict(strength=0.9, frequency_hz=2.0, evolution=0.0, sharpness=0.1)
    wandering = [peak_share(_wave("grda", s, 120.0, jitter=0.15, **fixed)[1]) for s in range(4)]
    periodic = [peak_share(_wave("grda", s, 120.0, jitter=0.0, **fixed)[1]) for s in range(4)]
    assert max(wandering) < 0.5 < min(periodic), (wandering, periodic)


def _discharge_fwhm_ms(wave: np.ndarray) -> float:
    """Median full width at half maximum of the negative discharges of ``wave`` (scipy), ms."""
    peaks, _ = signal.find_peaks(-wave, prominence=0.5 * np.abs(wave).max())
    return float(np.median(signal.peak_widths(-wave, peaks, rel_height=0.5)[0]) * 5.0)


def test_discharge_width_matches_scipy_on_a_pulse_train_and_needs_transients():
    """Gaussian discharges of 20 and 45 ms sigma at 1 Hz on 16 signals of alternating sign: the
    triggered-average width is scipy's width of one band-passed pulse at half its height (to a
    sample)."""
    from hmslib.signal import bandpass

    t = np.arange(2000) / 200.0
    rng = np.random.default_rng(0)
    widths, expected = [], []
    for sigma in (0.02, 0.045):
        pulses = sum(np.exp(-((t - c) ** 2) / (2 * sigma**2)) for c in np.arange(0.7, 10.0, 1.0))
        signs = np.where(np.arange(16) % 2, 1.0, -1.0)[:, None]
        x = signs * pulses + 0.02 * rng.standard_normal((16, len(t)))
        widths.append(realism.discharge_width_ms(x[None])[0])
        filtered = bandpass(pulses, *realism.DISCHARGE_BAND, 200.0, 2)
        peak = np.array([np.argmin(np.abs(t - 4.7))])
        # half of the peak's height above zero (not above its neighbouring minima)
        height = (filtered[peak], np.array([0]), np.array([len(t) - 1]))
        expected.append(signal.peak_widths(filtered, peak, 0.5, height)[0][0] * 5.0)
    assert_allclose(widths, expected, atol=5.0)
    assert widths[1] > 1.8 * widths[0]
    # a sinusoid has no transient standing out of its field power: no width
    sine = np.tile(np.sin(2 * np.pi * 2.0 * t), (1, 16, 1))
    assert np.isnan(realism.discharge_width_ms(sine)).all()


def test_discharges_widen_with_their_duration_scale_and_keep_an_interval():
    """Periodic discharges run from spikes to blunt sharp waves; wide or fast, an interval remains."""
    fixed = dict(strength=0.9, sharpness=0.9, evolution=0.0, jitter=0.0, triphasic=False)
    narrow = _discharge_fwhm_ms(_wave("lpd", 0, 20.0, frequency_hz=1.0, duration_scale=1.0, **fixed)[1])
    wide = _discharge_fwhm_ms(_wave("lpd", 0, 20.0, frequency_hz=1.0, duration_scale=2.2, **fixed)[1])
    assert 30.0 < narrow < 80.0 and 1.8 < wide / narrow < 2.6, (narrow, wide)
    # at 2.5 Hz the widest discharge is capped (uncapped it would be ~0.93x as wide as at 1 Hz),
    # so that it fills well under half of its 400 ms cycle
    fast = _discharge_fwhm_ms(_wave("gpd", 0, 20.0, frequency_hz=2.5, duration_scale=2.2, **fixed)[1])
    assert fast < 0.87 * wide and fast < 0.3 * 400.0, (fast, wide)


def test_some_seizures_are_theta_alpha_rhythms_at_their_drawn_rate():
    from hmslib.synthetic.patterns import draw_params

    rng = np.random.default_rng(0)
    prm = draw_params(rng, np.full(4000, CLASSES.index("seizure")))
    theta = prm["frequency_hz"] > 5.0
    assert 0.25 < theta.mean() < 0.45, theta.mean()  # 40 % are drawn at 4.5-10 Hz
    assert prm["frequency_hz"].max() <= 10.0
    for seed, f0 in [(1, 6.0), (2, 9.0)]:
        _, w = _wave("seizure", seed, 60.0, strength=0.9, frequency_hz=f0, evolution=0.0, sharpness=0.2)
        f, p = signal.welch(w, fs=200, nperseg=2000)
        band = (f >= 0.5) & (f <= 20)
        assert abs(f[band][np.argmax(p[band])] - f0) < 0.2 * f0


def test_class_medians_put_each_class_of_the_real_windows_beside_its_synthetic_median():
    real = pd.DataFrame({"a": [1.0, 3.0, 10.0], "b": [0.0, 2.0, 5.0]})
    synth = pd.DataFrame({"a": [2.0, 4.0, 6.0, 20.0], "b": [1.0, 1.0, 3.0, 7.0]})
    table = realism.class_medians(
        real, np.array(["Seizure", "Seizure", "GRDA"]), synth, np.array(["grda", "seizure", "seizure", "lpd"])
    )
    assert list(table.columns) == [("seizure", "real"), ("seizure", "synth"), ("grda", "real"), ("grda", "synth")]
    assert table.loc["a"].tolist() == [2.0, 5.0, 10.0, 2.0]  # medians of (1, 3), (4, 6), (10), (2)
    assert table.loc["b"].tolist() == [1.0, 2.0, 5.0, 1.0]
    assert table.loc["windows"].tolist() == [2.0, 2.0, 1.0, 1.0]
    with pytest.raises(ValueError, match=r"unknown real window class \(lower-cased\) 'spike'"):
        realism.class_medians(real, np.array(["spike", "lpd", "lpd"]), synth, np.full(4, "lpd"))
    with pytest.raises(ValueError, match="2 synth classes for 4 rows"):
        realism.class_medians(real, np.full(3, "lpd"), synth, np.full(2, "lpd"))
