"""ONNX export of a trained run for deployment: every fold model, and what a deployer must compute.

``hms export RUN_DIR --out DIR`` (:func:`export_run`) writes::

    DIR/<model>/fold<k>.onnx          one graph per fold: representation -> logits, probabilities
    DIR/<model>/preprocessing.json    how to compute its input, and how its folds enter the blend
    DIR/manifest.json                 every file above with its size and SHA-256 (written last)

Each graph maps a float32 batch of the model's representation, ``(batch, *ReprInfo.shape)`` (the
batch axis is dynamic), to two outputs of shape ``(batch, 6)`` in ``CLASSES`` order: ``logits``
(what the network returns) and ``probabilities`` (the model's output mapping, softmax or
1.5-entmax, applied to them: :func:`hmslib.models.probabilities`). The representation itself --
NaN repair, montage, band-pass, clipping, spectrogram -- stays outside the graph: it is described in
``preprocessing.json`` (the input channels, sampling rate and window, the representation's name,
version, shape and band-pass/clip/divisor settings, the training recipe) and computed in Python
by :func:`hmslib.representations.compute_representation`. So are the fold average, the ensemble
weights, bias and temperatures (``ensemble`` in the JSON), the class prior a window without
signal gets, and test-time mirroring (average with the input permuted by the representation's
``mirror_permutation`` along ``mirror_axis``, as :func:`hmslib.representations.swap_hemispheres`).

The graphs are written with PyTorch's TorchScript-based exporter (``torch.onnx.export(...,
dynamo=False)``, opset :data:`ONNX_OPSET`), which needs only the ``onnx`` package (the
torch.export-based exporter would also need ``onnxscript``). Each graph is checked with
``onnx.checker`` and, unless ``verify=False``, run with onnxruntime on batches of another size
than the traced one and compared to the torch model; a difference above :data:`VERIFY_ATOL`
(+ :data:`VERIFY_RTOL` relative) is an error.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

import hmslib
from hmslib import representations as hrepr
from hmslib._checks import atomic_path, check_number, write_json_atomic
from hmslib.checkpoints import model_from_checkpoint, read_checkpoint, run_checkpoints
from hmslib.constants import CLASSES, EEG_CHANNELS, EEG_WINDOW_SAMPLES, EEG_WINDOW_SECONDS, SFREQ
from hmslib.ensemble import Ensemble, load_ensemble
from hmslib.models import ModelConfig, probabilities

#: ONNX opset of the exported graphs (onnxruntime >= 1.12 runs it).
ONNX_OPSET = 17
#: Version of the export layout (``manifest.json`` and ``preprocessing.json``).
EXPORT_FORMAT = 1
#: Name of the graph input, and of its two outputs.
INPUT_NAME = "representation"
OUTPUT_NAMES: tuple[str, str] = ("logits", "probabilities")
#: Tolerance of the onnxruntime check: ``|onnx - torch| <= VERIFY_ATOL + VERIFY_RTOL * |torch|``.
VERIFY_ATOL = 1e-4
VERIFY_RTOL = 1e-4
#: Batch sizes of the check (the graph is traced with a batch of 2, so both differ from it).
_VERIFY_BATCHES = (1, 3)
_TRACE_BATCH = 2


class _Deployed(nn.Module):
    """A trained model with its output mapping: representation -> (logits, probabilities)."""

    def __init__(self, model: nn.Module, output: str) -> None:
        super().__init__()
        self.model = model
        self.output = output

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(x).float()
        return logits, probabilities(logits, self.output)


def _require(module: str):
    """Import an optional dependency of the export, or say how to install it."""
    try:
        return __import__(module)
    except ImportError as err:
        raise ModuleNotFoundError(
            f"ONNX export needs the {module!r} package; install it with "
            "`pip install 'hmslib[export]'` (onnx and onnxruntime)"
        ) from err


def _bipolar_settings(info: hrepr.ReprInfo) -> list[dict]:
    """Montage, band-pass, clipping and scale of the representation's filtered bipolar step
    (``ReprInfo.bipolar``, the object its computation calls); [] for those that do not filter."""
    if info.bipolar is None:
        return []
    return [{
        "function": "hmslib.representations.scaled_bipolar",
        "steps": [
            "repair NaN (hmslib.signal.repair_nans)",
            "double-banana montage, pairs in the order of 'pairs'",
            "zero-phase Butterworth band-pass (forward and backward, as "
            "scipy.signal.sosfiltfilt with its default odd extension)",
            "clip to +-clip_uv microvolts (null: no clipping)",
            "divide by divisor",
        ],
        **info.bipolar.to_dict(),
    }]  # fmt: skip


def representation_parameters(name: str) -> dict:
    """What a deployer needs to compute representation ``name``: a JSON-ready description.

    Parameters
    ----------
    name : str
        A key of :data:`hmslib.representations.REPRESENTATIONS`.

    Returns
    -------
    dict
        ``name``, ``version``, ``shape`` (one window, without the batch axis), ``kind``, the inputs
        it reads (``uses_eeg``, ``uses_kaggle_spectrogram``), the layout fields of
        :class:`~hmslib.representations.ReprInfo` (``units`` = its ``mirror_names``: the chains or
        pairs along the mirrored axis, in order; ``mirror_permutation`` and ``mirror_axis``, the
        left/right mirror of test-time augmentation), ``description``, ``bipolar`` (one entry per
        :func:`~hmslib.representations.scaled_bipolar` step: montage ``pairs``, ``bandpass``
        ``low_hz``/``high_hz``/``order``, ``clip_uv`` (null: no clipping) and ``divisor``, from
        ``ReprInfo.bipolar``, the settings its computation uses; empty for those that do not
        filter) and ``compute`` (the hmslib call that computes it; steps after the filter are in ``description``).

    Raises
    ------
    ValueError
        Unknown representation (the known ones are listed).
    """
    info = hrepr.representation_info(name)
    fields = dataclasses.asdict(info)
    fields.pop("bipolar")
    fields["shape"] = list(info.shape)
    fields["units"] = list(fields.pop("mirror_names"))
    fields["mirror_permutation"] = list(info.mirror)
    fields["mirror_axis"] = -2 if info.mirror_rows else -len(info.shape)
    return {
        **fields,
        "bipolar": _bipolar_settings(info),
        "compute": f"hmslib.representations.compute_representation({name!r}, eeg, spec)",
    }


def _input_contract() -> dict:
    """The raw input every representation is computed from."""
    return {
        "eeg_channels": list(EEG_CHANNELS),
        "units": "microvolt",
        "sfreq_hz": float(SFREQ),
        "window_seconds": float(EEG_WINDOW_SECONDS),
        "window_samples": int(EEG_WINDOW_SAMPLES),
        "eeg_shape": ["batch", len(EEG_CHANNELS), int(EEG_WINDOW_SAMPLES)],
        "nan": "allowed: repaired inside the representation",
        "kaggle_spectrogram_shape": ["batch", 4, 100, 300],
    }


def _ensemble_entry(ensemble: Ensemble, name: str) -> dict:
    """This model's share of the blend, and the blend's rule."""
    i = ensemble.models.index(name)
    return {
        "models": list(ensemble.models),
        "method": ensemble.method,
        "weight": float(ensemble.weights[i]),
        "temperature": None if ensemble.temperatures is None else float(ensemble.temperatures[i]),
        "bias": None if ensemble.bias is None else ensemble.bias.tolist(),
        "rule": (
            "p_model = mean over folds of the 'probabilities' output; with a temperature T, "
            "p_model = softmax(log(max(p_model, 1e-15)) / T); p = sum over models of weight * "
            "p_model; with a bias b, p = softmax(log(max(p, 1e-15)) + b)"
        ),
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _export_graph(deployed: _Deployed, shape: tuple[int, ...], path: Path, opset: int) -> None:
    """Trace ``deployed`` with a batch of 2 and write the ONNX graph to ``path`` atomically."""
    example = torch.randn((_TRACE_BATCH, *shape), generator=torch.Generator().manual_seed(0))
    axes = {n: {0: "batch"} for n in (INPUT_NAME, *OUTPUT_NAMES)}
    with atomic_path(path) as tmp, torch.no_grad(), warnings.catch_warnings():
        # the exporter's notices about itself and about tracing shape checks are not the user's
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", message=".*feature will be removed.*")
        warnings.filterwarnings("ignore", message=".*batch_size other than 1.*GRU.*")
        torch.onnx.export(
            deployed, (example,), str(tmp), dynamo=False, opset_version=opset,
            input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES), dynamic_axes=axes,
        )  # fmt: skip
    onnx = _require("onnx")
    try:
        onnx.checker.check_model(str(path))
    except onnx.checker.ValidationError as err:
        raise RuntimeError(f"{path}: the exported graph is not valid ONNX ({err})") from err


def _verify_graph(deployed: _Deployed, shape: tuple[int, ...], path: Path) -> float:
    """Largest difference between onnxruntime and torch on random batches; raises above tolerance."""
    ort = _require("onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(1)
    worst = 0.0
    for batch in _VERIFY_BATCHES:
        x = torch.randn((batch, *shape), generator=generator)
        with torch.no_grad():
            expected = [t.numpy() for t in deployed(x)]
        got = session.run(list(OUTPUT_NAMES), {INPUT_NAME: x.numpy()})
        for name, e, g in zip(OUTPUT_NAMES, expected, got, strict=True):
            if g.shape != e.shape:
                raise RuntimeError(
                    f"{path}: onnxruntime gives {name} of shape {g.shape} for a batch of {batch}, "
                    f"torch {e.shape}"
                )
            diff = np.abs(g.astype(np.float64) - e)
            worst = max(worst, float(diff.max()))
            if not (diff <= VERIFY_ATOL + VERIFY_RTOL * np.abs(e)).all():
                raise RuntimeError(
                    f"{path}: onnxruntime {name} differ from torch by up to {diff.max():.2e} "
                    f"(tolerance {VERIFY_ATOL:g} + {VERIFY_RTOL:g} x |torch|)"
                )
    return worst


def _export_model(
    run_dir: Path,
    name: str,
    checkpoints: list[Path],
    ensemble: Ensemble,
    dest: Path,
    *,
    opset: int,
    verify: bool,
) -> tuple[list[Path], list]:
    """Export every fold of model ``name`` into ``dest``; the written files and fold priors."""
    folds, priors, written = [], [], []
    config: ModelConfig | None = None
    recipe = None
    for k, checkpoint in enumerate(checkpoints):
        ckpt = read_checkpoint(checkpoint)
        model, config, train_config = model_from_checkpoint(ckpt, checkpoint)
        recipe = train_config.recipe
        shape = hrepr.representation_info(config.representation).shape
        deployed = _Deployed(model, config.output).eval()
        graph = dest / name / f"fold{k}.onnx"
        _export_graph(deployed, shape, graph, opset)
        diff = _verify_graph(deployed, shape, graph) if verify else None
        prior = ckpt.get("class_prior")
        priors.append(prior)
        folds.append({
            "fold": k,
            "onnx": graph.name,
            "checkpoint": str(checkpoint.relative_to(run_dir)),
            "class_prior": None if prior is None else [float(v) for v in prior],
            "max_abs_diff_vs_torch": diff,
        })  # fmt: skip
        written.append(graph)
    assert config is not None and recipe is not None  # run_checkpoints returns >= 1 fold
    shape = list(hrepr.representation_info(config.representation).shape)
    meta = {
        "format": EXPORT_FORMAT,
        "model": name,
        "backbone": config.backbone,
        "kind": config.kind,
        "classes": list(CLASSES),
        "input": _input_contract(),
        "representation": representation_parameters(config.representation),
        "onnx": {
            "opset": opset,
            "exporter": "torch.onnx.export(dynamo=False)",
            "input": {"name": INPUT_NAME, "dtype": "float32", "shape": ["batch", *shape]},
            "outputs": {
                "logits": {"dtype": "float32", "shape": ["batch", len(CLASSES)]},
                "probabilities": {"dtype": "float32", "shape": ["batch", len(CLASSES)],
                                  "mapping": config.output},  # fmt: skip
            },
            "verified_with_onnxruntime": bool(verify),
            "verify_tolerance": {"atol": VERIFY_ATOL, "rtol": VERIFY_RTOL} if verify else None,
        },
        "folds": folds,
        "no_signal_rule": (
            "windows without signal (hmslib.signal.window_quality_flags) get the class prior "
            "(mean of every fold's class_prior over the run), not a model's output"
        ),
        "ensemble": _ensemble_entry(ensemble, name),
        "recipe": recipe.to_dict(),
    }
    written.append(write_json_atomic(meta, dest / name / "preprocessing.json"))
    return written, priors


def export_run(
    run_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    opset: int = ONNX_OPSET,
    verify: bool = True,
    overwrite: bool = False,
) -> Path:
    """Export every fold model of a trained run's ensemble as ONNX, with its preprocessing.

    Parameters
    ----------
    run_dir : path
        A trained run folder: ``ensemble.json`` and ``models/<model>/fold<k>.pt`` for every model
        it names (checked with :func:`hmslib.checkpoints.run_checkpoints`).
    out_dir : path
        Folder to write (absent or empty unless ``overwrite``); see the module docstring for its
        layout. It is written beside itself as ``.<name>.partial`` and renamed into place when
        every file is written, so a folder under the final name is always complete.
    opset : int
        ONNX opset (>= 13; default :data:`ONNX_OPSET`).
    verify : bool
        Run every graph with onnxruntime on batches of 1 and 3 representations and compare both
        outputs to the torch model's (needs ``onnxruntime``).
    overwrite : bool
        Replace an existing, non-empty ``out_dir``.

    Returns
    -------
    pathlib.Path
        ``out_dir/manifest.json``: ``format``, ``hmslib_version``, ``torch_version``, ``opset``,
        ``classes``, ``ensemble`` (the run's ``ensemble.json``), ``class_prior`` (the mean of the
        checkpoints' priors, or None when some checkpoint has none) and ``files`` (path relative to
        ``out_dir``, bytes, sha256 of every other file).

    Raises
    ------
    FileNotFoundError
        No run folder, no ``ensemble.json``, or missing fold checkpoints (the message names them).
    FileExistsError
        ``out_dir`` is not empty and ``overwrite`` is False.
    ValueError
        Unreadable checkpoints, ones that disagree with the run, or an opset below 13.
    ModuleNotFoundError
        ``onnx`` (or, with ``verify``, ``onnxruntime``) is not installed.
    RuntimeError
        A graph that is not valid ONNX, or whose onnxruntime outputs differ from torch's (the
        message names the file).
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    check_number("opset", opset, low=13, integer=True)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: run folder not found")
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{out_dir}: exists and is not a folder")
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{out_dir}: export folder is not empty (use overwrite / --overwrite)")
    _require("onnx")
    if verify:
        _require("onnxruntime")
    ensemble = load_ensemble(run_dir / "ensemble.json")
    # every checkpoint is checked against the run before anything is written
    checkpoints = {name: run_checkpoints(run_dir, name) for name in ensemble.models}
    staging = out_dir.with_name(f".{out_dir.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        files, priors = [], []
        for name, paths in checkpoints.items():
            written, fold_priors = _export_model(
                run_dir, name, paths, ensemble, staging, opset=opset, verify=verify
            )
            files += written
            priors += fold_priors
        have_priors = all(p is not None for p in priors)
        prior = np.mean(priors, axis=0) if have_priors else None
        manifest = {
            "format": EXPORT_FORMAT,
            "hmslib_version": hmslib.__version__,
            "torch_version": str(torch.__version__),
            "run_dir": str(run_dir.resolve()),
            "opset": opset,
            "classes": list(CLASSES),
            "ensemble": ensemble.to_dict(),
            "class_prior": None if prior is None else (prior / prior.sum()).tolist(),
            "files": [
                {"path": p.relative_to(staging).as_posix(), "bytes": p.stat().st_size,
                 "sha256": _sha256(p)}
                for p in files
            ],  # fmt: skip
        }
        write_json_atomic(manifest, staging / "manifest.json")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir / "manifest.json"
