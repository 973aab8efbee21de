"""hmslib.pipeline: step planning, skipping of finished steps, failure reports, run-folder checks.

The notebooks here are tiny stand-ins written into a temporary folder, so the orchestration is tested
in seconds; the real notebooks run end to end in tests/test_end_to_end.py and under nbval.
"""

from __future__ import annotations

import json

import nbformat
import pytest

from hmslib import config, pipeline


def _notebook(path, body: str) -> None:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("data_dir = None\nrun_dir = None\nseed = 0\nprofile = 'demo'")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture
def fake_notebooks(tmp_path, monkeypatch):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    for name in pipeline.NOTEBOOKS:
        _notebook(folder / f"{name}.ipynb", f"from pathlib import Path\n"
                  f"Path(run_dir, 'ran.txt').open('a').write('{name}\\n')")  # fmt: skip
    monkeypatch.setattr(pipeline, "notebooks_dir", lambda: folder)
    tiny = config.Profile("tiny", "small", 3, 2, (config.ModelSpec("m1", "resnet18", "public_notebook"),))
    monkeypatch.setitem(config.PROFILES, "tiny", tiny)
    data = tmp_path / "data"
    data.mkdir()
    return folder, data


def test_plan_covers_every_model_and_fold(tmp_path):
    prof = config.get_profile("quick")
    steps = pipeline.plan_steps(prof, tmp_path / "d", tmp_path / "r", prof.models)
    train = [s for s in steps if s.notebook == "03_train"]
    assert len(train) == len(prof.models) * prof.n_folds
    assert {(s.parameters["model_name"], s.parameters["fold"]) for s in train} == {
        (m.name, k) for m in prof.models for k in range(prof.n_folds)
    }
    assert [s.notebook for s in steps if s.notebook != "03_train"] == [
        "01_eda", "02_preprocess", "04_oof_analysis", "05_ensemble", "06_submission",
        "07_score_recording",
    ]


def test_rerun_skips_finished_steps(fake_notebooks, tmp_path):
    _, data = fake_notebooks
    run_dir = tmp_path / "run"
    lines: list[str] = []
    pipeline.run(data, run_dir, profile="tiny", log=lines.append)
    ran = (run_dir / "ran.txt").read_text().split()
    assert ran == ["01_eda", "02_preprocess", "03_train", "03_train", "04_oof_analysis",
                   "05_ensemble", "06_submission", "07_score_recording"]  # fmt: skip
    assert (run_dir / "notebooks" / "03_train-m1-fold1.ipynb").is_file()
    lines.clear()
    pipeline.run(data, run_dir, profile="tiny", log=lines.append)
    assert (run_dir / "ran.txt").read_text().split() == ran
    assert sum("skipped" in line for line in lines) == 8


def test_failure_names_notebook_and_cell(fake_notebooks, tmp_path):
    folder, data = fake_notebooks
    _notebook(folder / "02_preprocess.ipynb", "x = 1\nraise ValueError('cache folder is read-only')")
    run_dir = tmp_path / "run"
    with pytest.raises(pipeline.StepFailed, match=r"02_preprocess\.ipynb, cell \d+ \(`x = 1`\): "
                       r"ValueError: cache folder is read-only"):  # fmt: skip
        pipeline.run(data, run_dir, profile="tiny", log=lambda _: None)
    markers = sorted(p.stem for p in (run_dir / ".steps").glob("*.json"))
    assert markers == ["01_eda"]


def test_run_folder_of_another_profile_is_refused(fake_notebooks, tmp_path):
    _, data = fake_notebooks
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run_config.json").write_text(json.dumps({"profile": "demo", "data_dir": None}))
    with pytest.raises(ValueError, match=r"run_config\.json: this run folder was made with profile='demo'"):
        pipeline.run(data, run_dir, profile="tiny", log=lambda _: None)


def test_unknown_profile_and_model():
    with pytest.raises(ValueError, match=r"unknown profile 'huge'; expected one of \['demo', 'full', 'quick'\]"):
        config.get_profile("huge")
    with pytest.raises(ValueError, match=r"unknown model of profile 'quick' 'vit'; expected one of \[.*'wavenet1d'"):
        pipeline.run(profile="quick", models=["vit"])


def test_notebook_setup_resolves_folders_and_makes_figures(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.csv").write_text("x\n")  # a data folder given: nothing is generated
    run = pipeline.notebook_setup(data, tmp_path / "run", profile="quick")
    assert run == (data, tmp_path / "run", tmp_path / "run" / "figures")
    assert run.data_dir == data and run.figures.is_dir()
    assert sorted(p.name for p in data.iterdir()) == ["train.csv"]
    out = capsys.readouterr().out
    assert f"data: {data}" in out and f"run:  {tmp_path / 'run'}" in out
    relative, _ = pipeline.resolve_paths("some/data", tmp_path / "run", profile="quick")
    assert relative == pipeline.repo_root() / "some" / "data"


def test_samples_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("HMS_SAMPLES", str(tmp_path))
    assert pipeline.samples_dir() == tmp_path
    monkeypatch.delenv("HMS_SAMPLES")
    assert pipeline.samples_dir() == pipeline.repo_root().parent / "shared" / "hms-samples"
