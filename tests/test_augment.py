"""Tests of hmslib.augment: each augmentation against an independent numpy/scipy computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose
from scipy import signal as sps

from hmslib import augment
from hmslib.constants import EEG_CHANNELS, LEFT_RIGHT_PAIRS, SFREQ
from hmslib.representations import REPRESENTATIONS


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_mirror_eeg_swaps_each_pair_and_keeps_midline():
    x = torch.arange(20, dtype=torch.float32)[None, :, None].repeat(2, 1, 3)
    out = augment.mirror_eeg(x)
    index = {name: i for i, name in enumerate(EEG_CHANNELS)}
    for left, right in LEFT_RIGHT_PAIRS:
        assert out[0, index[left], 0] == index[right] and out[0, index[right], 0] == index[left]
    for name in ("Fz", "Cz", "Pz", "EKG"):
        assert out[0, index[name], 0] == index[name]
    assert torch.equal(augment.mirror_eeg(out), x)


def test_time_shift_matches_numpy_roll_per_window():
    x = torch.randn(5, 3, 40)
    rng_a, rng_b = _rng(1), _rng(1)
    out = augment.time_shift(x, max_shift=7, rng=rng_a)
    shifts = rng_b.integers(-7, 8, size=5)
    expected = np.stack([np.roll(x[i].numpy(), shifts[i], axis=-1) for i in range(5)])
    assert_allclose(out.numpy(), expected)


def test_time_shift_works_on_images():
    x = torch.randn(4, 2, 6, 30)
    out = augment.time_shift(x, max_shift=10, rng=_rng(3))
    shifts = _rng(3).integers(-10, 11, size=4)
    expected = np.stack([np.roll(x[i].numpy(), shifts[i], axis=-1) for i in range(4)])
    assert_allclose(out.numpy(), expected)


def test_time_reverse_flips_the_chosen_windows_only():
    x = torch.randn(64, 2, 10)
    out = augment.time_reverse(x, p=0.5, rng=_rng(4))
    chosen = _rng(4).random(64) < 0.5
    assert 10 < chosen.sum() < 54
    assert_allclose(out[chosen].numpy(), x[chosen].numpy()[..., ::-1])
    assert_allclose(out[~chosen].numpy(), x[~chosen].numpy())


def test_mask_axis_zeroes_spans_within_the_width_limit():
    x = torch.ones(200, 1, 8, 100)
    out = augment.mask_axis(x, axis=-1, n_masks=1, max_width=0.2, rng=_rng(5))
    zero_cols = (out[:, 0, 0, :] == 0).numpy()
    widths = zero_cols.sum(axis=1)
    assert widths.max() <= 20 and widths.max() >= 15
    # one contiguous span per window, identical on every frequency row
    for row in zero_cols[widths > 0]:
        idx = np.flatnonzero(row)
        assert (np.diff(idx) == 1).all()
    assert torch.equal(out[:, :, 0, :], out[:, :, 7, :])
    freq = augment.mask_axis(x, axis=-2, n_masks=2, max_width=0.25, rng=_rng(6))
    assert torch.equal(freq[..., 0], freq[..., 99])
    assert ((freq[:, 0, :, 0] == 0).sum(axis=1) <= 4).all()


def test_zero_channels_zeroes_between_one_and_max_channels():
    x = torch.ones(300, 16, 50)
    out = augment.zero_channels(x, p=1.0, max_channels=8, rng=_rng(7))
    zeroed = (out.abs().sum(dim=-1) == 0).sum(dim=1).numpy()
    assert zeroed.min() == 1 and zeroed.max() == 8
    assert set(np.unique(zeroed)) == set(range(1, 9))
    untouched = augment.zero_channels(x, p=0.0, max_channels=8, rng=_rng(7))
    assert torch.equal(untouched, x)


@pytest.mark.parametrize("freq", [0.2, 1.0, 6.0, 15.0, 40.0])
def test_random_bandpass_gain_matches_a_forward_backward_butterworth(freq):
    low, high, order = 1.0, 12.0, 2
    t = np.arange(int(30 * SFREQ)) / SFREQ
    x = np.sin(2 * np.pi * freq * t)[None, None, :].astype(np.float32)
    out = augment.random_bandpass(
        torch.from_numpy(x), p=1.0, low=(low, low), high=(high, high), rng=_rng(0), order=order
    ).numpy()[0, 0]
    # analog Butterworth prototype of the same order, applied twice (|H|^2), via scipy
    b_lp, a_lp = sps.butter(order, 2 * np.pi * high, btype="low", analog=True)
    b_hp, a_hp = sps.butter(order, 2 * np.pi * low, btype="high", analog=True)
    w = 2 * np.pi * freq
    gain = (np.abs(sps.freqs(b_lp, a_lp, [w])[1]) * np.abs(sps.freqs(b_hp, a_hp, [w])[1])) ** 2
    middle = slice(int(5 * SFREQ), int(25 * SFREQ))
    amplitude = np.sqrt(2 * np.mean(out[middle] ** 2))
    assert_allclose(amplitude, gain[0], atol=0.02)


def test_random_bandpass_leaves_unchosen_windows_alone():
    x = torch.randn(3, 2, 2000)
    out = augment.random_bandpass(x, p=0.0, low=(0.5, 2.0), high=(10.0, 20.0), rng=_rng(1))
    assert torch.equal(out, x)


def test_mixup_mixes_inputs_and_targets_with_the_same_coefficients():
    x = torch.randn(16, 3, 5)
    target = torch.softmax(torch.randn(16, 6), dim=-1)
    weight = torch.rand(16)
    out_x, out_t, out_w = augment.mixup(x, target, weight, alpha=0.4, rng=_rng(2))
    check = _rng(2)
    lam = check.beta(0.4, 0.4, size=16)
    partner = check.permutation(16)
    assert_allclose(
        out_x.numpy(),
        lam[:, None, None] * x.numpy() + (1 - lam[:, None, None]) * x.numpy()[partner],
        rtol=1e-5,
        atol=1e-6,
    )
    assert_allclose(
        out_t.numpy(),
        lam[:, None] * target.numpy() + (1 - lam[:, None]) * target.numpy()[partner],
        rtol=1e-5,
        atol=1e-6,
    )
    assert_allclose(out_t.sum(dim=1).numpy(), 1.0, rtol=1e-6)
    assert_allclose(
        out_w.numpy(), lam * weight.numpy() + (1 - lam) * weight.numpy()[partner], rtol=1e-5
    )


def test_augment_config_round_trip_and_validation():
    config = augment.AugmentConfig(mixup=0.5, bandpass=0.3, bandpass_low=(0.4, 1.0))
    assert augment.AugmentConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="hemisphere_swap"):
        augment.AugmentConfig(hemisphere_swap=1.5)
    with pytest.raises(ValueError, match="unknown keys"):
        augment.AugmentConfig.from_dict({"mixupp": 0.5})
    with pytest.raises(ValueError, match="below bandpass_high"):
        augment.AugmentConfig(bandpass_low=(0.5, 12.0), bandpass_high=(10.0, 20.0))


# --------------------------------------------------------------------------------------------------
# whole batches: anatomy of the hemisphere swap, choice of operations per representation
# --------------------------------------------------------------------------------------------------

#: Relative delta amplitude per left electrode: a left temporal focus (T3/C3), fading with distance,
#: so that the bipolar derivations of the left chains carry it.
_LEFT_FOCUS = {
    "Fp1": 0.1,
    "F7": 0.6,
    "T3": 1.0,
    "T5": 0.5,
    "O1": 0.1,
    "F3": 0.4,
    "C3": 0.9,
    "P3": 0.3,
}


def _left_lrda_window(batch: int = 2, seed: int = 0) -> np.ndarray:
    """Referential EEG ``(batch, 20, 10000)``: 10 µV noise + a 1.5 Hz, 150 µV delta over the left."""
    rng = np.random.default_rng(seed)
    t = np.arange(10_000) / SFREQ
    eeg = 10.0 * rng.standard_normal((batch, 20, t.size))
    for name, gain in _LEFT_FOCUS.items():
        eeg[:, EEG_CHANNELS.index(name)] += 150.0 * gain * np.sin(2 * np.pi * 1.5 * t)
    return eeg.astype(np.float32)


def _mirror_name(pair: str) -> str:
    mirror = {a: b for a, b in LEFT_RIGHT_PAIRS} | {b: a for a, b in LEFT_RIGHT_PAIRS}
    return "-".join(mirror.get(e, e) for e in pair.split("-"))


def _delta_power(x: np.ndarray) -> np.ndarray:
    """1-4 Hz band power per channel (Welch), independent of hmslib: ``(..., channels)``."""
    f, pxx = sps.welch(x, fs=SFREQ, nperseg=1024, axis=-1)
    band = (f >= 1) & (f <= 4)
    return pxx[..., band].sum(axis=-1)


def test_hemisphere_swap_moves_a_left_delta_focus_to_the_right():
    from hmslib.representations import compute_representation
    from hmslib.signal import montage_names

    names = montage_names("double_banana")
    left = [i for i, n in enumerate(names) if n.split("-")[0] in _LEFT_FOCUS]
    right = [i for i, n in enumerate(names) if _mirror_name(n) in [names[j] for j in left]]
    assert len(left) == len(right) == 8

    x = compute_representation("bipolar_raw", _left_lrda_window())
    config = augment.AugmentConfig(hemisphere_swap=1.0)
    swapped = augment.augment_features(x, "bipolar_raw", config=config, rng=_rng())
    before, after = _delta_power(x.numpy()), _delta_power(swapped.numpy())
    assert (before[:, left].mean(axis=1) > 20 * before[:, right].mean(axis=1)).all()
    assert (after[:, right].mean(axis=1) > 20 * after[:, left].mean(axis=1)).all()
    # pair by pair: the delta power of each pair is now found at its mirror image
    for i, name in enumerate(names):
        j = names.index(_mirror_name(name))
        assert_allclose(after[:, j], before[:, i], rtol=1e-5)


@pytest.mark.parametrize("name", ["chain_mel", "bipolar_raw"])
def test_mirroring_electrodes_equals_mirroring_the_representation(name):
    from hmslib.representations import compute_representation, swap_hemispheres

    eeg = torch.from_numpy(_left_lrda_window(batch=2, seed=1))
    config = augment.AugmentConfig(hemisphere_swap=1.0)
    mirrored_eeg, _ = augment.augment_signal(eeg, None, config=config, rng=_rng())
    from_signal = compute_representation(name, mirrored_eeg)
    from_features = swap_hemispheres(compute_representation(name, eeg), name)
    assert_allclose(from_signal.numpy(), from_features.numpy(), rtol=1e-4, atol=1e-4)
    if name == "chain_mel":  # chains LL, LP, RP, RL; values are dB / 15: 0.2 is 3 dB
        power = from_features.numpy().mean(axis=(2, 3))
        assert (power[:, [2, 3]].min(axis=1) > power[:, [0, 1]].max(axis=1) + 0.2).all()


def test_augment_signal_mirrors_kaggle_regions_with_the_electrodes():
    eeg = torch.zeros(3, 20, 100)
    spec = torch.arange(4, dtype=torch.float32)[None, :, None, None].expand(3, 4, 2, 5).clone()
    config = augment.AugmentConfig(hemisphere_swap=1.0)
    _, out = augment.augment_signal(eeg, spec, config=config, rng=_rng())
    # file order LL, RL, LP, RP -> RL, LL, RP, LP
    assert out[:, :, 0, 0].tolist() == [[1.0, 0.0, 3.0, 2.0]] * 3


def test_augment_signal_bandpass_keeps_nan_positions():
    eeg = torch.randn(2, 20, 2000)
    eeg[0, 3, 100:200] = float("nan")
    config = augment.AugmentConfig(hemisphere_swap=0.0, bandpass=1.0)
    out, _ = augment.augment_signal(eeg, None, config=config, rng=_rng())
    assert torch.equal(torch.isnan(out), torch.isnan(eeg))
    assert torch.isfinite(out[1]).all()


def test_augment_features_chooses_operations_by_layout():
    rng_seed = 11
    x = torch.randn(4, 4, 64, 128)
    shift_only = augment.AugmentConfig(hemisphere_swap=0.0, time_shift_s=10.0)
    out = augment.augment_features(x, "chain_mel", config=shift_only, rng=_rng(rng_seed))
    check = _rng(rng_seed)
    check.random(4)  # the (disabled) hemisphere-swap draw
    shifts = check.integers(-26, 27, size=4)  # 10 s of 128 columns over 50 s
    expected = np.stack([np.roll(x[i].numpy(), shifts[i], axis=-1) for i in range(4)])
    assert_allclose(out.numpy(), expected)
    tiles = torch.randn(2, 1, 512, 512)
    assert torch.equal(
        augment.augment_features(tiles, "tiles_kaggle_eeg", config=shift_only, rng=_rng()), tiles
    )

    zero = augment.AugmentConfig(hemisphere_swap=0.0, channel_zero=1.0, channel_zero_max=3)
    mel16 = torch.ones(8, 1, 16 * 64, 20)
    blocks = augment.augment_features(mel16, "mel16", config=zero, rng=_rng()).reshape(
        8, 16, 64, 20
    )
    per_block = blocks.sum(dim=(2, 3))
    assert ((per_block == 0) | (per_block == 64 * 20)).all()
    assert ((per_block == 0).sum(dim=1) >= 1).all() and ((per_block == 0).sum(dim=1) <= 3).all()
    images = torch.ones(8, 4, 64, 128)
    assert torch.equal(
        augment.augment_features(images, "chain_mel", config=zero, rng=_rng()), images
    )

    masks = augment.AugmentConfig(hemisphere_swap=0.0, freq_masks=1, freq_mask_width=0.5)
    raw = torch.ones(2, 16, 10000)
    assert torch.equal(augment.augment_features(raw, "bipolar_raw", config=masks, rng=_rng()), raw)
    assert (augment.augment_features(images, "chain_mel", config=masks, rng=_rng()) == 0).any()


def _kaggle_spec_windows(batch: int, seed: int) -> torch.Tensor:
    """Positive Kaggle-like spectrogram windows ``(batch, 4, 100, 300)``."""
    draws = np.random.default_rng(seed).lognormal(1.0, 1.0, (batch, 4, 100, 300))
    return torch.from_numpy(draws.astype(np.float32))


@pytest.mark.parametrize("name", sorted(REPRESENTATIONS))
def test_gain_on_a_representation_equals_the_representation_of_the_scaled_eeg(name):
    """ReprInfo.apply_gain against the representation recomputed from EEG x gain."""
    from hmslib.representations import compute_representation, representation_info

    info = representation_info(name)
    eeg = torch.from_numpy(_left_lrda_window(batch=2, seed=3))
    spec = _kaggle_spec_windows(2, 3) if info.uses_kaggle_spectrogram else None
    gain = torch.tensor([0.4, 2.5], dtype=torch.float64)
    from_signal = compute_representation(name, eeg * gain.float()[:, None, None], spec)
    from_features = info.apply_gain(compute_representation(name, eeg, spec), gain)
    scale = float(from_signal.abs().max())
    assert_allclose(from_features.numpy(), from_signal.numpy(), atol=2e-3 * scale)
    if info.gain != "invariant":  # and the gain is visible: not a no-op dressed as one
        unchanged = compute_representation(name, eeg, spec)
        assert float((from_signal - unchanged).abs().max()) > 0.05 * scale


def test_random_gain_scales_the_chosen_windows_log_uniformly():
    eeg = torch.ones(4000, 20, 10)
    config = augment.AugmentConfig(hemisphere_swap=0.0, gain=0.5, gain_range=(0.5, 2.0))
    out, _ = augment.augment_signal(eeg, None, config=config, rng=_rng(5))
    factors = out[:, 0, 0].numpy()
    assert_allclose(out.numpy(), factors[:, None, None] * np.ones((1, 20, 10)), rtol=1e-6)
    changed = factors != 1.0
    assert 0.45 < changed.mean() < 0.55
    assert factors.min() >= 0.5 and factors.max() <= 2.0
    # log-uniform: log2 of the factors uniform on [-1, 1] (Kolmogorov-Smirnov against scipy)
    from scipy import stats

    assert stats.kstest(np.log2(factors[changed]), stats.uniform(-1, 2).cdf).pvalue > 0.01
    # on features, through the representation's own rule: chain_mel adds 20 log10(g) / 8 dB units
    x = torch.zeros(6, 4, 64, 128)
    feat = augment.augment_features(x, "chain_mel", config=config, rng=_rng(5))
    check = _rng(5)
    check.random(6)  # the (disabled) hemisphere-swap draw
    on = check.random(6) < 0.5
    g = np.where(on, np.exp(check.uniform(np.log(0.5), np.log(2.0), 6)), 1.0)
    assert_allclose(feat[:, 0, 0, 0].numpy(), 20 * np.log10(g) / 8.0, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="gain"):
        augment.AugmentConfig(gain=1.5)
    with pytest.raises(ValueError, match="gain_range"):
        augment.AugmentConfig(gain_range=(2.0, 1.0))
