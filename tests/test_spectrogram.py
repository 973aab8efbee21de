"""Tests of hmslib.spectrogram against librosa, scipy, numpy references and the real sample EEG."""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import pandas as pd
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from scipy import signal as sps

from hmslib import spectrogram as S
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


# --------------------------------------------------------------------------------------------------
# building blocks
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(sr=200, n_fft=1024, n_mels=128, fmin=0.0, fmax=20.0),
        dict(sr=200, n_fft=1024, n_mels=64, fmin=0.53, fmax=30.0, htk=True, norm=None),
        dict(sr=22050, n_fft=2048, n_mels=128, fmin=0.0, fmax=11025.0),  # Slaney log part
    ],
)
def test_mel_filterbank_matches_librosa(kwargs):
    ref = librosa.filters.mel(**kwargs)
    ours = S.filterbank(
        sfreq=kwargs["sr"], n_fft=kwargs["n_fft"], n_bins=kwargs["n_mels"], fmin=kwargs["fmin"],
        fmax=kwargs["fmax"], htk=kwargs.get("htk", False), norm=kwargs.get("norm", "slaney"),
    )  # fmt: skip
    assert ours.dtype == np.float32
    assert_allclose(ours, ref, rtol=1e-5, atol=1e-9)


def test_linear_filterbank_hand_worked():
    # 1 Hz FFT bins and edges on whole Hz: filter i is the single bin at i + 1 Hz
    fb = S.filterbank(sfreq=200.0, n_fft=200, n_bins=10, fmin=0.0, fmax=11.0, scale="linear")
    expected = np.zeros((10, 101), dtype=np.float32)
    expected[np.arange(10), np.arange(1, 11)] = 1.0
    assert_allclose(fb, expected, atol=1e-6)


@pytest.mark.parametrize("pad_mode", ["constant", "reflect"])
@pytest.mark.parametrize(("n_fft", "hop", "win"), [(1024, 39, 128), (256, 50, 256), (512, 33, 200)])
def test_stft_power_matches_librosa(n_fft, hop, win, pad_mode):
    rng = np.random.default_rng(0)
    y = rng.standard_normal((2, 3000)).astype(np.float32) * 50
    power, freqs = S.stft_power(
        y, n_fft=n_fft, hop_length=hop, win_length=win, fmin=0.0, fmax=30.0, pad_mode=pad_mode
    )
    ref = np.abs(
        librosa.stft(y, n_fft=n_fft, hop_length=hop, win_length=win, pad_mode=pad_mode)
    ) ** 2  # fmt: skip
    keep = np.fft.rfftfreq(n_fft, 1 / SFREQ) <= 30.0
    assert_allclose(freqs, np.fft.rfftfreq(n_fft, 1 / SFREQ)[keep])
    assert power.shape == (2, keep.sum(), ref.shape[-1])
    assert_allclose(power.numpy(), ref[:, keep], rtol=1e-3, atol=1e-5 * ref.max())


def test_stft_pure_tone_against_scipy():
    t = np.arange(4000) / SFREQ
    x = 30.0 * np.sin(2 * np.pi * 12.5 * t)  # 12.5 Hz = bin 16 of a 256-point FFT
    f, _, z = sps.stft(x, fs=SFREQ, window="hann", nperseg=256, noverlap=256 - 64, boundary="zeros")
    power, freqs = S.stft_power(x, n_fft=256, hop_length=64)
    scipy_power = np.abs(z * sps.get_window("hann", 256).sum()) ** 2  # undo scipy's scaling
    frames = power.shape[-1]
    assert_allclose(freqs, f)
    assert_allclose(
        power.numpy(), scipy_power[:, :frames], rtol=1e-4, atol=1e-4 * power.max().item()
    )
    middle = power[:, 5:-5].argmax(dim=0).numpy()
    assert_array_equal(middle, 16)
    assert_array_equal(scipy_power[:, 5 : frames - 5].argmax(axis=0), 16)


