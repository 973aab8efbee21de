"""Tests of hmslib.synthetic: layout identical to the competition's, signals that follow the class
definitions (checked with scipy, independently of the generator), the floor, determinism, bad input.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from numpy.testing import assert_allclose
from scipy import signal

from hmslib import cli, io, synthetic
from hmslib.constants import (
    CHAINS,
    CLASSES,
    EEG_CHANNELS,
    SPEC_COLUMNS,
    SPEC_FREQ_LABELS,
    VOTE_COLUMNS,
)
from hmslib.labels import class_prior
from hmslib.spectral import kaggle_spectrogram
from hmslib.synthetic import writer

#: A small data set whose seed gives every class a few high-agreement events (checked in a test).
FIXTURE = {"preset": "small", "seed": 19, "n_patients": 16}

_CH = {name: i for i, name in enumerate(EEG_CHANNELS)}
_PAIRS = {
    chain: [(_CH[a], _CH[b]) for a, b in zip(names, names[1:], strict=False)]
    for chain, names in CHAINS.items()
}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "data"
    return synthetic.generate(out, **FIXTURE, progress=False, workers=1)


@pytest.fixture(scope="module")
def events(data) -> pd.DataFrame:
    """One truth row per event (the windows of an event share its distribution)."""
    truth = pd.read_csv(data / "truth.csv")
    return truth.drop_duplicates(["eeg_id", "p_seizure", "p_other"]).reset_index(drop=True)


def _window(data: Path, row) -> np.ndarray:
    """The row's 50 s window, each channel minus its mean, NaN set to 0: float64 (20, 10000)."""
    x = io.load_eeg_window(data, row.eeg_id, row.eeg_label_offset_seconds, row.split).astype(
        np.float64
    )
    return np.nan_to_num(x - np.nanmean(x, axis=1, keepdims=True))


def _bipolar(x: np.ndarray, chains=tuple(CHAINS)) -> np.ndarray:
    """Double-banana derivations of ``chains`` by direct electrode subtraction."""
    return np.stack([x[a] - x[b] for chain in chains for a, b in _PAIRS[chain]])


def _high(events: pd.DataFrame, cls: str, least: int) -> pd.DataFrame:
    rows = events[events[f"expert_p_{cls}"] > 0.6]
    assert len(rows) >= least, f"fixture has only {len(rows)} events with expert_p_{cls} > 0.6"
    return rows


# --------------------------------------------------------------------------------------------------
# layout and readers
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["train.csv", "test.csv", "sample_submission.csv"])
def test_tables_have_the_competition_schema(data, name, hms_samples):
    real = pd.read_csv(hms_samples / name)
    mine = pd.read_csv(data / name)
    assert list(mine.columns) == list(real.columns)
    assert mine.dtypes.astype(str).to_dict() == real.dtypes.astype(str).to_dict()


@pytest.mark.parametrize(
    "folder", ["train_eegs", "test_eegs", "train_spectrograms", "test_spectrograms"]
)
def test_parquet_files_have_the_competition_schema(data, folder, hms_samples):
    real = pq.read_schema(next((hms_samples / folder).glob("*.parquet")))
    files = sorted((data / folder).glob("*.parquet"))
    assert files
    for path in files[:5]:
        schema = pq.read_schema(path)
        assert schema.names == real.names
        assert [str(t) for t in schema.types] == [str(t) for t in real.types]


def test_spectrogram_columns_are_the_competitions(hms_samples):
    real = pq.read_schema(hms_samples / "train_spectrograms" / "353733.parquet").names
    assert list(SPEC_COLUMNS) == real[1:]


def test_test_files_are_50_s_and_600_s(data):
    test = io.read_test_csv(data)
    sample = io.read_sample_submission(data)
    assert list(sample["eeg_id"]) == list(test["eeg_id"])
    assert_allclose(sample[list(VOTE_COLUMNS)].to_numpy(), 1 / 6)
    for row in test.itertuples():
        assert io.load_eeg(data, row.eeg_id, "test").shape == (20, 10_000)
        assert io.load_spectrogram(data, row.spectrogram_id, "test").shape == (4, 100, 300)
    assert not set(test["patient_id"]) & set(io.read_train_csv(data)["patient_id"])


