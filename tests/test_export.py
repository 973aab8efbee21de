"""hmslib.export: ONNX graphs of a run's fold models, checked with onnxruntime against torch.

The run is a folder of tiny untrained models written here (training is not what is tested): an
image model on ``chain_mel`` with two folds and a 1-D model on ``bipolar_raw`` with 1.5-entmax
output, blended with temperatures and a class bias. The references are independent of the export:
the torch model rebuilt from its checkpoint, and :class:`hmslib.predict.Predictor` on raw EEG.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.signal as sps
import torch
from helpers import band_limited
from numpy.testing import assert_allclose
from scipy.special import softmax

from hmslib import cli
from hmslib.checkpoints import load_model, save_checkpoint
from hmslib.config import Environment, Recipe, TrainConfig
from hmslib.constants import CLASSES, EEG_CHANNELS, SFREQ
from hmslib.ensemble import Ensemble, save_ensemble
from hmslib.export import INPUT_NAME, export_run, representation_parameters
from hmslib.models import ModelConfig, build_model, probabilities
from hmslib.predict import Predictor
from hmslib.representations import compute_representation

ort = pytest.importorskip("onnxruntime", reason="the ONNX export check needs onnxruntime")
pytest.importorskip("onnx", reason="the ONNX export needs onnx")

#: model name -> (representation, backbone, output mapping, folds)
MODELS = {
    "mel": ("chain_mel", "resnet10t", "softmax", 2),
    "raw": ("bipolar_raw", "wavenet1d", "entmax15", 1),
}
WEIGHTS = [0.35, 0.65]
TEMPERATURES = [1.3, 0.8]
BIAS = [0.1, -0.2, 0.0, 0.3, -0.1, 0.05]


def _write_run(run_dir: Path) -> Path:
    """Tiny models with random weights and non-trivial batch-norm statistics, and an ensemble."""
    for i, (name, (representation, backbone, output, n_folds)) in enumerate(MODELS.items()):
        config = ModelConfig(name=name, backbone=backbone, representation=representation,
                             output=output, widths=(2, 4), strides=(25, 10), dilations=(1, 2),
                             hidden=4, temporal="gru")  # fmt: skip
        train_config = TrainConfig(
            Recipe(model=config, n_folds=n_folds), Environment(data_dir="none", out_dir=str(run_dir))
        )
        for fold in range(n_folds):
            torch.manual_seed(10 * i + fold)
            model = build_model(config)
            for module in model.modules():  # eval-mode batch norm must not be the identity
                if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                    module.running_mean.uniform_(-0.5, 0.5)
                    module.running_var.uniform_(0.5, 2.0)
            prior = np.random.default_rng(fold).dirichlet(np.ones(len(CLASSES)))
            payload = {"train_config": train_config.to_dict(), "state_dict": model.state_dict(),
                       "class_prior": prior}  # fmt: skip
            save_checkpoint(payload, run_dir / "models" / name / f"fold{fold}.pt")
    ensemble = Ensemble(tuple(MODELS), np.asarray(WEIGHTS), np.asarray(BIAS), "stack", None,
                        np.asarray(TEMPERATURES))  # fmt: skip
    save_ensemble(run_dir / "ensemble.json", ensemble)
    return run_dir


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return _write_run(tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="module")
def exported(run_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "onnx"
    manifest = export_run(run_dir, out)
    assert manifest == out / "manifest.json"
    return out


@pytest.fixture(scope="module")
def eeg() -> np.ndarray:
    """Three 50 s windows of band-limited signal in µV, one with a NaN stretch."""
    windows = np.stack([band_limited(50.0, SFREQ, len(EEG_CHANNELS), seed=s) for s in range(3)])
    windows = windows.astype(np.float32)
    windows[1, 4, 2000:2100] = np.nan
    return windows


def _session(path: Path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_every_fold_graph_matches_its_torch_model(run_dir, exported, eeg):
    for name, (representation, _, output, n_folds) in MODELS.items():
        x = compute_representation(representation, eeg)
        for fold in range(n_folds):
            model, config, _ = load_model(run_dir / "models" / name / f"fold{fold}.pt")
            with torch.no_grad():
                logits = model(x)
                expected = probabilities(logits, config.output).numpy()
            logits_onnx, probs_onnx = _session(exported / name / f"fold{fold}.onnx").run(
                ["logits", "probabilities"], {INPUT_NAME: x.numpy()}
            )
            assert probs_onnx.shape == (len(eeg), len(CLASSES))
            assert_allclose(logits_onnx, logits.numpy(), atol=1e-4, rtol=1e-4)
            assert_allclose(probs_onnx, expected, atol=1e-4)
            # one window alone (the batch axis is dynamic, the graph was traced with 2)
            single = _session(exported / name / f"fold{fold}.onnx").run(
                ["probabilities"], {INPUT_NAME: x[:1].numpy()}
            )[0]
            assert_allclose(single, expected[:1], atol=1e-4)
        if output == "entmax15":  # sparse output survives the export
            assert np.isclose(probs_onnx.sum(axis=1), 1.0, atol=1e-5).all()


def test_graphs_and_json_alone_reproduce_the_predictor(run_dir, exported, eeg):
    """A deployer with the ONNX files, the JSON and the representation code gets the Predictor's
    probabilities: fold mean, temperature, weights and bias all from preprocessing.json."""
    mix = np.zeros((len(eeg), len(CLASSES)))
    for name in MODELS:
        meta = json.loads((exported / name / "preprocessing.json").read_text())
        x = compute_representation(meta["representation"]["name"], eeg).numpy()
        fold_probs = [
            _session(exported / name / f["onnx"]).run(["probabilities"], {INPUT_NAME: x})[0]
            for f in meta["folds"]
        ]
        p = np.mean(np.asarray(fold_probs, dtype=np.float64), axis=0)
        t = meta["ensemble"]["temperature"]
        p = softmax(np.log(np.clip(p, 1e-15, None)) / t, axis=1)
        mix += meta["ensemble"]["weight"] * p
    bias = np.asarray(meta["ensemble"]["bias"])
    deployed = softmax(np.log(np.clip(mix, 1e-15, None)) + bias, axis=1)
    expected = Predictor.from_run(run_dir).predict(eeg)
    assert_allclose(deployed, expected, atol=1e-4)


def test_preprocessing_json_holds_what_a_deployer_needs(run_dir, exported):
    mel = json.loads((exported / "mel" / "preprocessing.json").read_text())
    raw = json.loads((exported / "raw" / "preprocessing.json").read_text())
    for meta in (mel, raw):
        assert meta["input"]["eeg_channels"] == list(EEG_CHANNELS)
        assert meta["input"]["sfreq_hz"] == 200.0 and meta["input"]["window_seconds"] == 50.0
        assert meta["input"]["window_samples"] == 10_000
        assert meta["classes"] == ["seizure", "lpd", "gpd", "lrda", "grda", "other"]
        assert meta["ensemble"]["models"] == ["mel", "raw"]
        assert meta["ensemble"]["bias"] == pytest.approx(BIAS)
        # the band-pass and scaling of the filtered representations, as documented
        (bipolar,) = meta["representation"]["bipolar"]
        assert bipolar["bandpass"] == {
            "low_hz": 0.5, "high_hz": 20.0, "order": 4, "design": "butterworth", "zero_phase": True,
        }  # fmt: skip
        assert (bipolar["clip_uv"], bipolar["divisor"]) == (1024.0, 32.0)
        assert bipolar["pairs"][:5] == ["Fp1-F7", "F7-T3", "T3-T5", "T5-O1", "Fp1-F3"]
    assert mel["representation"]["shape"] == [4, 64, 128]
    assert mel["representation"]["units"] == ["LL", "LP", "RP", "RL"]
    # the mirror of test-time augmentation: LL <-> RL, LP <-> RP along the channel axis
    assert mel["representation"]["mirror_permutation"] == [3, 2, 1, 0]
    assert mel["representation"]["mirror_axis"] == -3
    assert mel["onnx"]["input"]["shape"] == ["batch", 4, 64, 128]
    assert raw["onnx"]["input"]["shape"] == ["batch", 16, 10_000]
    assert mel["onnx"]["outputs"]["probabilities"]["mapping"] == "softmax"
    assert raw["onnx"]["outputs"]["probabilities"]["mapping"] == "entmax15"
    assert (mel["ensemble"]["weight"], mel["ensemble"]["temperature"]) == (0.35, 1.3)
    assert (raw["ensemble"]["weight"], raw["ensemble"]["temperature"]) == (0.65, 0.8)
    assert [f["onnx"] for f in mel["folds"]] == ["fold0.onnx", "fold1.onnx"]
    assert mel["recipe"]["model"]["backbone"] == "resnet10t" and mel["recipe"]["n_folds"] == 2
    assert mel["folds"][0]["max_abs_diff_vs_torch"] < 1e-4
    # graphs record the opset the JSON states
    import onnx

    graph = onnx.load(str(exported / "mel" / "fold0.onnx"))
    assert {o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")} == {
        mel["onnx"]["opset"]
    }


def test_the_json_filter_reproduces_the_representation(eeg):
    """bipolar_raw rebuilt with scipy from the JSON's parameters alone: montage from the pair
    names, sosfiltfilt, clip, divide (windows without NaN, so no repair is involved)."""
    (bipolar,) = representation_parameters("bipolar_raw")["bipolar"]
    clean = np.nan_to_num(eeg)
    channel = {name: i for i, name in enumerate(EEG_CHANNELS)}
    pairs = [p.split("-") for p in bipolar["pairs"]]
    x = np.stack([clean[:, channel[a]] - clean[:, channel[b]] for a, b in pairs], axis=1)
    band = bipolar["bandpass"]
    sos = sps.butter(band["order"], [band["low_hz"], band["high_hz"]], btype="bandpass",
                     fs=SFREQ, output="sos")  # fmt: skip
    lim = bipolar["clip_uv"]
    expected = np.clip(sps.sosfiltfilt(sos, x.astype(np.float64), axis=-1), -lim, lim)
    expected /= bipolar["divisor"]
    got = compute_representation("bipolar_raw", clean).numpy()
    assert_allclose(got, expected, atol=1e-4)


def test_representation_arguments_are_read_from_each_call():
    # mel16 filters the pairs in left/right interleaved order
    (mel16,) = representation_parameters("mel16")["bipolar"]
    assert mel16["pairs"][:4] == ["Fp1-F7", "Fp2-F8", "F7-T3", "F8-T4"]
    # bipolar_center_z filters without clipping or scaling (it standardises instead)
    (centre_z,) = representation_parameters("bipolar_center_z")["bipolar"]
    assert (centre_z["clip_uv"], centre_z["divisor"]) == (None, 1.0)
    json.dumps(representation_parameters("bipolar_center_z"), allow_nan=False)


def test_representations_without_a_filter_say_so():
    notebook = representation_parameters("public_notebook")
    assert notebook["bipolar"] == [] and notebook["shape"] == [4, 128, 256]
    assert representation_parameters("tiles_kaggle_eeg")["bipolar"] == []
    assert representation_parameters("kaggle_spectrogram")["uses_kaggle_spectrogram"] is True
    with pytest.raises(ValueError, match="representation"):
        representation_parameters("chain_mell")


def test_manifest_lists_every_file_with_its_hash(run_dir, exported):
    manifest = json.loads((exported / "manifest.json").read_text())
    listed = {f["path"]: f for f in manifest["files"]}
    on_disk = {p.relative_to(exported).as_posix() for p in exported.rglob("*") if p.is_file()}
    assert set(listed) == on_disk - {"manifest.json"}
    assert set(listed) == {"mel/fold0.onnx", "mel/fold1.onnx", "raw/fold0.onnx",
                           "mel/preprocessing.json", "raw/preprocessing.json"}  # fmt: skip
    for path, entry in listed.items():
        data = (exported / path).read_bytes()
        assert entry["bytes"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert manifest["ensemble"] == json.loads((run_dir / "ensemble.json").read_text())
    priors = [np.random.default_rng(k).dirichlet(np.ones(6)) for k in (0, 1, 0)]
    assert_allclose(manifest["class_prior"], np.mean(priors, axis=0), atol=1e-12)
    assert not list(exported.parent.glob(".*partial"))


def test_missing_run_folder_and_non_empty_out(tmp_path, run_dir):
    with pytest.raises(FileNotFoundError, match="no_such_run: run folder not found"):
        export_run(tmp_path / "no_such_run", tmp_path / "out")
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="full: export folder is not empty"):
        export_run(run_dir, full)
    assert (full / "keep.txt").read_text() == "mine"
    with pytest.raises(ValueError, match="opset must be >= 13, got 11"):
        export_run(run_dir, tmp_path / "out", opset=11)


def test_a_missing_fold_is_named_and_nothing_is_written(tmp_path):
    run = _write_run(tmp_path / "run")
    (run / "models" / "mel" / "fold1.pt").unlink()
    with pytest.raises(FileNotFoundError, match=r"fold1\.pt"):
        export_run(run, tmp_path / "out", verify=False)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".*partial"))


def test_cli_export(tmp_path, run_dir, capsys):
    out = tmp_path / "cli_out"
    assert cli.main(["export", str(run_dir), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "wrote 3 ONNX graphs" in printed and str(out / "manifest.json") in printed
    assert (out / "raw" / "fold0.onnx").is_file()
    # a second export into the same folder needs --overwrite
    assert cli.main(["export", str(run_dir), "--out", str(out)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("hms export: error: ") and "not empty" in err[0]
    assert cli.main(["export", str(run_dir), "--out", str(out), "--overwrite", "--no-verify"]) == 0


def test_cli_export_missing_run_is_one_line_exit_2(tmp_path, capsys):
    code = cli.main(["export", str(tmp_path / "absent"), "--out", str(tmp_path / "o")])
    _, err = capsys.readouterr()
    assert code == 2
    assert err.splitlines() == [f"hms export: error: {tmp_path / 'absent'}: run folder not found"]


def test_without_onnxruntime_the_check_says_what_to_install(tmp_path, run_dir, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now fails
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'hmslib\[export\]'"):
        export_run(run_dir, tmp_path / "checked")
    assert not (tmp_path / "checked").exists()
    assert cli.main(["export", str(run_dir), "--out", str(tmp_path / "cli")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("hms export: error: ONNX export needs the ")
    # the graphs themselves need only onnx
    manifest = export_run(run_dir, tmp_path / "unchecked", verify=False)
    meta = json.loads((tmp_path / "unchecked" / "raw" / "preprocessing.json").read_text())
    assert manifest.is_file() and meta["onnx"]["verified_with_onnxruntime"] is False
    assert meta["folds"][0]["max_abs_diff_vs_torch"] is None
