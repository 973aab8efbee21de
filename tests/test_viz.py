"""Tests of hmslib.viz: every figure shows what it claims to show.

The double-banana view draws the right derivations at the right places; the OOF figures show the
tables of hmslib.analysis; the timeline of a scored recording colours each window by its top class
and its spectrogram overview puts a burst in the chains of the electrode that carries it.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from helpers import band_limited, oof_frame  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from numpy.testing import assert_allclose  # noqa: E402

from hmslib import analysis, io, scoring, synthetic, viz  # noqa: E402
from hmslib.constants import (  # noqa: E402
    CHAINS,
    CLASSES,
    CONSENSUS_NAMES,
    EEG_CHANNELS,
)

_CH = {name: i for i, name in enumerate(EEG_CHANNELS)}
_DERIVATIONS = [(a, b) for chain in CHAINS.values() for a, b in zip(chain, chain[1:], strict=False)]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("plots") / "data"
    return synthetic.generate(out, preset="small", n_patients=4, seed=13, progress=False, workers=1)


def _window(seconds: float = 20.0) -> np.ndarray:
    rng = np.random.default_rng(0)
    n = int(seconds * 200)
    return (rng.standard_normal((20, n)) * 20 - 100).astype(np.float32)


def test_traces_are_the_bipolar_derivations_negative_up():
    eeg = _window()
    fig = viz.plot_eeg_window(eeg, band=None, scale_uv=50.0)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    lines = ax.get_lines()[: len(_DERIVATIONS)]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == [f"{a}-{b}" for a, b in _DERIVATIONS]
    assert labels[0] == "Fp1-F7"
    ticks = ax.get_yticks()
    for line, (a, b), offset in zip(lines, _DERIVATIONS, ticks, strict=True):
        expected = offset - (eeg[_CH[a]].astype(np.float64) - eeg[_CH[b]]) / 50.0
        assert_allclose(line.get_ydata(), expected, rtol=1e-5, atol=1e-5)
        assert_allclose(line.get_xdata(), np.arange(eeg.shape[1]) / 200)
    # a wider gap separates the chains LL | LP | RP | RL
    gaps = -np.diff(ticks)
    assert_allclose(gaps[[3, 7, 11]], 1.8)
    assert_allclose(np.delete(gaps, [3, 7, 11]), 1.0)


def test_positive_up_flips_the_traces():
    eeg = _window()
    down = viz.plot_eeg_window(eeg, band=None).axes[0].get_lines()[0].get_ydata()
    up = viz.plot_eeg_window(eeg, band=None, negative_up=False).axes[0].get_lines()[0].get_ydata()
    assert_allclose(up + down, 2 * 0.0, atol=1e-5)  # offset 0 for the top trace


def test_central_ten_seconds_are_shaded():
    ax = viz.plot_eeg_window(_window(50.0)).axes[0]
    spans = [p for p in ax.patches if p.get_width() > 0]
    assert len(spans) == 1
    x0 = spans[0].get_x()
    assert_allclose([x0, x0 + spans[0].get_width()], [20.0, 30.0])
    assert not viz.plot_eeg_window(_window(50.0), highlight_center=False).axes[0].patches


def test_nan_stretches_are_gaps_and_filtering_is_applied():
    eeg = _window()
    eeg[_CH["T3"], 400:600] = np.nan
    ax = viz.plot_eeg_window(eeg).axes[0]
    for line, (a, b) in zip(ax.get_lines(), _DERIVATIONS, strict=False):
        y = line.get_ydata()
        if "T3" in (a, b):
            assert np.isnan(y[400:600]).all() and np.isfinite(np.delete(y, range(400, 600))).all()
        else:
            assert np.isfinite(y).all()
    # the band-pass removes the -100 uV offsets: traces sit on their baselines
    fp1_f7 = ax.get_lines()[0].get_ydata()
    assert abs(np.mean(fp1_f7)) < 0.1


def test_eighteen_channel_montage_adds_the_midline():
    ax = viz.plot_eeg_window(_window(), montage="double_banana_18").axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[-2:] == ["Fz-Cz", "Cz-Pz"]


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="shape"):
        viz.plot_eeg_window(np.zeros((16, 1000)))
    with pytest.raises(ValueError, match="scale_uv"):
        viz.plot_eeg_window(_window(), scale_uv=0)
    with pytest.raises(ValueError, match=r"unknown bipolar montage 'average'; expected one of"):
        viz.plot_eeg_window(_window(), montage="average")


def test_class_examples_show_the_majority_class(data):
    fig = viz.plot_class_examples(data, seconds=10.0)
    axes = fig.axes
    assert len(axes) == 6
    train = io.read_train_csv(data)
    for ax, name in zip(axes, CONSENSUS_NAMES, strict=True):
        title = ax.get_title(loc="left")
        if not ax.axison:
            assert not (train["expert_consensus"] == name).any()
            continue
        assert title.startswith(f"{name}:")
        eeg_id = int(title.split("eeg ")[1].split()[0])
        assert (train.loc[train["eeg_id"] == eeg_id, "expert_consensus"] == name).any()
        assert_allclose(ax.get_lines()[0].get_xdata()[-1], 10.0 - 1 / 200)


def test_class_examples_on_the_real_samples(hms_samples):
    path = hms_samples
    fig = viz.plot_class_examples(path)
    shown = [ax.axison for ax in fig.axes]
    assert shown == [True, False, False, False, False, False]  # the samples are all seizure rows
    assert fig.axes[0].get_title(loc="left").startswith("Seizure: 100% of 3 votes")
    with pytest.raises(ValueError, match="seconds"):
        viz.plot_class_examples(path, seconds=60)


# --------------------------------------------------------------------------------------------------
# out-of-fold analysis figures
# --------------------------------------------------------------------------------------------------



@pytest.fixture
def oof_run(tmp_path) -> Path:
    """A run folder with the OOF files of two models, three folds each."""
    (tmp_path / "oof").mkdir(parents=True, exist_ok=True)
    models = {"tf_efficientnet_lite0": oof_frame(60, 0), "raw_cnn": oof_frame(60, 1)}
    for name, df in models.items():
        for k, part in df.groupby("fold"):
            part.to_parquet(tmp_path / "oof" / f"{name}_fold{k}.parquet", index=False)
    return tmp_path


def test_oof_plots_show_the_tables(oof_run):
    oof = analysis.load_oof(oof_run)
    fig = viz.plot_confusion(oof, model="raw_cnn")
    shown = fig.axes[0].images[0].get_array()
    np.testing.assert_allclose(
        shown, analysis.confusion(oof, model="raw_cnn", normalize=True).to_numpy()
    )
    plt.close(fig)

    fig = viz.plot_reliability(oof, 5, model="raw_cnn")
    assert [ax.get_title() for ax in fig.axes] == list(CLASSES)
    plt.close(fig)

    fig = viz.plot_kl_by_group(oof)
    heights = [p.get_height() for p in fig.axes[0].patches]
    table = analysis.kl_breakdown(oof)
    cols = ["kl", "kl_10plus", "kl_votes_1-2", "kl_votes_3-9", "kl_votes_10-19", "kl_votes_20+"]
    np.testing.assert_allclose(heights, table[cols].to_numpy().ravel())
    plt.close(fig)


def test_plot_training_curves_draws_each_file(tmp_path):
    paths = []
    for k in range(2):
        path = tmp_path / "models" / "raw_cnn" / f"fold{k}_metrics.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(
            {
                "epoch": [0, 1, 0],  # restarts with each stage, as fit_fold writes it
                "stage": [1, 1, 2],
                "train_loss": [1.0, 0.8, 0.6 + k],
                "val_kl": [0.9, 0.7, 0.65],
            }
        ).to_csv(path, index=False)
        paths.append(path)
    fig = viz.plot_training_curves(paths)
    loss_ax, kl_ax = fig.axes[:2]
    losses = [line for line in loss_ax.lines if line.get_label().startswith("raw_cnn")]
    assert len(losses) == 2
    np.testing.assert_allclose(losses[1].get_ydata(), [1.0, 0.8, 1.6])
    curves = [line for line in kl_ax.lines if line.get_label().startswith("raw_cnn")]
    np.testing.assert_allclose(curves[0].get_xdata(), [1, 2, 3])  # epochs counted across stages
    stage_marks = [line for line in kl_ax.lines if line not in curves]
    assert [line.get_xdata()[0] for line in stage_marks] == [2.5, 2.5]  # stage 2 starts at row 3
    assert "raw_cnn/fold1_metrics train_loss" in [t.get_text() for t in loss_ax.get_legend().texts]
    plt.close(fig)
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"epoch": [1], "lr": [0.1]}).to_csv(bad, index=False)
    with pytest.raises(ValueError, match=r"bad\.csv: no column with 'loss' or 'kl'.*'lr'"):
        viz.plot_training_curves([bad])
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        viz.plot_training_curves([tmp_path / "missing.csv"])
    plt.close("all")


# --------------------------------------------------------------------------------------------------
# the timeline of a scored recording
# --------------------------------------------------------------------------------------------------



def _uniform_timeline(eeg: np.ndarray) -> pd.DataFrame:
    """The timeline of ``eeg`` scored with the uniform distribution (every 10 s)."""
    predictor = scoring.constant_predictor(np.full(len(CLASSES), 1 / len(CLASSES)))
    return scoring.score_eeg(eeg, predictor, progress=False)


def test_plot_timeline_marks_the_top_class():
    eeg = band_limited(200.0, 200.0, 20).astype(np.float32)
    timeline = _uniform_timeline(eeg)
    top = np.arange(len(timeline)) % len(CLASSES)  # every class in turn
    probs = np.full((len(timeline), len(CLASSES)), 0.1)
    probs[np.arange(len(timeline)), top] = 0.5
    timeline[list(CLASSES)] = probs
    timeline["top_class"] = [CLASSES[i] for i in top]
    timeline.loc[3, "bad"] = True
    fig = viz.plot_timeline(timeline, eeg, title="test")
    assert len(fig.axes) == 3
    strip = fig.axes[1].patches
    assert len(strip) == len(timeline) + 1  # one bar per row, one hatched bar over the bad row
    expected = [to_rgba(viz.CLASS_COLORS[CLASSES[i]]) for i in top]
    assert [p.get_facecolor() for p in strip[: len(timeline)]] == expected
    assert strip[-1].get_x() == timeline.loc[3, "start_s"] and strip[-1].get_hatch() == "////"
    plt.close(fig)


def test_plot_timeline_draws_edf_plus_d_stretches_at_their_onsets():
    """Two stretches of 120 s recorded at 0 s and 300 s: the overview puts each at its onset in
    recording time, the axis ends at the second's end, and no probability stack spans the gap."""
    from hmslib.recording import Segment

    eeg = band_limited(240.0, 200.0, 20).astype(np.float32)
    segments = (Segment(0.0, 0, 24_000), Segment(300.0, 24_000, 48_000))
    timeline = scoring.score_eeg(
        eeg, scoring.constant_predictor(np.full(6, 1 / 6)), segments=segments, progress=False
    )
    fig = viz.plot_timeline(timeline, eeg, segments=segments)
    overview = fig.axes[2]
    starts = sorted(image.get_extent()[0] for image in overview.images)
    assert len(starts) == 2 and abs(starts[0]) < 1e-9 and abs(starts[1] - 300.0) < 1e-9
    assert overview.get_xlim() == (0.0, 420.0)
    stacks = [c for c in fig.axes[0].collections]
    assert len(stacks) == 2 * len(CLASSES)  # one stack per stretch
    spans = [(p.get_paths()[0].vertices[:, 0].min(), p.get_paths()[0].vertices[:, 0].max()) for p in stacks]
    assert all(hi <= 120.0 or lo >= 300.0 for lo, hi in spans)
    plt.close(fig)


