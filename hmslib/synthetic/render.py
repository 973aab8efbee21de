"""Rendering: the signal of a session -- background, EKG, patterns, artifacts -- and its spectrogram.

The background is 1/f^alpha activity of a cortical sheet projected to the electrodes by a smooth
volume-conduction kernel (:mod:`hmslib.synthetic.scalp`), with diffuse slowing, diffuse beta, a
posterior dominant rhythm, a slow amplitude envelope or burst suppression as the patient has them,
common-mode offsets and an EKG far field leaking into the scalp leads; the events' patterns ride on it
(:mod:`hmslib.synthetic.patterns`); then artifacts: blinks and eye movements, muscle, electrode pops,
flat or disconnected channels, line noise and NaN stretches.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.fft

from hmslib.constants import EEG_CHANNELS, SFREQ, SPEC_STEP_SECONDS
from hmslib.spectral import fft_decimate, kaggle_region_bipolar, kaggle_spectrogram_low
from hmslib.synthetic.patterns import pattern_field, pattern_wave
from hmslib.synthetic.scalp import (
    EKG_ROW,
    PAIRS,
    POS,
    SHEET,
    TEMPORAL,
    gauss,
    lead_field,
    spatial_covariance,
)

_DECIMATE = 4  # 200 Hz -> 50 Hz: the whole session is rendered at 50 Hz for its spectrogram
_LOW_SFREQ = SFREQ / _DECIMATE

_SPAN_MARGIN_S = 5.0  # rendered at 200 Hz either side of an EEG excerpt (> 3.84 s + fade)

_CROSSFADE_S = 1.0  # splice of a 200 Hz span into the 50 Hz session signal


def _bipolar_variance(cov: np.ndarray) -> float:
    """Mean variance of the 16 double-banana derivations of a scalp field of covariance ``cov``."""
    return float(np.mean(cov[PAIRS[:, 0], PAIRS[:, 0]] + cov[PAIRS[:, 1], PAIRS[:, 1]]
                         - 2.0 * cov[PAIRS[:, 0], PAIRS[:, 1]]))  # fmt: skip


def _posterior_field(width: float) -> np.ndarray:
    """Scalp fields ``(19, 2)`` of the left and right occipital sources of the dominant rhythm."""
    sources = SHEET[(SHEET[:, 1] < -0.55) & (SHEET[:, 2] > 0.05)]
    g = lead_field(width, sources)
    left = sources[:, 0] < 0
    field = np.stack([g[:, left].sum(axis=1), g[:, ~left].sum(axis=1)], axis=1)
    return field / field.max()


def _envelope(scene: dict, t: np.ndarray) -> np.ndarray:
    """Slow amplitude modulation of the background at session times ``t`` (s): float32, mean ~1.

    A log-normal envelope (log amplitude a smooth Gaussian process, 5 s knots, standard deviation
    ``mod_sigma``) gives the background the amplitude variability and positive kurtosis of real
    windows; in burst suppression, bursts of full amplitude alternate with suppressed stretches at
    ``bs_floor`` of it (ACNS 2021: suppression < 10 uV for more than half of the record).
    """
    knots = scene["mod_knots"]
    log_amp = np.interp(t / _KNOT_S, np.arange(len(knots)), knots)
    env = np.exp(scene["mod_sigma"] * log_amp - scene["mod_sigma"] ** 2)
    if scene["bursts"] is not None:
        on = np.interp(t, scene["bursts"][0], scene["bursts"][1])
        env = env * (scene["bs_floor"] + (1.0 - scene["bs_floor"]) * on)
    return env.astype(np.float32)


_KNOT_S = 5.0  # spacing of the knots of the background envelope, s


def _background(
    rng: np.random.Generator, pat: dict, scene: dict, out: np.ndarray, t0: float, sfreq: float
) -> None:
    """Write the scalp background into ``out`` ``(19, n)`` float32 at ``sfreq``, uV, no offsets.

    Sources on a cortical sheet seen through a smooth volume-conduction kernel
    (:func:`~hmslib.synthetic.scalp.spatial_covariance` of the patient's ``bg_width``): 19 signals
    with the spectrum ``bg_amp / (f**alpha + knee**alpha)`` (plus diffuse slowing where the patient
    has it, and diffuse beta in sedated patients), mixed by the Cholesky factor of that covariance -- the same Gaussian field as driving
    every sheet source independently -- times a little per-electrode ``gain``, calibrated so that a
    double-banana derivation has that two-sided density (uV^2/Hz, the unit of the Kaggle
    spectrograms), then modulated by the slow :func:`_envelope`; a local, spatially independent
    floor ``bg_floor / (1 + f / 20)`` (electrode noise and unresolved local activity) and slow
    electrode drift ``drift_amp * exp(-(f / 0.25)**2)`` (both halved per electrode); a common
    reference signal that bipolar derivations cancel; and, where the patient has one, a posterior
    dominant rhythm from occipital sources of the sheet, coherent within each hemisphere.
    """
    n = out.shape[1]
    freqs = np.fft.rfftfreq(n, 1.0 / sfreq).astype(np.float32)
    alpha = np.float32(pat["bg_alpha"])
    one_over_f = 1.0 / (freqs**alpha + np.float32(pat["bg_knee_hz"]) ** alpha)
    cortical = pat["bg_amp"] * one_over_f
    if pat["slow_amp"] > 0:
        cortical += (pat["slow_amp"] * gauss(freqs, pat["slow_hz"], 1.2)).astype(np.float32)
    if pat["beta_amp"] > 0:
        cortical += (pat["beta_amp"] * gauss(freqs, pat["beta_hz"], 4.0)).astype(np.float32)
    cov = spatial_covariance(pat["bg_width"])
    mix = np.linalg.cholesky(cov + 1e-6 * np.eye(len(POS))) * scene["gain"][:, None]
    shapes = [
        cortical / _bipolar_variance(cov),
        pat["bg_floor"] / (1.0 + freqs / np.float32(20.0)) / 2.0
        + pat["drift_amp"] * np.exp(-((freqs / np.float32(0.25)) ** 2)) / 2.0,
        pat["ref_amp"] * pat["bg_amp"] * one_over_f,
    ]
    weights = [mix, np.eye(len(POS)), np.ones((len(POS), 1))]
    if pat["pdr_amp"] > 0:
        shapes.append(pat["pdr_amp"] * gauss(freqs, pat["pdr_hz"], 0.6).astype(np.float32))
        weights.append(_posterior_field(pat["bg_width"]))
    counts = [w.shape[1] for w in weights]
    # complex Gaussian spectrum with E|X_k|^2 = sfreq * psd_k -> irfft(norm="ortho") has density psd
    buffer = rng.standard_normal((sum(counts), len(freqs), 2), dtype=np.float32)
    spectrum = buffer.view(np.complex64)[..., 0]
    row = 0
    for count, shape in zip(counts, shapes, strict=True):
        amp = np.sqrt(shape * np.float32(sfreq / 2))
        amp[0] = 0.0
        spectrum[row : row + count] *= amp
        row += count
    sources = scipy.fft.irfft(spectrum, n=n, axis=-1, norm="ortho").astype(np.float32)
    sources[: counts[0]] *= _envelope(scene, t0 + np.arange(n) / sfreq)[None, :]
    np.matmul(np.concatenate(weights, axis=1).astype(np.float32), sources, out=out)


def _ekg(rng: np.random.Generator, n: int, heart_bpm: float) -> np.ndarray:
    """Unit-amplitude EKG ``(n,)`` float32 at 200 Hz: P-QRS-T complexes, variable heart rate."""
    mean_rr = 60.0 / heart_bpm
    n_beats = int(n / SFREQ / mean_rr) + 3
    sinus = 1.0 + 0.03 * np.sin(2 * np.pi * np.arange(n_beats) * mean_rr / rng.uniform(3.0, 6.0))
    rr = mean_rr * sinus * (1.0 + 0.02 * rng.standard_normal(n_beats))
    beats = np.round((np.cumsum(rr) - rng.uniform(0.0, mean_rr)) * SFREQ).astype(np.int64)
    tt = np.arange(-0.3, 0.5, 1.0 / SFREQ)
    template = (
        0.12 * gauss(tt, -0.16, 0.025)
        - 0.12 * gauss(tt, -0.03, 0.008)
        + gauss(tt, 0.0, 0.01)
        - 0.25 * gauss(tt, 0.03, 0.01)
        + 0.3 * gauss(tt, 0.26, 0.05)
    )
    idx = beats[:, None] + np.round(tt * SFREQ).astype(np.int64)[None, :]
    inside = (idx >= 0) & (idx < n)
    values = np.broadcast_to(template, idx.shape)
    return np.bincount(idx[inside], weights=values[inside], minlength=n).astype(np.float32)


def _bumps(n: int, starts: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Sum of templates ``values[k]`` (each ``(L,)``) placed at ``starts[k]``: float32 ``(n,)``."""
    idx = starts[:, None] + np.arange(values.shape[1])[None, :]
    inside = idx < n
    return np.bincount(idx[inside], weights=values[inside], minlength=n).astype(np.float32)


def _emg_scale(sfreq: float) -> float:
    """Amplitude of first-differenced white noise at ``sfreq`` that matches, at 15 Hz, the density of
    the same process at 200 Hz (muscle is drawn at whatever rate a recording is rendered)."""
    density = lambda fs: 2 * (1 - math.cos(2 * math.pi * 15.0 / fs)) / fs  # noqa: E731
    return math.sqrt(density(SFREQ) / density(sfreq))


def _add_artifacts(rng: np.random.Generator, x: np.ndarray, pat: dict, sfreq: float) -> None:
    """Add blinks, eye movements, muscle, electrode pops and line noise to ``x`` ``(20, n)`` in place.

    Blinks are positive frontal bumps (maximal at Fp1/Fp2), lateral eye movements opposite slow
    deflections at F7/F8, muscle bursts high-frequency noise over the temporal and frontopolar leads,
    electrode pops a step with exponential decay on one lead, line noise a 50 or 60 Hz sine with a
    different amplitude and phase on every lead (where ``sfreq`` can represent it).
    """
    n = x.shape[1]
    minutes = n / sfreq / 60.0
    n_blinks = rng.poisson(pat["blink_per_min"] * minutes)
    if n_blinks:
        shape = np.hanning(int(rng.uniform(0.3, 0.5) * sfreq))
        blinks = _bumps(
            n, rng.integers(0, n, n_blinks), rng.uniform(60, 200, (n_blinks, 1)) * shape
        )
        rows = np.flatnonzero(POS[:, 1] > 0.2)
        gain = (1.6 * (POS[rows, 1] - 0.2) ** 2).astype(np.float32)
        x[rows] += gain[:, None] * blinks[None, :]
    n_eye = rng.poisson(pat["eye_per_min"] * minutes)
    if n_eye:
        shape = np.hanning(int(1.5 * sfreq)) ** 0.3
        moves = _bumps(n, rng.integers(0, n, n_eye), rng.uniform(-100, 100, (n_eye, 1)) * shape)
        rows = np.flatnonzero((POS[:, 1] > 0) & (POS[:, 0] != 0))
        gain = (POS[rows, 1] * POS[rows, 0]).astype(np.float32)  # F7 and F8 opposite
        x[rows] += gain[:, None] * moves[None, :]
    n_muscle = rng.poisson(pat["muscle_per_min"] * minutes)
    if n_muscle:
        lengths = (rng.uniform(0.5, 5.0, n_muscle) * sfreq).astype(np.int64)
        starts = rng.integers(0, n - lengths)
        within = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        idx = np.repeat(starts, lengths) + within
        edge = np.minimum(within, np.repeat(lengths, lengths) - 1 - within) / (0.1 * sfreq)
        envelope = np.repeat(rng.uniform(5, 30, n_muscle), lengths) * np.minimum(edge, 1.0)
        white = rng.standard_normal((len(TEMPORAL), len(idx) + 1), dtype=np.float32)
        gain = rng.uniform(0.3, 1.2, (len(TEMPORAL), 1)) * _emg_scale(sfreq)
        x[TEMPORAL[:, None], idx] += (
            gain.astype(np.float32) * np.diff(white, axis=1) * envelope.astype(np.float32)
        )
    n_pops = rng.poisson(pat["pop_per_min"] * minutes)
    if n_pops:
        length = int(1.5 * sfreq)
        decay = np.exp(-np.arange(length)[None, :] / sfreq / rng.uniform(0.1, 0.5, (n_pops, 1)))
        height = rng.uniform(80, 400, (n_pops, 1)) * rng.choice(np.array([-1.0, 1.0]), (n_pops, 1))
        idx = rng.integers(0, n, (n_pops, 1)) + np.arange(length)[None, :]
        chans = np.broadcast_to(rng.integers(0, 19, (n_pops, 1)), idx.shape)
        inside = idx < n
        np.add.at(x, (chans[inside], idx[inside]), (height * decay)[inside].astype(np.float32))
    if 0 < pat["line_hz"] < sfreq / 2:
        arg = 2 * np.pi * pat["line_hz"] * np.arange(n) / sfreq
        signs = rng.choice(np.array([-1.0, 1.0]), (2, 20, 1))
        gains = (pat["line_uv"] * rng.uniform(0.2, 1.5, (2, 20, 1)) * signs).astype(np.float32)
        x += gains[0] * np.sin(arg).astype(np.float32)
        x += gains[1] * np.cos(arg).astype(np.float32)


def _bursts(rng: np.random.Generator, duration: float) -> np.ndarray:
    """Burst-suppression on/off curve ``(2, m)`` (knot times s, level 0-1) over ``duration`` s.

    Bursts of 1-4 s separated by suppressions of 2-10 s (ACNS 2021: burst suppression is 50-99 %
    suppression), 0.2 s edges.
    """
    n = int(duration / 3.0) + 4
    burst = rng.uniform(1.0, 4.0, n)
    gap = rng.uniform(2.0, 10.0, n)
    start = np.cumsum(burst + gap) - burst - gap - rng.uniform(0.0, 10.0)
    edge = 0.2
    times = np.stack([start, start + edge, start + burst - edge, start + burst], axis=1).ravel()
    levels = np.tile(np.array([0.0, 1.0, 1.0, 0.0]), n)
    return np.stack([times, levels])


def _scene(rng: np.random.Generator, pat: dict, duration: float) -> dict:
    """What stays fixed across the renders of one session: lead gains, offsets, EKG leak, envelope.

    The EKG reaches the scalp as a far field: a potential varying linearly across the head (stronger
    on the left, the heart's side), so that it is smooth over neighbouring electrodes.
    """
    slope = rng.normal(0.0, 1.0, 3)
    leak = slope[0] + slope[1] * (POS[:, 0] - 0.5) + slope[2] * POS[:, 1]
    return {
        "gain": rng.lognormal(0.0, 0.08, len(POS)),
        "offset": (pat["offset_uv"] + rng.normal(0.0, 12.0, len(POS))).astype(np.float32),
        "ekg_offset": rng.normal(20.0, 30.0),
        "leak": (pat["ekg_leak"] * leak).astype(np.float32),
        "mod_knots": rng.standard_normal(int(duration / _KNOT_S) + 3),
        "mod_sigma": pat["mod_sigma"],
        "bursts": _bursts(rng, duration) if pat["burst_suppression"] else None,
        "bs_floor": 0.12,
    }


def _add_pattern(
    rng: np.random.Generator,
    x: np.ndarray,
    prm: dict,
    width: float,
    wave: np.ndarray,
    t: np.ndarray,
    sfreq: float,
) -> None:
    """Add a pattern's ``wave`` (uV, at ``sfreq``) to the scalp leads ``x`` through its field.

    A seizure's field evolves (ACNS 2021: evolution in location): from its focal patch it spreads
    over the event to a patch ``spread`` times wider and less lateralized, the two fields blended
    along a half-cosine over ``evolution_period_s`` from the event's start.
    """
    field = pattern_field(rng, prm, width).astype(np.float32)
    if prm.get("spread", 1.0) <= 1.0:
        x += field[:, None] * wave[None, :]
        return
    wide = {
        **prm,
        "field_width": prm["field_width"] * prm["spread"],
        "lateralization": prm["lateralization"] / prm["spread"],
    }
    field_wide = pattern_field(rng, wide, width).astype(np.float32)
    times = t if sfreq == SFREQ else t[:: int(round(SFREQ / sfreq))][: len(wave)]
    start = prm.get("start_s", times[0])
    u = np.clip((times - start) / prm["evolution_period_s"], 0.0, 1.0)
    blend = (0.5 - 0.5 * np.cos(np.pi * u)).astype(np.float32)
    x += field[:, None] * ((1.0 - blend) * wave)[None, :] + field_wide[:, None] * (blend * wave)[None, :]


def _render(
    rng: np.random.Generator,
    scene: dict,
    pat: dict,
    session: dict,
    events: list[dict],
    t0: float,
    seconds: float,
    sfreq: float,
) -> np.ndarray:
    """Render session time ``[t0, t0 + seconds)`` at ``sfreq``: float32 ``(20, n)``, uV.

    ``events`` are drawn where they overlap the span, the session's context pattern fills the
    rest; then artifacts, offsets and the session's flat or disconnected lead.
    """
    n = int(round(seconds * sfreq))
    n_hi = int(round(seconds * SFREQ))
    x = np.empty((len(EEG_CHANNELS), n), dtype=np.float32)
    _background(rng, pat, scene, x[:19], t0, sfreq)
    ekg = _ekg(rng, n_hi, pat["heart_bpm"]) * np.float32(pat["ekg_uv"])
    ekg = ekg if sfreq == SFREQ else fft_decimate(ekg)
    x[EKG_ROW] = ekg + np.float32(scene["ekg_offset"])
    x[:19] += scene["leak"][:, None] * ekg[None, :]

    ramp = 0.6
    t = t0 + np.arange(n_hi) / SFREQ
    uncovered = np.ones(n_hi)
    for ev in events:
        gate = np.clip((t - ev["start_s"]) / ramp + 0.5, 0, 1) * np.clip(
            (ev["end_s"] - t) / ramp + 0.5, 0, 1
        )
        if gate.any():
            wave = pattern_wave(rng, ev, pat["bg_amp"], t0, gate, sfreq)
            _add_pattern(rng, x[:19], ev, pat["bg_width"], wave, t, sfreq)
            uncovered -= gate
    context = {k[len("context_") :]: v for k, v in session.items() if k.startswith("context_")}
    if context["strength"] > 0:
        wave = pattern_wave(rng, context, pat["bg_amp"], t0, np.clip(uncovered, 0.0, 1.0), sfreq)
        _add_pattern(rng, x[:19], context, pat["bg_width"], wave, t, sfreq)

    _add_artifacts(rng, x, pat, sfreq)
    x[:19] += scene["offset"][:, None]
    if session["flat_channel"] >= 0:
        ch = int(session["flat_channel"])
        x[ch] = x[ch].mean() + 0.3 * rng.standard_normal(n, dtype=np.float32)
    if session["disconnected_channel"] >= 0:
        ch = int(session["disconnected_channel"])
        wander = np.cumsum(rng.standard_normal(int(seconds) + 2)) * 40.0
        x[ch] = np.interp(np.arange(n) / sfreq, np.arange(len(wander)), wander)
        if sfreq > 120:
            x[ch] += 80.0 * np.sin(
                2 * np.pi * 60.0 * np.arange(n) / sfreq + rng.uniform(0, 2 * np.pi)
            )
    return x


def _eeg_spans(eegs: list[dict], duration: float) -> list[tuple[float, float, list[dict]]]:
    """Session spans rendered at 200 Hz: each EEG plus a margin, overlapping spans merged."""
    spans: list[tuple[float, float, list[dict]]] = []
    for eeg in eegs:
        lo = max(eeg["start_s"] - _SPAN_MARGIN_S, 0.0)
        hi = min(eeg["start_s"] + eeg["length_s"] + _SPAN_MARGIN_S, duration)
        if spans and lo <= spans[-1][1]:
            spans[-1] = (spans[-1][0], hi, [*spans[-1][2], eeg])
        else:
            spans.append((lo, hi, [eeg]))
    return spans


def render_session(
    seed: np.random.SeedSequence,
    session: dict,
    pat: dict,
    events: list[dict],
    eegs: list[dict],
) -> tuple[list[np.ndarray], np.ndarray]:
    """Render one session: its EEG excerpts and its Kaggle spectrogram.

    The spectrogram needs the whole recording (>= 600 s) but only below 20 Hz, so the session is
    rendered at 50 Hz, and only the EEG excerpts (plus 5 s either side) at 200 Hz. Those spans,
    decimated, replace the 50 Hz signal (cross-faded over 1 s inside the margins), so that the
    spectrogram around every labelled window is computed from exactly the signal in the EEG file.

    Returns
    -------
    excerpts : list of numpy.ndarray
        float32 ``(20, n)`` per EEG of ``eegs`` (NaN stretches included), uV at 200 Hz.
    spectrogram : numpy.ndarray
        float32 ``(4, 100, duration / 2)``.
    """
    rng = np.random.default_rng(seed)
    scene = _scene(rng, pat, session["duration_s"])
    duration = session["duration_s"]
    low = _render(rng, scene, pat, session, [], 0.0, duration, _LOW_SFREQ)
    excerpts = {}
    fade_n = int(_CROSSFADE_S * _LOW_SFREQ)
    for lo, hi, span_eegs in _eeg_spans(eegs, duration):
        x = _render(rng, scene, pat, session, events, lo, hi - lo, SFREQ)
        for eeg in span_eegs:
            a = int(round((eeg["start_s"] - lo) * SFREQ))
            if eeg["nan_seconds"] > 0:
                b = a + int(round(eeg["nan_start_s"] * SFREQ))
                x[:, b : b + int(round(eeg["nan_seconds"] * SFREQ))] = np.nan
            excerpts[eeg["eeg_id"]] = x[:, a : a + int(round(eeg["length_s"] * SFREQ))]
        fade = np.ones(x.shape[1] // _DECIMATE, dtype=np.float32)
        ramp = np.linspace(0.0, 1.0, fade_n, dtype=np.float32)
        if lo > 0:
            fade[:fade_n] = ramp
        if hi < duration:
            fade[-fade_n:] = ramp[::-1]
        i = int(round(lo * _LOW_SFREQ))
        part = low[:, i : i + len(fade)]
        part += fade * (fft_decimate(np.nan_to_num(x, nan=0.0)) - part)
    spec = kaggle_spectrogram_low(kaggle_region_bipolar(low), int(duration // SPEC_STEP_SECONDS))
    return [excerpts[eeg["eeg_id"]] for eeg in eegs], spec
