"""Prediction with a trained run: one :class:`Predictor` for test folders, recordings and the bundle.

A run folder holds ``models/<model>/fold<k>.pt`` (one checkpoint per fold, each with the config that
made it) and ``ensemble.json`` (model names, weights, an optional class bias). A :class:`Predictor`
loads them once; for each batch of 50 s windows it computes every representation the models need
once, runs every fold of every model on it (optionally also on the left/right mirrored input: test
time augmentation), averages each model's folds and blends the models with the ensemble weights.

Windows without signal (:func:`hmslib.signal.window_quality_flags`: less than half of their scalp
lead-seconds carry signal, e.g. an all-NaN or all-zero EEG) get the class prior
(:attr:`Predictor.class_prior`), never a model's guess from repaired zeros. The prior is the mean of
the ``class_prior`` stored in the loaded checkpoints (the mean vote distribution of each fold's
training rows); for checkpoints written before hmslib stored it, it is the mean vote distribution of
the run's out-of-fold rows (``oof/<model>_fold<k>.parquet``, every labelled row of the run), and
without those the uniform distribution, with a warning. :func:`predict_folder` writes, beside the
submission, ``submission_quality.csv`` (:data:`~hmslib.constants.QUALITY_COLUMNS`) and warns once
with every eeg_id that was repaired or got the prior.

``hms predict`` (:func:`predict_folder`), ``hms score-edf`` (:mod:`hmslib.scoring`), notebook 06
and the offline Kaggle bundle all predict through it, so the same window gets the same
probabilities on every path.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from hmslib import io
from hmslib._checks import check_eeg, check_number, write_csv_atomic, write_parquet_atomic
from hmslib.checkpoints import fold_paths, model_from_checkpoint, read_checkpoint, run_checkpoints
from hmslib.constants import (
    CLASSES,
    PRED_COLUMNS,
    QUALITY_COLUMNS,
    SPEC_N_FREQS,
    SPEC_REGIONS,
    SPEC_WINDOW_COLUMNS,
    VOTE_COLUMNS,
)
from hmslib.ensemble import Ensemble, blend, load_ensemble
from hmslib.labels import class_prior as votes_prior
from hmslib.models import ModelConfig, probabilities
from hmslib.representations import compute_representation, representation_info, swap_hemispheres
from hmslib.signal import WindowQuality, window_quality_flags

#: The class prior of a run with neither stored priors nor out-of-fold files: uniform.
UNIFORM_PRIOR: np.ndarray = np.full(len(CLASSES), 1.0 / len(CLASSES))


def resolve_device(name: str = "auto", *, local_rank: int = 0) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cuda"`` without a GPU is an error."""
    if name not in ("auto", "cpu", "cuda") and not name.startswith("cuda:"):
        raise ValueError(f"unknown device {name!r}; expected one of ['auto', 'cpu', 'cuda']")
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    return torch.device(name if ":" in name else f"cuda:{local_rank}")


def predict_features(
    model: nn.Module, model_config: ModelConfig, x: torch.Tensor, *, tta: bool = False
) -> torch.Tensor:
    """Probabilities ``(batch, 6)`` of one model for a batch of its representation.

    Parameters
    ----------
    model : torch.nn.Module
        In eval mode, on ``x``'s device.
    model_config : ModelConfig
        Its representation (for the mirror) and output mapping.
    x : torch.Tensor
        ``(batch, *shape)`` of ``model_config.representation``.
    tta : bool
        Average with the prediction of the left/right mirrored input.

    Returns
    -------
    torch.Tensor
        float32 ``(batch, 6)``.
    """
    probs = probabilities(model(x), model_config.output)
    if tta:
        mirrored = swap_hemispheres(x, model_config.representation)
        probs = 0.5 * (probs + probabilities(model(mirrored), model_config.output))
    return probs


