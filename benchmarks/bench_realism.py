"""Realism of the synthetic generator: real and synthetic EEG windows and label tables side by side.

Real windows: every raw real EEG of the samples (``train_eegs``, ``test_eegs``, ``real_eegs``), all
the 50 s windows they hold every 10 s; and, for the statistics that survive per-channel
z-scoring, the 11 real centre windows of ``real_windows/elektra_center10s`` (10 s, z-scored per
channel) against the central 10 s of synthetic windows z-scored the same way. Synthetic windows: one
labelled window per EEG of a freshly generated data set (``small`` preset unless ``--patients``).

Tables printed:

1. each statistic of :func:`hmslib.synthetic.realism.window_statistics`: the real windows' median
   and 10-90 % range, the synthetic median and 10-90 % range, and whether the synthetic median
   lies inside the real range (``z``: synthetic minus real median over the real 10-90 % width);
2. the same for the scale-free statistics on the 10 s centre windows, and their medians per
   consensus class (real centre windows against synthetic windows of the same class): the pooled
   statistics can agree while the class-conditional ones, which a classifier learns, do not;
3. two-sample tests: the cross-validated AUC of a classifier trained to tell real from synthetic
   (a logistic regression on the statistics; a small CNN on the chain spectrograms ``chain_mel``),
   folds grouped by recording, with a 90 % bootstrap interval over real recordings and, as the
   baseline measured in the same run, the AUC of the same procedure when the "real" windows are
   synthetic ones (what a classifier reaches on this few windows when there is no difference; for
   the CNN the mean and the largest of ``--cnn-null-repeats`` draws);
4. the label side: real tables of the samples (``labels/``) against the synthetic labels of the
   bench preset's layout (class mix, top vote fraction per class, periods per EEG, vote counts).

    python benchmarks/bench_realism.py [--patients N] [--seed 0] [--no-cnn] [--null-repeats 20]
        [--cnn-null-repeats 1]

Runs in about two minutes on an idle 2-core CPU, several more under load (the CNN and its
no-difference draws are most of it; ``--no-cnn`` skips them), generation of the ``small`` preset included.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from hmslib import io, synthetic
from hmslib.constants import EEG_CHANNELS, EEG_WINDOW_SAMPLES, LABEL_CENTER_SECONDS, SFREQ
from hmslib.labels import majority_class
from hmslib.representations import compute_representation
from hmslib.synthetic import realism
from hmslib.synthetic.writer import draw_preset_layout

SAMPLES = Path(os.environ.get("HMS_SAMPLES", Path(__file__).resolve().parents[2] / "shared" / "hms-samples"))
_CENTRE = slice(
    int((EEG_WINDOW_SAMPLES - LABEL_CENTER_SECONDS * SFREQ) // 2),
    int((EEG_WINDOW_SAMPLES + LABEL_CENTER_SECONDS * SFREQ) // 2),
)


# --------------------------------------------------------------------------------------------------
# windows
# --------------------------------------------------------------------------------------------------


def _read_eeg(path: Path) -> np.ndarray:
    """A real EEG parquet file as float32 ``(20, n)``, ``EEG_CHANNELS`` order."""
    df = pd.read_parquet(path)
    return np.ascontiguousarray(df[list(EEG_CHANNELS)].to_numpy(np.float32).T)


def real_windows(samples: Path, step_s: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """Every 50 s window (every ``step_s``) of the raw real EEGs: ``(n, 20, 10000)`` and recording."""
    windows, groups = [], []
    for folder in ("train_eegs", "test_eegs", "real_eegs"):
        for path in sorted((samples / folder).glob("*.parquet")):
            x = _read_eeg(path)
            step = int(step_s * SFREQ)
            for start in range(0, x.shape[1] - EEG_WINDOW_SAMPLES + 1, step):
                windows.append(x[:, start : start + EEG_WINDOW_SAMPLES])
                groups.append(path.stem)
    return np.stack(windows), np.array(groups)


def real_centre_windows(samples: Path) -> tuple[np.ndarray, np.ndarray]:
    """The 11 real centre windows (10 s, z-scored per channel): ``(11, 20, 2000)``, and the
    experts' consensus class of each (``labels.csv``)."""
    folder = samples / "real_windows" / "elektra_center10s"
    paths = sorted(folder.glob("*.parquet"))
    consensus = pd.read_csv(folder / "labels.csv").set_index("file")["expert_consensus"]
    return np.stack([_read_eeg(p) for p in paths]), consensus.loc[[p.name for p in paths]].to_numpy(str)


