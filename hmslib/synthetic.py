"""Synthetic HMS data with known ground truth, written in the exact Kaggle layout.

:func:`generate` writes ``train.csv``, ``test.csv``, ``sample_submission.csv``, ``train_eegs/``,
``train_spectrograms/``, ``test_eegs/`` and ``test_spectrograms/`` as the competition did, plus
``truth.csv`` (the class distribution each row's votes were drawn from, the generating parameters and
the test set's expert votes) and ``synthetic.json`` (what made the folder).

How a data set is made:

- Each patient has one or more *sessions*: long recordings (>= 600 s) whose Kaggle-style
  spectrogram is written whole. Each session holds one or more EEG excerpts (50 s or longer), each
  with several labelled 50 s windows (``eeg_label_offset_seconds``). The window's centre coincides
  with the centre of its 600 s spectrogram window, as in the competition.
- The windows of an EEG belong to one (sometimes two) *events*: a pattern with continuous parameters
  -- strength against the background, sharpness, lateralization, repetition frequency, evolution --
  that covers the central 10 s of each of its windows. Outside that span the recording may show
  background or another pattern, so the centre decides the label.
- The class distribution of an event is a smooth function of those parameters
  (:func:`class_distribution`); the votes of an event (shared by all its windows) are drawn
  multinomially from it. Events with 1-9 votes come from a larger, less expert rater pool that
  over-calls seizures and is noisier; events with >= 10 votes and the test set follow the experts.
- The signal is spatially correlated 1/f background with a posterior dominant rhythm or diffuse
  slowing, common-mode offsets, an EKG channel leaking into the scalp leads, the pattern itself
  (ACNS-style morphology and field) and artifacts: blinks and eye movements, muscle, electrode pops,
  flat or disconnected channels, line noise and NaN stretches.

Because the true distributions are known, :func:`bayes_floor` gives the lowest KL any model can reach
on the data (the vote noise) next to the KL of the class-prior predictor: the learnable gap.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.fft

from hmslib.constants import (
    CHAINS,
    CLASSES,
    CONSENSUS_NAMES,
    EEG_CHANNELS,
    EEG_WINDOW_SECONDS,
    LABEL_CENTER_SECONDS,
    SCALP_CHANNELS,
    SFREQ,
    SPEC_N_FREQS,
    SPEC_REGIONS,
    SPEC_STEP_SECONDS,
    SPEC_WINDOW_SECONDS,
    TEST_COLUMNS,
    TRAIN_COLUMNS,
    VOTE_COLUMNS,
)
from hmslib.io import atomic_path, read_train_csv, write_csv_atomic
from hmslib.labels import HIGH_AGREEMENT_VOTES, class_prior
from hmslib.metrics import kaggle_kl
from hmslib.signal import montage

# --------------------------------------------------------------------------------------------------
# presets
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SynthPreset:
    """Size of a synthetic data set.

    Attributes
    ----------
    n_patients : int
        Train patients (each with 1-3 sessions of 1-4 EEGs).
    n_test_eegs : int
        Test EEGs (one per test patient), scaled with ``n_patients`` when that is overridden.
    max_windows : int
        Most labelled windows per EEG.
    description : str
        One line for ``hms synth --help``.
    """

    n_patients: int
    n_test_eegs: int
    max_windows: int
    description: str


#: Named sizes: ``demo`` trains end to end on 2 CPU cores in minutes; ``bench`` ranks models.
PRESETS: dict[str, SynthPreset] = {
    "demo": SynthPreset(48, 32, 16, "48 patients, ~130 EEGs, ~750 labelled windows, 32 test EEGs"),
    "bench": SynthPreset(400, 240, 20, "400 patients, ~1,100 EEGs, ~6,300 windows, 240 test EEGs"),
}

#: Version of the generating model, stored in ``synthetic.json``.
GENERATOR_VERSION = 1

#: Column labels (Hz) of the Kaggle spectrogram: bins 3..102 of a 1024-point FFT at 200 Hz, rounded
#: half up to 0.01 Hz exactly as the competition's files name them ("0.59" ... "19.92").
SPEC_FREQ_LABELS: tuple[str, ...] = tuple(
    str(math.floor(k * SFREQ / 1024 * 100 + 0.5) / 100) for k in range(3, 3 + SPEC_N_FREQS)
)
#: The 400 value columns of a Kaggle spectrogram parquet file, after ``time``.
SPEC_COLUMNS: tuple[str, ...] = tuple(f"{r}_{f}" for r in SPEC_REGIONS for f in SPEC_FREQ_LABELS)

_NFFT = 1024
_DECIMATE = 4  # 200 Hz -> 50 Hz before the spectrogram's FFTs (its bins end at 19.92 Hz)
_LOW_SFREQ = SFREQ / _DECIMATE
_SPAN_MARGIN_S = 5.0  # rendered at 200 Hz either side of an EEG excerpt (> 3.84 s + fade)
_CROSSFADE_S = 1.0  # splice of a 200 Hz span into the 50 Hz session signal
_SPEC_BINS = slice(3, 3 + SPEC_N_FREQS)
_HALF_WINDOW_S = EEG_WINDOW_SECONDS / 2  # 25 s: label centre inside the EEG window
_HALF_SPEC_S = SPEC_WINDOW_SECONDS / 2  # 300 s: label centre inside the spectrogram window

# --------------------------------------------------------------------------------------------------
# from generating parameters to class distributions
# --------------------------------------------------------------------------------------------------

#: Rater models: exponent applied to the memberships (< 1 flattens: a noisier pool), per-class
#: multiplicative bias (the pool over-calls seizure) and uniform lapse rate.
_RATERS: dict[str, tuple[float, np.ndarray, float]] = {
    "expert": (1.0, np.ones(6), 0.01),
    "pool": (0.6, np.array([1.5, 1.0, 1.0, 1.0, 1.0, 0.85]), 0.04),
}

#: Class each event is drawn around, per rater group (expert windows are mostly "other", as in the
#: competition's >= 10-vote rows; the pool saw more patterns and seizures).
_ARCHETYPE_PRIOR: dict[str, np.ndarray] = {
    "expert": np.array([0.04, 0.18, 0.12, 0.06, 0.08, 0.52]),
    "pool": np.array([0.08, 0.16, 0.18, 0.18, 0.20, 0.20]),
}

#: Votes per window: the pool's 1-9 (mostly 1-3) and the experts' 10-28 (the real histogram of
#: train.csv rows with >= 10 votes, ``labels/train_rows_10plus_votes.csv`` of the samples).
_POOL_VOTES = (np.arange(1, 10), np.array([30, 25, 25, 6, 5, 3, 2, 2, 2]) / 100)
_EXPERT_VOTES = (
    np.arange(10, 29),
    np.array([98, 320, 693, 1145, 623, 1409, 664, 302, 307, 72, 212, 49, 23, 10, 3, 5, 2, 1, 1])
    / 5939,
)
#: Share of train events labelled by the expert pool (>= 10 votes).
_EXPERT_SHARE = 0.4


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function."""
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def class_memberships(
    strength: np.ndarray,
    sharpness: np.ndarray,
    lateralization: np.ndarray,
    evolution: np.ndarray,
    frequency: np.ndarray,
) -> np.ndarray:
    """How much a pattern with these parameters belongs to each class (rows sum to 1).

    A hierarchy of smooth soft decisions following the ACNS definitions: is a pattern present
    (strength against the background)? If so, is it a seizure (evolving, or sharp discharges faster
    than about 2.75 Hz; ACNS: > 2.5 Hz)? If not, periodic discharges (sharp) or rhythmic delta (smooth), lateralized or
    generalized.

    Parameters
    ----------
    strength, sharpness, lateralization, evolution : array_like
        In ``[0, 1]``; broadcast together. ``strength`` 0.3 is the present/absent boundary; 0.5 is the
        boundary of the others.
    frequency : array_like
        Repetition rate of the pattern, Hz (sharp patterns above ~2.75 Hz count as seizure).

    Returns
    -------
    numpy.ndarray
        float64 ``(..., 6)`` in ``CLASSES`` order.
    """
    a, s, lat, e, f = np.broadcast_arrays(
        *(
            np.asarray(v, dtype=np.float64)
            for v in (strength, sharpness, lateralization, evolution, frequency)
        )
    )
    present = _sigmoid(12.0 * (a - 0.3))
    sharp = _sigmoid(10.0 * (s - 0.5))
    lateral = _sigmoid(10.0 * (lat - 0.5))
    evolving = _sigmoid(10.0 * (e - 0.5))
    fast = _sigmoid(4.0 * (f - 2.75)) * sharp
    seizure = 1.0 - (1.0 - evolving) * (1.0 - fast)
    rest = present * (1.0 - seizure)
    return np.stack(
        [
            present * seizure,
            rest * sharp * lateral,
            rest * sharp * (1.0 - lateral),
            rest * (1.0 - sharp) * lateral,
            rest * (1.0 - sharp) * (1.0 - lateral),
            1.0 - present,
        ],
        axis=-1,
    )


