"""Tests of hmslib.representations against librosa, scipy, numpy references and the real sample EEG."""

from __future__ import annotations

import warnings
from pathlib import Path

import librosa
import numpy as np
import pandas as pd
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from scipy import signal as sps

from hmslib import representations as S
from hmslib.constants import CHAINS, EEG_CHANNELS, LEFT_RIGHT_PAIRS, SPEC_REGIONS

SFREQ = 200.0
CH = {c: i for i, c in enumerate(EEG_CHANNELS)}
BANANA = [(c[i], c[i + 1]) for c in CHAINS.values() for i in range(4)]


def _eeg(path: Path) -> np.ndarray:
    return pd.read_parquet(path)[list(EEG_CHANNELS)].to_numpy(np.float32).T.copy()


@pytest.fixture(scope="module")
def real_windows(hms_samples) -> np.ndarray:
    """Three train windows (offsets 0, 24, 40 s) and the public test EEG: (4, 20, 10000)."""
    train = _eeg(hms_samples / "train_eegs" / "1628180742.parquet")
    test = _eeg(hms_samples / "test_eegs" / "3911565283.parquet")
    return np.stack([train[:, o * 200 : o * 200 + 10_000] for o in (0, 24, 40)] + [test])


@pytest.fixture(scope="module")
def real_spec(hms_samples) -> np.ndarray:
    """The test spectrogram window (1, 4, 100, 300) as hmslib.io loads it (regions LL, RL, LP, RP)."""
    from hmslib.io import load_spectrogram_window

    return load_spectrogram_window(hms_samples, 853520, 0.0, "test")[None]


# The public notebook's electrode chains, as published (its names LL, LP, RP, RR; the third chain
# is the right lateral one, the fourth the right parasagittal one).
NOTEBOOK_FEATS = [
    ["Fp1", "F7", "T3", "T5", "O1"],
    ["Fp1", "F3", "C3", "P3", "O1"],
    ["Fp2", "F8", "T4", "T6", "O2"],
    ["Fp2", "F4", "C4", "P4", "O2"],
]


