"""Writing a data set: the Kaggle layout, ``truth.csv``, ``synthetic.json`` and the Bayes floor."""

from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hmslib._checks import atomic_path, check_option, write_csv_atomic, write_json_atomic
from hmslib.constants import (
    CLASSES,
    EEG_CHANNELS,
    SCALP_CHANNELS,
    SPEC_COLUMNS,
    TEST_COLUMNS,
    TRAIN_COLUMNS,
    TRUE_COLUMNS,
    VOTE_COLUMNS,
)
from hmslib.io import read_train_csv
from hmslib.labels import class_prior
from hmslib.metrics import kl_split
from hmslib.synthetic.cohort import Layout, draw_layout
from hmslib.synthetic.patterns import PLUS_MODIFIERS
from hmslib.synthetic.render import render_session


@dataclass(frozen=True)
class SynthPreset:
    """Size of a synthetic data set.

    Attributes
    ----------
    n_patients : int
        Train patients (each with 1-3 sessions of 1-4 EEGs).
    n_test_eegs : int
        Test EEGs (one per test patient), scaled with ``n_patients`` when that is overridden.
    max_windows : int
        Most labelled windows per EEG.
    description : str
        One line for ``hms synth --help``.
    """

    n_patients: int
    n_test_eegs: int
    max_windows: int
    description: str

#: Named sizes: ``small`` for quick comparisons (the ablation table), ``demo`` trains end to end on 2 CPU
#: cores in under 15 minutes, ``bench`` ranks models.
PRESETS: dict[str, SynthPreset] = {
    "small": SynthPreset(48, 160, 16, "48 patients, ~150 EEGs, ~850 labelled windows, 160 test EEGs"),
    "demo": SynthPreset(176, 240, 16, "176 patients, ~450 EEGs, ~2,800 labelled windows, 240 test EEGs"),
    "bench": SynthPreset(400, 240, 20, "400 patients, ~1,100 EEGs, ~6,300 windows, 240 test EEGs"),
}

#: Version of the generating model, stored in ``synthetic.json``.
GENERATOR_VERSION = 4


def _resolve_size(preset: str, n_patients: int | None) -> tuple[SynthPreset, int, int]:
    """Validate ``preset`` / ``n_patients``; return the preset, train patients and test EEGs."""
    check_option("preset", preset, sorted(PRESETS))
    size = PRESETS[preset]
    if n_patients is None:
        return size, size.n_patients, size.n_test_eegs
    if (
        isinstance(n_patients, bool)
        or not isinstance(n_patients, int | np.integer)
        or n_patients < 1
    ):
        raise ValueError(
            f"n_patients must be a positive integer (train patients), got {n_patients!r}"
        )
    n_test = max(2, round(size.n_test_eegs * n_patients / size.n_patients))
    return size, int(n_patients), n_test


def draw_preset_layout(preset: str = "demo", seed: int = 0, n_patients: int | None = None) -> Layout:
    """The tables (patients, sessions, EEGs, events, labels) :func:`generate` would write, no signal.

    Parameters
    ----------
    preset, seed, n_patients
        As :func:`generate`.

    Returns
    -------
    Layout
        Exactly the layout ``generate(out, preset, seed, n_patients)`` renders.
    """
    _, n_train, n_test = _resolve_size(preset, n_patients)
    layout_seed, _ = np.random.SeedSequence(int(seed)).spawn(2)
    return draw_layout(
        np.random.default_rng(layout_seed), n_train, n_test, PRESETS[preset].max_windows
    )


