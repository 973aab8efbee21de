"""The cohort: patients, sessions, EEG excerpts, events and labelled windows, before any signal.

Each patient has one or more *sessions*: long recordings (>= 600 s) whose Kaggle-style spectrogram is
written whole. Each session holds one or more EEG excerpts (50 s or longer), each with several
labelled 50 s windows. The windows of an EEG belong to one (sometimes two) *events*, whose votes are
drawn from the rater pool's distribution (:mod:`hmslib.synthetic.raters`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from hmslib.constants import (
    CLASSES,
    CONSENSUS_NAMES,
    EEG_WINDOW_SECONDS,
    LABEL_CENTER_SECONDS,
    SPEC_WINDOW_SECONDS,
    VOTE_COLUMNS,
)
from hmslib.synthetic.patterns import draw_params
from hmslib.synthetic.raters import (
    ARCHETYPE_PRIOR,
    EXPERT_SHARE,
    EXPERT_VOTES,
    POOL_VOTES,
    class_distribution,
)

HALF_WINDOW_S = EEG_WINDOW_SECONDS / 2  # 25 s: label centre inside the EEG window

HALF_SPEC_S = SPEC_WINDOW_SECONDS / 2  # 300 s: label centre inside the spectrogram window

#: How much clearer the patterns of the few-vote (pool) events are than the experts' (see
#: :func:`~hmslib.synthetic.patterns.draw_params`): the real few-vote windows are mostly
#: unanimous (median top vote fraction 1), the real >= 10-vote windows are not (0.57-0.85).
POOL_CLARITY = 3.0

#: Share of EEGs with four or more windows that hold several events (1 + Poisson(1.2) more, at
#: most :data:`_MAX_SPLITS` more and one per two windows).
MULTI_EVENT_SHARE = 0.2

_MAX_SPLITS = 4


def _draw_patients(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Background, EEG and artifact habits of ``n`` patients.

    Background (:func:`hmslib.synthetic.render._background`): a 1/f^alpha spectrum with alpha about
    2 (1.4-2.8; He 2014, Donoghue et al. 2020) flattening below a 0.5-2 Hz knee, spread by a
    volume-conduction kernel 0.40-0.56 head radii wide; diffuse slowing (2-6 Hz) in half of the
    patients, diffuse beta (14-24 Hz, the sedated ICU patient's) in half, a posterior dominant
    rhythm (7.5-11 Hz) in a third (most ICU patients have none), a slow amplitude envelope, and
    burst suppression in 6 %. Heart rates of critically ill patients (median 112 bpm, as the real
    samples), EKG of 0.2-5 mV (median 1 mV) as the competition's EKG channels carry.
    """
    comatose = rng.uniform(size=n) < 0.5
    line = rng.uniform(size=n)
    return pd.DataFrame(
        {
            "bg_amp": rng.lognormal(np.log(55.0), 0.5, n),
            "bg_alpha": np.clip(rng.normal(2.0, 0.3, n), 1.4, 2.8),
            "bg_knee_hz": rng.uniform(0.5, 2.0, n),
            "bg_width": rng.uniform(0.40, 0.56, n),
            "bg_floor": rng.lognormal(np.log(0.12), 0.6, n),
            "drift_amp": rng.lognormal(np.log(150.0), 0.7, n),
            "mod_sigma": rng.uniform(0.3, 0.7, n),
            "burst_suppression": rng.uniform(size=n) < 0.06,
            "ref_amp": rng.uniform(0.5, 2.0, n),
            "pdr_amp": np.where(rng.uniform(size=n) < 0.35, rng.uniform(0.5, 4.0, n), 0.0),
            "pdr_hz": rng.uniform(7.5, 11.0, n),
            "slow_amp": np.where(rng.uniform(size=n) < 0.5, rng.uniform(1.0, 6.0, n), 0.0),
            "slow_hz": rng.uniform(2.0, 6.0, n),
            "beta_amp": np.where(rng.uniform(size=n) < 0.5, rng.lognormal(np.log(0.25), 0.6, n), 0.0),
            "beta_hz": rng.uniform(14.0, 24.0, n),
            "offset_uv": rng.normal(-100.0, 30.0, n),
            "ekg_uv": np.clip(rng.lognormal(np.log(1000.0), 0.6, n), 200.0, 5000.0)
            * rng.choice(np.array([-1.0, 1.0]), n),
            "heart_bpm": np.clip(rng.lognormal(np.log(112.0), 0.15, n), 50.0, 160.0),
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
class Layout:
    """Every table of one data set before any signal is rendered."""

    patients: pd.DataFrame  # one row per patient (train and test), background habits
    sessions: pd.DataFrame  # one row per spectrogram (long recording)
    eegs: pd.DataFrame  # one row per EEG excerpt
    events: pd.DataFrame  # one row per labelled event (pattern + votes)
    labels: pd.DataFrame  # one row per labelled window (train.csv rows; test EEGs too)


def draw_layout(
    rng: np.random.Generator, n_patients: int, n_test: int, max_windows: int
) -> Layout:
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
    # some EEGs hold several events (the real label periods: 89 % of EEGs have one, 1.26 per EEG)
    multi = (n_win >= 4) & (rng.uniform(size=n_eeg) < MULTI_EVENT_SHARE)
    n_split = np.where(
        multi, np.minimum(1 + rng.poisson(1.2, n_eeg), np.minimum((n_win - 1) // 2, _MAX_SPLITS)), 0
    )
    column = np.arange(max_windows)
    keys = np.where((column >= 1) & (column < n_win[:, None]), rng.uniform(size=(n_eeg, max_windows)), 2.0)
    first_ranks = np.argsort(keys, axis=1)[:, :_MAX_SPLITS]
    splits = np.where(np.arange(_MAX_SPLITS) < n_split[:, None], first_ranks, max_windows)
    # test: one 600 s session with one 50 s EEG and one window per test patient
    s_patient = np.concatenate([s_patient, np.arange(n_patients, n_all)])
    e_session = np.concatenate([e_session, np.arange(len(s_patient) - n_test, len(s_patient))])
    n_win = np.concatenate([n_win, np.ones(n_test, dtype=np.int64)])
    splits = np.concatenate([splits, np.full((n_test, _MAX_SPLITS), max_windows)])
    n_eeg, n_sess = len(e_session), len(s_patient)
    is_test_eeg = np.arange(n_eeg) >= n_eeg - n_test

    # windows: offsets in steps of 2-10 s; a later event of an EEG starts >= 12 s after the last
    w_eeg = np.repeat(np.arange(n_eeg), n_win)
    w_first = _segment_starts(n_win)
    w_rank = np.arange(len(w_eeg)) - w_first[w_eeg]
    w_event_rank = (splits[w_eeg] <= w_rank[:, None]).sum(axis=1)
    starts_event = (splits[w_eeg] == w_rank[:, None]).any(axis=1)
    gap = rng.choice(np.array([2, 4, 6, 8, 10]), len(w_eeg), p=[0.3, 0.25, 0.2, 0.15, 0.1])
    gap = np.where(w_rank == 0, 0, gap + np.where(starts_event, 12, 0))
    cum = np.cumsum(gap)
    offset = (cum - cum[w_first[w_eeg]]).astype(np.float64)
    eeg_len = offset[w_first + n_win - 1] + EEG_WINDOW_SECONDS

    # EEGs placed one after another inside their session, the first window centre >= 300 s in
    e_rank = np.arange(n_eeg) - _segment_starts(np.bincount(e_session, minlength=n_sess))[e_session]
    lead = np.where(
        e_rank == 0,
        HALF_SPEC_S - HALF_WINDOW_S + np.where(is_test_eeg, 0, rng.integers(0, 30, n_eeg)),
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
    duration = 2.0 * np.ceil((sess_last + HALF_SPEC_S - HALF_WINDOW_S + tail) / 2.0)

    # events: the span of their windows' central 10 s, widened by a tight (0.5-3 s: the pattern
    # changes just outside the centre) or wide margin, clipped to the EEG and to a neighbour event
    ev_key = w_eeg * (_MAX_SPLITS + 1) + w_event_rank
    ev_of_window = np.unique(ev_key, return_inverse=True)[1]
    n_ev = int(ev_of_window.max()) + 1
    ev_first = np.flatnonzero(np.r_[True, np.diff(ev_of_window) != 0])
    ev_last = np.r_[ev_first[1:], len(w_eeg)] - 1
    ev_eeg = w_eeg[ev_first]
    centre_lo = offset[ev_first] + HALF_WINDOW_S - LABEL_CENTER_SECONDS / 2
    centre_hi = offset[ev_last] + HALF_WINDOW_S + LABEL_CENTER_SECONDS / 2
    tight = rng.uniform(size=(2, n_ev)) < 0.35
    margin = np.where(tight, rng.uniform(0.5, 3.0, (2, n_ev)), rng.uniform(5.0, 60.0, (2, n_ev)))
    ev_lo = np.maximum(centre_lo - margin[0], 0.0)
    ev_hi = np.minimum(centre_hi + margin[1], eeg_len[ev_eeg])
    second = w_event_rank[ev_first] >= 1  # an event after another of its EEG
    mid = (centre_hi[np.flatnonzero(second) - 1] + centre_lo[second]) / 2
    ev_lo[second] = np.maximum(ev_lo[second], mid)
    ev_hi[np.flatnonzero(second) - 1] = np.minimum(ev_hi[np.flatnonzero(second) - 1], mid)

    test_ev = is_test_eeg[ev_eeg]
    expert = test_ev | (rng.uniform(size=n_ev) < EXPERT_SHARE)
    rater = np.where(expert, "expert", "pool")
    archetype = np.where(
        expert,
        rng.choice(6, n_ev, p=ARCHETYPE_PRIOR["expert"]),
        rng.choice(6, n_ev, p=ARCHETYPE_PRIOR["pool"]),
    )
    params = draw_params(rng, archetype, np.where(expert, 1.0, POOL_CLARITY))
    cls_args = [
        params[k] for k in ("strength", "sharpness", "lateralization", "evolution", "frequency_hz")
    ]
    expert_p = class_distribution(*cls_args, rater="expert")
    p = np.where(expert[:, None], expert_p, class_distribution(*cls_args, rater="pool"))
    n_votes = np.where(
        expert,
        rng.choice(EXPERT_VOTES[0], n_ev, p=EXPERT_VOTES[1]),
        rng.choice(POOL_VOTES[0], n_ev, p=POOL_VOTES[1]),
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
    sess_archetype = rng.choice(6, n_sess, p=ARCHETYPE_PRIOR["pool"])
    first_ev = np.full(n_sess, n_ev)
    np.minimum.at(first_ev, e_session[ev_eeg], np.arange(n_ev))
    same = rng.uniform(size=n_sess) < 0.5
    sess_archetype = np.where(same, archetype[first_ev], sess_archetype)
    has_baseline = (rng.uniform(size=n_sess) < 0.5) & (sess_archetype != CLASSES.index("other"))
    sess_params = draw_params(rng, sess_archetype)
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

    spec_offset = eeg_start[w_eeg] + offset + HALF_WINDOW_S - HALF_SPEC_S
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
    return Layout(patients, sessions, eegs, events, labels)
