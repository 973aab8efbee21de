"""Tests of hmslib.representations against librosa, scipy, numpy references and the real sample EEG."""

from __future__ import annotations

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


def _notebook_loop(window: np.ndarray) -> np.ndarray:
    """The public notebook's librosa loop for one window (20, 10000) -> (4, 128, 256)."""
    img = np.zeros((4, 128, 256), dtype=np.float32)
    for k, chain in enumerate(CHAINS.values()):
        for kk in range(4):
            x = window[CH[chain[kk]]] - window[CH[chain[kk + 1]]]
            m = np.nanmean(x) if not np.isnan(x).all() else 0.0
            x = np.nan_to_num(x, nan=m) if np.isnan(x).mean() < 1 else np.zeros_like(x)
            mel = librosa.feature.melspectrogram(
                y=x, sr=200, hop_length=len(x) // 256, n_fft=1024, n_mels=128, fmin=0, fmax=20,
                win_length=128,
            )  # fmt: skip
            width = (mel.shape[1] // 32) * 32
            db = librosa.power_to_db(mel, ref=np.max).astype(np.float32)[:, :width]
            img[k] += (db + 40) / 40
        img[k] /= 4.0
    return img


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
