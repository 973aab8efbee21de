"""Training configuration: the recipe (what is learnt) apart from the environment (where it runs).

A :class:`TrainConfig` is a :class:`Recipe` -- the model, the data sampling, the two stages, the
optimiser, the augmentations: everything that changes what a fit learns -- plus an
:class:`Environment` -- data and output folders, device, loader workers, mixed precision, resume --
which changes where and how fast it runs, not what it learns. "Is this checkpoint from the same
recipe?" is therefore ``saved.recipe == config.recipe``.

The *profiles* (``quick``, ``demo``, ``full``) name the models and sizes of a run (:data:`PROFILES`).
:func:`training_config` is the one route from a profile, a model and overrides to a
:class:`TrainConfig`: ``hms train``, ``hms run`` (through notebook 03) and the notebooks all call it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hmslib._checks import check_number, check_option, write_json_atomic
from hmslib.augment import AugmentConfig
from hmslib.datasets import UNIT_KINDS
from hmslib.models import ModelConfig, kind_of
from hmslib.representations import DEFAULT_RAW_REPR, DEFAULT_REPR

#: Where training windows come from: the feature cache, or raw windows read per batch.
SOURCES: tuple[str, ...] = ("cache", "raw")
#: What one epoch visits once: a consolidated vote group, an EEG with its averaged target, or a window.
SAMPLE_BY: tuple[str, ...] = UNIT_KINDS
#: Devices a run may ask for.
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")


# --------------------------------------------------------------------------------------------------
# recipe and environment
# --------------------------------------------------------------------------------------------------


def _from_dict(cls, d: Mapping[str, Any], what: str):
    """Build dataclass ``cls`` from a dict; unknown keys are an error naming ``what``."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"{what}: unknown keys {unknown} (known: {sorted(known)})")
    return cls(**dict(d))


