"""The main job: run the notebooks in order with papermill, one step after another.

``hms run`` executes ``01_eda`` -> ``02_preprocess`` -> ``03_train`` (once per model and fold) ->
``04_oof_analysis`` -> ``05_ensemble`` -> ``06_submission`` with the parameters of a *profile*, saves
each executed notebook under ``<run_dir>/notebooks/``, and marks a step done only when its notebook ran
to the end. Re-running skips steps already done with the same parameters; a failed step stops the run
with the notebook and the cell that failed.

The profiles:

- ``quick``: a tiny synthetic set, 2 folds, 1 epoch: the notebook tests (seconds per step).
- ``demo``: the synthetic demo preset, 3 folds, an ImageNet-pretrained EfficientNet-Lite0 over
  spectrogram images and a raw-EEG 1-D model (``make demo``, minutes on 2 CPU cores).
- ``full``: real competition data (``--data``), 5 folds, longer training, the B0-B2 family.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import hmslib
from hmslib.io import atomic_path

NOTEBOOKS = (
    "01_eda",
    "02_preprocess",
    "03_train",
    "04_oof_analysis",
    "05_ensemble",
    "06_submission",
)


@dataclass(frozen=True)
class ModelSpec:
    """One model of a profile: the ``03_train`` parameters that differ between models."""

    name: str
    backbone: str
    repr: str
    pretrained: bool = False
    epochs: int = 3
    stage2_epochs: int = 1
    batch_size: int = 32
    lr: float = 1e-3
    max_train_samples: int | None = None


@dataclass(frozen=True)
class Profile:
    """Everything ``hms run`` needs besides the data and output folders."""

    name: str
    synth_preset: str
    synth_patients: int | None
    n_folds: int
    models: tuple[ModelSpec, ...] = field(default_factory=tuple)
    seed: int = 0
    device: str = "auto"


_DEMO_MODELS = (
    ModelSpec("effnet_lite0", "tf_efficientnet_lite0", "chain_mel", pretrained=True,
              epochs=4, stage2_epochs=2, batch_size=32, lr=1e-3),
    ModelSpec("wavenet1d", "wavenet1d", "bipolar_raw", epochs=4, stage2_epochs=2, batch_size=32, lr=2e-3),
)  # fmt: skip

PROFILES: dict[str, Profile] = {
    "quick": Profile(
        "quick", "demo", 6, 2,
        tuple(ModelSpec(m.name, m.backbone, m.repr, m.pretrained, epochs=1, stage2_epochs=1,
                        batch_size=16, lr=m.lr, max_train_samples=64) for m in _DEMO_MODELS),
    ),
    "demo": Profile("demo", "demo", None, 3, _DEMO_MODELS),
    "full": Profile(
        "full", "bench", None, 5,
        (
            ModelSpec("effnet_lite0", "tf_efficientnet_lite0", "tiles_kaggle_eeg", True, 15, 5, 32, 1e-3),
            ModelSpec("effnet_lite2", "tf_efficientnet_lite2", "mel16", True, 15, 5, 32, 1e-3),
            ModelSpec("wavenet1d", "wavenet1d", "bipolar_raw", False, 20, 5, 32, 2e-3),
        ),
    ),
}  # fmt: skip


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


def get_profile(name: str) -> Profile:
    """Look up a profile by name (``quick``, ``demo``, ``full``)."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; expected one of {sorted(PROFILES)}")
    return PROFILES[name]


def train_parameters(profile: str = "demo", **given) -> dict:
    """``03_train`` parameters: those given (not None) over the profile's model spec and fold count.

    The model spec is the profile's model whose name or backbone matches ``model_name`` or
    ``backbone`` (the first model otherwise), so ``-p fold 2`` alone trains the profile's first model.

    Returns
    -------
    dict
        ``model_name, backbone, repr, pretrained, epochs, stage2_epochs, batch_size, lr,
        max_train_samples, n_folds`` plus any other given keys.
    """
    prof = get_profile(profile)
    wanted = {given.get("model_name"), given.get("backbone")} - {None}
    spec = next((m for m in prof.models if {m.name, m.backbone} & wanted), prof.models[0])
    if wanted and not {spec.name, spec.backbone} & wanted:
        spec = ModelSpec(given.get("model_name") or str(given["backbone"]), given.get("backbone") or spec.backbone,
                         spec.repr)  # fmt: skip
    defaults = asdict(spec)
    defaults["model_name"] = defaults.pop("name")
    defaults["n_folds"] = prof.n_folds
    return {**defaults, **{k: v for k, v in given.items() if v is not None}}


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
    reprs = sorted({m.repr for m in models})
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
    with atomic_path(_done_marker(run_dir, step)) as tmp:
        tmp.write_text(json.dumps({"digest": step.digest(), "seconds": round(seconds, 1)}))
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
        known = {m.name for m in prof.models} | {m.backbone for m in prof.models}
        unknown = sorted(set(models) - known)
        if unknown:
            raise ValueError(f"unknown models {unknown} for profile {profile!r}; known: {sorted(known)}")
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
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(config, indent=2))


def _print_summary(run_dir: Path, *, log=print) -> None:
    """Print where the results are and the KL table written by the ensemble/submission notebooks."""
    table = run_dir / "kl_table.csv"
    log("")
    log(f"submission: {run_dir / 'submission.csv'}")
    log(f"figures:    {run_dir / 'figures'}")
    log(f"notebooks:  {run_dir / 'notebooks'}")
    if table.is_file():
        import pandas as pd

        log(f"KL table:   {table}\n")
        log(pd.read_csv(table).to_string(index=False, float_format=lambda v: f"{v:.4f}"))


def main(argv: list[str] | None = None) -> int:
    """``hms run [--data DIR] [--out DIR] [--profile demo|quick|full] [--backbones ...]``."""
    parser = argparse.ArgumentParser(prog="hms run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="Kaggle-layout data folder (default: synthetic demo data)")
    parser.add_argument("--out", help="run folder (default: outputs/<profile>)")
    parser.add_argument("--profile", default="demo", choices=sorted(PROFILES))
    parser.add_argument("--backbones", nargs="+", help="train only these models (names or backbones)")
    args = parser.parse_args(argv)
    try:
        run(args.data, args.out, profile=args.profile, models=args.backbones)
    except (StepFailed, ValueError, FileNotFoundError) as err:
        print(f"hms run: {err}", file=sys.stderr)
        return 1
    return 0