def test_overview_spectrogram_shows_a_burst_in_its_chains():
    t = np.arange(200 * 300) / 200.0
    eeg = np.random.default_rng(2).normal(scale=5.0, size=(20, t.size)).astype(np.float32)
    burst = (t >= 100) & (t < 200)
    eeg[EEG_CHANNELS.index("Fp1")] += np.where(burst, 80.0 * np.sin(2 * np.pi * 15.0 * t), 0.0)
    timeline = _uniform_timeline(eeg)
    fig = viz.plot_timeline(timeline, eeg)
    image = np.asarray(fig.axes[2].images[0].get_array())
    plt.close(fig)
    # rows from the bottom: RL, RP, LP, LL, each 0.5, 1.0, ... 20 Hz; columns of 2 s from t = 0
    n_freqs = image.shape[0] // 4
    assert n_freqs == 40
    centres = np.arange(image.shape[1]) * 2.0 + 1.0
    cols = np.flatnonzero((centres > 105) & (centres < 195))
    during = image[:, cols].mean(axis=1)
    row_15hz = int(round((15.0 - 0.5) / 0.5))
    for region, fp1_in_chain in ((3, True), (2, True), (1, False), (0, False)):  # LL LP RP RL
        rows = during[region * n_freqs : (region + 1) * n_freqs]
        assert (rows.argmax() == row_15hz) == fp1_in_chain


