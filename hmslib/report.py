"""The KL tables a run ends with: prior, floor, each model (raw and at its temperature), every
blend without and with temperature scaling, and the ensemble, with clinical metrics beside the KL.

Out of fold (every labelled window predicted by the model that did not train on its patient) and,
on synthetic data, on the test set against the expert votes kept in ``truth.csv`` -- the way the
competition's leaderboard scored a submission.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from hmslib import io
from hmslib._checks import write_csv_atomic
from hmslib.analysis import clinical_summary
from hmslib.calibration import apply_temperature
from hmslib.constants import PRED_COLUMNS, TRUE_COLUMNS, VOTE_COLUMNS
from hmslib.ensemble import (
    Ensemble,
    align_oof,
    apply_stack,
    blend,
    equal_weights,
    load_blends,
    load_ensemble,
    method_label,
    oof_frame,
)
from hmslib.labels import class_prior
from hmslib.metrics import kl_rows, kl_split, patient_bootstrap
from hmslib.synthetic import read_truth

#: Columns of the clinical metrics beside the KL (:func:`hmslib.analysis.clinical_summary`).
CLINICAL_COLUMNS = ("auroc", "auroc_lo", "auroc_hi", "ece")
#: Prefix of the rows of the blends of :func:`hmslib.ensemble.fit_blends`.
BLEND_PREFIX = "blend: "
#: File of those blends in a run (05_ensemble writes it; the test-set table scores them).
BLENDS_FILE = "blends.json"


def _temperatures(ensemble: Ensemble, blends: dict[str, Ensemble] | None) -> dict[str, float]:
    """Model -> temperature: the ensemble's, else those of a blend that has them (shared)."""
    for source in (ensemble, *(blends or {}).values()):
        if source.temperatures is not None:
            return dict(zip(source.models, source.temperatures.tolist(), strict=True))
    return {}


