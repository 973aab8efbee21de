"""Out-of-fold (OOF) analysis: merge a model's folds, KL tables, clinical metrics (AUROC, calibration
error), confusion, calibration, worst windows.

The figures of these tables are drawn by :mod:`hmslib.viz`.

Every fold a model is trained on writes ``<run_dir>/oof/<model>_fold<k>.parquet`` with one row per
validation label window::

    label_id, eeg_id, patient_id, fold, total_votes,
    seizure_vote ... other_vote        (the experts' votes, CLASSES order)
    pred_seizure ... pred_other        (the model's probabilities, rows sum to 1)

Since each label window is validated by exactly one fold, the merged folds give one honest prediction
per window. All KL values come from :mod:`hmslib.metrics` (the competition's scorer): a KL on a subset
of rows is the mean of the per-row KL sums of :func:`hmslib.metrics.kl_rows`, which is exactly
:func:`hmslib.metrics.kaggle_kl` on those rows.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from hmslib._checks import check_number, check_votes
from hmslib.constants import (
    CLASSES,
    HIGH_AGREEMENT_VOTES,
    OOF_COLUMNS,
    PRED_COLUMNS,
    VOTE_COLUMNS,
)
from hmslib.labels import VOTE_GROUPS, total_votes, vote_group
from hmslib.metrics import calibration_bins, class_auroc, class_calibration_errors, kl_rows

_FOLD_FILE = re.compile(r"^(?P<model>.+)_fold(?P<fold>\d+)\.parquet$")
_ROW_SUM_TOL = 1e-3


# --------------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------------


def _fold_files(run_dir: str | os.PathLike) -> dict[str, dict[int, Path]]:
    """``{model: {fold: path}}`` for every ``<model>_fold<k>.parquet`` under ``run_dir/oof``."""
    oof_dir = Path(run_dir) / "oof"
    if not oof_dir.is_dir():
        raise FileNotFoundError(
            f"{oof_dir}: no OOF folder; train at least one (backbone, fold) into {run_dir} first"
        )
    found: dict[str, dict[int, Path]] = {}
    for path in sorted(oof_dir.glob("*_fold*.parquet")):
        match = _FOLD_FILE.match(path.name)
        if match:
            found.setdefault(match["model"], {})[int(match["fold"])] = path
    if not found:
        raise FileNotFoundError(f"{oof_dir}: no <model>_fold<k>.parquet files")
    return found


def oof_models(run_dir: str | os.PathLike) -> list[str]:
    """Names of the models with at least one OOF fold file in ``run_dir/oof``, sorted.

    Raises
    ------
    FileNotFoundError
        ``run_dir/oof`` is missing or holds no ``<model>_fold<k>.parquet`` file.
    """
    return sorted(_fold_files(run_dir))


def check_oof(oof: pd.DataFrame, *, what: str = "OOF table") -> None:
    """Validate an OOF table: columns present, finite probabilities summing to 1, votes usable.

    Parameters
    ----------
    oof : pandas.DataFrame
        Rows in the OOF file format (``OOF_COLUMNS``; extra columns are allowed).
    what : str
        Name used in error messages (a file path or model name).

    Raises
    ------
    ValueError
        A column is missing, a prediction is NaN/infinite/negative, a prediction row does not sum to
        1 (tolerance 1e-3) or a row has no votes.
    """
    missing = [c for c in OOF_COLUMNS if c not in oof.columns]
    if missing:
        raise ValueError(f"{what}: missing columns {missing} (expected {list(OOF_COLUMNS)})")
    p = oof[list(PRED_COLUMNS)].to_numpy(dtype=np.float64)
    bad = ~np.isfinite(p).all(axis=1) | (p < 0).any(axis=1)
    bad |= np.abs(p.sum(axis=1) - 1.0) > _ROW_SUM_TOL
    if bad.any():
        ids = oof["label_id"].to_numpy()[bad][:5].tolist()
        raise ValueError(
            f"{what}: {int(bad.sum())} rows whose predictions are not a probability distribution "
            f"(finite, >= 0, summing to 1), e.g. label_id {ids}"
        )
    check_votes(oof[list(VOTE_COLUMNS)], what=what, row_names=oof["label_id"], row_label="label_id")


def _read_fold(path: Path, fold: int) -> pd.DataFrame:
    """Read and validate one fold file; its ``fold`` column must say ``fold``."""
    try:
        df = pd.read_parquet(path)
    except Exception as err:  # pyarrow raises several types for corrupt files
        raise ValueError(f"{path}: cannot read OOF parquet ({err})") from err
    check_oof(df, what=str(path))
    folds = np.unique(df["fold"].to_numpy())
    if folds.tolist() != [fold]:
        raise ValueError(
            f"{path}: file name says fold {fold}, its 'fold' column has {folds.tolist()}"
        )
    return df


def load_oof(
    run_dir: str | os.PathLike, model_name: str | None = None, *, n_folds: int | None = None
) -> pd.DataFrame:
    """Merge the per-fold OOF files of one model (or of every model) of a run.

    Parameters
    ----------
    run_dir : str or path-like
        Run folder holding ``oof/<model>_fold<k>.parquet``.
    model_name : str, optional
        Model to load; ``None`` loads every model of the run.
    n_folds : int, optional
        Number of folds every model must have. By default it is inferred as one more than the
        largest fold index of any model in the run, so a fold missing from one model (or a gap
        such as fold0 + fold2) is an error; pass it to also catch a last fold missing from all.

    Returns
    -------
    pandas.DataFrame
        Column ``model`` followed by the OOF file columns (and any extra ones), one row per
        (model, label window), sorted by model then ``label_id``, with a fresh RangeIndex.

    Raises
    ------
    FileNotFoundError
        No OOF folder, unknown ``model_name`` (close names are suggested) or a missing fold file
        (its expected path is named).
    ValueError
        An unreadable or invalid fold file (see :func:`check_oof`), a file whose ``fold`` column
        disagrees with its name, or a ``label_id`` present in more than one fold of a model.
    """
    files = _fold_files(run_dir)
    if model_name is not None and model_name not in files:
        close = difflib.get_close_matches(model_name, list(files), n=3)
        hint = f"; did you mean {close}?" if close else ""
        raise FileNotFoundError(
            f"{Path(run_dir) / 'oof'}: no OOF files for model {model_name!r} "
            f"(models found: {sorted(files)}){hint}"
        )
    if n_folds is None:
        n_folds = 1 + max(k for folds in files.values() for k in folds)
    models = [model_name] if model_name is not None else sorted(files)
    frames = []
    for model in models:
        absent = [k for k in range(n_folds) if k not in files[model]]
        if absent:
            expected = Path(run_dir) / "oof" / f"{model}_fold{absent[0]}.parquet"
            raise FileNotFoundError(
                f"{expected}: missing; model {model!r} has OOF for folds {sorted(files[model])} "
                f"but {n_folds} folds are expected (missing {absent})"
            )
        df = pd.concat([_read_fold(files[model][k], k) for k in range(n_folds)], ignore_index=True)
        dup = df["label_id"].duplicated(keep=False)
        if dup.any():
            rows = df.loc[dup, ["label_id", "fold"]].sort_values(["label_id", "fold"])
            example = rows.groupby("label_id")["fold"].apply(list).head(3).to_dict()
            raise ValueError(
                f"model {model!r}: {int(df['label_id'].duplicated().sum())} label_id values appear "
                f"in more than one fold file (label_id -> folds: {example}); each window must be "
                "validated by exactly one fold"
            )
        df.insert(0, "model", model)
        frames.append(df.sort_values("label_id", kind="stable"))
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------------------------------


def _arrays(oof: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Votes and predictions of ``oof`` as float64 ``(n, 6)`` arrays (after validation)."""
    check_oof(oof)
    votes = oof[list(VOTE_COLUMNS)].to_numpy(dtype=np.float64)
    return votes, oof[list(PRED_COLUMNS)].to_numpy(dtype=np.float64)


