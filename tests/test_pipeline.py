"""hmslib.pipeline: step planning, skipping of finished steps, failure reports, run-folder checks.

The notebooks here are tiny stand-ins written into a temporary folder, so the orchestration is tested
in seconds; the real notebooks run end to end in tests/test_end_to_end.py and under nbval.
"""

from __future__ import annotations

import json

import nbformat
import pytest

from hmslib import pipeline


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
    tiny = pipeline.Profile("tiny", "demo", 3, 2, (pipeline.ModelSpec("m1", "resnet18", "public_notebook"),))
    monkeypatch.setitem(pipeline.PROFILES, "tiny", tiny)
    data = tmp_path / "data"
    data.mkdir()
    return folder, data


def test_plan_covers_every_model_and_fold(tmp_path):
    prof = pipeline.get_profile("quick")
    steps = pipeline.plan_steps(prof, tmp_path / "d", tmp_path / "r", prof.models)
    train = [s for s in steps if s.notebook == "03_train"]
    assert len(train) == len(prof.models) * prof.n_folds
    assert {(s.parameters["model_name"], s.parameters["fold"]) for s in train} == {
        (m.name, k) for m in prof.models for k in range(prof.n_folds)
    }
    assert [s.notebook for s in steps if s.notebook != "03_train"] == [
        "01_eda", "02_preprocess", "04_oof_analysis", "05_ensemble", "06_submission"
    ]


def test_rerun_skips_finished_steps(fake_notebooks, tmp_path):
    _, data = fake_notebooks
    run_dir = tmp_path / "run"
    lines: list[str] = []
    pipeline.run(data, run_dir, profile="tiny", log=lines.append)
    ran = (run_dir / "ran.txt").read_text().split()
    assert ran == ["01_eda", "02_preprocess", "03_train", "03_train", "04_oof_analysis",
                   "05_ensemble", "06_submission"]  # fmt: skip
    assert (run_dir / "notebooks" / "03_train-m1-fold1.ipynb").is_file()
    lines.clear()
    pipeline.run(data, run_dir, profile="tiny", log=lines.append)
    assert (run_dir / "ran.txt").read_text().split() == ran
    assert sum("skipped" in line for line in lines) == 7


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
    with pytest.raises(ValueError, match="unknown profile 'huge'"):
        pipeline.get_profile("huge")
    with pytest.raises(ValueError, match=r"unknown models \['vit'\]"):
        pipeline.run(profile="quick", models=["vit"])