def _run_prior(run_dir: Path, folds: dict, priors: list) -> np.ndarray:
    """The class prior of a run: the mean of its checkpoints' ``class_prior``; for checkpoints
    without one (written before hmslib stored it), the mean vote distribution of the run's OOF rows
    of the same models, else :data:`UNIFORM_PRIOR` with a warning."""
    if priors and all(p is not None for p in priors):
        prior = np.mean(priors, axis=0)
        return prior / prior.sum()
    oof = [
        fold_paths(run_dir, name, k)["oof"] for name, models in folds.items() for k in range(len(models))
    ]
    oof = [path for path in oof if path.is_file()]
    if oof:
        rows = pd.concat([pd.read_parquet(path, columns=list(VOTE_COLUMNS)) for path in oof])
        if len(rows) and (rows.sum(axis=1) > 0).all():
            return votes_prior(rows)
    warnings.warn(
        f"{run_dir}: the checkpoints store no class_prior and the run has no out-of-fold files; "
        "windows without signal get the uniform distribution",
        UserWarning,
        stacklevel=3,
    )
    return UNIFORM_PRIOR.copy()


class Predictor:
    """A trained run loaded for prediction: every fold of every ensembled model, and the blend.

    Build it with :meth:`from_run`; call :meth:`predict` (or the predictor itself) on windows.

    Parameters
    ----------
    folds : dict of str to list of (torch.nn.Module, ModelConfig)
        Model name -> its fold models, in eval mode on ``device``.
    ensemble : Ensemble
        Weights (and bias) over exactly the models of ``folds``.
    device : torch.device
        Where the representations and models are computed.
    tta : bool
        Average every prediction with that of the mirrored input.
    class_prior : array-like, optional
        ``(6,)`` probabilities in ``CLASSES`` order given to windows without signal
        (:attr:`WindowQuality.no_signal <hmslib.signal.WindowQuality.no_signal>`); default
        :data:`UNIFORM_PRIOR`. :meth:`from_run` passes the run's prior.
    channels_last : bool
        Run the image models in the channels-last memory layout (their 4-D inputs too); the same
        numbers up to float32 rounding. ``benchmarks/bench_score_edf.py`` measures whether it pays.
    bfloat16 : bool
        Run the models under bfloat16 autocast (fast on CPUs with AMX / AVX512-BF16 and on GPUs);
        probabilities then differ from float32 by ~1e-2, so it is off by default.

    Attributes
    ----------
    representations : list of str
        The representations the models read (each computed once per batch).
    needs_spectrogram : bool
        Some model reads the Kaggle spectrogram windows.
    class_prior : numpy.ndarray
        float64 ``(6,)``: what a window without signal gets.
    """

    def __init__(
        self,
        folds: dict[str, list[tuple[nn.Module, ModelConfig]]],
        ensemble: Ensemble,
        *,
        device: torch.device,
        tta: bool = False,
        class_prior=None,
        channels_last: bool = False,
        bfloat16: bool = False,
    ) -> None:
        if tuple(folds) != tuple(ensemble.models):
            raise ValueError(
                f"Predictor: models {list(folds)} differ from the ensemble's {list(ensemble.models)}"
            )
        prior = UNIFORM_PRIOR if class_prior is None else np.asarray(class_prior, dtype=np.float64)
        if prior.shape != (len(CLASSES),) or not np.isfinite(prior).all() or (prior < 0).any() \
                or abs(prior.sum() - 1) > 1e-6:  # fmt: skip
            raise ValueError(
                f"Predictor: class_prior must be {len(CLASSES)} probabilities, got {prior.tolist()}"
            )
        self.folds = folds
        self.ensemble = ensemble
        self.device = device
        self.tta = bool(tta)
        self.class_prior = prior / prior.sum()
        self.channels_last = bool(channels_last)
        self.bfloat16 = bool(bfloat16)
        layout = torch.channels_last if self.channels_last else torch.contiguous_format
        for models in folds.values():
            for model, cfg in models:
                if representation_info(cfg.representation).kind != "raw":
                    model.to(memory_format=layout)
        self.representations = sorted(
            {cfg.representation for models in folds.values() for _, cfg in models}
        )
        self.needs_spectrogram = any(
            representation_info(r).uses_kaggle_spectrogram for r in self.representations
        )

    @classmethod
    def from_run(
        cls,
        run_dir: str | os.PathLike,
        *,
        device: str = "cpu",
        tta: bool = False,
        eeg_only: bool = False,
        channels_last: bool = False,
        bfloat16: bool = False,
    ) -> Predictor:
        """Load a run's ensemble and every fold checkpoint of its models.

        Parameters
        ----------
        run_dir : path
            A run folder with ``ensemble.json`` and ``models/<model>/fold<k>.pt``.
        device : str
            ``"cpu"``, ``"cuda"`` or ``"auto"``.
        tta : bool
            Test-time augmentation with the hemisphere mirror.
        eeg_only : bool
            Leave out, with a warning, the models that need the Kaggle spectrogram (a clinical
            recording has none), renormalising the remaining weights.
        channels_last, bfloat16 : bool
            As :class:`Predictor`.

        Raises
        ------
        FileNotFoundError
            No ``ensemble.json`` or missing fold checkpoints (the message names them).
        ValueError
            Unreadable checkpoints or ones that disagree with the run (:func:`run_checkpoints`),
            or, with ``eeg_only``, every model needs the Kaggle spectrogram.
        """
        run_dir = Path(run_dir)
        device_t = resolve_device(device)
        ensemble = load_ensemble(run_dir / "ensemble.json")
        paths = {name: run_checkpoints(run_dir, name) for name in ensemble.models}
        folds: dict[str, list[tuple[nn.Module, ModelConfig]]] = {}
        priors = []
        for name, model_paths in paths.items():
            ckpts = [(read_checkpoint(p), p) for p in model_paths]
            loaded = [model_from_checkpoint(c, p, device=device_t)[:2] for c, p in ckpts]
            representation = loaded[0][1].representation
            if eeg_only and representation_info(representation).uses_kaggle_spectrogram:
                warnings.warn(
                    f"{run_dir}: model {name!r} uses representation {representation!r}, which "
                    "needs the Kaggle spectrogram that a recording does not have; predicting "
                    "without it",
                    UserWarning,
                    stacklevel=2,
                )
                continue
            folds[name] = loaded
            priors += [c.get("class_prior") for c, _ in ckpts]
        if not folds:
            raise ValueError(
                f"{run_dir}: every model of the ensemble ({list(ensemble.models)}) needs the Kaggle "
                "spectrogram; train a model on an EEG representation to score recordings"
            )
        if len(folds) < len(ensemble.models):  # weights renormalised, temperatures kept
            ensemble = ensemble.subset(list(folds))
        prior = _run_prior(run_dir, folds, priors)
        return cls(folds, ensemble, device=device_t, tta=tta, class_prior=prior,
                   channels_last=channels_last, bfloat16=bfloat16)  # fmt: skip

    def _layout(self, x: torch.Tensor) -> torch.Tensor:
        """A 4-D input in the models' memory layout."""
        if self.channels_last and x.ndim == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def quality(self, eeg, *, batch_size: int = 256) -> WindowQuality:
        """The quality of windows (:func:`hmslib.signal.window_quality_flags`), batch by batch.

        Parameters
        ----------
        eeg : array-like
            ``(n, 20, 10000)`` µV windows (e.g. a read-only strided view).
        batch_size : int
            Windows judged at a time (bounds the temporary memory).

        Returns
        -------
        WindowQuality
            One entry per window.
        """
        check_number("batch_size", batch_size, low=1, integer=True)
        return WindowQuality.concat(
            [window_quality_flags(eeg[i : i + batch_size]) for i in range(0, len(eeg), batch_size)]
        )

    @torch.inference_mode()
    def predict_models(
        self,
        eeg,
        spec=None,
        *,
        batch_size: int = 32,
        progress: bool = False,
        quality: WindowQuality | None = None,
    ) -> dict[str, np.ndarray]:
        """Each model's probabilities (its folds averaged) for 50 s windows.

        Windows without signal (``quality.no_signal``) are not given to the models: their rows
        are :attr:`class_prior` for every model.

        Parameters
        ----------
        eeg : array-like
            float32 ``(n, 20, 10000)``: 50 s windows in µV, ``EEG_CHANNELS`` order, NaN allowed.
        spec : array-like, optional
            float32 ``(n, 4, 100, 300)`` Kaggle spectrogram windows; required when
            :attr:`needs_spectrogram`.
        batch_size : int
            Windows per forward pass.
        progress : bool
            Show a progress bar over windows.
        quality : WindowQuality, optional
            The windows' quality when the caller has it already (default: judged here, batch by
            batch).

        Returns
        -------
        dict of str to numpy.ndarray
            Model name -> float64 ``(n, 6)`` in ``CLASSES`` order.

        Raises
        ------
        ValueError
            Wrong shapes, or no spectrogram windows for a model that needs them.
        """
        check_number("batch_size", batch_size, low=1, integer=True)
        check_eeg(eeg, what="Predictor")
        n = len(eeg)
        if spec is None and self.needs_spectrogram:
            raise ValueError(
                f"Predictor: representations {self.representations} need the Kaggle spectrogram "
                "windows (spec=)"
            )
        if spec is not None:
            expected = (n, len(SPEC_REGIONS), SPEC_N_FREQS, SPEC_WINDOW_COLUMNS)
            if tuple(spec.shape) != expected:
                raise ValueError(
                    f"Predictor: spec must be of shape {expected}, got {tuple(spec.shape)}"
                )
        if quality is not None and len(quality) != n:
            raise ValueError(f"Predictor: quality of {len(quality)} windows for {n} windows")
        out = {name: np.zeros((n, len(CLASSES))) for name in self.folds}
        no_signal = np.zeros(n, dtype=bool)
        with tqdm(total=n, desc="predicting", unit="win", disable=not progress) as bar:
            for start in range(0, n, batch_size):
                part = slice(start, start + batch_size)
                # a copy: the windows may be a read-only strided view of a recording
                eeg_np = np.array(eeg[part], dtype=np.float32)
                empty = (
                    window_quality_flags(eeg_np) if quality is None else quality.select(part)
                ).no_signal
                no_signal[part] = empty
                keep = np.flatnonzero(~empty)
                bar.update(len(eeg_np))
                if len(keep) == 0:
                    continue
                if len(keep) < len(eeg_np):
                    eeg_np = eeg_np[keep]
                spec_part = None if spec is None else torch.from_numpy(
                    np.array(spec[part], dtype=np.float32)[keep]
                )
                inputs = {  # each representation once, for every fold of every model
                    r: self._layout(compute_representation(
                        r, torch.from_numpy(eeg_np), spec_part, device=self.device
                    ))  # fmt: skip
                    for r in self.representations
                }
                rows = start + keep
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bfloat16):
                    for name, models in self.folds.items():
                        for model, cfg in models:
                            x = inputs[cfg.representation]
                            probs = predict_features(model, cfg, x, tta=self.tta)
                            out[name][rows] += probs.double().cpu().numpy()
        result = {name: probs / len(self.folds[name]) for name, probs in out.items()}
        for probs in result.values():
            probs[no_signal] = self.class_prior
        return result

    def blend(self, per_model: dict[str, np.ndarray], *, no_signal=None) -> np.ndarray:
        """The ensemble's probabilities from :meth:`predict_models` output.

        Parameters
        ----------
        per_model : dict of str to numpy.ndarray
            Model name -> ``(n, 6)``.
        no_signal : array-like of bool, optional
            ``(n,)``: windows without signal, whose rows become :attr:`class_prior` (the blend's
            bias or temperatures do not apply to them).

        Returns
        -------
        numpy.ndarray
            float64 ``(n, 6)``, rows renormalised to sum to 1 in float64.
        """
        blended = blend(per_model, self.ensemble)
        blended = blended / blended.sum(axis=1, keepdims=True)
        if no_signal is not None:
            blended[np.asarray(no_signal, dtype=bool)] = self.class_prior
        return blended

    def predict(
        self,
        eeg,
        spec=None,
        *,
        batch_size: int = 32,
        progress: bool = False,
        quality: WindowQuality | None = None,
    ) -> np.ndarray:
        """The ensemble's probabilities for 50 s windows: float64 ``(n, 6)``, rows summing to 1.

        Windows without signal get :attr:`class_prior`. Parameters and errors as
        :meth:`predict_models`.
        """
        quality = self.quality(eeg) if quality is None else quality
        per_model = self.predict_models(
            eeg, spec, batch_size=batch_size, progress=progress, quality=quality
        )
        return self.blend(per_model, no_signal=quality.no_signal)

    __call__ = predict


