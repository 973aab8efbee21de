"""Tests of hmslib.scoring: sliding windows, quality flags, scoring a recording, ``hms score-edf``.

Windows are checked against slices of the recording, probabilities against the predictor applied
directly to those slices, and a run's probabilities against its checkpoints evaluated one by one.
One prediction path: a 50 s EEG scored as a recording gets the same probabilities as the same EEG
predicted as a Kaggle test row, and test-time augmentation is the mean of the plain prediction and
that of the EEG with its hemispheres exchanged electrode by electrode.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import band_limited
from numpy.testing import assert_allclose, assert_array_equal

from hmslib import cli, predict
from hmslib.checkpoints import load_model, save_checkpoint
from hmslib.config import Environment, Recipe, TrainConfig
from hmslib.constants import CLASSES, EEG_CHANNELS, TIMELINE_COLUMNS, VOTE_COLUMNS
from hmslib.ensemble import Ensemble, save_ensemble
from hmslib.io import load_eeg
from hmslib.models import ModelConfig, build_model, probabilities
from hmslib.predict import Predictor, predict_folder
from hmslib.recording import export_edf, load_recording
from hmslib.representations import compute_representation, representation_info
from hmslib.scoring import score_eeg, score_recording, sliding_windows, window_quality

PNG = b"\x89PNG\r\n\x1a\n"

# left <-> right homologous electrodes of the 10-20 system; the midline and the EKG stay
_LEFT = ("Fp1", "F3", "C3", "P3", "F7", "T3", "T5", "O1")
_RIGHT = ("Fp2", "F4", "C4", "P4", "F8", "T4", "T6", "O2")
_SWAP = dict(zip(_LEFT, _RIGHT, strict=True)) | dict(zip(_RIGHT, _LEFT, strict=True))
MIRROR = [EEG_CHANNELS.index(_SWAP.get(c, c)) for c in EEG_CHANNELS]



def edf_recording(path: Path, seconds: float, *, omit=(), seed: int = 0) -> Path:
    """An EDF at 256 Hz under clinical names (``EEG T7-REF``...) plus a Photic channel."""
    eeg = band_limited(seconds, 200.0, len(EEG_CHANNELS), seed=seed)
    photic = np.zeros(int(seconds * 256))
    return export_edf(eeg, path, target_sfreq=256.0, omit=omit, extra={"Photic": photic})


def _windows(eeg: np.ndarray, stride_s: float = 10.0) -> np.ndarray:
    """Every 50 s window of ``eeg`` every ``stride_s``, sliced one by one (a copy)."""
    step, n = int(stride_s * 200), (eeg.shape[-1] - 10000) // int(stride_s * 200) + 1
    return np.stack([eeg[:, step * k : step * k + 10000] for k in range(n)])


# --------------------------------------------------------------------------------------------------
# windows, quality
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


# --------------------------------------------------------------------------------------------------
# scoring with a predictor
# --------------------------------------------------------------------------------------------------


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
    reference = tiny_predictor()(_windows(eeg))
    assert_allclose(probs, reference, rtol=1e-6)


def test_scoring_marks_filled_and_bad_windows():
    eeg = band_limited(120.0, 200.0, 20).astype(np.float32)
    eeg[EEG_CHANNELS.index("O2"), 100 * 200 :] = np.nan
    timeline = score_eeg(eeg, tiny_predictor(), stride_s=10.0, filled=("Cz",), progress=False)
    assert timeline["bad"].tolist() == [s + 30 > 100 for s in timeline["start_s"]]
    assert (timeline["filled_leads"] == "Cz").all()
    assert_allclose(timeline[list(CLASSES)].sum(axis=1), 1.0, atol=1e-9)


def test_windows_without_signal_get_the_prior_and_say_so():
    eeg = band_limited(120.0, 200.0, 20).astype(np.float32)
    eeg[:19, 40 * 200 : 110 * 200] = np.nan  # every scalp lead lost from 40 to 110 s
    eeg[:19, 110 * 200 :] = 0.0  # then disconnected: flat zeros
    prior = np.array([0.5, 0.1, 0.1, 0.1, 0.1, 0.1])
    timeline = score_eeg(eeg, tiny_predictor(), prior=prior, progress=False)
    starts = timeline["start_s"].to_numpy() - 20.0
    # signal in a window: the lead-seconds outside [40, 120) s; the prior below half of them
    signal_s = np.clip(40.0 - starts, 0, 50)
    assert timeline["prior_used"].tolist() == (signal_s < 25).tolist()
    assert timeline["prior_used"].any() and not timeline["prior_used"].all()
    used = timeline["prior_used"].to_numpy()
    assert_allclose(timeline.loc[used, list(CLASSES)].to_numpy(), np.tile(prior, (used.sum(), 1)))
    reference = tiny_predictor()(_windows(eeg))
    assert_allclose(timeline.loc[~used, list(CLASSES)].to_numpy(), reference[~used], rtol=1e-6)
    assert timeline["bad"].tolist() == (starts + 50 > 40).tolist()
    assert (timeline["segment"] == 0).all()
    # a Predictor's own prior is the default
    holder = tiny_predictor()
    predictor = type("P", (), {"class_prior": prior[::-1].copy(), "__call__": lambda self, w: holder(w)})()
    again = score_eeg(eeg, predictor, progress=False)
    assert_allclose(again.loc[used, list(CLASSES)].to_numpy(), np.tile(prior[::-1], (used.sum(), 1)))


def test_segments_are_scored_apart_and_placed_in_recording_time():
    from hmslib.recording import Segment

    eeg = band_limited(130.0, 200.0, 20).astype(np.float32)
    segments = [Segment(0.0, 0, 60 * 200), Segment(500.0, 60 * 200, 130 * 200)]
    timeline = score_eeg(eeg, tiny_predictor(), segments=segments, progress=False)
    assert_allclose(timeline["start_s"], [20.0, 30.0, 520.0, 530.0, 540.0])
    assert timeline["segment"].tolist() == [0, 0, 1, 1, 1]
    expected = tiny_predictor()(np.stack([eeg[:, a : a + 10000] for a in (0, 2000, 12000, 14000, 16000)]))
    assert_allclose(timeline[list(CLASSES)].to_numpy(), expected, rtol=1e-6)
    with pytest.raises(ValueError, match="none as long as one 50 s window"):
        score_eeg(eeg, tiny_predictor(), segments=[Segment(0.0, 0, 9000), Segment(90.0, 9000, 18000)])


def test_scoring_checks_the_predictor_output():
    eeg = np.zeros((20, 200 * 70), dtype=np.float32)  # three windows at a 10 s stride
    with pytest.raises(ValueError, match=r"predictor returned shape \(3, 5\)"):
        score_eeg(eeg, lambda w: np.full((len(w), 5), 0.2), progress=False)
    with pytest.raises(ValueError, match="do not sum to 1"):
        score_eeg(eeg, lambda w: np.full((len(w), 6), 0.5), progress=False)


def test_recording_shorter_than_a_window_is_read_but_not_scored(tmp_path):
    path = edf_recording(tmp_path / "short.edf", 30.0)
    eeg, report = load_recording(path)  # reading accepts it (test_recording.py)
    assert eeg.shape == (20, 6000) and report.duration_s == pytest.approx(30.0)
    message = r"recording has 6000 samples \(30\.0 s\), shorter than one 50 s window"
    with pytest.raises(ValueError, match=message):
        sliding_windows(eeg)
    seen: list[np.ndarray] = []
    with pytest.raises(ValueError, match=message):
        score_eeg(eeg, tiny_predictor(seen), progress=False)
    with pytest.raises(ValueError, match=message):
        score_recording(path, tiny_predictor(seen), progress=False)
    assert seen == []  # refused before predicting anything


def test_cli_writes_timeline_files(tmp_path, monkeypatch, capsys):
    path = edf_recording(tmp_path / "cli.edf", 100.0, omit=["T4"])
    run_dir = tmp_path / "run"
    loaded = []

    def from_run(run, **kwargs):
        loaded.append((run, kwargs))
        return tiny_predictor()

    monkeypatch.setattr(predict.Predictor, "from_run", staticmethod(from_run))
    assert cli.main(["score-edf", str(path), "--models", str(run_dir)]) == 2  # bad input
    err = capsys.readouterr().err
    assert err.startswith("hms score-edf: error: ") and err.count("\n") == 1
    assert "missing EEG leads ['T4']" in err and "--allow-missing" in err
    assert loaded == []  # refused before loading the run

    out = tmp_path / "out"
    args = [str(path), "--models", str(run_dir), "--stride", "5", "--out", str(out)]
    assert cli.main(["score-edf", *args, "--allow-missing"]) == 0
    assert [run for run, _ in loaded] == [run_dir]
    assert loaded[0][1]["eeg_only"] is True and loaded[0][1]["tta"] is False
    timeline = pd.read_csv(out / "timeline.csv", keep_default_na=False)
    assert len(timeline) == (100 - 50) // 5 + 1
    assert (timeline["filled_leads"] == "T4").all()
    assert (out / "timeline.png").read_bytes()[:8] == PNG
    eeg, _ = load_recording(path, allow_missing=True)
    expected = tiny_predictor()(_windows(eeg, stride_s=5.0))
    assert_allclose(timeline[list(CLASSES)].to_numpy(), expected, rtol=1e-5, atol=1e-7)
    printed = capsys.readouterr().out
    assert "EEG T7-REF->T3" in printed and "filled by interpolation from neighbours: T4" in printed


# --------------------------------------------------------------------------------------------------
# scoring with a trained run
# --------------------------------------------------------------------------------------------------


def write_run(
    run_dir: Path,
    models: dict[str, str],
    weights: list[float],
    *,
    n_folds: int = 2,
    bias: list[float] | None = None,
) -> Path:
    """A run folder with untrained tiny models: ``models`` maps model name -> representation."""
    for i, (name, representation) in enumerate(models.items()):
        raw = representation_info(representation).kind == "raw"
        config = ModelConfig(name=name, backbone="wavenet1d" if raw else "resnet10t",
                             representation=representation, pretrained=False, widths=(2, 4),
                             strides=(25, 10), dilations=(1, 2), hidden=4, temporal="gem")  # fmt: skip
        train_config = TrainConfig(
            Recipe(model=config, n_folds=n_folds),
            Environment(data_dir="none", out_dir=str(run_dir)),
        )
        for fold in range(n_folds):
            torch.manual_seed(10 * i + fold)
            payload = {"train_config": train_config.to_dict(), "state_dict": build_model(config).state_dict(),
                       "class_prior": [1 / 6] * 6}  # fmt: skip
            save_checkpoint(payload, run_dir / "models" / name / f"fold{fold}.pt")
    method = "nelder_mead" if bias is None else "stack"
    save_ensemble(
        run_dir / "ensemble.json", Ensemble(tuple(models), np.asarray(weights), bias, method)
    )
    return run_dir


#: Two models on EEG representations, 1-D and image: everything a recording can be scored with.
EEG_MODELS = {"raw": "bipolar_raw", "mel": "chain_mel"}


@pytest.fixture(scope="module")
def eeg_run(tmp_path_factory) -> Path:
    return write_run(tmp_path_factory.mktemp("eeg_run"), EEG_MODELS, [0.4, 0.6], n_folds=1)


def test_run_predictor_averages_folds_and_skips_spectrogram_models(tmp_path):
    models = {"raw_a": "bipolar_raw", "spec": "kaggle_spectrogram", "raw_b": "bipolar_raw"}
    write_run(tmp_path, models, [0.2, 0.5, 0.3])
    eeg = band_limited(60.0, 200.0, 20).astype(np.float32)
    with pytest.warns(UserWarning, match="model 'spec' uses representation 'kaggle_spectrogram'"):
        predictor = Predictor.from_run(tmp_path, eeg_only=True)
    assert list(predictor.folds) == ["raw_a", "raw_b"]
    probs = score_eeg(eeg, predictor, batch_size=2, progress=False)[list(CLASSES)].to_numpy()

    windows = torch.from_numpy(_windows(eeg))

    def folds_mean(name):
        fold_probs = []
        for k in range(2):
            model, config, _ = load_model(tmp_path / "models" / name / f"fold{k}.pt")
            x = compute_representation(config.representation, windows)
            with torch.no_grad():
                fold_probs.append(probabilities(model(x), config.output).double().numpy())
        return np.mean(fold_probs, axis=0)

    expected = (0.2 * folds_mean("raw_a") + 0.3 * folds_mean("raw_b")) / 0.5
    assert_allclose(probs, expected, rtol=1e-5, atol=1e-7)


def test_run_of_spectrogram_models_only_cannot_score(tmp_path):
    write_run(tmp_path / "run", {"spec": "kaggle_spectrogram"}, [1.0], n_folds=1)
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="needs the Kaggle spectrogram"):
        Predictor.from_run(tmp_path / "run", eeg_only=True)
    path = edf_recording(tmp_path / "rec.edf", 60.0)
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="needs the Kaggle spectrogram"):
        score_recording(path, tmp_path / "run", progress=False)


def _kaggle_test_folder(root: Path, eeg: np.ndarray, eeg_id: int = 123) -> Path:
    """A Kaggle-layout test folder holding one test EEG (``(20, 10000)`` µV)."""
    (root / "test_eegs").mkdir(parents=True)
    pd.DataFrame(eeg.T, columns=list(EEG_CHANNELS)).to_parquet(
        root / "test_eegs" / f"{eeg_id}.parquet"
    )
    pd.DataFrame({"spectrogram_id": [456], "eeg_id": [eeg_id], "patient_id": [7]}).to_csv(
        root / "test.csv", index=False
    )
    sample = pd.DataFrame({"eeg_id": [eeg_id], **{c: [1 / 6] for c in VOTE_COLUMNS}})
    sample.to_csv(root / "sample_submission.csv", index=False)
    return root


@pytest.mark.parametrize("tta", [False, True])
def test_one_prediction_path_for_test_folders_and_recordings(tmp_path, tta):
    # a stacked ensemble (weights and a class bias) of a 1-D and an image model
    bias = [0.3, -0.2, 0.1, 0.0, -0.4, 0.2]
    run = write_run(tmp_path / "run", EEG_MODELS, [0.35, 0.65], n_folds=2, bias=bias)
    eeg = band_limited(50.0, 200.0, 20, seed=3).astype(np.float32)
    eeg[EEG_CHANNELS.index("C4"), 3000:3400] = np.nan  # a dropout, as in real test EEGs
    data = _kaggle_test_folder(tmp_path / "data", eeg)

    with pytest.warns(UserWarning, match=r"123: 0\.2% NaN filled"):  # 400 of 190,000 samples
        submission = predict_folder(
            data, run, out=tmp_path / "submission.csv", device="cpu", tta=tta, progress=False
        )
    same_eeg = load_eeg(data, 123, "test")
    assert same_eeg.shape == (20, 10000)
    predictor = Predictor.from_run(run, eeg_only=True, tta=tta)
    timeline = score_eeg(same_eeg, predictor, progress=False)
    assert len(timeline) == 1 and bool(timeline.at[0, "bad"])
    assert submission["eeg_id"].tolist() == [123]
    assert_allclose(
        timeline[list(CLASSES)].to_numpy(),
        submission[list(VOTE_COLUMNS)].to_numpy(),
        rtol=0,
        atol=1e-6,
    )


def test_tta_changes_nothing_for_a_symmetric_input(eeg_run):
    eeg = band_limited(50.0, 200.0, 20, seed=4).astype(np.float32)
    symmetric = eeg.copy()
    symmetric[[EEG_CHANNELS.index(c) for c in _RIGHT]] = eeg[[EEG_CHANNELS.index(c) for c in _LEFT]]
    assert_array_equal(symmetric[MIRROR], symmetric)
    windows = symmetric[None]
    base = Predictor.from_run(eeg_run)
    with_tta = Predictor(base.folds, base.ensemble, device=base.device, tta=True)
    plain, augmented = base.predict_models(windows), with_tta.predict_models(windows)
    for name in EEG_MODELS:
        assert_allclose(augmented[name], plain[name], rtol=0, atol=1e-6)
    assert_allclose(with_tta.predict(windows), base.predict(windows), rtol=0, atol=1e-6)


def test_tta_is_the_mean_of_the_plain_and_the_mirrored_prediction(eeg_run):
    windows = np.stack([band_limited(50.0, 200.0, 20, seed=s) for s in (5, 6)]).astype(np.float32)
    windows[1, EEG_CHANNELS.index("T3"), 2000:2600] = np.nan
    mirrored = np.ascontiguousarray(windows[:, MIRROR])  # hemispheres exchanged in the EEG itself
    base = Predictor.from_run(eeg_run)
    plain, flipped = base.predict_models(windows), base.predict_models(mirrored)
    with_tta = Predictor(base.folds, base.ensemble, device=base.device, tta=True)
    augmented = with_tta.predict_models(windows)
    for name in EEG_MODELS:
        assert np.abs(plain[name] - flipped[name]).max() > 1e-4  # the mirror matters to each model
        assert_allclose(augmented[name], (plain[name] + flipped[name]) / 2, rtol=0, atol=1e-6)
    # a weighted mean of models commutes with the mean over the two inputs
    expected = (base.predict(windows) + base.predict(mirrored)) / 2
    assert_allclose(with_tta.predict(windows), expected, rtol=0, atol=1e-6)


def test_cli_score_edf_with_tta(tmp_path, eeg_run, capsys):
    path = edf_recording(tmp_path / "rec.edf", 70.0, seed=7)
    out = tmp_path / "out"
    args = ["score-edf", str(path), "--models", str(eeg_run), "--out", str(out), "--device", "cpu"]
    assert cli.main([*args, "--tta"]) == 0
    assert "scored 3 windows" in capsys.readouterr().out
    assert (out / "timeline.png").read_bytes()[:8] == PNG
    timeline = pd.read_csv(out / "timeline.csv", keep_default_na=False)
    assert list(timeline.columns) == list(TIMELINE_COLUMNS) and len(timeline) == 3

    eeg, _ = load_recording(path)
    windows = _windows(eeg)
    base = Predictor.from_run(eeg_run)
    plain = base.predict(windows)
    expected = (plain + base.predict(np.ascontiguousarray(windows[:, MIRROR]))) / 2
    got = timeline[list(CLASSES)].to_numpy()
    assert_allclose(got, expected, rtol=1e-5, atol=1e-6)  # the CSV keeps 6 significant digits
    assert np.abs(got - plain).max() > 1e-4  # --tta took effect


def test_channels_last_and_bfloat16_predictors_agree_with_float32(eeg_run):
    windows = np.stack([band_limited(50.0, 200.0, 20, seed=s) for s in (9, 10)]).astype(np.float32)
    base = Predictor.from_run(eeg_run)
    plain = base.predict(windows)
    fast = Predictor.from_run(eeg_run, channels_last=True)
    image = [m for models in fast.folds.values() for m, cfg in models if cfg.representation == "chain_mel"]
    assert image and all(
        p.is_contiguous(memory_format=torch.channels_last) for m in image for p in m.parameters() if p.ndim == 4
    )
    assert_allclose(fast.predict(windows), plain, rtol=0, atol=1e-5)
    half = Predictor.from_run(eeg_run, bfloat16=True).predict(windows)
    assert_allclose(half.sum(axis=1), 1.0, atol=1e-9)
    assert_allclose(half, plain, rtol=0, atol=3e-2)
