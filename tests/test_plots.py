"""Tests of hmslib.plots: the double-banana view draws the right derivations at the right places."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from numpy.testing import assert_allclose  # noqa: E402

from hmslib import io, plots, synthetic  # noqa: E402
from hmslib.constants import CHAINS, CONSENSUS_NAMES, EEG_CHANNELS  # noqa: E402

_CH = {name: i for i, name in enumerate(EEG_CHANNELS)}
_DERIVATIONS = [(a, b) for chain in CHAINS.values() for a, b in zip(chain, chain[1:], strict=False)]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("plots") / "data"
    return synthetic.generate(out, n_patients=4, seed=13, progress=False, workers=1)


def _window(seconds: float = 20.0) -> np.ndarray:
    rng = np.random.default_rng(0)
    n = int(seconds * 200)
    return (rng.standard_normal((20, n)) * 20 - 100).astype(np.float32)


def test_traces_are_the_bipolar_derivations_negative_up():
    eeg = _window()
    ax = plots.plot_eeg_window(eeg, band=None, scale_uv=50.0)
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
    down = plots.plot_eeg_window(eeg, band=None).get_lines()[0].get_ydata()
    up = plots.plot_eeg_window(eeg, band=None, negative_up=False).get_lines()[0].get_ydata()
    assert_allclose(up + down, 2 * 0.0, atol=1e-5)  # offset 0 for the top trace


def test_central_ten_seconds_are_shaded():
    ax = plots.plot_eeg_window(_window(50.0))
    spans = [p for p in ax.patches if p.get_width() > 0]
    assert len(spans) == 1
    x0 = spans[0].get_x()
    assert_allclose([x0, x0 + spans[0].get_width()], [20.0, 30.0])
    assert not plots.plot_eeg_window(_window(50.0), highlight_center=False).patches


def test_nan_stretches_are_gaps_and_filtering_is_applied():
    eeg = _window()
    eeg[_CH["T3"], 400:600] = np.nan
    ax = plots.plot_eeg_window(eeg)
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
    ax = plots.plot_eeg_window(_window(), montage="double_banana_18")
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[-2:] == ["Fz-Cz", "Cz-Pz"]


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="shape"):
        plots.plot_eeg_window(np.zeros((16, 1000)))
    with pytest.raises(ValueError, match="scale_uv"):
        plots.plot_eeg_window(_window(), scale_uv=0)
    with pytest.raises(ValueError, match="montage"):
        plots.plot_eeg_window(_window(), montage="average")


def test_class_examples_show_the_majority_class(data):
    fig = plots.plot_class_examples(data, seconds=10.0)
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


def test_class_examples_on_the_real_samples():
    path = Path(
        os.environ.get(
            "HMS_SAMPLES", Path(__file__).resolve().parents[1].parent / "shared" / "hms-samples"
        )
    )
    if not (path / "train.csv").is_file():
        pytest.skip(
            f"real HMS samples not found at {path} (set HMS_SAMPLES to the hms-samples folder)"
        )
    fig = plots.plot_class_examples(path)
    shown = [ax.axison for ax in fig.axes]
    assert shown == [True, False, False, False, False, False]  # the samples are all seizure rows
    assert fig.axes[0].get_title(loc="left").startswith("Seizure: 100% of 3 votes")
    with pytest.raises(ValueError, match="seconds"):
        plots.plot_class_examples(path, seconds=60)