@dataclass
class Recipe:
    """Everything that decides what a fit learns; saved in every checkpoint.

    Parameters
    ----------
    model : ModelConfig
        The model to build (:func:`hmslib.models.build_model`); it names the representation.
    source : {"cache", "raw"}
        Train on precomputed representations (fast) or compute them per batch from raw windows
        (slower, but band-pass and re-cut time shifts then act before the representation).
    n_folds, seed : int
        Patient-grouped folds of train.csv and the seed of everything random.
    epochs, stage2_epochs : int
        Epochs of stage 1 (all windows) and stage 2 (windows with ``min_votes_stage2`` votes or more).
    min_votes_stage2 : int
        Vote threshold of stage 2 and of the few-vote weight decay.
    stage2_lr_factor : float
        Stage 2 peak learning rate = ``lr * stage2_lr_factor``.
    batch_size : int
        Windows per optimiser step on each process.
    lr, weight_decay : float
        AdamW peak learning rate and decoupled weight decay.
    warmup : float
        Share of each stage's steps spent warming up linearly; then cosine decay to
        ``lr * min_lr_ratio``.
    min_lr_ratio : float
        Final learning rate of each stage as a share of its peak.
    grad_clip : float
        Clip the gradient norm at this value (0 = off).
    patience : int
        Stop a stage after this many epochs without a better validation KL (0 = never).
    max_train_samples : int, optional
        Use at most this many training units per epoch (quick runs).
    val_min_votes : int
        Early stopping scores, each epoch, only the validation windows with at least this many votes
        (every window when the fold has none); the others are predicted once after training, with
        the best weights, for the OOF file and the all-window KL.
    sample_by : {"group", "eeg", "window"}
        What one epoch visits once: one random labelled offset per consolidated group, one per EEG
        with the EEG's averaged target, or every labelled window (more steps per epoch; the small
        data sets of a CPU budget learn faster from all of them).
    label_smoothing : float
        Pseudo-votes added to every class before normalising the targets (0 = off).
    vote_weight : bool
        Loss weight ``min(votes / 20, 1)`` per window.
    few_vote_decay : float
        Per-epoch factor on the loss weight of windows with fewer than ``min_votes_stage2`` votes.
    augment : AugmentConfig
        Augmentations (:mod:`hmslib.augment`).

    Raises
    ------
    ValueError
        A value out of range or not among the choices; the message names the field.
    """

    model: ModelConfig
    source: str = "cache"
    n_folds: int = 5
    seed: int = 0
    epochs: int = 10
    stage2_epochs: int = 3
    min_votes_stage2: int = 10
    stage2_lr_factor: float = 0.5
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-2
    warmup: float = 0.1
    min_lr_ratio: float = 0.01
    grad_clip: float = 1.0
    patience: int = 3
    max_train_samples: int | None = None
    val_min_votes: int = 10
    sample_by: str = "group"
    label_smoothing: float = 0.0
    vote_weight: bool = False
    few_vote_decay: float = 1.0
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        if isinstance(self.model, Mapping):
            self.model = ModelConfig.from_dict(self.model)
        if isinstance(self.augment, Mapping):
            self.augment = AugmentConfig.from_dict(self.augment)
        if not self.model.representation:
            raise ValueError(
                f"Recipe: model {self.model.name!r} names no representation "
                "(model.representation)"
            )
        check_option("Recipe.source", self.source, SOURCES)
        check_option("Recipe.sample_by", self.sample_by, SAMPLE_BY)
        for name in ("n_folds", "batch_size"):
            check_number(f"Recipe.{name}", getattr(self, name), low=1, integer=True)
        for name in ("epochs", "stage2_epochs", "patience", "min_votes_stage2", "val_min_votes"):
            check_number(f"Recipe.{name}", getattr(self, name), low=0, integer=True)
        for name in ("weight_decay", "grad_clip", "label_smoothing"):
            check_number(f"Recipe.{name}", getattr(self, name), low=0)
        for name in ("lr", "stage2_lr_factor"):
            check_number(f"Recipe.{name}", getattr(self, name), low=0, low_open=True)
        for name in ("warmup", "min_lr_ratio"):
            check_number(f"Recipe.{name}", getattr(self, name), low=0, high=1)
        check_number("Recipe.few_vote_decay", self.few_vote_decay, low=0, high=1, low_open=True)
        if self.epochs + self.stage2_epochs < 1:
            raise ValueError("Recipe: epochs + stage2_epochs must be >= 1")
        if self.max_train_samples is not None:
            check_number("Recipe.max_train_samples", self.max_train_samples, low=1, integer=True)

    def to_dict(self) -> dict:
        """Plain JSON-ready dict (the model and augmentation configs nested)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["model"] = self.model.to_dict()
        out["augment"] = self.augment.to_dict()
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Recipe:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        return _from_dict(cls, d, "Recipe")


@dataclass
class Environment:
    """Where and how a fit runs; nothing here changes what it learns (on CPU).

    Parameters
    ----------
    data_dir : str
        Kaggle-layout folder (real or synthetic) with train.csv and train_eegs/.
    out_dir : str
        Run folder; checkpoints go to ``models/<model.name>/``, OOF files to ``oof/``.
    cache_dir : str, optional
        Feature cache of the model's representation (``source="cache"``): one complete cache
        folder, or a folder of caches where the right one is reused or built; None =
        ``<out_dir>/cache``.
    device : {"auto", "cpu", "cuda"}
        "auto" = CUDA when available.
    num_workers : int
        DataLoader worker processes (and cache-building processes).
    amp, channels_last : bool
        Mixed precision and channels-last memory format (applied on CUDA only).
    resume : bool
        Continue from ``fold<k>_last.pt`` when present (a finished fold is returned as is).
    """

    data_dir: str
    out_dir: str = "outputs/run"
    cache_dir: str | None = None
    device: str = "auto"
    num_workers: int = 0
    amp: bool = True
    channels_last: bool = True
    resume: bool = True

    def __post_init__(self) -> None:
        self.data_dir = str(self.data_dir)
        self.out_dir = str(self.out_dir)
        self.cache_dir = None if self.cache_dir is None else str(self.cache_dir)
        check_option("Environment.device", self.device, DEVICES)
        check_number("Environment.num_workers", self.num_workers, low=0, integer=True)

    def to_dict(self) -> dict:
        """Plain JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Environment:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        return _from_dict(cls, d, "Environment")


