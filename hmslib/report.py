"""The KL tables a run ends with: prior, floor, each model, equal weights and the ensemble.

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
from hmslib.constants import PRED_COLUMNS, TRUE_COLUMNS, VOTE_COLUMNS
from hmslib.ensemble import Ensemble, align_oof, apply_stack, equal_weights
from hmslib.labels import class_prior
from hmslib.metrics import kaggle_kl, kl_split
from hmslib.synthetic import read_truth


def oof_kl_table(
    oofs: dict[str, pd.DataFrame],
    ensemble: Ensemble,
    *,
    data_dir: str | os.PathLike,
    out: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """OOF KL of the prior, the floor (synthetic data), each model, equal weights and the ensemble.

    Parameters
    ----------
    oofs : dict of str to pandas.DataFrame
        Model name -> merged OOF table (:func:`hmslib.analysis.load_oof`).
    ensemble : Ensemble
        The fitted ensemble (``ensemble.json``).
    data_dir : path
        The run's data folder (train.csv for the prior; truth.csv, when present, for the floor).
    out : path, optional
        Also write the table there as CSV, atomically (05_ensemble writes ``oof_kl.csv``).

    Returns
    -------
    pandas.DataFrame
        Columns ``model``, ``oof_kl`` (windows with >= 10 votes, the leaderboard-like number) and
        ``oof_kl_all`` (every OOF window), nats.
    """
    names = list(oofs)
    y, preds, rows = align_oof(oofs, return_frame=True)
    candidates = {"prior": np.broadcast_to(class_prior(io.read_train_csv(data_dir)), y.shape)}
    truth = read_truth(data_dir, "train")
    if truth is not None:
        candidates["floor"] = truth.set_index("label_id").loc[rows.label_id, list(TRUE_COLUMNS)].to_numpy()
    candidates.update({name: preds[i] for i, name in enumerate(names)})
    if len(names) > 1:
        candidates["equal weights"] = apply_stack(preds, equal_weights(len(names)), None)
    ens_preds = preds[[names.index(m) for m in ensemble.models]]
    candidates[f"ensemble ({ensemble.method})"] = apply_stack(ens_preds, ensemble.weights, ensemble.bias)
    votes = rows[list(VOTE_COLUMNS)].to_numpy(dtype=np.float64)
    table = pd.DataFrame(
        [(name, *kl_split(votes, p)[:2]) for name, p in candidates.items()],
        columns=["model", "oof_kl", "oof_kl_all"],
    )
    if out is not None:
        write_csv_atomic(table, out)
    return table


def leaderboard_kl(
    run_dir: str | os.PathLike, data_dir: str | os.PathLike, submission_path: str | os.PathLike
) -> pd.DataFrame | None:
    """KL on the synthetic test set against the expert votes of ``truth.csv`` (None without it).

    Reads each model's test probabilities from ``test_predictions/`` beside the submission, and the
    submission itself (the ensemble).

    Returns
    -------
    pandas.DataFrame or None
        Columns ``model``, ``test_kl``.
    """
    truth = read_truth(data_dir, "test")
    if truth is None or truth.empty:
        return None
    truth = truth.set_index("eeg_id")
    ids = truth.index.to_numpy()
    y = truth[list(VOTE_COLUMNS)].to_numpy(dtype=np.float64)
    prior = class_prior(io.read_train_csv(data_dir))
    rows = {"prior": kaggle_kl(y, np.broadcast_to(prior, y.shape)),
            "floor": kaggle_kl(y, truth[list(TRUE_COLUMNS)].to_numpy())}  # fmt: skip
    submission_path = Path(submission_path)
    per_model = {
        path.stem: pd.read_parquet(path).set_index("eeg_id").loc[ids, list(PRED_COLUMNS)].to_numpy()
        for path in sorted((submission_path.parent / "test_predictions").glob("*.parquet"))
    }
    rows.update({name: kaggle_kl(y, p) for name, p in per_model.items()})
    if len(per_model) > 1:
        rows["equal weights"] = kaggle_kl(y, np.mean(list(per_model.values()), axis=0))
    submission = pd.read_csv(submission_path).set_index("eeg_id").loc[ids, list(VOTE_COLUMNS)]
    rows["ensemble (submitted)"] = kaggle_kl(y, submission.to_numpy())
    return pd.DataFrame({"model": list(rows), "test_kl": list(rows.values())})


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
        ``model, oof_kl, oof_kl_all`` and, on synthetic data, ``test_kl``; the ensemble's OOF and
        test rows are put on one line.

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
