"""The main job: run the notebooks in order with papermill, one step after another.

``hms run`` executes ``01_eda`` -> ``02_preprocess`` -> ``03_train`` (once per model and fold) ->
``04_oof_analysis`` -> ``05_ensemble`` -> ``06_submission`` -> ``07_score_recording`` with the
parameters of a *profile* (:data:`hmslib.config.PROFILES`), saves each executed notebook under
``<run_dir>/notebooks/``, and marks a step done only when its notebook ran to the end. Re-running
skips steps already done with the same parameters; a failed step stops the run with the notebook and
the cell that failed. :func:`notebook_setup` is the one setup call of every notebook.

The profiles:

- ``quick``: a tiny synthetic set, 2 folds, 1 epoch: the notebook tests (seconds per step).
- ``demo``: the synthetic demo preset, 3 folds, an ImageNet-pretrained EfficientNet-Lite0 over
  spectrogram images and a raw-EEG 1-D model (``make demo``, about 13 minutes on 2 CPU cores).
- ``full``: real competition data (``--data``), 5 folds, longer training, the B0-B2 family.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

import hmslib
from hmslib._checks import check_option, write_json_atomic
from hmslib.config import ModelSpec, Profile, get_profile
from hmslib.constants import SFREQ

#: The notebooks of a run, in order.
NOTEBOOKS = (
    "01_eda",
    "02_preprocess",
    "03_train",
    "04_oof_analysis",
    "05_ensemble",
    "06_submission",
    "07_score_recording",
)


class StepFailed(RuntimeError):
    """A notebook of the run raised; the message names the notebook, the cell and the error."""


# --------------------------------------------------------------------------------------------------
# paths
# --------------------------------------------------------------------------------------------------


def repo_root() -> Path:
    """The checkout that holds ``notebooks/`` (found from the installed package, else the cwd)."""
    here = Path(hmslib.__file__).resolve().parents[1]
    return here if (here / "notebooks").is_dir() else Path.cwd()


def notebooks_dir() -> Path:
    """Folder of the project notebooks."""
    folder = repo_root() / "notebooks"
    if not (folder / f"{NOTEBOOKS[0]}.ipynb").is_file():
        raise FileNotFoundError(f"{folder}: the project notebooks are not there ({NOTEBOOKS[0]}.ipynb missing)")
    return folder


def default_run_dir(profile: str = "demo") -> Path:
    """``<repo>/outputs/<profile>``: where a run writes when no ``--out`` is given."""
    return repo_root() / "outputs" / profile


def resolve_paths(
    data_dir: str | os.PathLike | None = None,
    run_dir: str | os.PathLike | None = None,
    *,
    profile: str = "demo",
    seed: int = 0,
) -> tuple[Path, Path]:
    """Resolve a notebook's ``data_dir`` / ``run_dir`` parameters to absolute folders.

    ``None`` means the profile's defaults: ``outputs/<profile>`` for the run and, for the data, the
    synthetic data set inside it, generated on first use. Relative paths are taken from the repository
    root, so a notebook gives the same answer run from the root or from ``notebooks/``.

    Returns
    -------
    (data_dir, run_dir) : tuple of pathlib.Path
    """
    prof = get_profile(profile)
    root = repo_root()
    run = Path(run_dir) if run_dir else default_run_dir(profile)
    run = run if run.is_absolute() else root / run
    if data_dir:
        data = Path(data_dir)
        data = data if data.is_absolute() else root / data
    else:
        data = run / "data"
        if not (data / "train.csv").is_file():
            from hmslib.synthetic import generate

            generate(data, preset=prof.synth_preset, seed=seed, n_patients=prof.synth_patients)
    run.mkdir(parents=True, exist_ok=True)
    return data, run


class NotebookRun(NamedTuple):
    """What a notebook's setup cell gets: the folders it reads and writes."""

    data_dir: Path
    run_dir: Path
    figures: Path


def notebook_setup(
    data_dir: str | os.PathLike | None = None,
    run_dir: str | os.PathLike | None = None,
    *,
    profile: str = "demo",
    seed: int = 0,
) -> NotebookRun:
    """The setup of every pipeline notebook: resolve the folders, make ``figures/``, say where.

    Parameters are as :func:`resolve_paths`.

    Returns
    -------
    NotebookRun
        ``data_dir``, ``run_dir`` and ``figures`` (``<run_dir>/figures``, created).
    """
    data, run = resolve_paths(data_dir, run_dir, profile=profile, seed=seed)
    figures = run / "figures"
    figures.mkdir(exist_ok=True)
    print("data:", data)
    print("run: ", run)
    return NotebookRun(data, run, figures)