@dataclass
class TrainConfig:
    """Everything :func:`hmslib.train.fit_fold` needs: a recipe and an environment.

    Written as ``models/<name>/train_config.json`` and into every checkpoint.
    """

    recipe: Recipe
    env: Environment

    def __post_init__(self) -> None:
        if isinstance(self.recipe, Mapping):
            self.recipe = Recipe.from_dict(self.recipe)
        if isinstance(self.env, Mapping):
            self.env = Environment.from_dict(self.env)

    @property
    def model(self) -> ModelConfig:
        """The recipe's model."""
        return self.recipe.model

    def to_dict(self) -> dict:
        """``{"recipe": ..., "env": ...}``, JSON-ready."""
        return {"recipe": self.recipe.to_dict(), "env": self.env.to_dict()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`.

        Raises
        ------
        ValueError
            Keys other than ``recipe`` and ``env``, unknown fields, or invalid values.
        """
        if not isinstance(d, Mapping) or set(d) != {"recipe", "env"}:
            found = sorted(d) if isinstance(d, Mapping) else type(d).__name__
            raise ValueError(f"TrainConfig: expected keys ['env', 'recipe'], found {found}")
        return cls(Recipe.from_dict(d["recipe"]), Environment.from_dict(d["env"]))

    def to_json(self, path: str | os.PathLike) -> Path:
        """Write :meth:`to_dict` as JSON atomically."""
        return write_json_atomic(self.to_dict(), path)

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> TrainConfig:
        """Read a config written by :meth:`to_json`; errors name the file."""
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: training config not found") from None
        except (ValueError, TypeError) as err:
            raise ValueError(f"{path}: not a valid TrainConfig ({err})") from err


def apply_overrides(recipe: Recipe, overrides: Mapping[str, Any]) -> Recipe:
    """A copy of ``recipe`` with dotted fields replaced: ``{"lr": 2e-3, "model.drop_rate": 0.1,
    "augment.mixup": 0.5}``; None values are skipped.

    Raises
    ------
    ValueError
        An unknown field (the known ones are listed) or an invalid value.
    """
    d = recipe.to_dict()
    for key, value in overrides.items():
        if value is None:
            continue
        *parents, leaf = key.split(".")
        target = d
        for part in parents:
            if not isinstance(target.get(part), dict):
                raise ValueError(
                    f"override {key}: {part!r} is not a nested config (try model.* or augment.*)"
                )
            target = target[part]
        if leaf not in target:
            raise ValueError(f"override {key}: unknown field {leaf!r} (known: {sorted(target)})")
        target[leaf] = value
    return Recipe.from_dict(d)


# --------------------------------------------------------------------------------------------------
# profiles
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    """One model of a profile: its name, network, input and the training sizes that differ."""

    name: str
    backbone: str
    representation: str
    pretrained: bool = False
    epochs: int = 3
    stage2_epochs: int = 1
    batch_size: int = 32
    lr: float = 1e-3
    max_train_samples: int | None = None

    def recipe(self, *, n_folds: int, seed: int) -> Recipe:
        """The :class:`Recipe` of this model (defaults for every field the spec does not set)."""
        model = ModelConfig(
            name=self.name,
            backbone=self.backbone,
            representation=self.representation,
            pretrained=self.pretrained,
        )
        return Recipe(
            model=model,
            n_folds=n_folds,
            seed=seed,
            epochs=self.epochs,
            stage2_epochs=self.stage2_epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            max_train_samples=self.max_train_samples,
        )


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


# Demo epochs, measured on the 48-patient preset now called ``small`` (2 cores, test-set share of the gap
# prior -> floor closed by the CNN / the ensemble, 32 test EEGs): 4 + 2 epochs 0.41 / 0.36 in 3.4 min,
# 8 + 3 0.53 / 0.46 in 4.3 min, 14 + 4 0.62 / 0.58 in 5.4 min, 24 + 6 0.64 / 0.58 in 5.3 min (early
# stopping, patience 3). Training data then proved the larger lever (14 + 4, idle 2 cores, wall time with
# generation): 48 patients 0.45 / 0.46 on 160 test EEGs, 96 patients 0.54 / 0.54 (320, 9.4 min), 144
# patients 0.57 / 0.61 (480, 13.8 min) and 0.70 / 0.71 (240, 13.4 min). Generator version 3 (patterns of
# modest voltage) is harder: 144 patients 0.55 / 0.59 (240, 11.1 min); as shipped in the ``demo`` preset,
# 176 patients 0.65 / 0.64 (240, 14.0 min). Generator version 4 (blunter discharges): 0.60 / 0.61.
_DEMO_MODELS = (
    ModelSpec("effnet_lite0", "tf_efficientnet_lite0", "chain_mel", pretrained=True,
              epochs=14, stage2_epochs=4, batch_size=32, lr=1e-3),
    ModelSpec("wavenet1d", "wavenet1d", "bipolar_raw", epochs=14, stage2_epochs=4, batch_size=32, lr=2e-3),
)  # fmt: skip

#: The named runs: ``quick`` (tiny, for tests), ``demo`` (``make demo``), ``full`` (real data).
PROFILES: dict[str, Profile] = {
    "quick": Profile(
        "quick", "small", 6, 2,
        tuple(dataclasses.replace(m, epochs=1, stage2_epochs=1, batch_size=16, max_train_samples=64)
              for m in _DEMO_MODELS),
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


def get_profile(name: str) -> Profile:
    """Look up a profile by name (``quick``, ``demo``, ``full``)."""
    check_option("profile", name, sorted(PROFILES))
    return PROFILES[name]


#: Backbones with a representation of their own (SPaRCNet reads the standardised centre 10 s, as the
#: study behind the HMS data did); the others get their kind's default.
BACKBONE_REPRS: dict[str, str] = {"sparcnet": "bipolar_center_z"}


def model_spec(profile: str, model: str | None = None, *, backbone: str | None = None) -> ModelSpec:
    """The profile's model named ``model`` (by model name or backbone), else a new spec.

    Parameters
    ----------
    profile : str
        Profile name.
    model : str, optional
        Model name (folder under ``models/``) or backbone of one of the profile's models; None
        with no ``backbone``: the profile's first model.
    backbone : str, optional
        Network of a model the profile does not have: a new spec named ``model`` (default: the
        backbone), over the backbone's representation in :data:`BACKBONE_REPRS`, else the
        default representation of its kind.

    Returns
    -------
    ModelSpec
    """
    prof = get_profile(profile)
    wanted = {model, backbone} - {None}
    for spec in prof.models:
        if {spec.name, spec.backbone} & wanted and (backbone in (None, spec.backbone)):
            renamed = model is not None and model not in (spec.name, spec.backbone)
            return dataclasses.replace(spec, name=model) if renamed else spec
    if not wanted:
        return prof.models[0]
    if backbone is None:
        known = sorted({m.name for m in prof.models} | {m.backbone for m in prof.models})
        check_option(f"model of profile {profile!r}", model, known)
    default = BACKBONE_REPRS.get(
        backbone, DEFAULT_RAW_REPR if kind_of(backbone) == "raw" else DEFAULT_REPR
    )
    return ModelSpec(model or backbone, backbone, default)


def training_config(
    profile: str = "demo",
    *,
    model: str | None = None,
    backbone: str | None = None,
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    overrides: Mapping[str, Any] | None = None,
    recipe: Recipe | None = None,
    cache_dir: str | os.PathLike | None = None,
    device: str = "auto",
    num_workers: int = 0,
    resume: bool = True,
) -> TrainConfig:
    """The one route to a :class:`TrainConfig`, used by ``hms train``, ``hms run`` and notebook 03.

    Parameters
    ----------
    profile : str
        Profile whose model and fold count are the starting point.
    model, backbone : str, optional
        Which model (see :func:`model_spec`).
    data_dir, out_dir : path
        Data folder and run folder.
    overrides : mapping, optional
        Recipe fields to change, dotted for nested ones (:func:`apply_overrides`): e.g.
        ``{"epochs": 2, "model.representation": "mel16", "augment.mixup": 0.5}``; None values
        keep the profile's.
    recipe : Recipe, optional
        Start from this recipe instead of the profile's (e.g. a saved ``train_config.json``).
    cache_dir, device, num_workers, resume
        The :class:`Environment`.

    Returns
    -------
    TrainConfig

    Raises
    ------
    ValueError
        Unknown profile, model, backbone or field, or invalid values.
    """
    if recipe is None:
        prof = get_profile(profile)
        recipe = model_spec(profile, model, backbone=backbone).recipe(
            n_folds=prof.n_folds, seed=prof.seed
        )
    recipe = apply_overrides(recipe, overrides or {})
    env = Environment(
        data_dir=str(data_dir),
        out_dir=str(out_dir),
        cache_dir=None if cache_dir is None else str(cache_dir),
        device=device,
        num_workers=num_workers,
        resume=resume,
    )
    return TrainConfig(recipe, env)