def test_every_label_window_loads_and_ids_are_consistent(data):
    train = io.read_train_csv(data)
    assert train["label_id"].is_unique
    assert (train.groupby("eeg_id")["patient_id"].nunique() == 1).all()
    assert (train.groupby("eeg_id")["spectrogram_id"].nunique() == 1).all()
    for _, rows in train.groupby("eeg_id"):
        assert list(rows["eeg_sub_id"]) == list(range(len(rows)))
        # the EEG's start in its spectrogram's time is the same for all its windows
        start = rows["spectrogram_label_offset_seconds"] + 275 - rows["eeg_label_offset_seconds"]
        assert start.nunique() == 1 and start.iloc[0] >= 0
    for sid, rows in train.groupby("spectrogram_id"):
        spec = io.load_spectrogram(data, sid)
        for row in rows.itertuples():
            assert io.spectrogram_window(spec, row.spectrogram_label_offset_seconds).shape == (
                4,
                100,
                300,
            )
    for eeg_id, rows in train.groupby("eeg_id"):
        eeg = io.load_eeg(data, eeg_id)
        for row in rows.itertuples():
            assert io.eeg_window(eeg, row.eeg_label_offset_seconds).shape == (20, 10_000)
    votes = train[list(VOTE_COLUMNS)].to_numpy()
    assert votes.sum(axis=1).min() >= 1 and votes.sum(axis=1).max() <= 28
    consensus = np.array(["Seizure", "LPD", "GPD", "LRDA", "GRDA", "Other"])[votes.argmax(axis=1)]
    assert (train["expert_consensus"].to_numpy() == consensus).all()