def model_column(oof: pd.DataFrame) -> pd.Series:
    """Model name per row (``"model"`` column, or ``"oof"`` for a single unnamed model)."""
    if "model" in oof.columns:
        return oof["model"].astype(str)
    return pd.Series("oof", index=oof.index, name="model")


def select_model(oof: pd.DataFrame, model: str | None) -> pd.DataFrame:
    """Rows of a single model; ``model`` picks one when ``oof`` holds several."""
    names = model_column(oof)
    available = sorted(names.unique())
    if model is not None:
        if model not in available:
            raise ValueError(f"model {model!r} not in the OOF table (models: {available})")
        return oof.loc[names == model]
    if len(available) > 1:
        raise ValueError(f"the OOF table holds {len(available)} models {available}; pass model=")
    return oof


def kl_breakdown(oof: pd.DataFrame) -> pd.DataFrame:
    """KL divergence of each model overall, on high-agreement rows, per class and per vote group.

    Parameters
    ----------
    oof : pandas.DataFrame
        OOF rows of one or more models (``model`` column as written by :func:`load_oof`).

    Returns
    -------
    pandas.DataFrame
        One row per model (index ``model``) with columns ``n`` (rows), ``kl`` (all rows),
        ``kl_10plus`` (rows with >= 10 votes, the expert pool the test set resembles),
        ``kl_<class>`` for each class (contributions that sum to ``kl``, as
        :func:`hmslib.metrics.kl_per_class`) and ``kl_votes_<group>`` for each vote-count group of
        :data:`hmslib.labels.VOTE_GROUPS`. A subset without rows gives NaN. Values in nats.
    """
    votes, preds = _arrays(oof)
    terms = kl_rows(votes, preds)
    row_kl = terms.sum(axis=1)
    frame = pd.DataFrame(
        {
            "model": model_column(oof).to_numpy(),
            "kl": row_kl,
            "kl_10plus": np.where(total_votes(oof) >= HIGH_AGREEMENT_VOTES, row_kl, np.nan),
            **{f"kl_{c}": terms[:, i] for i, c in enumerate(CLASSES)},
        }
    )
    table = frame.groupby("model", sort=True).agg(
        n=("kl", "size"), **{c: (c, "mean") for c in frame.columns[1:]}
    )
    groups = frame.assign(group=vote_group(oof).to_numpy()).pivot_table(
        index="model", columns="group", values="kl", aggfunc="mean"
    )
    groups = groups.reindex(columns=[name for name, _, _ in VOTE_GROUPS])
    return table.join(groups.add_prefix("kl_votes_")).rename_axis(index="model", columns=None)