def test_mel_spectrogram_matches_librosa_other_settings():
    rng = np.random.default_rng(1)
    y = rng.standard_normal(5000).astype(np.float32)
    kw = dict(n_fft=512, hop_length=50, win_length=256, n_mels=40, fmin=1.0, fmax=40.0)
    ref = librosa.feature.melspectrogram(y=y, sr=200, pad_mode="reflect", **kw)
    ours = S.spectrogram(
        y, n_fft=512, hop_length=50, win_length=256, n_bins=40, fmin=1.0, fmax=40.0,
        pad_mode="reflect",
    )  # fmt: skip
    assert_allclose(ours.numpy(), ref, rtol=1e-3, atol=1e-6 * ref.max())


@pytest.mark.parametrize(("ref", "top_db"), [("max", 80.0), (1.0, None), (3.5, 40.0)])
def test_power_to_db_matches_librosa(ref, top_db):
    rng = np.random.default_rng(2)
    power = (rng.random((3, 20, 30)) ** 8).astype(np.float32)
    power[0, :2] = 0.0
    ours = S.power_to_db(torch.from_numpy(power), ref=ref, top_db=top_db).numpy()
    lref = np.max if ref == "max" else ref
    expected = np.stack([librosa.power_to_db(p, ref=lref, top_db=top_db) for p in power])
    assert_allclose(ours, expected, atol=1e-4)


def test_log_spectrogram_width_and_errors():
    x = np.random.default_rng(3).standard_normal(1000)
    db = S.log_spectrogram(x, n_fft=256, hop_length=10, n_bins=32, fmax=50.0, width=64)
    assert db.shape == (32, 64)
    with pytest.raises(ValueError, match="width=500 frames.*101"):
        S.log_spectrogram(x, n_fft=256, hop_length=10, n_bins=32, fmax=50.0, width=500)
    with pytest.raises(ValueError, match="unknown window"):
        S.stft_power(x, hop_length=10, n_fft=256, window="kaiser")
    with pytest.raises(ValueError, match="win_length <= n_fft"):
        S.stft_power(x, hop_length=10, n_fft=256, win_length=300)


def _direct_morlet(x: np.ndarray, f: float, n_cycles: float, positions: np.ndarray) -> np.ndarray:
    """Time-domain convolution with the complex Morlet wavelet of the docstring (float64)."""
    sigma_t = n_cycles / (2 * np.pi * f)
    t = np.arange(-int(6 * sigma_t * SFREQ), int(6 * sigma_t * SFREQ) + 1) / SFREQ
    psi = 2 / (np.sqrt(2 * np.pi) * sigma_t) * np.exp(-(t**2) / (2 * sigma_t**2))
    psi = psi * np.exp(2j * np.pi * f * t) / SFREQ
    return np.convolve(x, psi, mode="same")[positions]


def test_morlet_cwt_matches_direct_convolution():
    rng = np.random.default_rng(4)
    x = rng.standard_normal(4000)
    freqs = [1.0, 5.0, 17.0]
    out = S.morlet_cwt(x, freqs, n_cycles=5.0).numpy()
    assert out.shape == (3, 4000) and out.dtype == np.complex64
    positions = np.arange(1500, 2500, 37)
    for i, f in enumerate(freqs):
        ref = _direct_morlet(x, f, 5.0, positions)
        assert_allclose(out[i, positions], ref, atol=2e-3 * np.abs(ref).max())
    decimated = S.morlet_cwt(x, freqs, n_cycles=5.0, decim=4).numpy()
    assert decimated.shape == (3, 1000)
    assert_allclose(decimated, out[:, ::4], atol=1e-3 * np.abs(out).max())
    with pytest.raises(ValueError, match="aliases"):
        S.morlet_cwt(x, [20.0], decim=8)


def test_morlet_cwt_pure_tone_amplitude():
    t = np.arange(6000) / SFREQ
    x = 3.0 * np.cos(2 * np.pi * 7.0 * t)
    amp = np.abs(S.morlet_cwt(x, [7.0], n_cycles=7.0).numpy()[0, 2000:4000])
    assert_allclose(amp, 3.0, rtol=1e-3)


# --------------------------------------------------------------------------------------------------
# the public-notebook preset on the real EEG
# --------------------------------------------------------------------------------------------------


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
        assert (info.lr_swap is None) != (info.lr_swap_rows is None), name
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