def _check_out_dir(out_dir: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse an output path that is a file, or a non-empty folder unless it is a synthetic set being overwritten."""
    out = Path(out_dir).absolute()
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out}: output path exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(
                f"{out}: output folder is not empty; pass overwrite=True (--overwrite) to replace it"
            )
        if not (out / "synthetic.json").is_file():
            raise FileExistsError(
                f"{out}: refusing to overwrite a non-empty folder that is not a synthetic data set "
                "(no synthetic.json); choose an empty or new folder"
            )
    return out


@functools.cache
def _pandas_metadata(names: tuple[str, ...], dtypes: tuple[str, ...]) -> dict:
    """The ``pandas`` schema metadata that ``DataFrame.to_parquet`` writes for these columns."""
    empty = pd.DataFrame({k: np.empty(0, dtype=d) for k, d in zip(names, dtypes, strict=True)})
    return pa.Schema.from_pandas(empty, preserve_index=False).metadata


def _write_parquet(columns: dict[str, np.ndarray], path: Path) -> None:
    """Write numpy columns atomically as the competition's parquet files are (with pandas metadata).

    Builds the Arrow table straight from the arrays (``DataFrame.to_parquet`` spends most of its
    time converting 401 spectrogram columns one by one) and skips dictionary encoding, which
    measured values do not benefit from.
    """
    names = tuple(columns)
    meta = _pandas_metadata(names, tuple(v.dtype.str for v in columns.values()))
    table = pa.table(columns).replace_schema_metadata(meta)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, use_dictionary=False)


def _write_eeg(x: np.ndarray, path: Path) -> None:
    """Write an EEG excerpt ``(20, n)``: 20 float32 columns in ``EEG_CHANNELS`` order, 0.01 uV steps."""
    x = np.round(x, 2)
    _write_parquet(dict(zip(EEG_CHANNELS, x, strict=True)), path)


def _write_spectrogram(spec: np.ndarray, time_dtype: type, path: Path) -> None:
    """Write a spectrogram ``(4, 100, n_cols)``: ``time`` + 400 float32 columns, 0.01 steps."""
    n_cols = spec.shape[-1]
    values = np.round(spec.reshape(-1, n_cols), 2)
    columns = {"time": (1 + 2 * np.arange(n_cols)).astype(time_dtype)}
    columns.update(zip(SPEC_COLUMNS, values, strict=True))
    _write_parquet(columns, path)


def _write_session(
    folder: Path,
    seed: np.random.SeedSequence,
    session: dict,
    pat: dict,
    events: list[dict],
    eegs: list[dict],
) -> None:
    """Render one session and write its spectrogram and EEG excerpts into ``folder``."""
    excerpts, spec = render_session(seed, session, pat, events, eegs)
    split = session["split"]
    # the competition's train spectrograms store time as int64, the test ones as int16
    time_dtype = np.int16 if split == "test" else np.int64
    spec_path = folder / f"{split}_spectrograms" / f"{session['spectrogram_id']}.parquet"
    _write_spectrogram(spec, time_dtype, spec_path)
    for eeg, x in zip(eegs, excerpts, strict=True):
        _write_eeg(x, folder / f"{split}_eegs" / f"{eeg['eeg_id']}.parquet")


def _truth_table(layout: Layout) -> pd.DataFrame:
    """One row per train label_id and per test eeg_id: votes, true distributions, parameters."""
    lab, ev, eegs, ses = layout.labels, layout.events, layout.eegs, layout.sessions
    rows = lab.drop(columns=["expert_consensus", *VOTE_COLUMNS]).join(ev, on="event")
    eeg_row = eegs.set_index("eeg_id").loc[rows["eeg_id"]]
    sess_row = ses.iloc[eeg_row["session"].to_numpy()]
    start = eeg_row["start_s"].to_numpy()
    test = rows["split"].to_numpy() == "test"
    channel_name = np.asarray([*SCALP_CHANNELS, ""])
    truth = pd.DataFrame(
        {
            "split": rows["split"].to_numpy(),
            "label_id": pd.array(np.where(test, 0, rows["label_id"]), dtype="Int64"),
            "eeg_id": rows["eeg_id"].to_numpy(),
            "spectrogram_id": rows["spectrogram_id"].to_numpy(),
            "patient_id": rows["patient_id"].to_numpy(),
            "eeg_label_offset_seconds": rows["eeg_label_offset_seconds"].to_numpy(),
            "spectrogram_label_offset_seconds": rows["spectrogram_label_offset_seconds"].to_numpy(),
            "rater": rows["rater"].to_numpy(),
            "n_votes": rows["n_votes"].to_numpy(),
            **{c: rows[c].to_numpy() for c in VOTE_COLUMNS},
            **{f"p_{c}": rows[f"p_{c}"].to_numpy() for c in CLASSES},
            **{f"expert_p_{c}": rows[f"expert_p_{c}"].to_numpy() for c in CLASSES},
            "archetype": rows["archetype"].to_numpy(),
            **{
                k: rows[k].to_numpy()
                for k in ("strength", "sharpness", "lateralization", "evolution", "frequency_hz")
            },
            "side": np.where(rows["side"].to_numpy() < 0, "left", "right"),
            **{k: rows[k].to_numpy() for k in ("frontal", "triphasic", "evolution_period_s")},
            "plus": np.asarray(PLUS_MODIFIERS)[rows["plus"].to_numpy()],
            "spread": rows["spread"].to_numpy(),
            "event_start_s": rows["start_s"].to_numpy() - start,
            "event_end_s": rows["end_s"].to_numpy() - start,
            "context": sess_row["context"].to_numpy(),
            "nan_seconds": eeg_row["nan_seconds"].to_numpy(),
            "flat_channel": channel_name[sess_row["flat_channel"].to_numpy()],
            "disconnected_channel": channel_name[sess_row["disconnected_channel"].to_numpy()],
        }
    )
    truth.loc[test, "label_id"] = pd.NA
    return truth


def generate(
    out_dir: str | os.PathLike,
    preset: str = "demo",
    seed: int = 0,
    n_patients: int | None = None,
    *,
    overwrite: bool = False,
    progress: bool = True,
    workers: int | None = None,
) -> Path:
    """Write a synthetic HMS data set in the competition's layout.

    Parameters
    ----------
    out_dir : path
        Folder to create (must be absent or empty unless ``overwrite``). Written atomically: the data
        set is built in a temporary folder beside it and renamed into place at the end.
    preset : {"small", "demo", "bench"}
        Size (see :data:`PRESETS`).
    seed : int
        Seed (>= 0). The same seed, preset and ``n_patients`` give byte-identical files.
    n_patients : int, optional
        Train patients, overriding the preset's (test EEGs scale along); small values make tiny sets.
    overwrite : bool
        Replace an existing synthetic data set at ``out_dir`` (recognised by its ``synthetic.json``).
    progress : bool
        Show a progress bar over the recordings.
    workers : int, optional
        Processes rendering recordings in parallel (default: the CPUs this process may use, at most
        8). The files do not depend on it: every recording has its own seed.

    Returns
    -------
    pathlib.Path
        ``out_dir`` (absolute), holding ``train.csv``, ``test.csv``, ``sample_submission.csv``,
        ``train_eegs/``, ``train_spectrograms/``, ``test_eegs/``, ``test_spectrograms/``,
        ``truth.csv`` and ``synthetic.json``.

    Raises
    ------
    ValueError
        Unknown preset, ``n_patients`` or ``workers`` not a positive integer, or a negative /
        non-integer seed.
    NotADirectoryError
        ``out_dir`` is a file.
    FileExistsError
        ``out_dir`` is a non-empty folder and ``overwrite`` is False, or it is not a synthetic set.
    """
    from tqdm.auto import tqdm

    _, n_train, n_test = _resolve_size(preset, n_patients)
    n_workers = _default_workers() if workers is None else workers
    if isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    out = _check_out_dir(out_dir, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        _, render_seed = np.random.SeedSequence(int(seed)).spawn(2)
        layout = draw_preset_layout(preset, seed, n_patients)
        lab = layout.labels
        train = lab[lab["split"] == "train"]
        test_eegs = layout.eegs[layout.eegs["split"] == "test"]
        write_csv_atomic(train[list(TRAIN_COLUMNS)], tmp / "train.csv")
        test_sessions = layout.sessions.iloc[test_eegs["session"].to_numpy()]
        test_table = pd.DataFrame(
            {
                "spectrogram_id": test_sessions["spectrogram_id"].to_numpy(),
                "eeg_id": test_eegs["eeg_id"].to_numpy(),
                "patient_id": layout.patients["patient_id"].to_numpy()[
                    test_sessions["patient"].to_numpy()
                ],
            }
        )
        write_csv_atomic(test_table[list(TEST_COLUMNS)], tmp / "test.csv")
        sample = pd.DataFrame(
            {"eeg_id": test_table["eeg_id"], **{c: 1.0 / len(CLASSES) for c in VOTE_COLUMNS}}
        )
        write_csv_atomic(sample, tmp / "sample_submission.csv")
        for split in ("train", "test"):
            (tmp / f"{split}_eegs").mkdir()
            (tmp / f"{split}_spectrograms").mkdir()

        seeds = render_seed.spawn(len(layout.sessions))
        patients = layout.patients.to_dict("records")
        events = layout.events.to_dict("records")
        eegs = layout.eegs.to_dict("records")
        ev_at = np.split(
            np.arange(len(events)), np.flatnonzero(np.diff(layout.events["session"])) + 1
        )
        eeg_at = np.split(np.arange(len(eegs)), np.flatnonzero(np.diff(layout.eegs["session"])) + 1)
        jobs = [
            (
                tmp,
                seeds[k],
                session,
                patients[session["patient"]],
                [events[i] for i in ev_at[k]],
                [eegs[i] for i in eeg_at[k]],
            )
            for k, session in enumerate(layout.sessions.to_dict("records"))
        ]
        bar = tqdm(total=len(jobs), desc="synthetic recordings", unit="rec", disable=not progress)
        if n_workers == 1:
            for job in jobs:
                _write_session(*job)
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=n_workers) as pool:
                for future in as_completed([pool.submit(_write_session, *job) for job in jobs]):
                    future.result()
                    bar.update()
        bar.close()

        write_csv_atomic(_truth_table(layout), tmp / "truth.csv")
        floor = bayes_floor(tmp)
        info = {
            "generator_version": GENERATOR_VERSION,
            "preset": preset,
            "seed": int(seed),
            "n_patients": n_train,
            "counts": {
                "patients": n_train,
                "spectrograms": int((layout.sessions["split"] == "train").sum()),
                "eegs": int((layout.eegs["split"] == "train").sum()),
                "rows": len(train),
                "test_eegs": n_test,
            },
            "bayes_floor": floor,
        }
        write_json_atomic(info, tmp / "synthetic.json")
        _move_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def ensure_generated(
    out_dir: str | os.PathLike,
    preset: str = "demo",
    seed: int = 0,
    n_patients: int | None = None,
    *,
    progress: bool = True,
    workers: int | None = None,
) -> Path:
    """Return a synthetic data set made by these arguments and this generator, generating it if needed.

    A folder whose ``synthetic.json`` records the same generator version, preset, seed and size is
    reused as it is (and the same number of test EEGs); a missing one is generated and a stale one (another generator version or other
    arguments) is replaced, so that benchmarks never score models on data of an older generator.

    Parameters
    ----------
    out_dir, preset, seed, n_patients, progress, workers
        As for :func:`generate`.

    Returns
    -------
    pathlib.Path
        ``out_dir`` (absolute), as :func:`generate` returns it.

    Raises
    ------
    ValueError, NotADirectoryError, FileExistsError
        As for :func:`generate` (a non-empty folder that is not a synthetic set is never replaced).
    """
    _, n_train, n_test = _resolve_size(preset, n_patients)
    out = Path(out_dir).absolute()
    wanted = {"generator_version": GENERATOR_VERSION, "preset": preset, "seed": int(seed), "n_patients": n_train}
    info_path = out / "synthetic.json"
    if info_path.is_file() and (out / "train.csv").is_file():
        info = json.loads(info_path.read_text())
        same = all(info.get(key) == value for key, value in wanted.items())
        if same and info.get("counts", {}).get("test_eegs") == n_test:
            return out
    return generate(out, preset, seed, n_patients, overwrite=True, progress=progress, workers=workers)


def _default_workers() -> int:
    """CPUs this process may run on (its affinity, not the host's count), at most 8."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cpus or 1, 8))


def _move_into_place(tmp: Path, out: Path) -> None:
    """Rename the finished folder ``tmp`` onto ``out``, replacing an existing ``out``."""
    if out.is_dir() and any(out.iterdir()):
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
        os.replace(out, old / out.name)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


def bayes_floor(data_dir: str | os.PathLike) -> dict:
    """The lowest KL any model can reach on a synthetic data set, next to the class-prior predictor.

    The best possible prediction of a row is the distribution its votes were drawn from (``p_*`` of
    ``truth.csv``): no model can beat it in expectation, so its KL against the drawn votes is the
    floor set by vote noise. The prior predictor is the mean vote distribution of all train rows
    (:func:`hmslib.labels.class_prior`), the same constant everywhere. Both are scored with
    :func:`hmslib.metrics.kaggle_kl`.

    Parameters
    ----------
    data_dir : path
        A folder written by :func:`generate`.

    Returns
    -------
    dict
        ``floor`` / ``prior``: KL of the true distributions / of the prior on all train rows;
        ``floor_10plus`` / ``prior_10plus``: on train rows with >= 10 votes; ``floor_test`` /
        ``prior_test``: on the test EEGs' expert votes (keys absent where there are no such rows);
        ``n_train``, ``n_10plus``, ``n_test``: row counts; ``class_prior``: the prior, ``CLASSES`` order.

    Raises
    ------
    FileNotFoundError
        ``data_dir`` has no ``truth.csv`` (not a synthetic data set) or no ``train.csv``.
    ValueError
        ``truth.csv`` misses train label_ids of ``train.csv``.
    """
    data_dir = Path(data_dir)
    truth = read_truth(data_dir)
    if truth is None:
        raise FileNotFoundError(
            f"{data_dir / 'truth.csv'}: not found; bayes_floor needs a synthetic data set written "
            "by generate()"
        )
    train = read_train_csv(data_dir)
    by_label = truth[truth["split"] == "train"].set_index("label_id")
    absent = pd.Index(train["label_id"]).difference(by_label.index)
    if len(absent):
        raise ValueError(
            f"{data_dir / 'truth.csv'}: no truth for {len(absent)} train label_ids, e.g. "
            f"{list(absent[:5])}"
        )
    p = by_label.loc[train["label_id"], list(TRUE_COLUMNS)].to_numpy()
    votes = train[list(VOTE_COLUMNS)].to_numpy(dtype=np.float64)
    prior = class_prior(train)
    floor_many, floor_all, n_many = kl_split(votes, p)
    prior_many, prior_all, _ = kl_split(votes, np.broadcast_to(prior, votes.shape))
    out: dict = {"n_train": len(train), "floor": floor_all, "prior": prior_all, "n_10plus": n_many}
    if n_many:
        out["floor_10plus"], out["prior_10plus"] = floor_many, prior_many
    test = truth[truth["split"] == "test"]
    out["n_test"] = len(test)
    if len(test):
        test_votes = test[list(VOTE_COLUMNS)].to_numpy(dtype=np.float64)
        out["floor_test"] = kl_split(test_votes, test[list(TRUE_COLUMNS)].to_numpy())[1]
        out["prior_test"] = kl_split(test_votes, np.broadcast_to(prior, test_votes.shape))[1]
    out["class_prior"] = [float(v) for v in prior]
    return out


def read_truth(data_dir: str | os.PathLike, split: str | None = None) -> pd.DataFrame | None:
    """The ``truth.csv`` of a synthetic data set (rows of ``split`` only), or None without one.

    Parameters
    ----------
    data_dir : path
        A data folder; real competition folders have no ``truth.csv``.
    split : {"train", "test"}, optional
        Keep the rows of one split.

    Returns
    -------
    pandas.DataFrame or None
        One row per train ``label_id`` / test ``eeg_id`` with the votes, the true distributions
        (``TRUE_COLUMNS``) and the generating parameters.
    """
    path = Path(data_dir) / "truth.csv"
    if not path.is_file():
        return None
    truth = pd.read_csv(path)
    if split is None:
        return truth
    check_option("split", split, ("train", "test"))
    return truth[truth["split"] == split]
