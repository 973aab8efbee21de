"""The battery of bad inputs and faults (issue 14): each case gives a clear result or one sentence.

Cases covered beside their module, not repeated here:

- non-integer (2.5) and empty vote cells in train.csv, header-only train.csv:
  ``tests/test_checks.py::test_read_train_csv_refuses_non_integer_votes``,
  ``::test_read_train_csv_refuses_empty_vote_cells``, ``::test_read_train_csv_header_without_rows``
  and, through the CLI, ``tests/test_cli.py::test_train_csv_without_rows_names_the_file``;
- ``hms train --fold x`` and ``--backbone wavenet1`` (close names of every model kind):
  ``tests/test_cli.py::test_train_bad_fold_is_one_argparse_line``,
  ``::test_train_unknown_backbone_lists_close_names``;
- a full disk while an atomic write renames into place: ``tests/test_checks.py::
  test_atomic_path_names_the_file_on_a_full_disk`` (here: the cache and ``predict_folder``);
- a truncated ``fold<k>_last.pt`` when ``hms train`` resumes, and a resumed fit's last checkpoint
  holding the same content as a clean run's: ``tests/test_train.py::
  test_truncated_resume_checkpoint_says_how_to_start_fresh`` and
  ``::test_resume_after_an_interruption_equals_an_uninterrupted_run`` (they need the trained
  fixtures of that module);
- a recording shorter than 50 s is read but not scored:
  ``tests/test_recording.py::test_recording_shorter_than_a_window_is_read`` and
  ``tests/test_scoring.py::test_recording_shorter_than_a_window_is_read_but_not_scored``.
"""

from __future__ import annotations

import errno
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import band_limited
from numpy.testing import assert_allclose, assert_array_equal

from hmslib import _checks, cache, cli
from hmslib.checkpoints import save_checkpoint
from hmslib.config import Environment, Recipe, TrainConfig
from hmslib.constants import CLASSES, EEG_CHANNELS, QUALITY_COLUMNS, VOTE_COLUMNS
from hmslib.ensemble import Ensemble, save_ensemble
from hmslib.models import ModelConfig, build_model
from hmslib.predict import Predictor, predict_folder, quality_path_for
from hmslib.recording import CLINICAL_NAMES, edf_segments, load_raw, load_recording
from hmslib.scoring import score_raw, score_recording

#: Distinct class priors stored in the two fold checkpoints (their mean is what no signal gets).
PRIORS = (
    np.array([0.30, 0.10, 0.10, 0.20, 0.10, 0.20]),
    np.array([0.10, 0.20, 0.30, 0.10, 0.20, 0.10]),
)


def _model_config(name: str, representation: str) -> ModelConfig:
    raw = representation == "bipolar_raw"
    return ModelConfig(name=name, backbone="wavenet1d" if raw else "resnet10t",
                       representation=representation, pretrained=False, widths=(2, 4),
                       strides=(25, 10), dilations=(1, 2), hidden=4, temporal="gem")  # fmt: skip