# --------------------------------------------------------------------------------------------------
# a Kaggle-layout test folder
# --------------------------------------------------------------------------------------------------


def load_test_windows(
    data_dir: str | os.PathLike, *, rows: pd.DataFrame | None = None, with_spectrogram: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """Read the 50 s EEG (and 600 s Kaggle spectrogram) window of every test row.

    Parameters
    ----------
    data_dir : path
        Kaggle-layout folder with ``test_eegs/`` (and ``test_spectrograms/``).
    rows : pandas.DataFrame, optional
        Rows of test.csv to read (default: all).
    with_spectrogram : bool
        Also read the spectrogram windows.

    Returns
    -------
    eeg : numpy.ndarray
        float32 ``(n, 20, 10000)``, µV (the first 50 s of each test EEG).
    spec : numpy.ndarray or None
        float32 ``(n, 4, 100, 300)``, or None without ``with_spectrogram``.

    Raises
    ------
    FileNotFoundError, ValueError
        A missing or unreadable file (named).
    """
    rows = io.read_test_csv(data_dir) if rows is None else rows
    eeg = np.stack([io.load_eeg_window(data_dir, e, 0.0, "test") for e in rows.eeg_id])
    if not with_spectrogram:
        return eeg, None
    spec = np.stack(
        [io.load_spectrogram_window(data_dir, s, 0.0, "test") for s in rows.spectrogram_id]
    )
    return eeg, spec


def check_submission(submission: pd.DataFrame, sample: pd.DataFrame, *, atol: float = 1e-5) -> None:
    """Check a submission against ``sample_submission.csv``.

    Raises
    ------
    ValueError
        Different ids or order, missing or extra columns, NaN, negative values or rows that do not
        sum to 1 (within ``atol``).
    """
    expected_cols = ["eeg_id", *VOTE_COLUMNS]
    if list(submission.columns) != expected_cols:
        raise ValueError(f"submission columns {list(submission.columns)} != {expected_cols}")
    same_ids = submission.eeg_id.to_numpy() == sample.eeg_id.to_numpy()
    if len(submission) != len(sample) or not same_ids.all():
        raise ValueError("submission eeg_ids differ from sample_submission.csv (ids or order)")
    values = submission[list(VOTE_COLUMNS)].to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError("submission contains NaN or infinite probabilities")
    if (values < 0).any():
        raise ValueError("submission contains negative probabilities")
    worst = np.abs(values.sum(axis=1) - 1).max()
    if worst > atol:
        raise ValueError(f"submission rows must sum to 1; worst row is off by {worst:.2e}")


def _check_test_folder(data_dir: Path, needs_spectrogram: bool) -> pd.DataFrame:
    """test.csv after checking every file the prediction will read; errors name what is missing."""
    if not data_dir.is_dir():
        raise FileNotFoundError(f"{data_dir}: data folder does not exist")
    needed = ["test.csv", "sample_submission.csv", "test_eegs"]
    missing = [name for name in needed if not (data_dir / name).exists()]
    if missing:
        raise FileNotFoundError(
            f"{data_dir}: not a Kaggle-layout test folder, missing {missing} (expected test.csv, "
            "sample_submission.csv and test_eegs/)"
        )
    test = io.read_test_csv(data_dir)
    if needs_spectrogram:
        paths = [io.spectrogram_path(data_dir, s, "test") for s in test.spectrogram_id]
        absent = [str(p) for p in paths if not p.is_file()]
        if absent:
            raise FileNotFoundError(
                f"{data_dir}: the run's models read Kaggle spectrograms, but {len(absent)} of "
                f"{len(paths)} are missing, e.g. {absent[:3]}"
            )
    sample = io.read_sample_submission(data_dir)
    absent_ids = sorted(set(sample.eeg_id) - set(test.eeg_id))
    if absent_ids:
        raise ValueError(
            f"{data_dir}: sample_submission.csv has eeg_ids absent from test.csv: {absent_ids[:5]}"
        )
    return test


def predict_folder(
    data_dir: str | os.PathLike,
    run_dir: str | os.PathLike,
    *,
    out: str | os.PathLike | None = None,
    device: str = "auto",
    tta: bool = False,
    chunk_size: int = 256,
    progress: bool = True,
) -> pd.DataFrame:
    """Predict the test rows of a Kaggle-layout folder with a run's ensemble.

    Parameters
    ----------
    data_dir : path
        Folder with test.csv, test_eegs/, sample_submission.csv, and test_spectrograms/ when a
        model of the run reads them.
    run_dir : path
        A trained run (``ensemble.json`` + ``models/<model>/fold<k>.pt``).
    out : path, optional
        Where to write the submission CSV (default ``<run_dir>/submission.csv``). Each model's
        probabilities go beside it, to ``test_predictions/<model>.parquet``, and the quality of each
        test EEG to ``<stem>_quality.csv`` (:func:`quality_table`); a :class:`UserWarning` lists
        the eeg_ids that were repaired or given the class prior.
    device : str
        ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
    tta : bool
        Average with the hemisphere-swapped input.
    chunk_size : int
        Test rows read and predicted at a time (bounds memory).
    progress : bool
        Show a progress bar over chunks.

    Returns
    -------
    pandas.DataFrame
        The submission: ``eeg_id`` + six vote columns, in sample_submission order.

    Raises
    ------
    FileNotFoundError
        Not a Kaggle-layout test folder, spectrograms missing for a run that reads them, no
        ``ensemble.json`` or missing fold checkpoints.
    ValueError
        Checkpoints that disagree with the run, sample_submission ids absent from test.csv, or a
        submission that fails :func:`check_submission`. Nothing is written then.
    """
    data_dir = Path(data_dir)
    predictor = Predictor.from_run(run_dir, device=device, tta=tta)
    test = _check_test_folder(data_dir, predictor.needs_spectrogram)
    per_model = {name: np.zeros((len(test), len(CLASSES))) for name in predictor.folds}
    parts = []
    starts = range(0, len(test), chunk_size)
    for start in tqdm(starts, desc="test chunks", disable=not progress or len(starts) < 2):
        rows = test.iloc[start : start + chunk_size]
        eeg, spec = load_test_windows(
            data_dir, rows=rows, with_spectrogram=predictor.needs_spectrogram
        )
        parts.append(window_quality_flags(eeg))
        for name, probs in predictor.predict_models(eeg, spec, quality=parts[-1]).items():
            per_model[name][start : start + len(rows)] = probs
    quality = WindowQuality.concat(parts)
    ids = test.eeg_id.to_numpy()
    by_id = pd.DataFrame(
        predictor.blend(per_model, no_signal=quality.no_signal),
        columns=list(VOTE_COLUMNS),
        index=ids,
    )
    sample = io.read_sample_submission(data_dir)
    submission = by_id.loc[sample.eeg_id].reset_index(names="eeg_id")
    check_submission(submission, sample)
    sidecar = quality_table(ids, quality).set_index("eeg_id").loc[sample.eeg_id].reset_index()
    out = Path(out) if out else Path(run_dir) / "submission.csv"
    for name, probs in per_model.items():
        frame = pd.DataFrame(probs, columns=list(PRED_COLUMNS)).assign(eeg_id=ids)
        write_parquet_atomic(frame, out.parent / "test_predictions" / f"{name}.parquet")
    quality_path = write_csv_atomic(sidecar, quality_path_for(out), float_format="%.6g")
    write_csv_atomic(submission, out)
    _warn_quality(sidecar, quality_path)
    return submission


def quality_path_for(submission_path: str | os.PathLike) -> Path:
    """The quality sidecar of a submission: ``<stem>_quality.csv`` beside it
    (``submission.csv`` -> ``submission_quality.csv``)."""
    path = Path(submission_path)
    return path.with_name(f"{path.stem}_quality.csv")


def quality_table(eeg_ids, quality: WindowQuality) -> pd.DataFrame:
    """The quality sidecar of a submission, one row per test EEG window.

    Parameters
    ----------
    eeg_ids : array-like
        ``(n,)`` eeg_id of each window.
    quality : WindowQuality
        Their quality (:func:`hmslib.signal.window_quality_flags`).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`~hmslib.constants.QUALITY_COLUMNS`: ``nan_frac`` (share of NaN scalp
        samples), ``missing_leads`` and ``flat_leads`` (``;``-joined scalp leads entirely NaN, or
        flat for at least 5 s; a missing lead is not listed as flat), ``signal_frac`` (share of scalp
        lead-seconds carrying signal), ``repaired`` (NaN samples were filled, or leads were missing or
        flat, and the models predicted from the repaired window) and ``prior_used`` (too little
        signal: the row is the class prior).
    """
    flat = quality.flat & ~quality.missing
    prior_used = quality.no_signal
    table = pd.DataFrame(
        {
            "eeg_id": np.asarray(eeg_ids),
            "nan_frac": quality.nan_frac,
            "missing_leads": WindowQuality.lead_names(quality.missing),
            "flat_leads": WindowQuality.lead_names(flat),
            "signal_frac": quality.signal_frac,
            "repaired": ((quality.nan_frac > 0) | flat.any(axis=1)) & ~prior_used,
            "prior_used": prior_used,
        }
    )
    return table[list(QUALITY_COLUMNS)]


def _warn_quality(sidecar: pd.DataFrame, path: Path) -> None:
    """One warning listing, per eeg_id, what was repaired or got the prior."""
    lines = []
    for row in sidecar.itertuples(index=False):  # once per flagged test EEG, not a hot path
        if row.prior_used:
            lines.append(
                f"{row.eeg_id}: no usable signal ({row.signal_frac:.0%} of lead-seconds), given "
                "the class prior"
            )
        elif row.repaired:
            what = [f"{row.nan_frac:.1%} NaN filled"] if row.nan_frac > 0 else []
            what += [f"missing leads {row.missing_leads}"] if row.missing_leads else []
            what += [f"flat leads {row.flat_leads}"] if row.flat_leads else []
            lines.append(f"{row.eeg_id}: {', '.join(what)}")
    if lines:
        warnings.warn(
            f"{len(lines)} of {len(sidecar)} test EEGs were repaired or given the class prior "
            f"(details in {path}):\n  " + "\n  ".join(lines),
            UserWarning,
            stacklevel=3,
        )