def oof_kl_table(
    oofs: dict[str, pd.DataFrame],
    ensemble: Ensemble,
    *,
    data_dir: str | os.PathLike,
    blends: dict[str, Ensemble] | None = None,
    comparison: pd.DataFrame | None = None,
    n_boot: int = 200,
    seed: int = 0,
    out: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """OOF KL and clinical metrics of the prior, the floor (synthetic data), each model (also at
    its fitted temperature), every blend without and with temperature, and the ensemble.

    Parameters
    ----------
    oofs : dict of str to pandas.DataFrame
        Model name -> merged OOF table (:func:`hmslib.analysis.load_oof`).
    ensemble : Ensemble
        The fitted ensemble (``ensemble.json``).
    data_dir : path
        The run's data folder (train.csv for the prior; truth.csv, when present, for the floor).
    blends : dict of str to Ensemble, optional
        :func:`hmslib.ensemble.fit_blends` output: one ``blend: <label>`` row each (without it,
        one ``equal weights`` row).
    comparison : pandas.DataFrame, optional
        :func:`hmslib.ensemble.compare_ensembles` output: its held-out KL fills the columns
        ``kl_nested`` and ``kl_nested_all`` of the model and blend rows.
    n_boot : int
        Patient-bootstrap draws of the AUROC intervals.
    seed : int
        Seed of the draws.
    out : path, optional
        Also write the table there as CSV, atomically (05_ensemble writes ``oof_kl.csv``).

    Returns
    -------
    pandas.DataFrame
        Columns ``model``, ``oof_kl`` (windows with >= 10 votes, the leaderboard-like number),
        ``oof_kl_all`` (every OOF window), in nats, in sample for the fitted rows (blends,
        temperatures, ensemble); ``kl_nested``, ``kl_nested_all`` (held out, from
        ``comparison``; NaN elsewhere); then, on the >= 10-vote windows, ``auroc`` (macro
        one-vs-rest against the consensus), ``auroc_lo``, ``auroc_hi`` (95% patient-bootstrap
        interval) and ``ece`` (class-wise expected calibration error).

    Raises
    ------
    ValueError
        OOF tables that do not align (:func:`hmslib.ensemble.align_oof`), or a model of the
        ensemble or of a blend without OOF.
    """
    names = list(oofs)
    for label, fitted in {"ensemble": ensemble, **(blends or {})}.items():
        missing = [m for m in fitted.models if m not in oofs]
        if missing:
            raise ValueError(f"{label} needs OOF of models {missing}, got {names}")
    y, preds, rows = align_oof(oofs, return_frame=True)
    by_model = dict(zip(names, preds, strict=True))
    candidates = {"prior": np.broadcast_to(class_prior(io.read_train_csv(data_dir)), y.shape)}
    truth = read_truth(data_dir, "train")
    if truth is not None:
        candidates["floor"] = truth.set_index("label_id").loc[rows.label_id, list(TRUE_COLUMNS)].to_numpy()
    candidates.update(by_model)
    for name, t in _temperatures(ensemble, blends).items():
        candidates[method_label(name, True)] = apply_temperature(by_model[name], t)
    if blends is None and len(names) > 1:
        candidates["equal weights"] = apply_stack(preds, equal_weights(len(names)), None)
    for label, fitted in (blends or {}).items():
        candidates[f"{BLEND_PREFIX}{label}"] = blend(by_model, fitted)
    candidates[f"ensemble ({ensemble.label})"] = blend(by_model, ensemble)
    votes = rows[list(VOTE_COLUMNS)].to_numpy(dtype=np.float64)
    table = pd.DataFrame(
        [(name, *kl_split(votes, p)[:2]) for name, p in candidates.items()],
        columns=["model", "oof_kl", "oof_kl_all"],
    )
    nested = pd.DataFrame(columns=["kl_nested", "kl_nested_all"], dtype=np.float64)
    if comparison is not None:
        labels = {
            label: label.removeprefix("single:") if comparison.at[label, "blend"] == "single"
            else f"{BLEND_PREFIX}{label}"
            for label in comparison.index
        }  # fmt: skip
        nested = comparison[["kl_nested", "kl_nested_all"]].rename(index=labels)
    table = table.join(nested, on="model").set_index("model")
    if len(names) == 1:  # the one-model blends are the model without and with temperature
        for temperature in (False, True):
            source = method_label(names[0], temperature)
            if source in table.index:
                target = f"{BLEND_PREFIX}{method_label('single', temperature)}"
                table.loc[table.index == target, nested.columns] = table.loc[source, nested.columns].to_numpy()
    chosen = f"{BLEND_PREFIX}{ensemble.label}"
    if chosen in table.index:  # the ensemble is that blend
        table.loc[f"ensemble ({ensemble.label})", nested.columns] = table.loc[chosen, nested.columns]
    table = table.reset_index()
    frames = pd.concat([oof_frame(rows, p, name) for name, p in candidates.items()], ignore_index=True)
    clinical = clinical_summary(frames, n_boot=n_boot, seed=seed)
    table = table.join(clinical[list(CLINICAL_COLUMNS)], on="model")
    if out is not None:
        write_csv_atomic(table, out)
    return table


def leaderboard_kl(
    run_dir: str | os.PathLike,
    data_dir: str | os.PathLike,
    submission_path: str | os.PathLike,
    *,
    n_boot: int = 1000,
) -> pd.DataFrame | None:
    """KL on the synthetic test set against the expert votes of ``truth.csv`` (None without it).

    Reads each model's test probabilities from ``test_predictions/`` beside the submission and the
    submission itself (the ensemble); with the run's ``blends.json`` (05_ensemble), also scores
    every blend and each model at its temperature on the same test windows. The test set is small
    (one window per test patient), so every row carries a patient-bootstrap 95% interval, and the
    share of the learnable gap it closes, ``(prior - model) / (prior - floor)``, with the interval
    of that ratio over the same draws.

    Parameters
    ----------
    run_dir, data_dir : path
        The run and its data folder.
    submission_path : path
        The submission scored on the test set.
    n_boot : int
        Patient-bootstrap draws of the intervals.

    Returns
    -------
    pandas.DataFrame or None
        Columns ``model, test_kl, test_kl_lo, test_kl_hi, test_share, test_share_lo,
        test_share_hi``; the row names match those of :func:`oof_kl_table`.
    """
    truth = read_truth(data_dir, "test")
    if truth is None or truth.empty:
        return None
    truth = truth.set_index("eeg_id")
    ids = truth.index.to_numpy()
    y = truth[list(VOTE_COLUMNS)].to_numpy(dtype=np.float64)
    prior = class_prior(io.read_train_csv(data_dir))

    def window_kl(p: np.ndarray) -> np.ndarray:
        return kl_rows(y, p).sum(axis=1)

    rows = {"prior": window_kl(np.broadcast_to(prior, y.shape)),
            "floor": window_kl(truth[list(TRUE_COLUMNS)].to_numpy())}  # fmt: skip
    submission_path = Path(submission_path)
    per_model = {
        path.stem: pd.read_parquet(path).set_index("eeg_id").loc[ids, list(PRED_COLUMNS)].to_numpy()
        for path in sorted((submission_path.parent / "test_predictions").glob("*.parquet"))
    }
    rows.update({name: window_kl(p) for name, p in per_model.items()})
    run_dir = Path(run_dir)
    blends = load_blends(run_dir / BLENDS_FILE) if (run_dir / BLENDS_FILE).is_file() else None
    if (run_dir / "ensemble.json").is_file():
        for name, t in _temperatures(load_ensemble(run_dir / "ensemble.json"), blends).items():
            if name in per_model:
                rows[method_label(name, True)] = window_kl(apply_temperature(per_model[name], t))
    if blends is None and len(per_model) > 1:
        rows["equal weights"] = window_kl(np.mean(list(per_model.values()), axis=0))
    for label, fitted in (blends or {}).items():
        if all(m in per_model for m in fitted.models):
            rows[f"{BLEND_PREFIX}{label}"] = window_kl(blend(per_model, fitted))
    submission = pd.read_csv(submission_path).set_index("eeg_id").loc[ids, list(VOTE_COLUMNS)]
    rows["ensemble (submitted)"] = window_kl(submission.to_numpy())
    return _test_table(rows, truth["patient_id"].to_numpy(), n_boot=n_boot)


def _test_table(rows: dict[str, np.ndarray], patients: np.ndarray, *, n_boot: int) -> pd.DataFrame:
    """Mean KL per row, its share of the prior -> floor gap, both with patient-bootstrap intervals."""
    counts, row_patient = patient_bootstrap(patients, n_boot=n_boot)
    weights = counts[:, row_patient]  # (n_boot, n_windows)
    names = list(rows)
    kl = np.stack([rows[name] for name in names])  # (n_rows, n_windows)
    drawn = (weights @ kl.T) / weights.sum(axis=1, keepdims=True)  # (n_boot, n_rows)
    prior, floor = drawn[:, names.index("prior")], drawn[:, names.index("floor")]
    with np.errstate(invalid="ignore", divide="ignore"):
        drawn_share = (prior[:, None] - drawn) / (prior - floor)[:, None]
    mean = kl.mean(axis=1)
    prior_kl, floor_kl = mean[names.index("prior")], mean[names.index("floor")]
    share = (prior_kl - mean) / (prior_kl - floor_kl)
    kl_lo, kl_hi = np.percentile(drawn, [2.5, 97.5], axis=0)
    share_lo, share_hi = np.nanpercentile(drawn_share, [2.5, 97.5], axis=0)
    return pd.DataFrame({"model": names, "test_kl": mean, "test_kl_lo": kl_lo, "test_kl_hi": kl_hi,
                         "test_share": share, "test_share_lo": share_lo, "test_share_hi": share_hi})  # fmt: skip


def run_kl_table(
    run_dir: str | os.PathLike,
    data_dir: str | os.PathLike,
    submission_path: str | os.PathLike | None = None,
    *,
    out: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """The run's final table: ``oof_kl.csv`` (from 05_ensemble) joined with the test-set KL.

    Parameters
    ----------
    run_dir, data_dir : path
        The run and its data folder.
    submission_path : path, optional
        The submission scored on the test set (default ``<run_dir>/submission.csv``).
    out : path, optional
        Also write the table there as CSV, atomically (``hms run`` prints ``kl_table.csv``).

    Returns
    -------
    pandas.DataFrame
        ``model, oof_kl, oof_kl_all``, the clinical columns of :func:`oof_kl_table` and, on
        synthetic data, ``test_kl``; the ensemble's OOF and test rows are put on one line.

    Raises
    ------
    FileNotFoundError
        No ``oof_kl.csv`` in the run (05_ensemble writes it).
    """
    run_dir = Path(run_dir)
    oof_path = run_dir / "oof_kl.csv"
    if not oof_path.is_file():
        raise FileNotFoundError(f"{oof_path}: not found; run 05_ensemble first")
    table = pd.read_csv(oof_path)
    test = leaderboard_kl(run_dir, data_dir, submission_path or run_dir / "submission.csv")
    if test is not None:
        ensemble_row = table.model.str.startswith("ensemble")
        ensemble_name = table.loc[ensemble_row, "model"].iloc[0]
        test.loc[test.model == "ensemble (submitted)", "model"] = ensemble_name
        table = table.merge(test, on="model", how="left")
    if out is not None:
        write_csv_atomic(table, out)
    return table