def _checkpoint(run: Path, name: str, representation: str, fold: int, *, n_folds: int = 2) -> Path:
    config = _model_config(name, representation)
    train_config = TrainConfig(Recipe(model=config, n_folds=n_folds), Environment(data_dir="x", out_dir=str(run)))
    torch.manual_seed(fold)
    payload = {
        "train_config": train_config.to_dict(),
        "class_prior": PRIORS[fold].tolist(),
        "state_dict": build_model(config).state_dict(),
    }
    return save_checkpoint(payload, run / "models" / name / f"fold{fold}.pt")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A run of one tiny 1-D model (two folds, untrained), each checkpoint with its class prior."""
    run = tmp_path_factory.mktemp("run")
    for fold in range(2):
        _checkpoint(run, "raw", "bipolar_raw", fold)
    save_ensemble(run / "ensemble.json", Ensemble(("raw",), np.ones(1), None, "equal"))
    return run


def _test_folder(root: Path, eegs: dict[int, np.ndarray]) -> Path:
    """A Kaggle-layout test folder, one ``(20, 10000)`` test EEG per eeg_id."""
    (root / "test_eegs").mkdir(parents=True)
    for eeg_id, eeg in eegs.items():
        pd.DataFrame(eeg.T, columns=list(EEG_CHANNELS)).to_parquet(root / "test_eegs" / f"{eeg_id}.parquet")
    ids = list(eegs)
    pd.DataFrame({"spectrogram_id": ids, "eeg_id": ids, "patient_id": ids}).to_csv(root / "test.csv", index=False)
    sample = pd.DataFrame({"eeg_id": ids, **{c: 1 / 6 for c in VOTE_COLUMNS}})
    sample.to_csv(root / "sample_submission.csv", index=False)
    return root


def _clean(seed: int) -> np.ndarray:
    return band_limited(50.0, 200.0, 20, seed=seed).astype(np.float32)


# --------------------------------------------------------------------------------------------------
# wrong checkpoints
# --------------------------------------------------------------------------------------------------


def test_checkpoint_of_another_representation_in_a_run_is_refused(tmp_path, run, capsys):
    other = tmp_path / "run"
    shutil.copytree(run, other)
    # a fold1.pt of a model trained on another representation, dropped into models/raw/
    _checkpoint(tmp_path / "elsewhere", "raw", "chain_mel", 1)
    shutil.copy(tmp_path / "elsewhere" / "models" / "raw" / "fold1.pt", other / "models" / "raw")
    data = _test_folder(tmp_path / "data", {1: _clean(0)})
    with pytest.raises(ValueError, match=r"fold1\.pt: checkpoint does not match .*representation 'chain_mel'"):
        predict_folder(data, other, out=tmp_path / "sub.csv", device="cpu", progress=False)
    assert not (tmp_path / "sub.csv").exists()
    code = cli.main(["predict", "--data", str(data), "--models", str(other), "--out", str(tmp_path / "s.csv")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "fold1.pt" in err and "'chain_mel'" in err


def test_truncated_checkpoint_names_the_file_for_predict(tmp_path, run, capsys):
    broken = tmp_path / "run"
    shutil.copytree(run, broken)
    path = broken / "models" / "raw" / "fold0.pt"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    data = _test_folder(tmp_path / "data", {1: _clean(0)})
    with pytest.raises(ValueError, match=r"fold0\.pt: not a readable checkpoint"):
        predict_folder(data, broken, out=tmp_path / "sub.csv", device="cpu", progress=False)
    code = cli.main(["predict", "--data", str(data), "--models", str(broken), "--out", str(tmp_path / "s.csv")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("hms predict: error: ") and err.count("\n") == 1
    assert "fold0.pt: not a readable checkpoint" in err and not (tmp_path / "s.csv").exists()


# --------------------------------------------------------------------------------------------------
# NaN test EEGs: predicted where possible, reported, the prior where nothing can be predicted
# --------------------------------------------------------------------------------------------------


def test_nan_channel_and_all_nan_eeg_get_a_sidecar_a_warning_and_the_prior(tmp_path, run):
    one_nan = _clean(1)
    one_nan[EEG_CHANNELS.index("C3")] = np.nan
    all_nan = np.full((20, 10000), np.nan, dtype=np.float32)
    zeros = np.zeros((20, 10000), dtype=np.float32)  # a flat (all-zero) EEG has no signal either
    data = _test_folder(tmp_path / "data", {11: _clean(0), 12: one_nan, 13: all_nan, 14: zeros})
    out = tmp_path / "out" / "submission.csv"
    with pytest.warns(UserWarning, match=r"3 of 4 test EEGs were repaired or given the class prior") as caught:
        submission = predict_folder(data, run, out=out, device="cpu", progress=False)
    message = "\n".join(str(w.message) for w in caught if "test EEGs" in str(w.message))
    assert "12: 5.3% NaN filled, missing leads C3" in message  # 1 of 19 scalp leads
    assert "13: no usable signal (0% of lead-seconds), given the class prior" in message
    assert "14: no usable signal" in message and "11:" not in message

    sidecar = pd.read_csv(quality_path_for(out), keep_default_na=False)
    assert quality_path_for(out) == tmp_path / "out" / "submission_quality.csv"
    assert list(sidecar.columns) == list(QUALITY_COLUMNS) and sidecar.eeg_id.tolist() == [11, 12, 13, 14]
    assert_allclose(sidecar.nan_frac, [0.0, 1 / 19, 1.0, 0.0], rtol=1e-5)  # 6 digits in the CSV
    assert sidecar.missing_leads.tolist() == ["", "C3", ";".join(EEG_CHANNELS[:19]), ""]
    assert sidecar.flat_leads.tolist() == ["", "", "", ";".join(EEG_CHANNELS[:19])]
    assert_allclose(sidecar.signal_frac, [1.0, 18 / 19, 0.0, 0.0], rtol=1e-5)
    assert sidecar.repaired.tolist() == [False, True, False, False]
    assert sidecar.prior_used.tolist() == [False, False, True, True]

    probs = submission.set_index("eeg_id")[list(VOTE_COLUMNS)]
    prior = (PRIORS[0] + PRIORS[1]) / 2  # the mean of the two folds' stored priors
    assert_allclose(probs.loc[13], prior, atol=1e-12)
    assert_allclose(probs.loc[14], prior, atol=1e-12)
    predictor = Predictor.from_run(run)
    assert_allclose(predictor.class_prior, prior)
    # the repaired EEG is predicted by the models (not the prior), as the one prediction path does
    assert_allclose(probs.loc[[11, 12]].to_numpy(), predictor.predict(np.stack([_clean(0), one_nan])), atol=1e-9)
    assert np.abs(probs.loc[12].to_numpy() - prior).max() > 1e-3
    per_model = pd.read_parquet(out.parent / "test_predictions" / "raw.parquet").set_index("eeg_id")
    assert_allclose(per_model.loc[13].to_numpy(), prior)  # per-model files agree


def test_old_checkpoints_without_a_prior_fall_back_to_the_runs_oof_votes(tmp_path, run):
    old = tmp_path / "run"
    shutil.copytree(run, old)
    for path in (old / "models" / "raw").glob("fold*.pt"):
        ckpt = torch.load(path, weights_only=False)
        del ckpt["class_prior"]
        torch.save(ckpt, path)
    votes = np.array([[3, 0, 0, 0, 0, 1], [0, 0, 2, 0, 0, 0]])
    (old / "oof").mkdir()
    for fold in range(2):
        pd.DataFrame(votes[fold : fold + 1], columns=list(VOTE_COLUMNS)).to_parquet(old / "oof" / f"raw_fold{fold}.parquet")
    expected = (votes / votes.sum(axis=1, keepdims=True)).mean(axis=0)  # [0.375, 0, 0.5, 0, 0, 0.125]
    assert_allclose(Predictor.from_run(old).class_prior, expected)
    shutil.rmtree(old / "oof")
    with pytest.warns(UserWarning, match="store no class_prior and the run has no out-of-fold files"):
        assert_allclose(Predictor.from_run(old).class_prior, np.full(6, 1 / 6))


# --------------------------------------------------------------------------------------------------
# check first, write after; full disks
# --------------------------------------------------------------------------------------------------


def test_sample_submission_id_absent_from_test_csv_overwrites_nothing(tmp_path, run):
    data = _test_folder(tmp_path / "data", {1: _clean(0), 2: _clean(1)})
    out = tmp_path / "out" / "submission.csv"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        predict_folder(data, run, out=out, device="cpu", progress=False)
    written = {p: p.read_bytes() for p in out.parent.rglob("*") if p.is_file()}
    assert {p.name for p in written} == {"submission.csv", "submission_quality.csv", "raw.parquet"}
    sample = pd.read_csv(data / "sample_submission.csv")
    pd.concat([sample, sample.assign(eeg_id=99)]).to_csv(data / "sample_submission.csv", index=False)
    with pytest.raises(ValueError, match=r"sample_submission\.csv has eeg_ids absent from test\.csv: \[99\]"):
        predict_folder(data, run, out=out, device="cpu", progress=False)
    assert {p: p.read_bytes() for p in out.parent.rglob("*") if p.is_file()} == written


def test_full_disk_while_predict_writes_is_one_line_and_leaves_no_submission(tmp_path, run, monkeypatch, capsys):
    data = _test_folder(tmp_path / "data", {1: _clean(0)})

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    out = tmp_path / "out" / "submission.csv"
    code = cli.main(["predict", "--data", str(data), "--models", str(run), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1
    assert "raw.parquet: not enough disk space to write it" in err
    assert not out.exists() and not quality_path_for(out).exists()
    assert [p for p in (tmp_path / "out").rglob("*") if p.is_file()] == []  # no temporary left


def test_full_disk_is_found_before_the_cache_is_allocated(tmp_path, monkeypatch):
    from hmslib.synthetic import generate

    data = generate(tmp_path / "data", preset="small", n_patients=2, progress=False)
    real = shutil.disk_usage

    def tiny(path):
        return real(path)._replace(free=1000)

    monkeypatch.setattr(_checks.shutil, "disk_usage", tiny)
    with pytest.raises(OSError, match=r"train-bipolar_raw-\w+: not enough disk space \(.* MiB needed, 0\.0 MiB free\)"):
        cache.build_cache(data, tmp_path / "caches", representation="bipolar_raw", progress=False)
    folders = list((tmp_path / "caches").glob("*"))
    assert all(not (f / "COMPLETE").exists() for f in folders)  # nothing that reads as complete
    assert all(not (f / "features.npy").exists() or (f / "features.npy").stat().st_blocks == 0 for f in folders)


# --------------------------------------------------------------------------------------------------
# EDF+D (discontinuous) recordings, written byte by byte
# --------------------------------------------------------------------------------------------------


def write_edf_plus_d(path: Path, data_uv: np.ndarray, names: list[str], sfreq: float, onsets) -> Path:
    """An EDF+D file: ``data_uv`` ``(channels, records * sfreq)`` µV in 1 s data records, record ``r``
    starting at ``onsets[r]`` seconds (its time-stamped annotation), 16-bit over +-3276.8 µV."""
    spr, n_rec, ann_spr = int(sfreq), len(onsets), 30  # 60 bytes of annotations per record
    labels = [*names, "EDF Annotations"]
    ns = len(labels)

    def field(value, width):
        return str(value)[:width].ljust(width).encode("ascii")

    head = (field("0", 8) + field("X X X X", 80) + field("Startdate 01-JAN-2020 X X X", 80)
            + field("01.01.20", 8) + field("00.00.00", 8) + field(256 * (ns + 1), 8)
            + field("EDF+D", 44) + field(n_rec, 8) + field(1, 8) + field(ns, 4))  # fmt: skip
    eeg = [i < len(names) for i in range(ns)]
    columns = [
        [field(lab, 16) for lab in labels],
        [field("", 80)] * ns,
        [field("uV" if e else "", 8) for e in eeg],
        [field(-3276.8 if e else -1, 8) for e in eeg],
        [field(3276.7 if e else 1, 8) for e in eeg],
        [field(-32768, 8)] * ns,
        [field(32767, 8)] * ns,
        [field("", 80)] * ns,
        [field(spr if e else ann_spr, 8) for e in eeg],
        [field("", 32)] * ns,
    ]
    digital = np.clip(np.round(data_uv * 10), -32768, 32767).astype("<i2")  # 0.1 µV per step
    body = []
    for r, onset in enumerate(onsets):
        body += [digital[c, r * spr : (r + 1) * spr].tobytes() for c in range(len(names))]
        body.append(f"+{onset:g}\x14\x14\x00".encode().ljust(2 * ann_spr, b"\x00"))
    path.write_bytes(head + b"".join(b"".join(col) for col in columns) + b"".join(body))
    return path


#: Three stretches: 0-70 s, 100-160 s, 400-430 s (too short for a window) and 450-520 s.
_RUNS = ((0, 70), (100, 160), (400, 430), (450, 520))


def _edf_d(tmp_path: Path) -> tuple[Path, np.ndarray]:
    onsets = np.concatenate([np.arange(a, b) for a, b in _RUNS])
    data = band_limited(len(onsets), 200.0, len(EEG_CHANNELS), seed=3) / 4
    names = [CLINICAL_NAMES[c] for c in EEG_CHANNELS]
    return write_edf_plus_d(tmp_path / "paused.edf", data, names, 200.0, onsets), data


def test_edf_plus_d_segments_from_the_record_times(tmp_path):
    path, data = _edf_d(tmp_path)
    spans = edf_segments(path)
    durations = np.cumsum([0] + [b - a for a, b in _RUNS])
    assert spans == [(float(a), float(d0), float(d1)) for (a, _), d0, d1 in zip(_RUNS, durations[:-1], durations[1:], strict=True)]
    eeg, report = load_recording(path)
    assert eeg.shape == (20, 200 * durations[-1])  # the records end to end, as in the file
    assert_allclose(eeg, data, atol=0.051)  # 0.1 µV quantisation
    assert [(s.onset_s, s.start, s.stop) for s in report.segments] == [
        (float(a), 200 * d0, 200 * d1) for (a, _), d0, d1 in zip(_RUNS, durations[:-1], durations[1:], strict=True)
    ]
    assert report.gaps == [(70.0, 100.0), (160.0, 400.0), (430.0, 450.0)]
    assert "discontinuous: 4 segments, gaps 70.0-100.0 s" in report.summary()


def test_edf_plus_d_is_scored_segment_by_segment_never_across_a_gap(tmp_path):
    path, _ = _edf_d(tmp_path)
    eeg, report = load_recording(path)
    seen = []

    def predictor(windows):
        seen.append(windows.copy())
        return np.tile(np.arange(1.0, 7.0) / 21, (len(windows), 1))

    timeline = score_recording(path, predictor, batch_size=3, progress=False)
    # windows every 10 s of each stretch long enough: 0-70 s: 3, 100-160 s: 2, 400-430 s: 0, 450-520 s: 3
    starts = [0, 10, 20, 100, 110, 450, 460, 470]
    assert_allclose(timeline.start_s, np.asarray(starts) + 20.0)
    assert timeline.segment.tolist() == [0, 0, 0, 1, 1, 3, 3, 3]
    assert not timeline.bad.any() and not timeline.prior_used.any()
    windows = np.concatenate(seen)
    for k, (start, seg) in enumerate(zip(starts, timeline.segment, strict=True)):
        segment = report.segments[seg]
        first = segment.start + 200 * int(start - segment.onset_s)
        assert first + 10000 <= segment.stop  # inside its segment
        assert_array_equal(windows[k], eeg[:, first : first + 10000])

    # the same file as an mne.io.Raw: the same timeline (one path)
    import mne

    raw = mne.io.read_raw_edf(path, preload=False, verbose="error")
    pd.testing.assert_frame_equal(score_raw(raw, predictor, batch_size=3, progress=False), timeline)
    # a cropped Raw cannot keep the gaps: said, then scored as continuous
    with pytest.warns(UserWarning, match="EDF\\+D file with 3 gaps, but this Raw does not hold all"):
        cropped = load_raw(raw.copy().crop(0, 100))[1]
    assert len(cropped.segments) == 1


def test_raw_array_in_memory_is_scored_like_the_file(tmp_path):
    import mne

    eeg = band_limited(80.0, 256.0, len(EEG_CHANNELS), seed=8)
    info = mne.create_info([CLINICAL_NAMES[c] for c in EEG_CHANNELS], 256.0, "eeg")
    raw = mne.io.RawArray(eeg * 1e-6, info, verbose="error")
    loaded, report = load_raw(raw)
    assert report.path == Path("<mne Raw>") and report.sfreq == 256.0 and loaded.shape == (20, 16000)
    file_eeg, _ = load_recording(_export(raw, tmp_path / "same.edf"))
    assert_allclose(loaded, file_eeg, atol=0.05)  # the file stores 16-bit samples
    timeline = score_raw(raw, lambda w: np.full((len(w), 6), 1 / 6), progress=False)
    assert len(timeline) == 4 and (timeline.segment == 0).all()
    with pytest.raises(TypeError, match="expected an mne.io.Raw, got ndarray"):
        load_raw(eeg)
    assert list(timeline.columns[2:8]) == list(CLASSES)


def _export(raw, path: Path) -> Path:
    import mne

    mne.export.export_raw(path, raw, fmt="edf", physical_range="channelwise", overwrite=True, verbose="error")
    return path