def _notebook_loop(window: np.ndarray) -> np.ndarray:
    """The public notebook's ``spectrogram_from_eeg`` loop on one window (20, 10000) -> (4, 128, 256).

    Written as published (its ``img`` is ``(128, 256, 4)``; transposed at the end), reading the
    pairs by column name from a DataFrame of the window, without the optional wavelet denoising.
    """
    eeg = pd.DataFrame(window.T, columns=list(EEG_CHANNELS))
    img = np.zeros((128, 256, 4), dtype="float32")
    for k in range(4):
        COLS = NOTEBOOK_FEATS[k]
        for kk in range(4):
            # COMPUTE PAIR DIFFERENCES
            x = eeg[COLS[kk]].values - eeg[COLS[kk + 1]].values
            # FILL NANS
            with np.errstate(invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # nanmean of an all-NaN pair
                m = np.nanmean(x)
            if np.isnan(x).mean() < 1:
                x = np.nan_to_num(x, nan=m)
            else:
                x[:] = 0
            # RAW SPECTROGRAM
            mel_spec = librosa.feature.melspectrogram(
                y=x, sr=200, hop_length=len(x) // 256, n_fft=1024, n_mels=128, fmin=0, fmax=20,
                win_length=128,
            )  # fmt: skip
            # LOG TRANSFORM
            width = (mel_spec.shape[1] // 32) * 32
            mel_spec_db = librosa.power_to_db(mel_spec, ref=np.max).astype(np.float32)[:, :width]
            # STANDARDIZE TO -1 TO 1
            mel_spec_db = (mel_spec_db + 40) / 40
            img[:, :, k] += mel_spec_db
        # AVERAGE THE 4 MONTAGE DIFFERENCES
        img[:, :, k] /= 4.0
    return img.transpose(2, 0, 1)


def _scaled_bipolar(window, low=0.5, high=20.0, order=4, clip=1024.0, divisor=32.0) -> np.ndarray:
    """Reference input scaling: hand-computed pairs, scipy band-pass, clip +-1024, / 32."""
    x = np.stack([window[CH[a]] - window[CH[b]] for a, b in BANANA]).astype(np.float64)
    sos = sps.butter(order, [low, high], btype="bandpass", fs=SFREQ, output="sos")
    return np.clip(sps.sosfiltfilt(sos, x, axis=-1), -clip, clip) / divisor


def test_public_notebook_matches_librosa_loop(real_windows):
    ours = S.public_notebook_images(real_windows)
    assert ours.shape == (4, 4, 128, 256) and ours.dtype == torch.float32
    expected = np.stack([_notebook_loop(w) for w in real_windows])
    assert np.abs(ours.numpy() - expected).max() < 1e-3


def test_public_notebook_images_come_in_the_notebook_chain_order(real_windows):
    """Image k is chain k of the notebook: its third image is Fp2-F8-T4-T6-O2 (RL), its fourth
    Fp2-F4-C4-P4-O2 (RP); a window with signal on one chain only lights up that image alone."""
    assert S.PUBLIC_NOTEBOOK_CHAINS == ("LL", "LP", "RL", "RP")
    assert [list(CHAINS[c]) for c in S.PUBLIC_NOTEBOOK_CHAINS] == NOTEBOOK_FEATS
    t = np.arange(10_000) / SFREQ
    for k, chain in enumerate(NOTEBOOK_FEATS):
        window = np.zeros((20, 10_000), dtype=np.float32)
        for electrode in chain[1:-1]:  # inner electrodes of the chain: only its pairs see them
            window[CH[electrode]] = 50 * np.sin(2 * np.pi * 3.0 * t)
        images = S.public_notebook_images(window[None])[0].numpy()
        energy = images.max(axis=(1, 2)) - images.min(axis=(1, 2))
        assert energy.argmax() == k and (np.delete(energy, k) < 1e-6).all(), (chain, energy)


def test_public_notebook_nan_handling_matches_notebook(real_windows):
    window = real_windows[3].copy()
    window[CH["T3"], 3000:3500] = np.nan  # a gap in two pairs of LL
    window[CH["Fp2"], :] = np.nan  # a flat-lined electrode: pairs Fp2-F4, Fp2-F8 are all NaN
    ours = S.public_notebook_images(torch.from_numpy(window[None]))[0].numpy()
    assert np.abs(ours - _notebook_loop(window)).max() < 1e-3


# --------------------------------------------------------------------------------------------------
# representations
# --------------------------------------------------------------------------------------------------


def _mirror_eeg(eeg: np.ndarray) -> np.ndarray:
    perm = np.arange(len(EEG_CHANNELS))
    for a, b in LEFT_RIGHT_PAIRS:
        perm[CH[a]], perm[CH[b]] = CH[b], CH[a]
    return eeg[:, perm]


def _mirror_spec(spec: np.ndarray) -> np.ndarray:
    mirror = {"LL": "RL", "RL": "LL", "LP": "RP", "RP": "LP"}
    return spec[:, [SPEC_REGIONS.index(mirror[r]) for r in SPEC_REGIONS]]


def test_every_representation_shape_and_mirror():
    """compute(mirrored input) == swap_hemispheres(compute(input)) for every representation."""
    rng = np.random.default_rng(5)
    t = np.arange(10_000) / SFREQ
    eeg = (30 * rng.standard_normal((1, 20, 10_000)) - 100).astype(np.float32)
    eeg[0, CH["T3"]] += 80 * np.sin(2 * np.pi * 2.0 * t)  # a left-sided rhythm
    eeg[0, CH["C3"], 100:180] = np.nan  # NaN is repaired inside
    real_spec = rng.gamma(2.0, 3.0, size=(1, 4, 100, 300)).astype(np.float32)
    assert S.DEFAULT_REPR in S.REPRESENTATIONS and S.DEFAULT_RAW_REPR in S.REPRESENTATIONS
    for name, info in S.REPRESENTATIONS.items():
        x = S.compute_representation(name, eeg, real_spec)
        assert x.shape == (1, *info.shape) and x.dtype == torch.float32, name
        assert torch.isfinite(x).all(), name
        mirrored = S.compute_representation(name, _mirror_eeg(eeg), _mirror_spec(real_spec))
        swapped = S.swap_hemispheres(x, name)
        assert_allclose(swapped.numpy(), mirrored.numpy(), atol=1e-4, err_msg=name)
        assert_allclose(info.swap(x.numpy()), swapped.numpy(), err_msg=name)  # numpy path
        axis_len = info.shape[-2] if info.mirror_rows else info.shape[0]
        assert sorted(info.mirror) == list(range(axis_len)), name  # a permutation of that axis
    default = S.representation_info(S.DEFAULT_REPR)
    assert default.kind == "image" and np.prod(default.shape[1:]) <= 128 * 256


def test_bipolar_raw_and_raw_image_against_scipy(real_windows):
    ref = _scaled_bipolar(real_windows[0])
    raw = S.compute_representation("bipolar_raw", real_windows[:1])[0].numpy()
    assert_allclose(raw, ref, atol=1e-4)
    options = dict(low=1.0, high=30.0, order=2, clip_uv=100.0, divisor=1.0)
    custom = S.scaled_bipolar(real_windows[:1], pairs=S.INTERLEAVED_ORDER, **options)[0].numpy()
    ref_custom = _scaled_bipolar(real_windows[0], 1.0, 30.0, 2, 100.0, 1.0)
    assert_allclose(custom, ref_custom[list(S.INTERLEAVED_ORDER)], atol=1e-3)
    image = S.compute_representation("raw_image", real_windows[:1])[0, 0].numpy()
    for segment, pair in [(0, 0), (3, 7), (9, 15)]:
        assert_allclose(
            image[16 * segment + pair], ref[pair, 1000 * segment : 1000 * (segment + 1)], atol=1e-4
        )


def test_bipolar_settings_are_the_ones_the_computation_uses(real_windows, monkeypatch):
    """ReprInfo.bipolar (what `hms export` writes) is the filter step each representation runs:
    a representation computed with a changed setting changes, and matches scipy with it."""
    assert S.representation_info("public_notebook").bipolar is None
    assert S.representation_info("bipolar_raw").bipolar is S.FILTERED
    assert S.representation_info("mel16").bipolar.to_dict()["pairs"] == [
        S.BANANA_NAMES[i] for i in S.INTERLEAVED_ORDER
    ]
    assert S.representation_info("bipolar_center_z").bipolar.to_dict()["clip_uv"] is None
    changed = S.BipolarScaling(low=1.0, high=30.0, order=2, clip_uv=100.0, divisor=1.0)
    monkeypatch.setattr(S, "FILTERED", changed)
    raw = S.compute_representation("bipolar_raw", real_windows[:1])[0].numpy()
    assert_allclose(raw, _scaled_bipolar(real_windows[0], 1.0, 30.0, 2, 100.0, 1.0), atol=1e-3)


def test_chain_mel_and_mel16_against_librosa(real_windows):
    ref_bipolar = _scaled_bipolar(real_windows[1]).astype(np.float32)
    mels = librosa.feature.melspectrogram(
        y=ref_bipolar, sr=200, n_fft=1024, hop_length=78, win_length=256, n_mels=64, fmin=0.5,
        fmax=20.0,
    )[..., :128]  # fmt: skip
    chain = 10 * np.log10(mels.reshape(4, 4, 64, 128).mean(axis=1))
    ours = S.compute_representation("chain_mel", real_windows[1:2])[0].numpy()
    offset, scale = S._CHAIN_MEL_DB
    assert_allclose(ours, (chain - offset) / scale, atol=2e-3)

    zoom = S.compute_representation("mel16_zoom", real_windows[1:2])[0, 0].numpy()
    plain = S.compute_representation("mel16", real_windows[1:2])[0, 0].numpy()
    assert_allclose(zoom[:, :256], plain, atol=1e-5)
    kw = dict(
        sr=200, n_fft=1024, win_length=128, n_mels=64, fmin=0.53, fmax=30.0, htk=True, norm=None
    )
    offset, scale = S._MEL16_DB
    pair = S.INTERLEAVED_ORDER[1]  # second block: Fp2-F8
    assert S.BANANA_NAMES[pair] == "Fp2-F8"
    full = librosa.feature.melspectrogram(y=ref_bipolar[pair], hop_length=39, **kw)[:, :256]
    assert_allclose(plain[64:128], (10 * np.log10(full) - offset) / scale, atol=2e-3)
    # zoom: 256 frames every 8 samples centred on samples 3980 ... 6020 (the middle 10 s)
    centre = librosa.feature.melspectrogram(
        y=ref_bipolar[pair, 3980 - 512 : 6020 + 512], hop_length=8, center=False, **kw
    )
    assert_allclose(zoom[64:128, 256:], (10 * np.log10(centre) - offset) / scale, atol=2e-3)


def test_cwt_peaks_at_the_tone_frequency():
    t = np.arange(10_000) / SFREQ
    eeg = np.zeros((1, 20, 10_000), dtype=np.float32)
    eeg[0, CH["F7"]] = 40 * np.sin(2 * np.pi * 7.0 * t)  # F7 enters LL only (Fp1-F7, F7-T3)
    x = S.compute_representation("cwt", eeg)[0].numpy()
    peak = S._CWT_FREQS[x[0, :, 50:200].mean(axis=-1).argmax()]
    assert abs(peak - 7.0) < 0.5
    assert x[0].max() > x[3].max() + 5  # RL sees nothing


def test_kaggle_spectrogram_against_numpy(real_spec):
    spec = real_spec.copy()
    spec[0, 1, 5:9, 10:20] = np.nan
    ours = S.compute_representation("kaggle_spectrogram", None, spec)[0].numpy()
    for k, region in enumerate(("LL", "LP", "RP", "RL")):
        img = np.log(np.clip(spec[0, SPEC_REGIONS.index(region)], np.exp(-4), np.exp(8)))
        img = np.nan_to_num((img - np.nanmean(img)) / (np.nanstd(img) + 1e-6), nan=0.0)
        assert_allclose(ours[k], img, atol=1e-4)
    tiles = S.compute_representation("tiles_kaggle_eeg", np.zeros((1, 20, 10_000)), real_spec)
    tiles = tiles[0, 0].numpy()
    ll = S.compute_representation("kaggle_spectrogram", None, real_spec)[0, 0].numpy()
    assert_allclose(tiles[14:114, :256], ll[:, 22:278] / 2, atol=1e-6)
    assert_array_equal(tiles[:14, :256], 0.0)


def test_tiles_hold_one_region_per_row_in_both_halves(real_windows, real_spec):
    """Tile row k is chain k (LL, LP, RP, RL) on the left (Kaggle) and on the right (EEG image)."""
    eeg = real_windows[3:4]
    tiles = S.compute_representation("tiles_kaggle_eeg", eeg, real_spec)[0, 0].numpy()
    kaggle = S.compute_representation("kaggle_spectrogram", None, real_spec)[0].numpy()
    images = _notebook_loop(eeg[0])  # notebook order LL, LP, RL, RP
    for k, chain in enumerate(CHAINS):
        rows = slice(128 * k, 128 * (k + 1))
        assert_allclose(tiles[rows][14:114, :256], kaggle[k][:, 22:278] / 2, atol=1e-6)
        image = images[NOTEBOOK_FEATS.index(list(CHAINS[chain]))]
        assert_allclose(tiles[rows, 256:], image, atol=1e-3)


def test_bad_input_errors(real_windows, real_spec):
    with pytest.raises(ValueError, match=r"unknown representation 'mel17'.*chain_mel"):
        S.compute_representation("mel17", real_windows)
    with pytest.raises(ValueError, match="200 Hz, got sfreq=256"):
        S.compute_representation("chain_mel", real_windows, sfreq=256.0)
    with pytest.raises(ValueError, match="10000 samples.*found 9999"):
        S.compute_representation("chain_mel", real_windows[..., :9999])
    with pytest.raises(ValueError, match=r"\(batch, 20, 10000\).*\(4, 19, 10000\)"):
        S.public_notebook_images(real_windows[:, :19])
    with pytest.raises(ValueError, match="needs Kaggle spectrogram"):
        S.compute_representation("tiles_kaggle_eeg", real_windows)
    with pytest.raises(ValueError, match="4 EEG windows but 1 spectrogram"):
        S.compute_representation("tiles_kaggle_eeg", real_windows, real_spec)
    with pytest.raises(ValueError, match=r"expected \(\.\.\., \*\(4, 64, 128\)\)"):
        S.swap_hemispheres(torch.zeros(2, 4, 64, 127), "chain_mel")


# --------------------------------------------------------------------------------------------------
# the centre 10 s (SPaRCNet's input)
# --------------------------------------------------------------------------------------------------

CENTRE = slice(4000, 6000)  # the labelled 10 s of a 50 s window at 200 Hz, by hand
PAIR = {name: i for i, name in enumerate(f"{a}-{b}" for a, b in BANANA)}


def _zscore(x: np.ndarray) -> np.ndarray:
    """Float64 z-score of every row over its samples (population SD)."""
    x = np.asarray(x, dtype=np.float64)
    return (x - x.mean(axis=-1, keepdims=True)) / x.std(axis=-1, keepdims=True)


def _center_z_reference(window: np.ndarray) -> np.ndarray:
    """bipolar_center_z by hand: the centre, leads z-scored, pairs, scipy band-pass, pairs z-scored."""
    leads = _zscore(window[:, -2000:] if window.shape[-1] == 2000 else window[:, CENTRE])
    pairs = np.stack([leads[CH[a]] - leads[CH[b]] for a, b in BANANA])
    sos = sps.butter(4, [0.5, 20.0], btype="bandpass", fs=SFREQ, output="sos")
    return _zscore(sps.sosfiltfilt(sos, pairs, axis=-1))


@pytest.fixture(scope="module")
def real_centre_windows(hms_samples) -> tuple[np.ndarray, pd.DataFrame]:
    """The 11 real centre windows (11, 20, 2000), z-scored per lead, and their labels.csv."""
    folder = hms_samples / "real_windows" / "elektra_center10s"
    if not (folder / "labels.csv").is_file():
        pytest.skip(f"real centre windows not found at {folder}")
    table = pd.read_csv(folder / "labels.csv")
    return np.stack([_eeg(folder / f) for f in table.file]), table


def test_center_layout_and_mirror():
    for name in ("bipolar_center", "bipolar_center_z"):
        info = S.representation_info(name)
        assert info.shape == (16, 2000) and info.kind == "raw" and info.center_input
        assert info.seconds == 10.0 and info.pair_blocks == 16 and not info.freq_axis
        # the mirror exchanges each pair with its homologue by name (midline pairs: none here)
        for left, right in [("Fp1-F7", "Fp2-F8"), ("T5-O1", "T6-O2"), ("C3-P3", "C4-P4")]:
            assert info.mirror[PAIR[left]] == PAIR[right] and info.mirror[PAIR[right]] == PAIR[left]
        x = torch.arange(2 * 16 * 2000, dtype=torch.float32).reshape(2, 16, 2000)
        swapped = S.swap_hemispheres(x, name)
        assert torch.equal(swapped[:, PAIR["F7-T3"]], x[:, PAIR["F8-T4"]])
        assert torch.equal(S.swap_hemispheres(swapped, name), x)
    assert S.CENTER_SAMPLES == 2000 and S.CENTER_SLICE == CENTRE


def test_bipolar_center_is_the_centre_of_scipy_filtered_bipolar(real_windows):
    x = S.compute_representation("bipolar_center", real_windows[:2]).numpy()
    assert x.shape == (2, 16, 2000) and x.dtype == np.float32
    for k in range(2):
        # filtered over the whole 50 s, then sliced (the context of the full window is used)
        assert_allclose(x[k], _scaled_bipolar(real_windows[k])[:, CENTRE], atol=1e-4)
    # a window of only the centre is filtered on its own 10 s
    alone = S.compute_representation("bipolar_center", real_windows[:1, :, CENTRE]).numpy()
    assert_allclose(alone[0], _scaled_bipolar(real_windows[0, :, CENTRE]), atol=1e-4)


def test_bipolar_center_z_against_numpy(real_windows):
    window = real_windows[1]
    x = S.compute_representation("bipolar_center_z", real_windows[1:2]).numpy()[0]
    assert_allclose(x, _center_z_reference(window), atol=2e-4)
    assert_allclose(x.mean(axis=-1), 0.0, atol=1e-5)
    assert_allclose(x.std(axis=-1), 1.0, atol=1e-5)
    # defined on the centre alone: a 50 s window and its 10 s centre give the same tensor
    centre = S.compute_representation("bipolar_center_z", real_windows[1:2, :, CENTRE]).numpy()
    assert_array_equal(centre[0], x)
    # a flat lead gives pairs that are the other lead's (z-scored); a flat pair gives zeros
    flat = window.copy()
    flat[CH["Fp1"]] = 7.0
    flat[CH["F7"]] = 7.0  # Fp1-F7 is flat
    z = S.compute_representation("bipolar_center_z", flat[None]).numpy()[0]
    assert_array_equal(z[PAIR["Fp1-F7"]], 0.0)
    assert np.isfinite(z).all()


def test_bipolar_center_z_reads_real_centre_windows(real_centre_windows):
    """The real 10 s windows (already z-scored per lead) give what the raw leads would: the
    representation is invariant to each lead's offset and scale."""
    eeg, _ = real_centre_windows
    assert eeg.shape == (11, 20, 2000)
    x = S.compute_representation("bipolar_center_z", eeg)
    assert x.shape == (11, 16, 2000) and torch.isfinite(x).all()
    assert_allclose(x[3].numpy(), _center_z_reference(eeg[3]), atol=2e-4)
    rng = np.random.default_rng(0)
    scale = rng.uniform(5.0, 80.0, size=(1, 20, 1)).astype(np.float32)
    offset = rng.uniform(-150.0, 150.0, size=(1, 20, 1)).astype(np.float32)
    rescaled = S.compute_representation("bipolar_center_z", eeg * scale + offset)
    assert_allclose(rescaled.numpy(), x.numpy(), atol=1e-3)
    with pytest.raises(ValueError, match="10000 samples.*found 2000"):
        S.compute_representation("bipolar_raw", eeg)  # only centre representations read 10 s


def test_center_augmentations_follow_the_layout():
    from hmslib.augment import AugmentConfig, augment_features

    x = torch.randn(4, 16, 2000)
    swap = AugmentConfig(hemisphere_swap=1.0)
    out = augment_features(x, "bipolar_center_z", config=swap, rng=np.random.default_rng(0))
    assert torch.equal(out, S.swap_hemispheres(x, "bipolar_center_z"))
    # a 1 s time shift of a 10 s axis is at most 200 samples: every window is a roll of its input
    shift = AugmentConfig(hemisphere_swap=0.0, time_shift_s=1.0)
    out = augment_features(x, "bipolar_center", config=shift, rng=np.random.default_rng(1))
    for k in range(4):
        rolls = [s for s in range(-200, 201) if torch.equal(out[k], torch.roll(x[k], s, dims=-1))]
        assert len(rolls) == 1
    zero = AugmentConfig(hemisphere_swap=0.0, channel_zero=1.0, channel_zero_max=3)
    out = augment_features(x, "bipolar_center", config=zero, rng=np.random.default_rng(2))
    zeroed = (out == 0).all(dim=-1)
    assert (zeroed.sum(dim=1) >= 1).all() and (zeroed.sum(dim=1) <= 3).all()
    assert torch.equal(out[~zeroed], x[~zeroed])