def kl_per_patient(oof: pd.DataFrame) -> pd.DataFrame:
    """KL divergence per patient (and model), worst first.

    Parameters
    ----------
    oof : pandas.DataFrame
        OOF rows of one or more models.

    Returns
    -------
    pandas.DataFrame
        Columns ``model, patient_id, n`` (rows), ``n_eegs``, ``votes`` (mean total votes) and
        ``kl`` (nats), sorted by model then ``kl`` descending.
    """
    votes, preds = _arrays(oof)
    frame = pd.DataFrame(
        {
            "model": model_column(oof).to_numpy(),
            "patient_id": oof["patient_id"].to_numpy(),
            "eeg_id": oof["eeg_id"].to_numpy(),
            "votes": votes.sum(axis=1),
            "kl": kl_rows(votes, preds).sum(axis=1),
        }
    )
    table = frame.groupby(["model", "patient_id"], sort=True).agg(
        n=("kl", "size"), n_eegs=("eeg_id", "nunique"), votes=("votes", "mean"), kl=("kl", "mean")
    )
    table = table.reset_index().sort_values(["model", "kl"], ascending=[True, False])
    return table.reset_index(drop=True)


def confusion(
    oof: pd.DataFrame, *, model: str | None = None, normalize: bool = False
) -> pd.DataFrame:
    """Confusion matrix of the predicted class (argmax) against the expert consensus (vote argmax).

    Ties in the votes or predictions go to the first class in ``CLASSES`` order.

    Parameters
    ----------
    oof : pandas.DataFrame
        OOF rows.
    model : str, optional
        Model to use when ``oof`` holds several.
    normalize : bool
        Divide each row by its total, giving the share of each consensus class predicted as each
        class (rows with no windows stay 0).

    Returns
    -------
    pandas.DataFrame
        ``(6, 6)``; index ``consensus`` and columns ``predicted``, both in ``CLASSES`` order;
        int64 counts, or float64 shares when ``normalize``.

    Raises
    ------
    ValueError
        Several models in ``oof`` and ``model`` not given, or an unknown ``model``.
    """
    votes, preds = _arrays(select_model(oof, model))
    k = len(CLASSES)
    flat = votes.argmax(axis=1) * k + preds.argmax(axis=1)
    counts = np.bincount(flat, minlength=k * k).reshape(k, k)
    matrix = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1) if normalize else counts
    return pd.DataFrame(
        matrix,
        index=pd.Index(CLASSES, name="consensus"),
        columns=pd.Index(CLASSES, name="predicted"),
    )


