"""An offline Kaggle kernel bundle: everything a code-competition submission needs, no network.

``hms bundle RUN_DIR --out DIR`` writes::

    DIR/dataset-metadata.json      upload DIR as a Kaggle dataset (kaggle datasets create -p DIR)
    DIR/wheels/hmslib-*.whl        the library (plus entmax when a model uses it)
    DIR/run/ensemble.json          the ensemble weights
    DIR/run/models/<m>/fold<k>.pt  every checkpoint the ensemble uses
    DIR/submission.ipynb           06_submission set to install the wheel offline and read
                                   /kaggle/input/hms-harmful-brain-activity-classification

Kaggle's images already carry torch, timm, numpy, pandas and scipy, so only the wheels above travel.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from hmslib._checks import atomic_path
from hmslib.checkpoints import read_checkpoint, run_checkpoints
from hmslib.ensemble import load_ensemble
from hmslib.pipeline import notebooks_dir, repo_root

KAGGLE_COMPETITION_DIR = "/kaggle/input/hms-harmful-brain-activity-classification"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:50] or "hmslib-run"


def _build_wheel(dest: Path) -> Path:
    """Build the hmslib wheel from the checkout into ``dest``."""
    root = repo_root()
    if not (root / "pyproject.toml").is_file():
        raise FileNotFoundError(f"{root}: no pyproject.toml; `hms bundle` needs the hmslib source checkout")
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(dest), str(root)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"building the hmslib wheel failed:\n{done.stderr[-2000:]}")
    wheels = sorted(dest.glob("hmslib-*.whl"))
    if not wheels:
        raise RuntimeError(f"building the hmslib wheel wrote no hmslib-*.whl into {dest}")
    return wheels[-1]


def kaggle_notebook(
    dataset_slug: str, *, data_dir: str = KAGGLE_COMPETITION_DIR, install_dir: str = "/kaggle/working/hmslib_pkg"
) -> dict:
    """The submission notebook with its parameters cell rewritten for a Kaggle kernel."""
    import nbformat

    nb = nbformat.read(notebooks_dir() / "06_submission.ipynb", as_version=4)
    base = f"/kaggle/input/{dataset_slug}"
    values = {
        "data_dir": data_dir,
        "run_dir": f"{base}/run",
        "wheel_dir": f"{base}/wheels",
        "install_dir": install_dir,
        "submission_path": "/kaggle/working/submission.csv",
        "device": "auto",
    }
    cell = next((c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])), None)
    if cell is None:
        raise ValueError("06_submission.ipynb has no cell tagged 'parameters'")
    lines = []
    for line in cell.source.splitlines():
        name = line.split("=", 1)[0].strip()
        lines.append(f"{name} = {values[name]!r}" if name in values and "=" in line else line)
    cell.source = "\n".join(lines)
    return nb


def bundle(run_dir: str | os.PathLike, out_dir: str | os.PathLike, *, dataset_slug: str | None = None) -> Path:
    """Write an offline Kaggle bundle of a trained run.

    Parameters
    ----------
    run_dir : path
        A trained run folder (``ensemble.json`` and the checkpoints it names).
    out_dir : path
        Bundle folder to write (must not exist or be empty).
    dataset_slug : str, optional
        Kaggle dataset slug (default from the run folder's name).

    Returns
    -------
    pathlib.Path
        ``out_dir``.

    Raises
    ------
    FileNotFoundError
        No ``ensemble.json`` or a checkpoint it needs.
    FileExistsError
        ``out_dir`` is not empty.
    """
    import nbformat

    run_dir = Path(run_dir)
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir}: bundle folder is not empty")
    ensemble = load_ensemble(run_dir / "ensemble.json")
    checkpoints = {name: run_checkpoints(run_dir, name) for name in ensemble.models}
    slug = dataset_slug or _slug(f"hmslib-{run_dir.resolve().name}")
    staging = out_dir.with_name(f".{out_dir.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "run").mkdir(parents=True)
    shutil.copy2(run_dir / "ensemble.json", staging / "run" / "ensemble.json")
    needs_entmax = False
    for name, paths in checkpoints.items():
        for path in paths:
            dest = staging / "run" / "models" / name / path.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest)
        output = read_checkpoint(paths[0])["train_config"].model.output
        needs_entmax |= output.startswith("entmax")
    _build_wheel(staging / "wheels")
    if needs_entmax:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(staging / "wheels"), "entmax"],
            check=True,
        )
    metadata = {"title": slug, "id": f"YOUR_KAGGLE_USERNAME/{slug}", "licenses": [{"name": "CC0-1.0"}]}
    (staging / "dataset-metadata.json").write_text(json.dumps(metadata, indent=2))
    with atomic_path(staging / "submission.ipynb") as tmp:
        nbformat.write(kaggle_notebook(slug), tmp)
    if out_dir.exists():
        out_dir.rmdir()
    staging.rename(out_dir)
    return out_dir