def test_spectrogram_time_course_lines_up_with_the_eeg(data):
    """The LL power of each EEG, recomputed with scipy, matches its spectrogram only at zero lag
    (the correlation curve averaged over EEGs: the slow envelope of the background makes
    neighbouring lags close for a single EEG)."""
    train = io.read_train_csv(data)
    checked = 0
    curves = []
    for eeg_id, rows in list(train.groupby("eeg_id"))[:6]:
        row = rows.iloc[0]
        eeg = np.nan_to_num(io.load_eeg(data, eeg_id).astype(np.float64))
        if eeg.shape[1] < 60 * 200:
            continue
        start = row["spectrogram_label_offset_seconds"] + 275 - row["eeg_label_offset_seconds"]
        bip = _bipolar(eeg, ("LL",))
        times = np.arange(start + 5, start + eeg.shape[1] / 200 - 5)
        times = times[times % 2 == 1]
        power = []
        for t in times:
            i = int((t - start) * 200)
            f, p = signal.welch(bip[:, i - 512 : i + 512], fs=200, nperseg=1024)
            power.append(p[:, (f > 0.5) & (f < 20)].sum())
        spec = io.load_spectrogram(data, row["spectrogram_id"])[0].sum(axis=0)
        cols = ((times - 1) // 2).astype(int)
        corr = {s: np.corrcoef(np.log(power), np.log(spec[cols + s]))[0, 1] for s in range(-6, 7)}
        curves.append([corr[s] for s in range(-6, 7)])
        checked += 1
    assert checked >= 3
    mean = dict(zip(range(-6, 7), np.mean(curves, axis=0), strict=True))
    assert max(mean, key=mean.get) == 0, mean
    assert mean[0] > max(mean[-2], mean[2]) + 0.05, mean


def test_kaggle_spectrogram_matches_a_real_file(hms_samples):
    samples = hms_samples
    eeg = io.load_eeg(samples, 1628180742)
    real = io.load_spectrogram(samples, 353733)
    # the EEG starts at 275 s of its spectrogram; one second of padding aligns the columns (odd seconds)
    mine = kaggle_spectrogram(np.pad(eeg, ((0, 0), (200, 0))))
    cols = np.arange(2, mine.shape[-1] - 2)
    ref = real[:, :, 137 + cols]
    ours = mine[:, :, cols]
    assert np.corrcoef(np.log(ref.ravel() + 0.01), np.log(ours.ravel() + 0.01))[0, 1] > 0.9
    assert 0.85 < np.median(ref / ours) < 1.15


def test_kaggle_spectrogram_of_a_sine_peaks_at_its_bin():
    t = np.arange(60 * 200) / 200
    eeg = np.zeros((20, len(t)), dtype=np.float32)
    eeg[_CH["Fp1"]] = 50 * np.sin(2 * np.pi * 7.03 * t)
    spec = kaggle_spectrogram(eeg)
    assert spec.shape == (4, 100, 30)
    peak = SPEC_FREQ_LABELS[int(spec[0, :, 15].argmax())]
    assert peak == "7.03"
    # Fp1 is in LL and LP only; Parseval: the LL column holds the sine's power / 4 derivations
    assert spec[1].max() < 1e-6 and spec[3].max() < 1e-6
    power = spec[0, :, 15].sum() * 200 / 1024 * 2
    assert_allclose(power, 50**2 / 2 / 4, rtol=0.1)


# --------------------------------------------------------------------------------------------------
# signals follow the class definitions (scipy computations on the written files)
# --------------------------------------------------------------------------------------------------


def _delta_asymmetry(x: np.ndarray) -> float:
    """|log| ratio of 1-4 Hz power, left chains over right chains, in the central 10 s."""
    centre = x[:, 4000:6000]

    def power(chains):
        f, p = signal.welch(_bipolar(centre, chains), fs=200, nperseg=400)
        return p[:, (f >= 1) & (f <= 4)].sum()

    return abs(np.log(power(("LL", "LP")) / power(("RL", "RP"))))


def test_lrda_is_lateralized_and_grda_is_not(data, events):
    lrda = [_delta_asymmetry(_window(data, r)) for r in _high(events, "lrda", 2).itertuples()]
    grda = [_delta_asymmetry(_window(data, r)) for r in _high(events, "grda", 2).itertuples()]
    assert np.median(lrda) > np.median(grda) + 0.7, (lrda, grda)
    assert min(lrda) > np.median(grda)


def _periodicity(x: np.ndarray) -> tuple[float, float]:
    """Highest autocorrelation at lags 0.35-2.1 s over the 16 derivations (central 20 s): (peak, lag)."""
    sos = signal.butter(4, [0.5, 20], btype="band", fs=200, output="sos")
    b = signal.sosfiltfilt(sos, _bipolar(x[:, 3000:7000]))
    b -= b.mean(axis=1, keepdims=True)
    n = b.shape[1]
    ac = np.fft.irfft(np.abs(np.fft.rfft(b, 2 * n)) ** 2)[:, :n]
    ac /= ac[:, :1]
    lags = np.arange(n) / 200
    sel = (lags >= 0.35) & (lags <= 2.1)
    peaks = ac[:, sel].max(axis=1)
    best = int(peaks.argmax())
    return float(peaks[best]), float(lags[sel][ac[best, sel].argmax()])


def test_periodic_discharges_repeat_at_their_frequency(data, events):
    pd_rows = pd.concat([_high(events, "lpd", 1), _high(events, "gpd", 1)])
    assert len(pd_rows) >= 4
    found = [_periodicity(_window(data, r)) for r in pd_rows.itertuples()]
    lags = np.array([lag for _, lag in found])
    assert ((lags >= 0.4) & (lags <= 2.0)).mean() >= 0.75  # 0.5-2.5 Hz
    cycles = lags * pd_rows["frequency_hz"].to_numpy()
    assert (np.abs(cycles - np.round(cycles)) < 0.15).mean() >= 0.75, cycles
    other = [_periodicity(_window(data, r))[0] for r in _high(events, "other", 3).itertuples()]
    assert np.median([peak for peak, _ in found]) > np.median(other)


def _frequency_drift(x: np.ndarray) -> float:
    """Range of log dominant frequency (0.5-8 Hz) over four 5 s pieces of the central 20 s."""
    b = _bipolar(x[:, 3000:7000])
    peaks = []
    for k in range(4):
        f, p = signal.welch(b[:, k * 1000 : (k + 1) * 1000], fs=200, nperseg=1000, nfft=4000)
        band = (f >= 0.5) & (f <= 8)
        peaks.append(f[band][p[:, band].mean(axis=0).argmax()])
    return float(np.ptp(np.log(peaks)))


def test_seizures_evolve_in_frequency(data, events):
    seizure = [_frequency_drift(_window(data, r)) for r in _high(events, "seizure", 3).itertuples()]
    rda = pd.concat([_high(events, "grda", 2), _high(events, "lrda", 2)])
    steady = [_frequency_drift(_window(data, r)) for r in rda.itertuples()]
    assert np.median(seizure) > 2 * np.median(steady), (seizure, steady)


def test_background_has_offsets_and_an_ekg(data):
    eeg_id = io.read_train_csv(data)["eeg_id"].iloc[0]
    eeg = io.load_eeg(data, eeg_id).astype(np.float64)
    means = np.nanmean(eeg[:19], axis=1)
    assert -250 < np.median(means) < 50  # common-mode offset, as in the real files
    ekg = np.nan_to_num(eeg[_CH["EKG"]] - np.nanmean(eeg[_CH["EKG"]]))
    f, p = signal.welch(ekg, fs=200, nperseg=2000)
    band = (f > 0.8) & (f < 2.2)  # 48-132 beats per minute
    assert p[band].max() > 5 * np.median(p[(f > 0.5) & (f < 5)])


# --------------------------------------------------------------------------------------------------
# ground truth and the floor
# --------------------------------------------------------------------------------------------------


def test_class_distribution_limits_and_rater_bias():
    grid = np.linspace(0, 1, 5)
    a, s, lat, e = np.meshgrid(grid, grid, grid, grid, indexing="ij")
    for rater in ("expert", "pool"):
        p = synthetic.class_distribution(a, s, lat, e, 1.5, rater=rater)
        assert p.shape == (*a.shape, 6)
        assert_allclose(p.sum(axis=-1), 1.0)
        assert (p > 0).all()
    cases = {  # (strength, sharpness, lateralization, evolution, Hz) -> class
        (0.0, 0.9, 0.9, 0.1, 1.0): "other",
        (1.0, 0.9, 0.1, 1.0, 1.0): "seizure",
        (1.0, 1.0, 0.0, 0.0, 4.5): "seizure",
        (1.0, 1.0, 1.0, 0.0, 1.0): "lpd",
        (1.0, 1.0, 0.0, 0.0, 1.0): "gpd",
        (1.0, 0.0, 1.0, 0.0, 2.0): "lrda",
        (1.0, 0.0, 0.0, 0.0, 2.0): "grda",
    }
    for params, cls in cases.items():
        assert synthetic.class_distribution(*params)[CLASSES.index(cls)] > 0.9, (params, cls)
    # the pool over-calls seizure and is noisier (higher entropy) than the experts
    rng = np.random.default_rng(0)
    theta = [rng.uniform(size=2000) for _ in range(4)] + [rng.uniform(0.5, 4, 2000)]
    expert = synthetic.class_distribution(*theta, rater="expert")
    pool = synthetic.class_distribution(*theta, rater="pool")
    assert pool[:, 0].mean() > expert[:, 0].mean() + 0.02
    unsure = expert[:, 0] < 0.5
    assert (pool[unsure, 0] > expert[unsure, 0]).mean() > 0.9
    assert (pool.argmax(axis=1) == 0).mean() > (expert.argmax(axis=1) == 0).mean() + 0.05
    entropy = lambda p: -(p * np.log(p)).sum(axis=1)  # noqa: E731
    assert entropy(pool).mean() > entropy(expert).mean() + 0.1
    with pytest.raises(ValueError, match="rater"):
        synthetic.class_distribution(0.5, 0.5, 0.5, 0.5, 1.0, rater="resident")


def test_class_distribution_is_smooth():
    rng = np.random.default_rng(1)
    theta = np.column_stack([rng.uniform(size=(500, 4)), rng.uniform(0.5, 4.5, 500)])
    step = 1e-3
    base = synthetic.class_distribution(*theta.T)
    for k in range(5):
        moved = theta.copy()
        moved[:, k] += step
        change = np.abs(synthetic.class_distribution(*moved.T) - base).max()
        assert change < 10 * step  # Lipschitz with a modest constant: no jumps


def test_votes_follow_the_true_distributions(data):
    truth = pd.read_csv(data / "truth.csv")
    train = io.read_train_csv(data)
    rows = truth[truth["split"] == "train"].set_index("label_id").loc[train["label_id"]]
    assert_allclose(rows[list(VOTE_COLUMNS)].to_numpy(), train[list(VOTE_COLUMNS)].to_numpy())
    assert ((rows["n_votes"] >= 10) == (rows["rater"] == "expert")).all()
    # the windows of one label period share one draw of votes: test per period, against the
    # multinomial's standard error of the mean share
    p_columns = [f"p_{c}" for c in CLASSES]
    periods = pd.concat([rows, truth[truth["split"] == "test"]]).drop_duplicates(
        ["eeg_id", *VOTE_COLUMNS, *p_columns]
    )
    votes = periods[list(VOTE_COLUMNS)].to_numpy(np.float64)
    n = votes.sum(axis=1, keepdims=True)
    p = periods[p_columns].to_numpy()
    standard_error = np.sqrt((p * (1 - p) / n).sum(axis=0)) / len(periods)
    z = ((votes / n).mean(axis=0) - p.mean(axis=0)) / standard_error
    assert np.abs(z).max() < 4, z
    test = truth[truth["split"] == "test"]
    assert (test["n_votes"] >= 10).all() and (test["rater"] == "expert").all()
    assert_allclose(
        test[[f"p_{c}" for c in CLASSES]].to_numpy(),
        test[[f"expert_p_{c}" for c in CLASSES]].to_numpy(),
    )


def test_bayes_floor_is_far_below_the_prior(data):
    floor = synthetic.bayes_floor(data)
    assert floor["floor"] < 0.6 * floor["prior"]
    assert floor["floor_10plus"] < 0.3 * floor["prior_10plus"]
    assert floor["floor_test"] < 0.4 * floor["prior_test"]
    # independent float64 recomputation of the floor and the prior KL on the train rows
    truth = pd.read_csv(data / "truth.csv")
    train = io.read_train_csv(data)
    y = train[list(VOTE_COLUMNS)].to_numpy(dtype=float)
    y /= y.sum(axis=1, keepdims=True)
    p = truth[truth["split"] == "train"].set_index("label_id").loc[train["label_id"]]
    p = p[[f"p_{c}" for c in CLASSES]].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = np.where(y > 0, y * np.log(y / p), 0.0).sum(axis=1).mean()
        prior = class_prior(train)
        kl_prior = np.where(y > 0, y * np.log(y / prior), 0.0).sum(axis=1).mean()
    assert_allclose(floor["floor"], kl, rtol=1e-9)
    assert_allclose(floor["prior"], kl_prior, rtol=1e-9)
    assert floor["n_train"] == len(train)


def test_bayes_floor_needs_truth(tmp_path):
    with pytest.raises(FileNotFoundError, match="truth.csv"):
        synthetic.bayes_floor(tmp_path)


# --------------------------------------------------------------------------------------------------
# determinism, atomic writes, bad input, command line
# --------------------------------------------------------------------------------------------------


def _digest(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def test_same_seed_gives_identical_files(tmp_path):
    a = synthetic.generate(tmp_path / "a", preset="small", n_patients=1, seed=5, progress=False, workers=1)
    b = synthetic.generate(tmp_path / "b", preset="small", n_patients=1, seed=5, progress=False, workers=2)
    c = synthetic.generate(tmp_path / "c", preset="small", n_patients=1, seed=6, progress=False, workers=1)
    files_a, files_b, files_c = _digest(a), _digest(b), _digest(c)
    assert files_a == files_b
    assert files_a.keys() != files_c.keys()  # other ids
    assert sorted(files_a.values()) != sorted(files_c.values())


def test_bad_arguments_raise_and_write_nothing(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        synthetic.generate(out, preset="huge")
    with pytest.raises(ValueError, match="n_patients must be a positive integer"):
        synthetic.generate(out, n_patients=-3)
    with pytest.raises(ValueError, match="seed"):
        synthetic.generate(out, seed=-1)
    with pytest.raises(ValueError, match="workers"):
        synthetic.generate(out, workers=0)
    assert list(tmp_path.iterdir()) == []
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(NotADirectoryError, match="not a folder"):
        synthetic.generate(a_file)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.md").write_text("keep me")
    with pytest.raises(FileExistsError, match="not empty"):
        synthetic.generate(busy)
    with pytest.raises(FileExistsError, match="not a synthetic data set"):
        synthetic.generate(busy, overwrite=True)
    assert (busy / "notes.md").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy", "file.txt"]


def test_failure_midway_leaves_nothing(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(writer, "_write_session", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        synthetic.generate(tmp_path / "out", preset="small", n_patients=1, progress=False, workers=1)
    assert list(tmp_path.iterdir()) == []


def test_overwrite_replaces_a_synthetic_set(tmp_path):
    out = synthetic.generate(tmp_path / "d", preset="small", n_patients=1, seed=1, progress=False, workers=1)
    before = _digest(out)
    synthetic.generate(out, preset="small", n_patients=1, seed=2, overwrite=True, progress=False, workers=1)
    assert _digest(out) != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]  # no temporary folders left


def test_ensure_generated_reuses_a_current_set_and_replaces_a_stale_one(tmp_path, monkeypatch):
    out = synthetic.ensure_generated(tmp_path / "e", preset="small", n_patients=1, seed=1, progress=False, workers=1)
    before = _digest(out)
    calls = []
    monkeypatch.setattr(writer, "generate", lambda *a, **k: calls.append(a) or out)
    assert synthetic.ensure_generated(out, preset="small", n_patients=1, seed=1) == out  # same arguments: reused
    assert calls == []
    monkeypatch.undo()
    synthetic.ensure_generated(out, preset="small", n_patients=1, seed=2, progress=False, workers=1)  # other seed
    assert _digest(out) != before
    info_path = out / "synthetic.json"
    info = json.loads(info_path.read_text())
    info_path.write_text(json.dumps({**info, "generator_version": synthetic.GENERATOR_VERSION - 1}))
    synthetic.ensure_generated(out, preset="small", n_patients=1, seed=2, progress=False, workers=1)  # older generator
    assert json.loads(info_path.read_text())["generator_version"] == synthetic.GENERATOR_VERSION
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a synthetic data set"):
        synthetic.ensure_generated(busy, preset="small", n_patients=1)


def test_cli_writes_and_summarises(tmp_path, capsys):
    out = tmp_path / "cli"
    argv = ["synth", str(out), "--patients", "1", "--seed", "3", "--quiet", "--workers", "1"]
    assert cli.main(argv) == 0
    line = capsys.readouterr().out
    assert "1 patients" in line and "test EEGs" in line and "KL floor" in line
    assert (out / "train.csv").is_file()
    assert cli.main(["synth", str(out), "--patients", "1", "--quiet"]) == 2
    assert "not empty" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["synth", str(tmp_path / "x"), "--preset", "huge"])
    assert exit_info.value.code == 2
    assert not (tmp_path / "x").exists()
