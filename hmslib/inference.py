"""Test-set inference with a trained run: every fold checkpoint of every ensembled model, blended.

A run folder holds ``models/<model>/fold<k>.pt`` (one checkpoint per fold, each with the config that
made it) and ``ensemble.json`` (model names and weights). :func:`predict` reads a Kaggle-layout folder
(``test.csv``, ``test_eegs/``, ``test_spectrograms/``, ``sample_submission.csv``), averages each
model's folds, blends the models with the ensemble weights and writes ``submission.csv`` in the order
of ``sample_submission.csv``.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from hmslib import io
from hmslib.constants import CLASSES, PRED_COLUMNS, VOTE_COLUMNS


def fold_checkpoints(run_dir: str | os.PathLike, model_name: str) -> list[Path]:
    """The checkpoints ``models/<model_name>/fold<k>.pt`` of one model, all folds present.

    Raises
    ------
    FileNotFoundError
        The model folder is absent, or some folds of the model's ``n_folds`` have no checkpoint
        (the message lists them).
    """
    import torch

    folder = Path(run_dir) / "models" / model_name
    found = sorted(folder.glob("fold*.pt"), key=lambda p: p.name)
    found = [p for p in found if re.fullmatch(r"fold\d+\.pt", p.name)]
    if not found:
        raise FileNotFoundError(f"{folder}: no checkpoints fold<k>.pt for model {model_name!r}")
    meta = torch.load(found[0], map_location="cpu", weights_only=False)
    n_folds = int(meta["train_config"]["n_folds"])
    expected = [folder / f"fold{k}.pt" for k in range(n_folds)]
    missing = [p.name for p in expected if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{folder}: model {model_name!r} was trained with {n_folds} folds but {missing} are missing"
        )
    return expected


def load_test_windows(
    data_dir: str | os.PathLike, *, rows: pd.DataFrame | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Read the 50 s EEG and 600 s Kaggle spectrogram window of every test row.

    Parameters
    ----------
    data_dir : path
        Kaggle-layout folder with ``test_eegs/`` and ``test_spectrograms/``.
    rows : pandas.DataFrame, optional
        Rows of test.csv to read (default: all).

    Returns
    -------
    eeg : numpy.ndarray
        float32 ``(n, 20, 10000)``, µV (the first 50 s of each test EEG).
    spec : numpy.ndarray
        float32 ``(n, 4, 100, 300)``.
    """
    rows = io.read_test_csv(data_dir) if rows is None else rows
    eeg = np.stack([io.load_eeg_window(data_dir, e, 0.0, "test") for e in rows.eeg_id])
    spec = np.stack([io.load_spectrogram_window(data_dir, s, 0.0, "test") for s in rows.spectrogram_id])
    return eeg, spec


def predict_model(
    run_dir: str | os.PathLike,
    model_name: str,
    eeg: np.ndarray,
    spec: np.ndarray | None,
    *,
    device: str = "cpu",
    tta: bool = False,
    batch_size: int = 32,
) -> np.ndarray:
    """Average of the fold checkpoints' probabilities for one model: float64 ``(n, 6)``."""
    from hmslib.train import load_checkpoint, predict_windows

    probs = np.zeros((len(eeg), len(CLASSES)))
    paths = fold_checkpoints(run_dir, model_name)
    for path in paths:
        model, model_config, _ = load_checkpoint(path)
        probs += predict_windows(
            model, model_config, eeg, spec, batch_size=batch_size, device=device, tta=tta
        )
    return probs / len(paths)


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
    if len(submission) != len(sample) or (submission.eeg_id.to_numpy() != sample.eeg_id.to_numpy()).any():
        raise ValueError("submission eeg_ids differ from sample_submission.csv (ids or order)")
    values = submission[list(VOTE_COLUMNS)].to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError("submission contains NaN or infinite probabilities")
    if (values < 0).any():
        raise ValueError("submission contains negative probabilities")
    worst = np.abs(values.sum(axis=1) - 1).max()
    if worst > atol:
        raise ValueError(f"submission rows must sum to 1; worst row is off by {worst:.2e}")


def predict(
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
        Folder with test.csv, test_eegs/, test_spectrograms/, sample_submission.csv.
    run_dir : path
        A trained run (``ensemble.json`` + ``models/<model>/fold<k>.pt``).
    out : path, optional
        Where to write the submission CSV (default ``<run_dir>/submission.csv``). Each model's
        probabilities go beside it, to ``test_predictions/<model>.parquet``.
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
        Not a Kaggle-layout folder, no ``ensemble.json``, or missing fold checkpoints.
    ValueError
        The submission fails :func:`check_submission`.
    """
    import torch

    from hmslib.ensemble import blend, load_ensemble

    io.check_data_dir(data_dir, "test")
    run_dir = Path(run_dir)
    ensemble = load_ensemble(run_dir / "ensemble.json")
    models = list(ensemble.models)
    for name in models:
        fold_checkpoints(run_dir, name)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    test = io.read_test_csv(data_dir)
    per_model = {name: np.zeros((len(test), len(CLASSES))) for name in models}
    starts = range(0, len(test), chunk_size)
    for start in tqdm(starts, desc="test chunks", disable=not progress or len(starts) < 2):
        rows = test.iloc[start : start + chunk_size]
        eeg, spec = load_test_windows(data_dir, rows=rows)
        for name in models:
            per_model[name][start : start + len(rows)] = predict_model(
                run_dir, name, eeg, spec, device=device, tta=tta
            )
    out = Path(out) if out else run_dir / "submission.csv"
    for name, probs in per_model.items():
        frame = pd.DataFrame(probs, columns=list(PRED_COLUMNS)).assign(eeg_id=test.eeg_id.to_numpy())
        io.write_parquet_atomic(frame, out.parent / "test_predictions" / f"{name}.parquet")
    blended = blend(per_model, ensemble)
    blended = blended / blended.sum(axis=1, keepdims=True)
    by_id = pd.DataFrame(blended, columns=list(VOTE_COLUMNS), index=test.eeg_id.to_numpy())
    sample = io.read_sample_submission(data_dir)
    missing = sorted(set(sample.eeg_id) - set(by_id.index))
    if missing:
        raise ValueError(f"{data_dir}: sample_submission.csv has eeg_ids absent from test.csv: {missing[:5]}")
    submission = by_id.loc[sample.eeg_id].reset_index(names="eeg_id")
    check_submission(submission, sample)
    io.write_csv_atomic(submission, out)
    return submission


def main(argv: list[str] | None = None) -> int:
    """``hms predict --data DIR --models RUN_DIR --out submission.csv [--tta] [--device D]``."""
    parser = argparse.ArgumentParser(prog="hms predict", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="Kaggle-layout folder with the test files")
    parser.add_argument("--models", required=True, help="run folder with ensemble.json and models/")
    parser.add_argument("--out", default="submission.csv", help="submission CSV to write")
    parser.add_argument("--tta", action="store_true", help="average with the hemisphere-swapped input")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    args = parser.parse_args(argv)
    try:
        submission = predict(args.data, args.models, out=args.out, device=args.device, tta=args.tta)
    except (FileNotFoundError, ValueError) as err:
        print(f"hms predict: {err}", file=sys.stderr)
        return 1
    print(f"hms predict: wrote {args.out} ({len(submission)} rows)")
    return 0