def reliability(oof: pd.DataFrame, n_bins: int = 10, *, model: str | None = None) -> pd.DataFrame:
    """Reliability (calibration) table: predicted probability vs observed vote share, per class.

    For each class, rows are binned by the predicted probability of that class into ``n_bins``
    equal-width bins over [0, 1] (the last bin includes 1). A calibrated model's mean prediction in
    a bin equals the mean share of expert votes for that class among the bin's windows.

    Parameters
    ----------
    oof : pandas.DataFrame
        OOF rows.
    n_bins : int
        Number of bins (>= 1).
    model : str, optional
        Model to use when ``oof`` holds several.

    Returns
    -------
    pandas.DataFrame
        ``6 * n_bins`` rows with columns ``class``, ``bin``, ``bin_lo``, ``bin_hi``, ``n`` (windows
        in the bin), ``mean_pred`` and ``observed`` (mean vote share); the means are NaN for
        empty bins.

    Raises
    ------
    ValueError
        ``n_bins < 1``, several models and no ``model``, or an unknown ``model``.
    """
    votes, preds = _arrays(select_model(oof, model))
    n, pred_sum, observed_sum = calibration_bins(votes, preds, n_bins=n_bins)
    k = len(CLASSES)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_pred = (pred_sum / n).ravel()
        observed = (observed_sum / n).ravel()
    n = n.ravel().astype(np.int64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return pd.DataFrame(
        {
            "class": np.repeat(CLASSES, n_bins),
            "bin": np.tile(np.arange(n_bins), k),
            "bin_lo": np.tile(edges[:-1], k),
            "bin_hi": np.tile(edges[1:], k),
            "n": n,
            "mean_pred": mean_pred,
            "observed": observed,
        }
    )


def worst_windows(oof: pd.DataFrame, n: int = 10, *, model: str | None = None) -> pd.DataFrame:
    """The ``n`` windows with the largest KL divergence, for looking at their EEG.

    Parameters
    ----------
    oof : pandas.DataFrame
        OOF rows.
    n : int
        Number of windows to return.
    model : str, optional
        Model to use when ``oof`` holds several.

    Returns
    -------
    pandas.DataFrame
        The OOF columns of those rows plus ``consensus`` and ``predicted`` (class names) and
        ``kl`` (nats), sorted by ``kl`` descending, with a fresh RangeIndex.
    """
    rows = select_model(oof, model)
    votes, preds = _arrays(rows)
    out = rows.assign(
        consensus=np.asarray(CLASSES)[votes.argmax(axis=1)],
        predicted=np.asarray(CLASSES)[preds.argmax(axis=1)],
        kl=kl_rows(votes, preds).sum(axis=1),
    )
    return out.sort_values("kl", ascending=False, kind="stable").head(n).reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# clinical metrics
# --------------------------------------------------------------------------------------------------


def _high_agreement_rows(oof: pd.DataFrame, min_votes: int) -> pd.DataFrame:
    check_number("min_votes", min_votes, low=0, integer=True)
    return oof.loc[total_votes(oof) >= min_votes]


def auroc_table(
    oof: pd.DataFrame,
    *,
    min_votes: int = HIGH_AGREEMENT_VOTES,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Per-class one-vs-rest AUROC of each model against the consensus, with patient intervals.

    Parameters
    ----------
    oof : pandas.DataFrame
        OOF rows of one or more models.
    min_votes : int
        Only windows with at least this many votes (the consensus of fewer votes is mostly noise;
        the clinical papers and the leaderboard score high-agreement windows).
    n_boot : int
        Patient-bootstrap draws of the intervals.
    level : float
        Coverage of the intervals.
    seed : int
        Seed of the draws (the same draws for every model: their intervals are comparable).

    Returns
    -------
    pandas.DataFrame
        Columns ``model, class`` (the six classes then ``macro``), ``auroc``, ``lo``, ``hi``,
        ``n_pos`` (:func:`hmslib.metrics.class_auroc`).
    """
    rows = _high_agreement_rows(oof, min_votes)
    names = model_column(rows)
    frames = []
    for model in sorted(model_column(oof).unique()):
        part = rows.loc[names == model]
        table = class_auroc(
            part[list(VOTE_COLUMNS)].to_numpy(np.float64),
            part[list(PRED_COLUMNS)].to_numpy(np.float64),
            groups=part["patient_id"].to_numpy(),
            n_boot=n_boot,
            level=level,
            seed=seed,
        )
        frames.append(table.reset_index().assign(model=model))
    out = pd.concat(frames, ignore_index=True)
    return out[["model", "class", "auroc", "lo", "hi", "n_pos"]]


def calibration_table(
    oof: pd.DataFrame, *, min_votes: int = 0, n_bins: int = 10
) -> pd.DataFrame:
    """Expected calibration error of each model, per class and overall.

    Parameters
    ----------
    oof : pandas.DataFrame
        OOF rows of one or more models.
    min_votes : int
        Only windows with at least this many votes (0: all).
    n_bins : int
        Equal-width probability bins (as :func:`reliability`).

    Returns
    -------
    pandas.DataFrame
        Index ``model``; columns ``ece`` (mean over classes) and ``ece_<class>``
        (:func:`hmslib.metrics.class_calibration_errors`); NaN for a model without such windows.
    """
    rows = _high_agreement_rows(oof, min_votes)
    names = model_column(rows)
    table = {}
    for model in sorted(model_column(oof).unique()):
        part = rows.loc[names == model]
        if len(part):
            errors = class_calibration_errors(*_arrays(part), n_bins=n_bins)
        else:
            errors = pd.Series(np.nan, index=list(CLASSES))
        table[model] = {"ece": errors.mean(), **errors.add_prefix("ece_").to_dict()}
    return pd.DataFrame.from_dict(table, orient="index").rename_axis("model")


def clinical_summary(
    oof: pd.DataFrame,
    *,
    min_votes: int = HIGH_AGREEMENT_VOTES,
    n_boot: int = 1000,
    seed: int = 0,
    n_bins: int = 10,
) -> pd.DataFrame:
    """Beside the KL: macro AUROC with its patient interval and the calibration error, per model.

    Parameters
    ----------
    oof : pandas.DataFrame
        OOF rows of one or more models.
    min_votes : int
        Windows with at least this many votes, for both metrics.
    n_boot, seed : int
        Patient-bootstrap draws and their seed.
    n_bins : int
        Bins of the calibration error.

    Returns
    -------
    pandas.DataFrame
        Index ``model``; columns ``auroc`` (macro over classes, one vs rest against the consensus),
        ``auroc_lo``, ``auroc_hi`` (95% patient-bootstrap interval) and ``ece``.
    """
    macro = auroc_table(oof, min_votes=min_votes, n_boot=n_boot, seed=seed)
    macro = macro[macro["class"] == "macro"].set_index("model")
    ece = calibration_table(oof, min_votes=min_votes, n_bins=n_bins)["ece"]
    out = pd.DataFrame(
        {"auroc": macro["auroc"], "auroc_lo": macro["lo"], "auroc_hi": macro["hi"], "ece": ece}
    )
    return out.rename_axis("model")
