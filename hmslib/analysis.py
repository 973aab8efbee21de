"""Out-of-fold (OOF) analysis: merge a model's folds, KL tables, confusion, calibration, worst windows.

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
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from hmslib.constants import CLASSES, PRED_COLUMNS, VOTE_COLUMNS
from hmslib.labels import HIGH_AGREEMENT_VOTES, VOTE_GROUPS, total_votes, vote_group
from hmslib.metrics import kl_rows

if TYPE_CHECKING:  # matplotlib is imported by the plot functions only, keeping inference light
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: Identifier columns of an OOF file.
OOF_ID_COLUMNS: tuple[str, ...] = ("label_id", "eeg_id", "patient_id", "fold", "total_votes")
#: Every column an OOF file must have, in file order.
OOF_COLUMNS: tuple[str, ...] = (*OOF_ID_COLUMNS, *VOTE_COLUMNS, *PRED_COLUMNS)

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
    votes = oof[list(VOTE_COLUMNS)].to_numpy(dtype=np.float64)
    if (votes < 0).any() or (votes.sum(axis=1) <= 0).any():
        rows = np.flatnonzero((votes < 0).any(axis=1) | (votes.sum(axis=1) <= 0))
        ids = oof["label_id"].to_numpy()[rows[:5]].tolist()
        raise ValueError(f"{what}: {len(rows)} rows with negative or no votes, e.g. label_id {ids}")


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


def _models(oof: pd.DataFrame) -> pd.Series:
    """Model name per row (``"model"`` column, or ``"oof"`` for a single unnamed model)."""
    if "model" in oof.columns:
        return oof["model"].astype(str)
    return pd.Series("oof", index=oof.index, name="model")


def _one_model(oof: pd.DataFrame, model: str | None) -> pd.DataFrame:
    """Rows of a single model; ``model`` picks one when ``oof`` holds several."""
    names = _models(oof)
    available = sorted(names.unique())
    if model is not None:
        if model not in available:
            raise ValueError(f"model {model!r} not in the OOF table (models: {available})")
        return oof.loc[names == model]
    if len(available) > 1:
        raise ValueError(f"the OOF table holds {len(available)} models {available}; pass model=")
    return oof


def kl_table(oof: pd.DataFrame) -> pd.DataFrame:
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
            "model": _models(oof).to_numpy(),
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
            "model": _models(oof).to_numpy(),
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
    votes, preds = _arrays(_one_model(oof, model))
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
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    votes, preds = _arrays(_one_model(oof, model))
    y = votes / votes.sum(axis=1, keepdims=True)
    k = len(CLASSES)
    bins = np.minimum((preds * n_bins).astype(np.int64), n_bins - 1)
    flat = (np.arange(k) * n_bins + bins).ravel()  # (n, 6) -> class-major bin id per entry
    size = k * n_bins
    n = np.bincount(flat, minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_pred = np.bincount(flat, weights=preds.ravel(), minlength=size) / n
        observed = np.bincount(flat, weights=y.ravel(), minlength=size) / n
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
    rows = _one_model(oof, model)
    votes, preds = _arrays(rows)
    out = rows.assign(
        consensus=np.asarray(CLASSES)[votes.argmax(axis=1)],
        predicted=np.asarray(CLASSES)[preds.argmax(axis=1)],
        kl=kl_rows(votes, preds).sum(axis=1),
    )
    return out.sort_values("kl", ascending=False, kind="stable").head(n).reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------------------------------


def _axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    """``ax`` and its figure, or a new single-axes figure."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=figsize, layout="constrained")
        return fig, ax
    return ax.figure, ax


