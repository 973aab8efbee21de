"""Patterns: the parameters of an event drawn around its class, its waveform and its scalp field.

ACNS-style morphology: rhythmic delta waves blend into brief 2-3 phase discharges as ``sharpness``
grows (triphasic in some), a repetition frequency that drifts and, for seizures, evolves in frequency
and amplitude; a field of two mirror-image blobs whose contralateral one shrinks with
``lateralization``.
"""

from __future__ import annotations

import math

import numpy as np

from hmslib.constants import CLASSES, SFREQ
from hmslib.spectral import fft_decimate
from hmslib.synthetic.scalp import PAIRS, POS, gauss, triangle


def draw_params(rng: np.random.Generator, archetype: np.ndarray) -> dict[str, np.ndarray]:
    """Pattern parameters for events drawn around ``archetype`` (class indices), one per event."""
    n = len(archetype)
    hi = rng.beta(5.0, 1.8, n)
    lo = rng.beta(1.8, 5.0, n)
    uni = rng.uniform(0.0, 1.0, (2, n))
    is_ = {c: archetype == i for i, c in enumerate(CLASSES)}
    sharp_cls = is_["lpd"] | is_["gpd"]
    lat_cls = is_["lpd"] | is_["lrda"]
    general_cls = is_["gpd"] | is_["grda"]
    # seizures: mostly evolving rhythms; a quarter fast sharp discharges that do not evolve
    fast_seizure = is_["seizure"] & (rng.uniform(size=n) < 0.25)
    sharpness = np.where(
        sharp_cls | fast_seizure,
        rng.beta(5.0, 1.8, n),
        np.where(is_["lrda"] | is_["grda"], lo, uni[0]),
    )
    lateralization = np.where(lat_cls, hi, np.where(general_cls, rng.beta(1.8, 5.0, n), uni[1]))
    evolution = np.where(
        is_["seizure"] & ~fast_seizure, rng.beta(5.0, 1.8, n), rng.beta(1.3, 7.0, n)
    )
    frequency = np.select(
        [sharp_cls, is_["lrda"] | is_["grda"], fast_seizure, is_["seizure"]],
        [
            rng.uniform(0.5, 2.5, n),
            rng.uniform(0.6, 3.5, n),
            rng.uniform(3.0, 5.0, n),
            rng.uniform(1.5, 4.5, n),
        ],
        default=rng.uniform(0.5, 3.0, n),
    )
    strength = np.where(is_["other"], rng.beta(1.5, 6.0, n), rng.beta(5.0, 1.8, n))
    return {
        "strength": strength,
        "sharpness": sharpness,
        "lateralization": lateralization,
        "evolution": evolution,
        "frequency_hz": frequency,
        "side": rng.choice(np.array([-1, 1]), n),
        "focus_y": rng.uniform(-0.6, 0.7, n),
        "field_width": rng.uniform(0.3, 0.55, n),
        "frontal": rng.beta(2.5, 1.5, n),
        "triphasic": rng.uniform(size=n) < 0.3,
        "evolution_period_s": rng.uniform(20.0, 40.0, n),
        "phase": rng.uniform(0.0, 1.0, n),
        "jitter": rng.uniform(0.02, 0.08, n),
        "amplitude": rng.uniform(0.8, 1.25, n),
    }


def pattern_field(rng: np.random.Generator, prm: dict) -> np.ndarray:
    """Spatial gain ``(19,)`` of a pattern, scaled so its largest double-banana difference is 1.

    Two mirror-image Gaussian blobs over the hemispheres: the contralateral one shrinks with
    ``lateralization`` (bilaterally synchronous at 0, one hemisphere at 1). A lateralized field sits at
    ``focus_y`` (front-back); a generalized one moves forward with ``frontal`` (frontal predominance).
    Each electrode gets a little individual variation so that no field is perfectly smooth.
    """
    lat, side = prm["lateralization"], prm["side"]
    x, y = POS[:, 0] * side, POS[:, 1]
    y_c = lat * prm["focus_y"] + (1.0 - lat) * (0.9 * prm["frontal"] - 0.2)
    width2 = 2 * prm["field_width"] ** 2
    ipsi = np.exp(-((x - 0.5) ** 2 + (y - y_c) ** 2) / width2)
    contra = np.exp(-((x + 0.5) ** 2 + (y - y_c) ** 2) / width2)
    field = (ipsi + (1.0 - lat) * contra) * rng.uniform(0.8, 1.2, len(POS))
    return field / np.abs(field[PAIRS[:, 0]] - field[PAIRS[:, 1]]).max()