def synthetic_windows(data: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One labelled 50 s window per EEG (the first of a train EEG; the test EEGs): its patient and
    consensus class (the test EEGs' from the expert votes of ``truth.csv``)."""
    train = io.read_train_csv(data)
    first = train.sort_values(["eeg_id", "eeg_sub_id"]).drop_duplicates("eeg_id")
    test = io.read_test_csv(data)
    test_votes = synthetic.read_truth(data, "test").set_index("eeg_id").loc[test["eeg_id"]]
    windows = [
        io.load_eeg_window(data, r.eeg_id, r.eeg_label_offset_seconds) for r in first.itertuples()
    ] + [io.load_eeg_window(data, r.eeg_id, 0.0, "test") for r in test.itertuples()]
    patients = np.r_[first["patient_id"].to_numpy(), test["patient_id"].to_numpy()]
    classes = np.r_[majority_class(first).to_numpy(), majority_class(test_votes).to_numpy()]
    return np.stack(windows), patients.astype(str), classes


# --------------------------------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------------------------------


def side_by_side(real: pd.DataFrame, synth: pd.DataFrame) -> pd.DataFrame:
    """Real median and 10-90 % range against the synthetic median (and range) per statistic."""
    q = lambda df, p: df.quantile(p)  # noqa: E731
    table = pd.DataFrame(
        {
            "real median": real.median(),
            "real 10%": q(real, 0.1),
            "real 90%": q(real, 0.9),
            "synth median": synth.median(),
            "synth 10%": q(synth, 0.1),
            "synth 90%": q(synth, 0.9),
        }
    )
    width = (table["real 90%"] - table["real 10%"]).replace(0.0, np.nan)
    table["z"] = (table["synth median"] - table["real median"]) / width
    inside = (table["synth median"] >= table["real 10%"] - 1e-9) & (
        table["synth median"] <= table["real 90%"] + 1e-9
    )
    table["inside"] = np.where(inside, "yes", "NO")
    return table


def _folds(groups: np.ndarray, is_real: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Fold of each window: real recordings spread over the folds, synthetic patients at random."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(groups), dtype=np.int64)
    for mask in (is_real, ~is_real):
        names = rng.permutation(np.unique(groups[mask]))
        of = {g: k % n_folds for k, g in enumerate(names)}
        fold[mask] = [of[g] for g in groups[mask]]
    return fold


def _lr_scores(x: np.ndarray, y: np.ndarray, fold: np.ndarray) -> np.ndarray:
    """Out-of-fold real-vs-synthetic scores of a class-balanced, L2-regularised logistic regression.

    A statistic a window does not have (NaN: a discharge width without transients) takes the
    training folds' median.
    """
    scores = np.empty(len(y))
    for k in np.unique(fold):
        test = fold == k
        clf = make_pipeline(
            SimpleImputer(strategy="median"),
            StandardScaler(),
            LogisticRegression(C=0.3, class_weight="balanced", max_iter=2000),
        )
        clf.fit(x[~test], y[~test])
        scores[test] = clf.predict_proba(x[test])[:, 1]
    return scores


class _SmallCNN(nn.Module):
    """Three conv-BN-ReLU-pool stages (8, 16, 32 channels), global mean, one logit."""

    def __init__(self, n_chans: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = n_chans
        for out in (8, 16, 32):
            layers += [nn.Conv2d(width, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU(), nn.MaxPool2d(2)]
            width = out
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))[:, 0]


def _cnn_scores(images: torch.Tensor, y: np.ndarray, fold: np.ndarray, epochs: int, seed: int) -> np.ndarray:
    """Out-of-fold scores of :class:`_SmallCNN` trained with a class-balanced logistic loss."""
    scores = np.empty(len(y))
    target = torch.as_tensor(y, dtype=torch.float32)
    for k in np.unique(fold):
        torch.manual_seed(seed + int(k))
        train = np.flatnonzero(fold != k)
        model = _SmallCNN(images.shape[1])
        opt = torch.optim.Adam(model.parameters(), lr=3e-3, weight_decay=1e-4)
        pos = float(y[train].mean())
        weight = torch.where(target > 0, 0.5 / pos, 0.5 / (1 - pos))
        rng = np.random.default_rng(seed + int(k))
        for _ in range(epochs):
            model.train()
            for batch in np.array_split(rng.permutation(train), max(1, len(train) // 32)):
                loss = nn.functional.binary_cross_entropy_with_logits(
                    model(images[batch]), target[batch], weight=weight[batch]
                )
                opt.zero_grad()
                loss.backward()
                opt.step()
        model.eval()
        with torch.no_grad():
            scores[fold == k] = torch.sigmoid(model(images[fold == k])).numpy()
    return scores


def _bootstrap_auc(y: np.ndarray, scores: np.ndarray, groups: np.ndarray, seed: int, n: int = 1000) -> tuple[float, float]:
    """5 % and 95 % quantiles of the AUC over bootstrap resamples of real recordings and synthetic windows."""
    rng = np.random.default_rng(seed)
    real_groups = np.unique(groups[y == 1])
    members = {g: np.flatnonzero((groups == g) & (y == 1)) for g in real_groups}
    synth = np.flatnonzero(y == 0)
    values = []
    for _ in range(n):
        pick = rng.choice(real_groups, len(real_groups))
        real_idx = np.concatenate([members[g] for g in pick])
        synth_idx = rng.choice(synth, len(synth))
        idx = np.r_[real_idx, synth_idx]
        values.append(roc_auc_score(y[idx], scores[idx]))
    return float(np.percentile(values, 5)), float(np.percentile(values, 95))


def _null_split(
    groups: np.ndarray, n_real_groups: int, n_real: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray] | None:
    """Synthetic windows that play the real ones: ``n_real`` windows of ``n_real_groups`` (or, where
    they hold too few windows, more) patients, labelled 1, the other patients' windows 0; the rest
    of the chosen patients' windows dropped. Returns the kept indices and labels (None: too few)."""
    names = np.unique(groups)
    sizes = {g: int((groups == g).sum()) for g in names}
    order = rng.permutation(names)
    total = np.cumsum([sizes[g] for g in order])
    k = max(n_real_groups, int(np.searchsorted(total, n_real)) + 1)
    chosen = order[:k]
    candidates = np.flatnonzero(np.isin(groups, chosen))
    if len(candidates) < n_real or k >= len(names):
        return None
    fake = np.zeros(len(groups), dtype=np.int64)
    fake[rng.choice(candidates, n_real, replace=False)] = 1
    keep = np.flatnonzero((fake == 1) | ~np.isin(groups, chosen))
    return keep, fake[keep]


def _null_draws(score, groups: np.ndarray, n_real_groups: int, n_real: int, repeats: int, seed: int, rng_seed: int) -> list[float]:
    """AUCs of a discriminator when synthetic windows play the real ones (:func:`_null_split`), one
    per draw; ``score(keep, y, fold, r)`` gives the held-out scores of draw ``r``."""
    rng = np.random.default_rng(rng_seed)
    values = []
    for r in range(repeats):
        split = _null_split(groups, n_real_groups, n_real, rng)
        if split is None:
            continue
        keep, y = split
        fold = _folds(groups[keep], y == 1, min(n_real_groups, 4), seed + r)
        values.append(roc_auc_score(y, score(keep, y, fold, r)))
    return values


def _null_auc(x: np.ndarray, groups: np.ndarray, n_real_groups: int, n_real: int, repeats: int, seed: int) -> tuple[float, float]:
    """The no-difference baseline of the logistic regression: mean and 95 % quantile of
    :func:`_null_draws`."""
    values = _null_draws(lambda keep, y, fold, r: _lr_scores(x[keep], y, fold),
                         groups, n_real_groups, n_real, repeats, seed, seed)  # fmt: skip
    return float(np.mean(values)), float(np.percentile(values, 95))


def _null_cnn_auc(images: torch.Tensor, groups: np.ndarray, n_real_groups: int, n_real: int, repeats: int, seed: int) -> tuple[float, float]:
    """The same baseline for the small CNN (one training seed per draw): mean and largest AUC."""
    values = _null_draws(
        lambda keep, y, fold, r: _cnn_scores(images[keep], y, fold, epochs=25, seed=seed + 1000 * (r + 1)),
        groups, n_real_groups, n_real, repeats, seed, seed + 7,
    )  # fmt: skip
    return (float(np.mean(values)), float(np.max(values))) if values else (np.nan, np.nan)


def two_sample_tests(
    real: np.ndarray,
    real_groups: np.ndarray,
    synth: np.ndarray,
    synth_groups: np.ndarray,
    *,
    stats: tuple[np.ndarray, np.ndarray],
    centre_stats: tuple[np.ndarray, np.ndarray],
    cnn: bool,
    null_repeats: int,
    seed: int,
    cnn_null_repeats: int = 1,
) -> pd.DataFrame:
    """Rows: test, n real (recordings), n synthetic, AUC, 90 % interval, no-difference baseline
    (for the CNN, over ``cnn_null_repeats`` draws: its mean and, in the 95 % column, its largest).

    ``stats``: the :func:`~hmslib.synthetic.realism.window_statistics` of ``real`` and ``synth``;
    ``centre_stats``: the :func:`~hmslib.synthetic.realism.scale_free_statistics` of the real centre
    windows and of the central 10 s of ``synth`` z-scored per channel.
    """
    rows = []
    stats_real, stats_synth = stats
    x = np.r_[stats_real, stats_synth]
    y = np.r_[np.ones(len(real), dtype=np.int64), np.zeros(len(synth), dtype=np.int64)]
    groups = np.r_[real_groups, synth_groups]
    n_rec = len(np.unique(real_groups))
    fold = _folds(groups, y == 1, min(n_rec, 4), seed)
    scores = _lr_scores(x, y, fold)
    null = _null_auc(stats_synth, synth_groups, n_rec, len(real), null_repeats, seed)
    rows.append(
        ("logistic regression, 50 s statistics", len(real), n_rec, len(synth),
         roc_auc_score(y, scores), *_bootstrap_auc(y, scores, groups, seed), *null)
    )  # fmt: skip
    if cnn:
        images = compute_representation("chain_mel", np.r_[real, synth])
        cnn_scores = np.mean(
            [_cnn_scores(images, y, fold, epochs=25, seed=seed + 100 * s) for s in range(2)], axis=0
        )
        null_cnn = _null_cnn_auc(
            images[len(real):], synth_groups, n_rec, len(real), cnn_null_repeats, seed
        )
        rows.append(
            ("small CNN, chain_mel spectrograms", len(real), n_rec, len(synth),
             roc_auc_score(y, cnn_scores), *_bootstrap_auc(y, cnn_scores, groups, seed),
             *null_cnn)
        )  # fmt: skip
    n_centre = len(centre_stats[0])
    xc = np.concatenate(centre_stats)
    yc = np.r_[np.ones(n_centre, dtype=np.int64), np.zeros(len(synth), dtype=np.int64)]
    gc = np.r_[[f"centre{k}" for k in range(n_centre)], synth_groups]
    fold_c = _folds(gc, yc == 1, 4, seed)
    scores_c = _lr_scores(xc, yc, fold_c)
    null_c = _null_auc(xc[n_centre:], synth_groups, n_centre, n_centre, null_repeats, seed)
    rows.append(
        ("logistic regression, 10 s scale-free", n_centre, n_centre, len(synth),
         roc_auc_score(yc, scores_c), *_bootstrap_auc(yc, scores_c, gc, seed), *null_c)
    )  # fmt: skip
    return pd.DataFrame(
        rows,
        columns=["test", "n real", "real recordings", "n synth", "AUC", "AUC 5%", "AUC 95%",
                 "null AUC mean", "null AUC 95%"],
    )  # fmt: skip


def label_tables(samples: Path, preset: str, seed: int) -> pd.DataFrame:
    """Label statistics of the real tables of the samples against a synthetic preset's layout."""
    labels = samples / "labels"
    real = realism.label_statistics(
        pd.read_csv(labels / "eeg_periods_vote_fractions.csv"),
        pd.read_csv(labels / "train_rows_10plus_votes.csv"),
        pd.read_csv(labels / "train_rows_1000_per_class.csv"),
    )
    layout = draw_preset_layout(preset, seed)
    train = layout.labels[layout.labels["split"] == "train"]
    votes = train.filter(like="_vote").sum(axis=1)
    many = train[votes >= 10].sample(frac=1.0, random_state=seed).drop_duplicates("eeg_id")
    synth = realism.label_statistics(realism.label_periods(train), many, train)
    return pd.DataFrame({"real": real, "synthetic": synth})


def _print(title: str, table: pd.DataFrame) -> None:
    print(f"\n{title}")
    print(table.to_string(float_format=lambda v: f"{v:.3f}", na_rep=""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, help="synthetic train patients (default: the small preset's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-cnn", action="store_true", help="skip the CNN two-sample test")
    parser.add_argument("--null-repeats", type=int, default=20)
    parser.add_argument(
        "--cnn-null-repeats", type=int, default=1, help="no-difference draws for the CNN (0: none)"
    )
    parser.add_argument("--label-preset", default="bench", help="preset whose layout gives the labels")
    args = parser.parse_args()
    if not (SAMPLES / "train.csv").is_file():
        raise SystemExit(f"bench_realism: real samples not found at {SAMPLES} (set HMS_SAMPLES)")
    torch.set_num_threads(min(2, torch.get_num_threads()))

    started = time.perf_counter()
    real, real_groups = real_windows(SAMPLES)
    centre, centre_classes = real_centre_windows(SAMPLES)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        data = synthetic.generate(
            Path(tmp) / "data", preset="small", seed=args.seed, n_patients=args.patients,
            progress=False,
        )  # fmt: skip
        gen_s = time.perf_counter() - t0
        synth, synth_groups, synth_classes = synthetic_windows(data)
    print(
        f"generator version {synthetic.GENERATOR_VERSION}; real: {len(real)} windows of "
        f"{len(np.unique(real_groups))} recordings + {len(centre)} centre windows; synthetic: "
        f"{len(synth)} windows of {len(np.unique(synth_groups))} patients (small preset generated in "
        f"{gen_s:.0f} s)"
    )
    stats_real, stats_synth = realism.window_statistics(real), realism.window_statistics(synth)
    _print("50 s windows: real vs synthetic", side_by_side(stats_real, stats_synth))
    centre_stats = realism.scale_free_statistics(centre)
    synth_centre_stats = realism.scale_free_statistics(realism.zscore_channels(synth[..., _CENTRE]))
    _print(
        "10 s centre windows, z-scored per channel: real (elektra_center10s) vs synthetic",
        side_by_side(centre_stats, synth_centre_stats),
    )
    _print(
        "10 s centre windows per consensus class: median of the real windows and of the synthetic ones",
        realism.class_medians(centre_stats, centre_classes, synth_centre_stats, synth_classes),
    )
    _print(
        "two-sample tests (cross-validated AUC, folds grouped by recording / patient; null = "
        "synthetic windows playing the real ones)",
        two_sample_tests(
            real, real_groups, synth, synth_groups,
            cnn=not args.no_cnn, null_repeats=args.null_repeats, seed=args.seed,
            stats=(stats_real.to_numpy(), stats_synth.to_numpy()),
            centre_stats=(centre_stats.to_numpy(), synth_centre_stats.to_numpy()),
            cnn_null_repeats=args.cnn_null_repeats,
        ).set_index("test"),
    )  # fmt: skip
    _print(
        f"labels: real tables of the samples vs the synthetic {args.label_preset} preset",
        label_tables(SAMPLES, args.label_preset, args.seed),
    )
    print(f"\n{time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main()