def class_distribution(
    strength: np.ndarray,
    sharpness: np.ndarray,
    lateralization: np.ndarray,
    evolution: np.ndarray,
    frequency: np.ndarray,
    *,
    rater: str = "expert",
) -> np.ndarray:
    """The distribution a rater pool's votes are drawn from, for patterns with these parameters.

    ``p ∝ bias * m**gamma``, then mixed with a uniform lapse ``eps``: the experts use the
    memberships ``m`` of :func:`class_memberships` almost as they are (``gamma = 1``, ``eps = 0.01``);
    the larger, less expert pool of the few-vote windows is noisier (``gamma = 0.6``,
    ``eps = 0.04``) and over-calls seizure (bias 1.5) at the expense of "other" (0.85).

    Parameters
    ----------
    strength, sharpness, lateralization, evolution, frequency : array_like
        As :func:`class_memberships`.
    rater : {"expert", "pool"}
        Which rater model.

    Returns
    -------
    numpy.ndarray
        float64 ``(..., 6)`` in ``CLASSES`` order, rows summing to 1, every entry > 0.

    Raises
    ------
    ValueError
        Unknown ``rater``.
    """
    if rater not in _RATERS:
        raise ValueError(f"rater must be one of {sorted(_RATERS)}, got {rater!r}")
    gamma, bias, eps = _RATERS[rater]
    m = class_memberships(strength, sharpness, lateralization, evolution, frequency)
    logits = gamma * np.log(m + 1e-4) + np.log(bias)
    p = np.exp(logits - logits.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    return (1.0 - eps) * p + eps / len(CLASSES)


# --------------------------------------------------------------------------------------------------
# layout: patients, sessions, EEGs, events, labelled windows
# --------------------------------------------------------------------------------------------------

#: Scalp electrode positions (x: left -1 .. right +1, y: back -1 .. front +1), ``SCALP_CHANNELS`` order.
_POS = np.array(
    [
        (-0.31, 0.95), (-0.39, 0.55), (-0.50, 0.00), (-0.39, -0.55), (-0.81, 0.59), (-1.00, 0.00),
        (-0.81, -0.59), (-0.31, -0.95), (0.00, 0.50), (0.00, 0.00), (0.00, -0.50), (0.31, 0.95),
        (0.39, 0.55), (0.50, 0.00), (0.39, -0.55), (0.81, 0.59), (1.00, 0.00), (0.81, -0.59),
        (0.31, -0.95),
    ]
)  # fmt: skip
_CH = {name: i for i, name in enumerate(EEG_CHANNELS)}
_TEMPORAL = np.array([_CH[c] for c in ("F7", "F8", "T3", "T4", "T5", "T6", "Fp1", "Fp2")])
_EKG = _CH["EKG"]
#: Electrode indices of the 16 double-banana derivations (active, reference).
_PAIRS = np.array(
    [(_CH[a], _CH[b]) for c in CHAINS.values() for a, b in zip(c, c[1:], strict=False)]
)


def _draw_params(rng: np.random.Generator, archetype: np.ndarray) -> dict[str, np.ndarray]:
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


def _draw_patients(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Background, EKG and artifact habits of ``n`` patients."""
    comatose = rng.uniform(size=n) < 0.5
    line = rng.uniform(size=n)
    return pd.DataFrame(
        {
            "bg_amp": rng.lognormal(np.log(12.0), 0.45, n),
            "bg_alpha": rng.uniform(1.6, 2.4, n),
            "bg_floor": rng.lognormal(np.log(0.12), 0.4, n),
            "ref_amp": rng.uniform(0.5, 2.0, n),
            "pdr_amp": np.where(rng.uniform(size=n) < 0.35, rng.uniform(0.5, 4.0, n), 0.0),
            "pdr_hz": rng.uniform(7.5, 11.0, n),
            "slow_amp": np.where(rng.uniform(size=n) < 0.5, rng.uniform(1.0, 6.0, n), 0.0),
            "slow_hz": rng.uniform(2.0, 6.0, n),
            "offset_uv": rng.normal(-100.0, 30.0, n),
            "ekg_uv": rng.uniform(150.0, 800.0, n) * rng.choice(np.array([-1.0, 1.0]), n),
            "heart_bpm": rng.uniform(55.0, 115.0, n),
            "ekg_leak": rng.uniform(0.002, 0.015, n),
            "blink_per_min": np.where(comatose, 0.0, rng.uniform(2.0, 15.0, n)),
            "eye_per_min": np.where(comatose, 0.0, rng.uniform(0.0, 3.0, n)),
            "muscle_per_min": np.where(
                comatose, rng.uniform(0.0, 0.5, n), rng.uniform(0.5, 4.0, n)
            ),
            "pop_per_min": rng.uniform(0.0, 0.6, n),
            "line_hz": np.select([line < 0.4, line < 0.5], [60.0, 50.0], 0.0),
            "line_uv": rng.uniform(1.0, 12.0, n),
        }
    )


def _unique_ids(rng: np.random.Generator, n: int, high: int) -> np.ndarray:
    """``n`` distinct random ids in ``[1, high)`` (int64)."""
    return rng.choice(high - 1, size=n, replace=False).astype(np.int64) + 1


def _segment_starts(counts: np.ndarray) -> np.ndarray:
    """Index of the first element of each consecutive group of sizes ``counts``."""
    return np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)


@dataclass
class _Layout:
    """Every table of one data set before any signal is rendered."""

    patients: pd.DataFrame  # one row per patient (train and test), background habits
    sessions: pd.DataFrame  # one row per spectrogram (long recording)
    eegs: pd.DataFrame  # one row per EEG excerpt
    events: pd.DataFrame  # one row per labelled event (pattern + votes)
    labels: pd.DataFrame  # one row per labelled window (train.csv rows; test EEGs too)


def _draw_layout(
    rng: np.random.Generator, n_patients: int, n_test: int, max_windows: int
) -> _Layout:
    """Draw the structure, ids, parameters and votes of a data set (no signal yet)."""
    n_all = n_patients + n_test
    patients = _draw_patients(rng, n_all)
    patients.insert(0, "patient_id", _unique_ids(rng, n_all, 65_536))
    patients.insert(1, "split", np.where(np.arange(n_all) < n_patients, "train", "test"))

    # train: 1-3 sessions per patient, 1-4 EEGs per session, 1-max_windows windows per EEG
    sess_per_patient = 1 + np.minimum(rng.poisson(0.6, n_patients), 2)
    s_patient = np.repeat(np.arange(n_patients), sess_per_patient)
    eegs_per_session = 1 + np.minimum(rng.poisson(0.7, len(s_patient)), 3)
    e_session = np.repeat(np.arange(len(s_patient)), eegs_per_session)
    n_eeg = len(e_session)
    n_win = 1 + np.minimum(rng.poisson(rng.gamma(1.5, 3.5, n_eeg)), max_windows - 1)
    two_events = (n_win >= 4) & (rng.uniform(size=n_eeg) < 0.15)
    split_at = np.where(
        two_events, 1 + (rng.uniform(size=n_eeg) * (n_win - 1)).astype(np.int64), n_win
    )
    # test: one 600 s session with one 50 s EEG and one window per test patient
    s_patient = np.concatenate([s_patient, np.arange(n_patients, n_all)])
    e_session = np.concatenate([e_session, np.arange(len(s_patient) - n_test, len(s_patient))])
    n_win = np.concatenate([n_win, np.ones(n_test, dtype=np.int64)])
    split_at = np.concatenate([split_at, np.ones(n_test, dtype=np.int64)])
    n_eeg, n_sess = len(e_session), len(s_patient)
    is_test_eeg = np.arange(n_eeg) >= n_eeg - n_test

    # windows: offsets in steps of 2-10 s; the second event of an EEG starts >= 12 s later
    w_eeg = np.repeat(np.arange(n_eeg), n_win)
    w_first = _segment_starts(n_win)
    w_rank = np.arange(len(w_eeg)) - w_first[w_eeg]
    w_event_rank = (w_rank >= split_at[w_eeg]).astype(np.int64)
    gap = rng.choice(np.array([2, 4, 6, 8, 10]), len(w_eeg), p=[0.3, 0.25, 0.2, 0.15, 0.1])
    gap = np.where(w_rank == 0, 0, gap + np.where(w_rank == split_at[w_eeg], 12, 0))
    cum = np.cumsum(gap)
    offset = (cum - cum[w_first[w_eeg]]).astype(np.float64)
    eeg_len = offset[w_first + n_win - 1] + EEG_WINDOW_SECONDS

    # EEGs placed one after another inside their session, the first window centre >= 300 s in
    e_rank = np.arange(n_eeg) - _segment_starts(np.bincount(e_session, minlength=n_sess))[e_session]
    lead = np.where(
        e_rank == 0,
        _HALF_SPEC_S - _HALF_WINDOW_S + np.where(is_test_eeg, 0, rng.integers(0, 30, n_eeg)),
        rng.integers(0, 60, n_eeg),
    ).astype(np.float64)
    span = np.cumsum(lead + eeg_len)
    sess_first_eeg = _segment_starts(np.bincount(e_session, minlength=n_sess))
    base = np.concatenate([[0.0], span])[sess_first_eeg][e_session]
    eeg_start = span - eeg_len - base
    eeg_end = eeg_start + eeg_len
    sess_last = np.zeros(n_sess)
    np.maximum.at(sess_last, e_session, eeg_end)
    is_test_sess = np.arange(n_sess) >= n_sess - n_test
    tail = np.where(is_test_sess, 0, rng.integers(0, 30, n_sess))
    duration = 2.0 * np.ceil((sess_last + _HALF_SPEC_S - _HALF_WINDOW_S + tail) / 2.0)

    # events: the span of their windows' central 10 s, widened by a tight (0.5-3 s: the pattern
    # changes just outside the centre) or wide margin, clipped to the EEG and to a neighbour event
    ev_key = w_eeg * 2 + w_event_rank
    ev_of_window = np.unique(ev_key, return_inverse=True)[1]
    n_ev = int(ev_of_window.max()) + 1
    ev_first = np.flatnonzero(np.r_[True, np.diff(ev_of_window) != 0])
    ev_last = np.r_[ev_first[1:], len(w_eeg)] - 1
    ev_eeg = w_eeg[ev_first]
    centre_lo = offset[ev_first] + _HALF_WINDOW_S - LABEL_CENTER_SECONDS / 2
    centre_hi = offset[ev_last] + _HALF_WINDOW_S + LABEL_CENTER_SECONDS / 2
    tight = rng.uniform(size=(2, n_ev)) < 0.35
    margin = np.where(tight, rng.uniform(0.5, 3.0, (2, n_ev)), rng.uniform(5.0, 60.0, (2, n_ev)))
    ev_lo = np.maximum(centre_lo - margin[0], 0.0)
    ev_hi = np.minimum(centre_hi + margin[1], eeg_len[ev_eeg])
    second = w_event_rank[ev_first] == 1
    mid = (centre_hi[np.flatnonzero(second) - 1] + centre_lo[second]) / 2
    ev_lo[second] = np.maximum(ev_lo[second], mid)
    ev_hi[np.flatnonzero(second) - 1] = np.minimum(ev_hi[np.flatnonzero(second) - 1], mid)

    test_ev = is_test_eeg[ev_eeg]
    expert = test_ev | (rng.uniform(size=n_ev) < _EXPERT_SHARE)
    rater = np.where(expert, "expert", "pool")
    archetype = np.where(
        expert,
        rng.choice(6, n_ev, p=_ARCHETYPE_PRIOR["expert"]),
        rng.choice(6, n_ev, p=_ARCHETYPE_PRIOR["pool"]),
    )
    params = _draw_params(rng, archetype)
    cls_args = [
        params[k] for k in ("strength", "sharpness", "lateralization", "evolution", "frequency_hz")
    ]
    expert_p = class_distribution(*cls_args, rater="expert")
    p = np.where(expert[:, None], expert_p, class_distribution(*cls_args, rater="pool"))
    n_votes = np.where(
        expert,
        rng.choice(_EXPERT_VOTES[0], n_ev, p=_EXPERT_VOTES[1]),
        rng.choice(_POOL_VOTES[0], n_ev, p=_POOL_VOTES[1]),
    )
    votes = rng.multinomial(n_votes, p)

    events = pd.DataFrame(
        {
            "eeg": ev_eeg,
            "session": e_session[ev_eeg],
            "start_s": ev_lo + eeg_start[ev_eeg],
            "end_s": ev_hi + eeg_start[ev_eeg],
            "rater": rater,
            "n_votes": n_votes,
            "archetype": np.asarray(CLASSES)[archetype],
            **params,
        }
    )
    for k, c in enumerate(CLASSES):
        events[f"p_{c}"] = p[:, k]
    for k, c in enumerate(CLASSES):
        events[f"expert_p_{c}"] = expert_p[:, k]
    for k, c in enumerate(VOTE_COLUMNS):
        events[c] = votes[:, k]

    # sessions: the pattern shown between events (background, or a pattern of the same or another class)
    sess_archetype = rng.choice(6, n_sess, p=_ARCHETYPE_PRIOR["pool"])
    first_ev = np.full(n_sess, n_ev)
    np.minimum.at(first_ev, e_session[ev_eeg], np.arange(n_ev))
    same = rng.uniform(size=n_sess) < 0.5
    sess_archetype = np.where(same, archetype[first_ev], sess_archetype)
    has_baseline = (rng.uniform(size=n_sess) < 0.5) & (sess_archetype != CLASSES.index("other"))
    sess_params = _draw_params(rng, sess_archetype)
    sess_params["strength"] = np.where(
        has_baseline, sess_params["strength"] * rng.uniform(0.5, 1.0, n_sess), 0.0
    )
    bad_channel = rng.uniform(size=n_sess)
    sessions = pd.DataFrame(
        {
            "spectrogram_id": _unique_ids(rng, n_sess, 2**31),
            "patient": s_patient,
            "split": np.where(is_test_sess, "test", "train"),
            "duration_s": duration,
            "context": np.where(has_baseline, np.asarray(CLASSES)[sess_archetype], "background"),
            "flat_channel": np.where(bad_channel < 0.06, rng.integers(0, 19, n_sess), -1),
            "disconnected_channel": np.where(
                (bad_channel >= 0.06) & (bad_channel < 0.10), rng.integers(0, 19, n_sess), -1
            ),
            **{f"context_{k}": v for k, v in sess_params.items()},
        }
    )

    # EEGs: NaN stretches in ~5% of them
    has_nan = rng.uniform(size=n_eeg) < 0.05
    nan_len = np.where(has_nan, rng.uniform(0.5, 8.0, n_eeg), 0.0)
    nan_at = rng.uniform(0.0, 1.0, n_eeg) * np.maximum(eeg_len - nan_len, 0.0)
    eegs = pd.DataFrame(
        {
            "eeg_id": _unique_ids(rng, n_eeg, 2**32),
            "session": e_session,
            "split": np.where(is_test_eeg, "test", "train"),
            "start_s": eeg_start,
            "length_s": eeg_len,
            "nan_start_s": np.round(nan_at, 2),
            "nan_seconds": np.round(nan_len, 2),
        }
    )

    spec_offset = eeg_start[w_eeg] + offset + _HALF_WINDOW_S - _HALF_SPEC_S
    labels = pd.DataFrame(
        {
            "eeg_id": eegs["eeg_id"].to_numpy()[w_eeg],
            "eeg_sub_id": w_rank,
            "eeg_label_offset_seconds": offset,
            "spectrogram_id": sessions["spectrogram_id"].to_numpy()[e_session[w_eeg]],
            "spectrogram_sub_id": np.arange(len(w_eeg))
            - _segment_starts(np.bincount(e_session[w_eeg], minlength=n_sess))[e_session[w_eeg]],
            "spectrogram_label_offset_seconds": spec_offset,
            "label_id": _unique_ids(rng, len(w_eeg), 2**32),
            "patient_id": patients["patient_id"].to_numpy()[s_patient[e_session[w_eeg]]],
            "expert_consensus": np.asarray(CONSENSUS_NAMES)[votes[ev_of_window].argmax(axis=1)],
            **{c: votes[ev_of_window, k] for k, c in enumerate(VOTE_COLUMNS)},
            "event": ev_of_window,
            "split": np.where(is_test_eeg[w_eeg], "test", "train"),
        }
    )
    return _Layout(patients, sessions, eegs, events, labels)


# --------------------------------------------------------------------------------------------------
# signal: background, EKG, patterns, artifacts
# --------------------------------------------------------------------------------------------------


def _scalp_mixing() -> tuple[np.ndarray, float]:
    """Cholesky factor of the scalp noise correlation (Gaussian in electrode distance) and the mean
    variance of a double-banana derivation of unit-variance mixed noise."""
    d2 = ((_POS[:, None, :] - _POS[None, :, :]) ** 2).sum(axis=-1)
    corr = np.exp(-d2 / (2 * 0.45**2))
    bipolar_var = float(np.mean(2.0 - 2.0 * corr[_PAIRS[:, 0], _PAIRS[:, 1]]))
    return np.linalg.cholesky(corr + 1e-6 * np.eye(len(_POS))).astype(np.float32), bipolar_var


_MIX, _BIPOLAR_VAR = _scalp_mixing()


def _gauss(x: np.ndarray, mu: float, sigma: float) -> np.ndarray:
    """Unit-height Gaussian bump."""
    return np.exp(-0.5 * ((x - mu) / sigma) ** 2)


def _background(
    rng: np.random.Generator, pat: dict, gain: np.ndarray, out: np.ndarray, sfreq: float
) -> None:
    """Write the scalp background into ``out`` ``(19, n)`` float32 at ``sfreq``, uV, no offsets.

    Sources made in the frequency domain: one noise source per electrode with a 1/f^alpha spectrum,
    a white floor and diffuse slowing where the patient has it, mixed to a Gaussian spatial
    correlation (times the per-electrode ``gain``) and calibrated so that a double-banana
    derivation has the two-sided density ``bg_amp / (f**alpha + 0.1) + bg_floor (+ slowing)``
    (uV^2/Hz, the unit of the Kaggle spectrograms); a common reference signal that bipolar
    derivations cancel; and, where the patient has one, a posterior dominant rhythm coherent within
    each hemisphere.
    """
    n = out.shape[1]
    freqs = np.fft.rfftfreq(n, 1.0 / sfreq).astype(np.float32)
    one_over_f = 1.0 / (freqs ** np.float32(pat["bg_alpha"]) + np.float32(0.1))
    local = pat["bg_amp"] * one_over_f + pat["bg_floor"]
    if pat["slow_amp"] > 0:
        local += (pat["slow_amp"] * _gauss(freqs, pat["slow_hz"], 1.2)).astype(np.float32)
    shapes = [local / _BIPOLAR_VAR, pat["ref_amp"] * pat["bg_amp"] * one_over_f]
    weights = [_MIX * gain[:, None], np.ones((len(_POS), 1))]
    if pat["pdr_amp"] > 0:
        shapes.append(pat["pdr_amp"] * _gauss(freqs, pat["pdr_hz"], 0.6).astype(np.float32))
        posterior = np.clip(-_POS[:, 1], 0.0, 1.0) ** 1.5
        left = _POS[:, 0] <= 0
        weights.append(posterior[:, None] * np.stack([left, ~left], axis=1))
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
    sources = scipy.fft.irfft(spectrum, n=n, axis=-1, norm="ortho")
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
        0.12 * _gauss(tt, -0.16, 0.025)
        - 0.12 * _gauss(tt, -0.03, 0.008)
        + _gauss(tt, 0.0, 0.01)
        - 0.25 * _gauss(tt, 0.03, 0.01)
        + 0.3 * _gauss(tt, 0.26, 0.05)
    )
    idx = beats[:, None] + np.round(tt * SFREQ).astype(np.int64)[None, :]
    inside = (idx >= 0) & (idx < n)
    values = np.broadcast_to(template, idx.shape)
    return np.bincount(idx[inside], weights=values[inside], minlength=n).astype(np.float32)


def _decimate(x: np.ndarray) -> np.ndarray:
    """200 Hz -> 50 Hz along the last axis (length a multiple of 4) by an exact FFT low-pass at 25 Hz."""
    m = x.shape[-1] // _DECIMATE
    spectrum = scipy.fft.rfft(x, axis=-1)[..., : m // 2 + 1]
    return (scipy.fft.irfft(spectrum, n=m, axis=-1) / _DECIMATE).astype(np.float32)


def _triangle(u: np.ndarray) -> np.ndarray:
    """Triangle wave of period 1 in ``[-1, 1]`` (0 at ``u = 0``, rising)."""
    return 4.0 * np.abs(np.mod(u - 0.25, 1.0) - 0.5) - 1.0


def _field(rng: np.random.Generator, prm: dict) -> np.ndarray:
    """Spatial gain ``(19,)`` of a pattern, scaled so its largest double-banana difference is 1.

    Two mirror-image Gaussian blobs over the hemispheres: the contralateral one shrinks with
    ``lateralization`` (bilaterally synchronous at 0, one hemisphere at 1). A lateralized field sits at
    ``focus_y`` (front-back); a generalized one moves forward with ``frontal`` (frontal predominance).
    Each electrode gets a little individual variation so that no field is perfectly smooth.
    """
    lat, side = prm["lateralization"], prm["side"]
    x, y = _POS[:, 0] * side, _POS[:, 1]
    y_c = lat * prm["focus_y"] + (1.0 - lat) * (0.9 * prm["frontal"] - 0.2)
    width2 = 2 * prm["field_width"] ** 2
    ipsi = np.exp(-((x - 0.5) ** 2 + (y - y_c) ** 2) / width2)
    contra = np.exp(-((x + 0.5) ** 2 + (y - y_c) ** 2) / width2)
    field = (ipsi + (1.0 - lat) * contra) * rng.uniform(0.8, 1.2, len(_POS))
    return field / np.abs(field[_PAIRS[:, 0]] - field[_PAIRS[:, 1]]).max()


def _waveform(rng: np.random.Generator, t: np.ndarray, prm: dict) -> np.ndarray:
    """Unit-amplitude pattern waveform ``(m,)`` at session times ``t`` (s, 200 Hz steps), negative first.

    The repetition frequency drifts (jitter) and, with ``evolution``, sweeps up and down by up to
    a factor 1.7 over ``evolution_period_s`` along with the amplitude. ``sharpness`` blends smooth
    rhythmic delta waves (no interval between waves) into brief 2-3 phase discharges separated by
    flat intervals (periodic discharges; triphasic when ``triphasic``); fast spikes get an after-going
    slow wave (spike-and-wave).
    """
    f0, e, s = prm["frequency_hz"], prm["evolution"], prm["sharpness"]
    sweep = _triangle(t / prm["evolution_period_s"] + prm["phase"])
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
            -0.3 * _gauss(tau, -2 * sig3, sig3)
            + _gauss(tau, 0, 1.3 * sig3)
            - 0.45 * _gauss(tau, 3 * sig3, 2.5 * sig3)
        )
    else:
        after_mu = np.minimum(0.15, 0.3 / freq)
        after_sigma = np.minimum(0.05, 0.1 / freq)
        spike = (
            -_gauss(tau, 0, sigma)
            + 0.3 * _gauss(tau, 2.5 * sigma, 1.5 * sigma)
            - 0.4 * _gauss(tau, after_mu, after_sigma)
        )
    weight = np.clip((s - 0.25) / 0.5, 0.0, 1.0)
    weight = weight * weight * (3 - 2 * weight)  # smoothstep
    per_cycle = 1.0 + 0.15 * rng.standard_normal(cycle[-1] - cycle[0] + 1)
    envelope = (
        1.0 + 0.35 * e * _triangle(t / prm["evolution_period_s"] + prm["phase"] + 0.25)
    ) * per_cycle[cycle - cycle[0]]
    return ((1.0 - weight) * rhythm + 1.5 * weight * spike) * envelope


def _pattern_amplitude(strength: float, amplitude: float, bg_amp: float) -> float:
    """Peak amplitude of a pattern in its strongest bipolar derivation, uV.

    Grows with ``strength`` against the background (about 10 uV rms at ``bg_amp`` 12): 23 uV at
    strength 0.3 (the present/absent boundary), 50 uV at 0.5, 140 uV at 1.
    """
    return 140.0 * math.sqrt(bg_amp / 12.0) * amplitude * strength**1.5


def _pattern_wave(
    rng: np.random.Generator, prm: dict, bg_amp: float, t0: float, gate: np.ndarray, sfreq: float
) -> np.ndarray:
    """A pattern's waveform in uV (times ``gate``, given at 200 Hz from session time ``t0``), at ``sfreq``."""
    t = t0 + np.arange(len(gate)) / SFREQ
    wave = (
        _pattern_amplitude(prm["strength"], prm["amplitude"], bg_amp)
        * gate
        * _waveform(rng, t, prm)
    )
    return wave.astype(np.float32) if sfreq == SFREQ else _decimate(wave)


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
        rows = np.flatnonzero(_POS[:, 1] > 0.2)
        gain = (1.6 * (_POS[rows, 1] - 0.2) ** 2).astype(np.float32)
        x[rows] += gain[:, None] * blinks[None, :]
    n_eye = rng.poisson(pat["eye_per_min"] * minutes)
    if n_eye:
        shape = np.hanning(int(1.5 * sfreq)) ** 0.3
        moves = _bumps(n, rng.integers(0, n, n_eye), rng.uniform(-100, 100, (n_eye, 1)) * shape)
        rows = np.flatnonzero((_POS[:, 1] > 0) & (_POS[:, 0] != 0))
        gain = (_POS[rows, 1] * _POS[rows, 0]).astype(np.float32)  # F7 and F8 opposite
        x[rows] += gain[:, None] * moves[None, :]
    n_muscle = rng.poisson(pat["muscle_per_min"] * minutes)
    if n_muscle:
        lengths = (rng.uniform(0.5, 5.0, n_muscle) * sfreq).astype(np.int64)
        starts = rng.integers(0, n - lengths)
        within = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        idx = np.repeat(starts, lengths) + within
        edge = np.minimum(within, np.repeat(lengths, lengths) - 1 - within) / (0.1 * sfreq)
        envelope = np.repeat(rng.uniform(5, 30, n_muscle), lengths) * np.minimum(edge, 1.0)
        white = rng.standard_normal((len(_TEMPORAL), len(idx) + 1), dtype=np.float32)
        gain = rng.uniform(0.3, 1.2, (len(_TEMPORAL), 1)) * _emg_scale(sfreq)
        x[_TEMPORAL[:, None], idx] += (
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


def _scene(rng: np.random.Generator, pat: dict) -> dict:
    """What stays fixed across the renders of one session: lead gains, offsets, EKG leak."""
    return {
        "gain": rng.lognormal(0.0, 0.2, len(_POS)),
        "offset": (pat["offset_uv"] + rng.normal(0.0, 12.0, len(_POS))).astype(np.float32),
        "ekg_offset": rng.normal(20.0, 30.0),
        "leak": (pat["ekg_leak"] * rng.standard_normal(19) * (1.0 + 0.5 * (_POS[:, 0] < 0))).astype(
            np.float32
        ),
    }


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
    _background(rng, pat, scene["gain"], x[:19], sfreq)
    ekg = _ekg(rng, n_hi, pat["heart_bpm"]) * np.float32(pat["ekg_uv"])
    ekg = ekg if sfreq == SFREQ else _decimate(ekg)
    x[_EKG] = ekg + np.float32(scene["ekg_offset"])
    x[:19] += scene["leak"][:, None] * ekg[None, :]

    ramp = 0.6
    t = t0 + np.arange(n_hi) / SFREQ
    uncovered = np.ones(n_hi)
    for ev in events:
        gate = np.clip((t - ev["start_s"]) / ramp + 0.5, 0, 1) * np.clip(
            (ev["end_s"] - t) / ramp + 0.5, 0, 1
        )
        if gate.any():
            wave = _pattern_wave(rng, ev, pat["bg_amp"], t0, gate, sfreq)
            x[:19] += _field(rng, ev).astype(np.float32)[:, None] * wave[None, :]
            uncovered -= gate
    context = {k[len("context_") :]: v for k, v in session.items() if k.startswith("context_")}
    if context["strength"] > 0:
        wave = _pattern_wave(rng, context, pat["bg_amp"], t0, np.clip(uncovered, 0.0, 1.0), sfreq)
        x[:19] += _field(rng, context).astype(np.float32)[:, None] * wave[None, :]

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


def _render_session(
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
    scene = _scene(rng, pat)
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
        part += fade * (_decimate(np.nan_to_num(x, nan=0.0)) - part)
    bipolar, names = montage(low, name="double_banana")
    spec = _spectrogram_low(bipolar[_region_order(names)], int(duration // SPEC_STEP_SECONDS))
    return [excerpts[eeg["eeg_id"]] for eeg in eegs], spec


def _region_order(names: list[str]) -> list[int]:
    """Rows of a double-banana montage ordered by ``SPEC_REGIONS`` (LL, RL, LP, RP), 4 each."""
    return [
        names.index(f"{a}-{b}")
        for r in SPEC_REGIONS
        for a, b in zip(CHAINS[r], CHAINS[r][1:], strict=False)
    ]


def _spectrogram_low(bipolar: np.ndarray, n_cols: int) -> np.ndarray:
    """Kaggle spectrogram ``(4, 100, n_cols)`` from the 16 derivations at 50 Hz in region order."""
    nfft, hop = _NFFT // _DECIMATE, int(SPEC_STEP_SECONDS * _LOW_SFREQ)
    pad = 3 * nfft // 4
    padded = np.pad(np.asarray(bipolar, dtype=np.float32), ((0, 0), (pad, pad)))
    centres = np.arange(n_cols) * hop + hop // 2 + pad
    starts = centres[:, None] + np.array([-pad, -nfft // 4])[None, :]
    frames = padded[:, starts[..., None] + np.arange(nfft)]  # (16, n_cols, 2, nfft)
    frames -= frames.mean(axis=-1, keepdims=True)
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(nfft) / nfft)).astype(
        np.float32
    )  # periodic Hann
    power = np.abs(scipy.fft.rfft(frames * window, axis=-1)[..., _SPEC_BINS]) ** 2
    power = power.mean(axis=2) / np.float32(_LOW_SFREQ * np.sum(window.astype(np.float64) ** 2))
    spec = power.reshape(len(SPEC_REGIONS), 4, n_cols, SPEC_N_FREQS).mean(axis=1)
    return np.ascontiguousarray(spec.transpose(0, 2, 1), dtype=np.float32)


def kaggle_spectrogram(eeg: np.ndarray) -> np.ndarray:
    """Kaggle-style spectrogram of a whole 200 Hz recording.

    Reproduces the competition's files (checked against a real EEG and its spectrogram): for each
    column (one per 2 s, centred at 1, 3, 5, ... s) and each of the 16 double-banana derivations,
    the mean of two 5.12 s Hann periodograms centred 1.28 s either side of the column time, as a
    two-sided density ``|FFT(w x)|^2 / (fs sum w^2)`` in uV^2/Hz, at 0.59-19.92 Hz (bins 3..102 of a
    1024-point FFT at 200 Hz); each region (LL, RL, LP, RP) is the mean of its four derivations.
    The derivations are first band-limited to 25 Hz and decimated to 50 Hz (an exact FFT low-pass),
    which leaves those bins unchanged and makes the transform 4 times cheaper. NaN samples count as
    zero (signal dropout) and the recording is zero-padded at both ends.

    Parameters
    ----------
    eeg : numpy.ndarray
        Shape ``(20, n_samples)`` in ``EEG_CHANNELS`` order, microvolts at 200 Hz.

    Returns
    -------
    numpy.ndarray
        float32 ``(4, 100, n_samples // 400)``: regions in ``SPEC_REGIONS`` order, frequencies
        ascending, one column per 2 s (``time`` = 1, 3, 5, ... s).

    Raises
    ------
    ValueError
        ``eeg`` is not ``(20, n)`` with at least 400 samples.
    """
    eeg = np.asarray(eeg, dtype=np.float32)
    step = int(SPEC_STEP_SECONDS * SFREQ)
    if eeg.ndim != 2 or eeg.shape[0] != len(EEG_CHANNELS) or eeg.shape[1] < step:
        raise ValueError(f"expected an EEG of shape (20, n >= {step}), got {eeg.shape}")
    n_cols = eeg.shape[1] // step
    bipolar, names = montage(np.nan_to_num(eeg[:, : n_cols * step], nan=0.0), name="double_banana")
    return _spectrogram_low(_decimate(bipolar[_region_order(names)]), n_cols)


# --------------------------------------------------------------------------------------------------
# writing a data set
# --------------------------------------------------------------------------------------------------


def _resolve_size(preset: str, n_patients: int | None) -> tuple[SynthPreset, int, int]:
    """Validate ``preset`` / ``n_patients``; return the preset, train patients and test EEGs."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {sorted(PRESETS)}")
    size = PRESETS[preset]
    if n_patients is None:
        return size, size.n_patients, size.n_test_eegs
    if (
        isinstance(n_patients, bool)
        or not isinstance(n_patients, int | np.integer)
        or n_patients < 1
    ):
        raise ValueError(
            f"n_patients must be a positive integer (train patients), got {n_patients!r}"
        )
    n_test = max(2, round(size.n_test_eegs * n_patients / size.n_patients))
    return size, int(n_patients), n_test


def _check_out_dir(out_dir: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse an output path that is a file, or a non-empty folder unless it is a synthetic set being overwritten."""
    out = Path(out_dir).absolute()
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out}: output path exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(
                f"{out}: output folder is not empty; pass overwrite=True (--overwrite) to replace it"
            )
        if not (out / "synthetic.json").is_file():
            raise FileExistsError(
                f"{out}: refusing to overwrite a non-empty folder that is not a synthetic data set "
                "(no synthetic.json); choose an empty or new folder"
            )
    return out


@functools.cache
def _pandas_metadata(names: tuple[str, ...], dtypes: tuple[str, ...]) -> dict:
    """The ``pandas`` schema metadata that ``DataFrame.to_parquet`` writes for these columns."""
    empty = pd.DataFrame({k: np.empty(0, dtype=d) for k, d in zip(names, dtypes, strict=True)})
    return pa.Schema.from_pandas(empty, preserve_index=False).metadata


def _write_parquet(columns: dict[str, np.ndarray], path: Path) -> None:
    """Write numpy columns atomically as the competition's parquet files are (with pandas metadata).

    Builds the Arrow table straight from the arrays (``DataFrame.to_parquet`` spends most of its
    time converting 401 spectrogram columns one by one) and skips dictionary encoding, which
    measured values do not benefit from.
    """
    names = tuple(columns)
    meta = _pandas_metadata(names, tuple(v.dtype.str for v in columns.values()))
    table = pa.table(columns).replace_schema_metadata(meta)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, use_dictionary=False)


def _write_eeg(x: np.ndarray, path: Path) -> None:
    """Write an EEG excerpt ``(20, n)``: 20 float32 columns in ``EEG_CHANNELS`` order, 0.01 uV steps."""
    x = np.round(x, 2)
    _write_parquet(dict(zip(EEG_CHANNELS, x, strict=True)), path)


def _write_spectrogram(spec: np.ndarray, time_dtype: type, path: Path) -> None:
    """Write a spectrogram ``(4, 100, n_cols)``: ``time`` + 400 float32 columns, 0.01 steps."""
    n_cols = spec.shape[-1]
    values = np.round(spec.reshape(-1, n_cols), 2)
    columns = {"time": (1 + 2 * np.arange(n_cols)).astype(time_dtype)}
    columns.update(zip(SPEC_COLUMNS, values, strict=True))
    _write_parquet(columns, path)


def _write_session(
    folder: Path,
    seed: np.random.SeedSequence,
    session: dict,
    pat: dict,
    events: list[dict],
    eegs: list[dict],
) -> None:
    """Render one session and write its spectrogram and EEG excerpts into ``folder``."""
    excerpts, spec = _render_session(seed, session, pat, events, eegs)
    split = session["split"]
    # the competition's train spectrograms store time as int64, the test ones as int16
    time_dtype = np.int16 if split == "test" else np.int64
    spec_path = folder / f"{split}_spectrograms" / f"{session['spectrogram_id']}.parquet"
    _write_spectrogram(spec, time_dtype, spec_path)
    for eeg, x in zip(eegs, excerpts, strict=True):
        _write_eeg(x, folder / f"{split}_eegs" / f"{eeg['eeg_id']}.parquet")


def _truth_table(layout: _Layout) -> pd.DataFrame:
    """One row per train label_id and per test eeg_id: votes, true distributions, parameters."""
    lab, ev, eegs, ses = layout.labels, layout.events, layout.eegs, layout.sessions
    rows = lab.drop(columns=["expert_consensus", *VOTE_COLUMNS]).join(ev, on="event")
    eeg_row = eegs.set_index("eeg_id").loc[rows["eeg_id"]]
    sess_row = ses.iloc[eeg_row["session"].to_numpy()]
    start = eeg_row["start_s"].to_numpy()
    test = rows["split"].to_numpy() == "test"
    channel_name = np.asarray([*SCALP_CHANNELS, ""])
    truth = pd.DataFrame(
        {
            "split": rows["split"].to_numpy(),
            "label_id": pd.array(np.where(test, 0, rows["label_id"]), dtype="Int64"),
            "eeg_id": rows["eeg_id"].to_numpy(),
            "spectrogram_id": rows["spectrogram_id"].to_numpy(),
            "patient_id": rows["patient_id"].to_numpy(),
            "eeg_label_offset_seconds": rows["eeg_label_offset_seconds"].to_numpy(),
            "spectrogram_label_offset_seconds": rows["spectrogram_label_offset_seconds"].to_numpy(),
            "rater": rows["rater"].to_numpy(),
            "n_votes": rows["n_votes"].to_numpy(),
            **{c: rows[c].to_numpy() for c in VOTE_COLUMNS},
            **{f"p_{c}": rows[f"p_{c}"].to_numpy() for c in CLASSES},
            **{f"expert_p_{c}": rows[f"expert_p_{c}"].to_numpy() for c in CLASSES},
            "archetype": rows["archetype"].to_numpy(),
            **{
                k: rows[k].to_numpy()
                for k in ("strength", "sharpness", "lateralization", "evolution", "frequency_hz")
            },
            "side": np.where(rows["side"].to_numpy() < 0, "left", "right"),
            **{k: rows[k].to_numpy() for k in ("frontal", "triphasic", "evolution_period_s")},
            "event_start_s": rows["start_s"].to_numpy() - start,
            "event_end_s": rows["end_s"].to_numpy() - start,
            "context": sess_row["context"].to_numpy(),
            "nan_seconds": eeg_row["nan_seconds"].to_numpy(),
            "flat_channel": channel_name[sess_row["flat_channel"].to_numpy()],
            "disconnected_channel": channel_name[sess_row["disconnected_channel"].to_numpy()],
        }
    )
    truth.loc[test, "label_id"] = pd.NA
    return truth


def generate(
    out_dir: str | os.PathLike,
    preset: str = "demo",
    seed: int = 0,
    n_patients: int | None = None,
    *,
    overwrite: bool = False,
    progress: bool = True,
    workers: int | None = None,
) -> Path:
    """Write a synthetic HMS data set in the competition's layout.

    Parameters
    ----------
    out_dir : path
        Folder to create (must be absent or empty unless ``overwrite``). Written atomically: the data
        set is built in a temporary folder beside it and renamed into place at the end.
    preset : {"demo", "bench"}
        Size (see :data:`PRESETS`).
    seed : int
        Seed (>= 0). The same seed, preset and ``n_patients`` give byte-identical files.
    n_patients : int, optional
        Train patients, overriding the preset's (test EEGs scale along); small values make tiny sets.
    overwrite : bool
        Replace an existing synthetic data set at ``out_dir`` (recognised by its ``synthetic.json``).
    progress : bool
        Show a progress bar over the recordings.
    workers : int, optional
        Processes rendering recordings in parallel (default: the CPUs this process may use, at most
        8). The files do not depend on it: every recording has its own seed.

    Returns
    -------
    pathlib.Path
        ``out_dir`` (absolute), holding ``train.csv``, ``test.csv``, ``sample_submission.csv``,
        ``train_eegs/``, ``train_spectrograms/``, ``test_eegs/``, ``test_spectrograms/``,
        ``truth.csv`` and ``synthetic.json``.

    Raises
    ------
    ValueError
        Unknown preset, ``n_patients`` or ``workers`` not a positive integer, or a negative /
        non-integer seed.
    NotADirectoryError
        ``out_dir`` is a file.
    FileExistsError
        ``out_dir`` is a non-empty folder and ``overwrite`` is False, or it is not a synthetic set.
    """
    from tqdm.auto import tqdm

    _, n_train, n_test = _resolve_size(preset, n_patients)
    n_workers = _default_workers() if workers is None else workers
    if isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    out = _check_out_dir(out_dir, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        layout_seed, render_seed = np.random.SeedSequence(int(seed)).spawn(2)
        layout = _draw_layout(
            np.random.default_rng(layout_seed), n_train, n_test, PRESETS[preset].max_windows
        )
        lab = layout.labels
        train = lab[lab["split"] == "train"]
        test_eegs = layout.eegs[layout.eegs["split"] == "test"]
        write_csv_atomic(train[list(TRAIN_COLUMNS)], tmp / "train.csv")
        test_sessions = layout.sessions.iloc[test_eegs["session"].to_numpy()]
        test_table = pd.DataFrame(
            {
                "spectrogram_id": test_sessions["spectrogram_id"].to_numpy(),
                "eeg_id": test_eegs["eeg_id"].to_numpy(),
                "patient_id": layout.patients["patient_id"].to_numpy()[
                    test_sessions["patient"].to_numpy()
                ],
            }
        )
        write_csv_atomic(test_table[list(TEST_COLUMNS)], tmp / "test.csv")
        sample = pd.DataFrame(
            {"eeg_id": test_table["eeg_id"], **{c: 1.0 / len(CLASSES) for c in VOTE_COLUMNS}}
        )
        write_csv_atomic(sample, tmp / "sample_submission.csv")
        for split in ("train", "test"):
            (tmp / f"{split}_eegs").mkdir()
            (tmp / f"{split}_spectrograms").mkdir()

        seeds = render_seed.spawn(len(layout.sessions))
        patients = layout.patients.to_dict("records")
        events = layout.events.to_dict("records")
        eegs = layout.eegs.to_dict("records")
        ev_at = np.split(
            np.arange(len(events)), np.flatnonzero(np.diff(layout.events["session"])) + 1
        )
        eeg_at = np.split(np.arange(len(eegs)), np.flatnonzero(np.diff(layout.eegs["session"])) + 1)
        jobs = [
            (
                tmp,
                seeds[k],
                session,
                patients[session["patient"]],
                [events[i] for i in ev_at[k]],
                [eegs[i] for i in eeg_at[k]],
            )
            for k, session in enumerate(layout.sessions.to_dict("records"))
        ]
        bar = tqdm(total=len(jobs), desc="synthetic recordings", unit="rec", disable=not progress)
        if n_workers == 1:
            for job in jobs:
                _write_session(*job)
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=n_workers) as pool:
                for future in as_completed([pool.submit(_write_session, *job) for job in jobs]):
                    future.result()
                    bar.update()
        bar.close()

        write_csv_atomic(_truth_table(layout), tmp / "truth.csv")
        floor = bayes_floor(tmp)
        info = {
            "generator_version": GENERATOR_VERSION,
            "preset": preset,
            "seed": int(seed),
            "n_patients": n_train,
            "counts": {
                "patients": n_train,
                "spectrograms": int((layout.sessions["split"] == "train").sum()),
                "eegs": int((layout.eegs["split"] == "train").sum()),
                "rows": len(train),
                "test_eegs": n_test,
            },
            "bayes_floor": floor,
        }
        (tmp / "synthetic.json").write_text(json.dumps(info, indent=2) + "\n")
        _move_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _default_workers() -> int:
    """CPUs this process may run on (its affinity, not the host's count), at most 8."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cpus or 1, 8))


def _move_into_place(tmp: Path, out: Path) -> None:
    """Rename the finished folder ``tmp`` onto ``out``, replacing an existing ``out``."""
    if out.is_dir() and any(out.iterdir()):
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
        os.replace(out, old / out.name)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


# --------------------------------------------------------------------------------------------------
# the floor
# --------------------------------------------------------------------------------------------------


def bayes_floor(data_dir: str | os.PathLike) -> dict:
    """The lowest KL any model can reach on a synthetic data set, next to the class-prior predictor.

    The best possible prediction of a row is the distribution its votes were drawn from (``p_*`` of
    ``truth.csv``): no model can beat it in expectation, so its KL against the drawn votes is the
    floor set by vote noise. The prior predictor is the mean vote distribution of all train rows
    (:func:`hmslib.labels.class_prior`), the same constant everywhere. Both are scored with
    :func:`hmslib.metrics.kaggle_kl`.

    Parameters
    ----------
    data_dir : path
        A folder written by :func:`generate`.

    Returns
    -------
    dict
        ``floor`` / ``prior``: KL of the true distributions / of the prior on all train rows;
        ``floor_10plus`` / ``prior_10plus``: on train rows with >= 10 votes; ``floor_test`` /
        ``prior_test``: on the test EEGs' expert votes (keys absent where there are no such rows);
        ``n_train``, ``n_10plus``, ``n_test``: row counts; ``class_prior``: the prior, ``CLASSES`` order.

    Raises
    ------
    FileNotFoundError
        ``data_dir`` has no ``truth.csv`` (not a synthetic data set) or no ``train.csv``.
    ValueError
        ``truth.csv`` misses train label_ids of ``train.csv``.
    """
    data_dir = Path(data_dir)
    truth_path = data_dir / "truth.csv"
    if not truth_path.is_file():
        raise FileNotFoundError(
            f"{truth_path}: not found; bayes_floor needs a synthetic data set written by generate()"
        )
    truth = pd.read_csv(truth_path)
    train = read_train_csv(data_dir)
    p_cols = [f"p_{c}" for c in CLASSES]
    by_label = truth[truth["split"] == "train"].set_index("label_id")
    absent = pd.Index(train["label_id"]).difference(by_label.index)
    if len(absent):
        raise ValueError(
            f"{truth_path}: no truth for {len(absent)} train label_ids, e.g. {list(absent[:5])}"
        )
    p = by_label.loc[train["label_id"], p_cols].to_numpy()
    votes = train[list(VOTE_COLUMNS)].to_numpy(dtype=np.float64)
    prior = class_prior(train)

    def _pair(y: np.ndarray, q: np.ndarray) -> tuple[float, float]:
        return kaggle_kl(y, q), kaggle_kl(y, np.broadcast_to(prior, y.shape))

    out: dict = {"n_train": len(train)}
    out["floor"], out["prior"] = _pair(votes, p)
    many = votes.sum(axis=1) >= HIGH_AGREEMENT_VOTES
    out["n_10plus"] = int(many.sum())
    if many.any():
        out["floor_10plus"], out["prior_10plus"] = _pair(votes[many], p[many])
    test = truth[truth["split"] == "test"]
    out["n_test"] = len(test)
    if len(test):
        out["floor_test"], out["prior_test"] = _pair(
            test[list(VOTE_COLUMNS)].to_numpy(dtype=np.float64), test[p_cols].to_numpy()
        )
    out["class_prior"] = [float(v) for v in prior]
    return out


# --------------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """``hms synth OUT_DIR [--preset demo|bench] [--seed S] [--patients N] [--overwrite]``."""
    parser = argparse.ArgumentParser(
        prog="hms synth",
        description="Write a synthetic HMS data set (Kaggle layout + truth.csv) with known ground truth.",
    )
    parser.add_argument("out_dir", help="folder to create (absent or empty unless --overwrite)")
    parser.add_argument(
        "--preset",
        default="demo",
        choices=sorted(PRESETS),
        help="size: " + "; ".join(f"{k}: {v.description}" for k, v in PRESETS.items()),
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="random seed (>= 0); same seed -> same files"
    )
    parser.add_argument(
        "--patients", type=int, default=None, help="train patients, overriding the preset"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing synthetic data set"
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="parallel processes (default: CPU count, <= 8)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    t_start = time.perf_counter()
    try:
        path = generate(
            args.out_dir,
            args.preset,
            args.seed,
            args.patients,
            overwrite=args.overwrite,
            progress=not args.quiet,
            workers=args.workers,
        )
    except (ValueError, FileExistsError, NotADirectoryError) as err:
        print(f"hms synth: error: {err}", file=sys.stderr)
        return 2
    info = json.loads((path / "synthetic.json").read_text())
    c, f = info["counts"], info["bayes_floor"]
    print(
        f"wrote {path}: {c['patients']} patients, {c['eegs']} EEGs, {c['rows']} labelled windows, "
        f"{c['test_eegs']} test EEGs in {time.perf_counter() - t_start:.1f} s | KL floor {f['floor']:.3f} vs prior "
        f"{f['prior']:.3f} (>=10 votes: {f.get('floor_10plus', float('nan')):.3f} vs "
        f"{f.get('prior_10plus', float('nan')):.3f}; test: {f.get('floor_test', float('nan')):.3f} vs "
        f"{f.get('prior_test', float('nan')):.3f})"
    )
    return 0