def plot_confusion(
    oof: pd.DataFrame,
    *,
    model: str | None = None,
    normalize: bool = True,
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """Heat map of :func:`confusion` (rows: expert consensus, columns: predicted class).

    Parameters
    ----------
    oof : pandas.DataFrame
        OOF rows.
    model : str, optional
        Model to use when ``oof`` holds several.
    normalize : bool
        Show row shares (default) instead of counts; cells are annotated with both.
    ax : matplotlib.axes.Axes, optional
        Axes to draw into; a new figure is made by default.
    title : str, optional
        Axes title (default: the model name).

    Returns
    -------
    matplotlib.figure.Figure
    """
    counts = confusion(oof, model=model)
    shown = confusion(oof, model=model, normalize=True) if normalize else counts
    fig, ax = _axes(ax, (5.5, 4.8))
    image = ax.imshow(shown.to_numpy(), cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(image, ax=ax, label="share of consensus row" if normalize else "windows")
    ticks = np.arange(len(CLASSES))
    ax.set_xticks(ticks, CLASSES, rotation=45, ha="right")
    ax.set_yticks(ticks, CLASSES)
    ax.set_xlabel("predicted (argmax)")
    ax.set_ylabel("expert consensus (most votes)")
    threshold = 0.5 if normalize else 0.5 * shown.to_numpy().max()  # half the colour scale
    for (i, j), value in np.ndenumerate(shown.to_numpy()):
        text = f"{value:.2f}\n({counts.iat[i, j]})" if normalize else f"{value}"
        color = "white" if value > threshold else "black"
        ax.text(j, i, text, ha="center", va="center", fontsize=7, color=color)
    ax.set_title(title if title is not None else str(_models(_one_model(oof, model)).iat[0]))
    return fig


def plot_reliability(
    oof: pd.DataFrame, n_bins: int = 10, *, model: str | None = None, title: str | None = None
) -> Figure:
    """Reliability diagram per class: mean vote share against mean predicted probability per bin.

    Parameters
    ----------
    oof : pandas.DataFrame
        OOF rows.
    n_bins : int
        Number of probability bins, as :func:`reliability`.
    model : str, optional
        Model to use when ``oof`` holds several.
    title : str, optional
        Figure title (default: the model name).

    Returns
    -------
    matplotlib.figure.Figure
        Six panels (2 x 3), one per class, with the diagonal of perfect calibration; marker area
        grows with the number of windows in the bin; empty bins are not drawn.
    """
    import matplotlib.pyplot as plt

    table = reliability(oof, n_bins, model=model)
    fig, axes = plt.subplots(
        2, 3, figsize=(10, 6.5), sharex=True, sharey=True, layout="constrained"
    )
    sizes = 10 + 90 * np.sqrt(table["n"] / max(int(table["n"].max()), 1))
    for ax, name in zip(axes.ravel(), CLASSES, strict=True):
        rows = (table["class"] == name) & (table["n"] > 0)
        ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1)
        ax.plot(table.loc[rows, "mean_pred"], table.loc[rows, "observed"], color="C0", linewidth=1)
        ax.scatter(
            table.loc[rows, "mean_pred"], table.loc[rows, "observed"], s=sizes[rows], color="C0"
        )
        ax.set(title=name, xlim=(0, 1), ylim=(0, 1), aspect="equal")
    for ax in axes[1]:
        ax.set_xlabel("mean predicted probability")
    for ax in axes[:, 0]:
        ax.set_ylabel("observed vote share")
    fig.suptitle(title if title is not None else str(_models(_one_model(oof, model)).iat[0]))
    return fig


def plot_kl_by_group(
    oof: pd.DataFrame, *, ax: Axes | None = None, title: str | None = "KL by vote count"
) -> Figure:
    """Grouped bars of each model's KL per vote-count group, plus all rows and >= 10 votes.

    Parameters
    ----------
    oof : pandas.DataFrame
        OOF rows of one or more models.
    ax : matplotlib.axes.Axes, optional
        Axes to draw into; a new figure is made by default.
    title : str, optional
        Axes title.

    Returns
    -------
    matplotlib.figure.Figure
        One group of bars per column of :func:`kl_table` (``kl``, ``kl_10plus``, each vote group),
        one bar per model; empty groups are left blank.
    """
    table = kl_table(oof)
    columns = ["kl", "kl_10plus", *(f"kl_votes_{name}" for name, _, _ in VOTE_GROUPS)]
    labels = ["all", ">= 10 votes", *(f"{name} votes" for name, _, _ in VOTE_GROUPS)]
    fig, ax = _axes(ax, (max(6.0, 1.4 * len(columns) + 0.4 * len(table)), 4.0))
    width = 0.8 / len(table)
    x = np.arange(len(columns))
    for i, (model, row) in enumerate(table[columns].iterrows()):
        ax.bar(x + (i - (len(table) - 1) / 2) * width, row.to_numpy(), width, label=str(model))
    ax.set_xticks(x, labels)
    ax.set_ylabel("KL divergence (nats)")
    ax.legend(fontsize=8)
    if title is not None:
        ax.set_title(title)
    return fig


def plot_training_curves(
    metrics_csv_paths: Sequence[str | os.PathLike], *, title: str | None = None
) -> Figure:
    """Per-epoch training curves from one or more ``fold<k>_metrics.csv`` files.

    Every numeric column whose name contains ``loss`` is drawn in the left panel and every one
    containing ``kl`` in the right panel, against the epoch counted across stages (row 1, 2, ...
    of the file, since ``epoch`` restarts at each stage); a dotted line marks where a new
    ``stage`` starts. Lines are labelled ``<model>/<file stem>``, the model being the folder name.

    Parameters
    ----------
    metrics_csv_paths : sequence of str or path-like
        Metrics files written by :func:`hmslib.train.fit_fold`.
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        Two panels: losses and KL divergences.

    Raises
    ------
    FileNotFoundError
        A metrics file does not exist.
    ValueError
        No paths, or a file without any ``loss`` or ``kl`` column (the columns found are named).
    """
    import matplotlib.pyplot as plt

    paths = [Path(p) for p in metrics_csv_paths]
    if not paths:
        raise ValueError("metrics_csv_paths is empty; pass at least one fold<k>_metrics.csv")
    fig, (ax_loss, ax_kl) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    for i, path in enumerate(paths):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: metrics file not found")
        df = pd.read_csv(path)
        numeric = df.select_dtypes("number")
        losses = [c for c in numeric.columns if "loss" in c.lower()]
        kls = [c for c in numeric.columns if "kl" in c.lower()]
        if not losses and not kls:
            raise ValueError(
                f"{path}: no column with 'loss' or 'kl' in its name (columns: {list(df.columns)})"
            )
        x = np.arange(1, len(df) + 1)
        starts = (
            np.flatnonzero(df["stage"].diff().fillna(0).to_numpy() != 0) if "stage" in df else []
        )
        name = f"{path.parent.name}/{path.stem}"
        for ax, columns in ((ax_loss, losses), (ax_kl, kls)):
            for start in starts:
                ax.axvline(x[start] - 0.5, color=f"C{i % 10}", linestyle=":", linewidth=0.8)
            for j, column in enumerate(columns):
                style = ("-", "--", ":", "-.")[j % 4]
                ax.plot(
                    x, df[column].to_numpy(), style, color=f"C{i % 10}", label=f"{name} {column}"
                )
    for ax, label in ((ax_loss, "loss"), (ax_kl, "KL divergence (nats)")):
        ax.set_xlabel("epoch (stages in sequence)")
        ax.set_ylabel(label)
        if ax.lines:
            ax.legend(fontsize=7)
    if title is not None:
        fig.suptitle(title)
    return fig