def test_plot_ablation_puts_each_switch_at_its_difference():
    summary = pd.DataFrame(
        {
            "switch": ["mixup", "entmax", "mel16", "channel_zero"],
            "group": ["trick", "trick", "representation", "trick"],
            "reference": ["base", "base", "base", "mel16"],
            "diff": [-0.02, 0.01, 0.005, -0.001],
            "lo": [-0.03, -0.002, np.nan, -0.004],
            "hi": [-0.01, 0.02, np.nan, 0.003],
        }
    )
    fig = viz.plot_ablation(summary)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    # best (most negative) at the top: largest y
    assert labels == ["entmax", "mel16", "channel_zero (vs mel16)", "mixup"]
    points = {}
    for line in ax.lines:
        x, y = line.get_data()
        if len(x) and line.get_linestyle() == "None" and line.get_marker() == "o":
            points.update({labels[int(round(yy))]: xx for xx, yy in zip(x, y, strict=True)})
    assert points == pytest.approx(
        {"mixup": -0.02, "entmax": 0.01, "mel16": 0.005, "channel_zero (vs mel16)": -0.001}
    )
    spans = []  # the horizontal error bars: (left, right) of each
    for collection in ax.collections:
        for seg in collection.get_segments():
            if np.isclose(seg[0, 1], seg[1, 1]):
                spans.append((round(float(seg[:, 0].min()), 6), round(float(seg[:, 0].max()), 6)))
    assert {(-0.03, -0.01), (-0.002, 0.02), (-0.004, 0.003)} <= set(spans)
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == ["representation", "trick"]
    with pytest.raises(ValueError, match=r"lacks columns \['hi'\]"):
        viz.plot_ablation(summary.drop(columns="hi"))