def samples_dir() -> Path:
    """The real competition samples: ``$HMS_SAMPLES``, else ``../shared/hms-samples`` beside the
    repository (they may be absent)."""
    return Path(os.environ.get("HMS_SAMPLES", repo_root().parent / "shared" / "hms-samples"))


#: The real labelled EEG of the samples: 90 s in which three experts called every window a seizure.
EXAMPLE_EEG_ID = 1628180742


class ExampleRecording(NamedTuple):
    """A recording made of labelled EEGs laid end to end (:func:`example_recording`)."""

    source: str
    eeg: np.ndarray
    labels: pd.DataFrame
    starts_s: dict[int, float]
    prior_rows: pd.DataFrame


def example_recording(samples: str | os.PathLike | None = None) -> ExampleRecording:
    """A recording with expert labels to score: the real seizure sample, or synthetic EEGs.

    Parameters
    ----------
    samples : path, optional
        The real competition samples (default :func:`samples_dir`). With them, the recording is
        the real EEG 1628180742 and its 9 labelled windows; without them, the EEGs of a small
        synthetic data set (written once under ``outputs/recording_demo_data``) laid end to end.

    Returns
    -------
    ExampleRecording
        ``source`` (what it is), ``eeg`` float32 ``(20, samples)`` µV at 200 Hz, ``labels`` (the
        train.csv rows of its EEGs), ``starts_s`` (``eeg_id`` -> where that EEG starts, seconds)
        and ``prior_rows`` (label rows to take a class prior from).
    """
    from hmslib import io

    samples = Path(samples) if samples else samples_dir()
    if (samples / "train.csv").is_file():
        data_dir, source = samples, "real seizure sample"
        label_rows = io.read_train_csv(data_dir).query(f"eeg_id == {EXAMPLE_EEG_ID}")
        prior_rows = pd.read_csv(samples / "labels" / "train_rows_10plus_votes.csv")
    else:
        from hmslib.synthetic import generate

        data_dir, source = repo_root() / "outputs" / "recording_demo_data", "synthetic EEGs"
        if not (data_dir / "train.csv").is_file():
            generate(data_dir, preset="small", n_patients=3, progress=False)
        label_rows = prior_rows = io.read_train_csv(data_dir)
    eeg_ids = label_rows.eeg_id.unique()
    parts = [io.load_eeg(data_dir, eeg_id) for eeg_id in eeg_ids]
    starts = np.cumsum([0] + [x.shape[1] for x in parts[:-1]]) / SFREQ
    return ExampleRecording(
        source,
        np.concatenate(parts, axis=1),
        label_rows,
        dict(zip(eeg_ids.tolist(), starts.tolist(), strict=True)),
        prior_rows,
    )


# --------------------------------------------------------------------------------------------------
# steps
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One notebook execution of a run."""

    key: str
    notebook: str
    parameters: dict

    def digest(self) -> str:
        """Hash of the notebook name, its parameters and the notebook's source."""
        source = (notebooks_dir() / f"{self.notebook}.ipynb").read_bytes()
        blob = json.dumps({"nb": self.notebook, "p": self.parameters}, sort_keys=True).encode()
        return hashlib.sha256(blob + source).hexdigest()[:16]


def plan_steps(profile: Profile, data_dir: Path, run_dir: Path, models: tuple[ModelSpec, ...]) -> list[Step]:
    """The ordered notebook executions of a run."""
    common = {"data_dir": str(data_dir), "run_dir": str(run_dir), "seed": profile.seed,
              "profile": profile.name}  # fmt: skip
    reprs = sorted({m.representation for m in models})
    steps = [
        Step("01_eda", "01_eda", common),
        Step("02_preprocess", "02_preprocess", {**common, "representations": reprs}),
    ]
    for spec in models:
        for fold in range(profile.n_folds):
            params = {**common, **asdict(spec), "fold": fold, "n_folds": profile.n_folds,
                      "device": profile.device}  # fmt: skip
            params["model_name"] = params.pop("name")
            steps.append(Step(f"03_train-{spec.name}-fold{fold}", "03_train", params))
    names = [m.name for m in models]
    steps.append(Step("04_oof_analysis", "04_oof_analysis", {**common, "models": names}))
    steps.append(Step("05_ensemble", "05_ensemble", {**common, "models": names}))
    steps.append(Step("06_submission", "06_submission", {**common, "device": profile.device}))
    steps.append(
        Step(
            "07_score_recording",
            "07_score_recording",
            {"profile": profile.name, "run_dir": str(run_dir), "device": profile.device},
        )
    )
    return steps


def _done_marker(run_dir: Path, step: Step) -> Path:
    return run_dir / ".steps" / f"{step.key}.json"