def _waveform(rng: np.random.Generator, t: np.ndarray, prm: dict) -> np.ndarray:
    """Unit-amplitude pattern waveform ``(m,)`` at session times ``t`` (s, 200 Hz steps), negative first.

    The repetition frequency drifts (jitter) and, with ``evolution``, sweeps up and down by up to
    a factor 1.7 over ``evolution_period_s`` along with the amplitude. ``sharpness`` blends smooth
    rhythmic delta waves (no interval between waves) into brief 2-3 phase discharges separated by
    flat intervals (periodic discharges; triphasic when ``triphasic``); fast spikes get an after-going
    slow wave (spike-and-wave).
    """
    f0, e, s = prm["frequency_hz"], prm["evolution"], prm["sharpness"]
    sweep = triangle(t / prm["evolution_period_s"] + prm["phase"])
    knots = np.arange(t[0] - 1.0, t[-1] + 2.0)
    drift = np.interp(t, knots, rng.standard_normal(len(knots)))
    freq = f0 * np.exp(0.55 * e * sweep + prm["jitter"] * drift)
    phase = np.cumsum(freq) / SFREQ + rng.uniform()
    cycle = np.floor(phase).astype(np.int64)
    frac = phase - cycle
    rhythm = -(np.cos(2 * np.pi * frac) + 0.25 * np.cos(4 * np.pi * frac + 0.8)) / 1.1
    tau = (frac - 0.5) / freq  # seconds from the discharge peak, mid-cycle
    sigma = 0.02 + 0.05 * (1.0 - s) ** 1.5
    if prm["triphasic"]:
        sig3 = 1.5 * sigma
        spike = (
            -0.3 * gauss(tau, -2 * sig3, sig3)
            + gauss(tau, 0, 1.3 * sig3)
            - 0.45 * gauss(tau, 3 * sig3, 2.5 * sig3)
        )
    else:
        after_mu = np.minimum(0.15, 0.3 / freq)
        after_sigma = np.minimum(0.05, 0.1 / freq)
        spike = (
            -gauss(tau, 0, sigma)
            + 0.3 * gauss(tau, 2.5 * sigma, 1.5 * sigma)
            - 0.4 * gauss(tau, after_mu, after_sigma)
        )
    weight = np.clip((s - 0.25) / 0.5, 0.0, 1.0)
    weight = weight * weight * (3 - 2 * weight)  # smoothstep
    per_cycle = 1.0 + 0.15 * rng.standard_normal(cycle[-1] - cycle[0] + 1)
    envelope = (
        1.0 + 0.35 * e * triangle(t / prm["evolution_period_s"] + prm["phase"] + 0.25)
    ) * per_cycle[cycle - cycle[0]]
    return ((1.0 - weight) * rhythm + 1.5 * weight * spike) * envelope


def _pattern_amplitude(strength: float, amplitude: float, bg_amp: float) -> float:
    """Peak amplitude of a pattern in its strongest bipolar derivation, uV.

    Grows with ``strength`` against the background (about 10 uV rms at ``bg_amp`` 12): 23 uV at
    strength 0.3 (the present/absent boundary), 50 uV at 0.5, 140 uV at 1.
    """
    return 140.0 * math.sqrt(bg_amp / 12.0) * amplitude * strength**1.5


def pattern_wave(
    rng: np.random.Generator, prm: dict, bg_amp: float, t0: float, gate: np.ndarray, sfreq: float
) -> np.ndarray:
    """A pattern's waveform in uV (times ``gate``, given at 200 Hz from session time ``t0``), at ``sfreq``."""
    t = t0 + np.arange(len(gate)) / SFREQ
    wave = (
        _pattern_amplitude(prm["strength"], prm["amplitude"], bg_amp)
        * gate
        * _waveform(rng, t, prm)
    )
    return wave.astype(np.float32) if sfreq == SFREQ else fft_decimate(wave)