def _is_done(run_dir: Path, step: Step) -> bool:
    marker = _done_marker(run_dir, step)
    if not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text()).get("digest") == step.digest()
    except json.JSONDecodeError:
        return False


def execute_step(step: Step, run_dir: Path, *, log=print) -> float:
    """Execute one notebook with papermill into ``<run_dir>/notebooks/<key>.ipynb``.

    Returns
    -------
    float
        Wall-clock seconds.

    Raises
    ------
    StepFailed
        Naming the notebook, the failing cell (index and first line) and the error.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    source = notebooks_dir() / f"{step.notebook}.ipynb"
    executed = run_dir / "notebooks" / f"{step.key}.ipynb"
    executed.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(source), str(executed), parameters=step.parameters, kernel_name="python3",
            progress_bar=False, cwd=str(source.parent),
        )  # fmt: skip
    except PapermillExecutionError as err:
        first = next((ln for ln in err.source.splitlines() if ln.strip()), "")
        raise StepFailed(
            f"step {step.key} failed: {source.name}, cell {err.cell_index} (`{first.strip()}`): "
            f"{err.ename}: {err.evalue}\n  executed copy with the traceback: {executed}"
        ) from None
    seconds = time.perf_counter() - start
    write_json_atomic({"digest": step.digest(), "seconds": round(seconds, 1)}, _done_marker(run_dir, step))
    return seconds


def run(
    data_dir: str | os.PathLike | None = None,
    run_dir: str | os.PathLike | None = None,
    *,
    profile: str = "demo",
    models: list[str] | None = None,
    log=print,
) -> Path:
    """Run the whole pipeline; see the module docstring.

    Parameters
    ----------
    data_dir : path, optional
        A Kaggle-layout data folder; default: synthetic data written into ``<run_dir>/data``.
    run_dir : path, optional
        Output folder; default ``outputs/<profile>``.
    profile : {"quick", "demo", "full"}
        Sizes, folds and models.
    models : list of str, optional
        Train only these models of the profile (by model name or backbone).
    log : callable
        Where progress lines go.

    Returns
    -------
    pathlib.Path
        The run folder.

    Raises
    ------
    ValueError
        Unknown profile or model, or a run folder written with another profile.
    StepFailed
        A notebook failed (the message names it and the cell).
    """
    prof = get_profile(profile)
    chosen = prof.models
    if models:
        known = sorted({m.name for m in prof.models} | {m.backbone for m in prof.models})
        for name in models:
            check_option(f"model of profile {profile!r}", name, known)
        chosen = tuple(m for m in prof.models if m.name in models or m.backbone in models)
    run_path = Path(run_dir) if run_dir else default_run_dir(profile)
    run_path = run_path.resolve()
    _check_run_config(run_path, profile, data_dir)
    log(f"hms run: profile {profile!r} -> {run_path}")
    data, run_path = resolve_paths(data_dir, run_path, profile=profile, seed=prof.seed)
    steps = plan_steps(prof, data, run_path, chosen)
    total = time.perf_counter()
    for i, step in enumerate(steps, 1):
        if _is_done(run_path, step):
            log(f"[{i}/{len(steps)}] {step.key}: done before, skipped")
            continue
        log(f"[{i}/{len(steps)}] {step.key} ...")
        seconds = execute_step(step, run_path, log=log)
        log(f"[{i}/{len(steps)}] {step.key}: {seconds:.0f} s")
    log(f"hms run: finished in {time.perf_counter() - total:.0f} s")
    _print_summary(run_path, log=log)
    return run_path


def _check_run_config(run_dir: Path, profile: str, data_dir) -> None:
    """Refuse to mix two profiles or data folders in one run folder."""
    config = {"profile": profile, "data_dir": str(Path(data_dir).resolve()) if data_dir else None,
              "hmslib": hmslib.__version__}  # fmt: skip
    path = run_dir / "run_config.json"
    if path.is_file():
        old = json.loads(path.read_text())
        for key in ("profile", "data_dir"):
            if old.get(key) != config[key]:
                raise ValueError(
                    f"{path}: this run folder was made with {key}={old.get(key)!r}, not {config[key]!r}; "
                    f"choose another --out or delete the folder"
                )
        return
    write_json_atomic(config, path)


def _print_summary(run_dir: Path, *, log=print) -> None:
    """Print where the results are and the KL table written by the ensemble/submission notebooks."""
    table = run_dir / "kl_table.csv"
    log("")
    log(f"submission: {run_dir / 'submission.csv'}")
    log(f"figures:    {run_dir / 'figures'}")
    log(f"notebooks:  {run_dir / 'notebooks'}")
    if table.is_file():
        log(f"KL table:   {table}\n")
        log(pd.read_csv(table).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
