"""CNN baselines (NOvA CVN, DUNE CVN, ResNet18 transfer learning): outputs, per-view towers,
parameter counts against the published figures, FLOPs, ImageNet / checkpoint weights, freeze
levels, YAML configs, and that every model learns a toy task on the CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from gnnu.config import CONFIG_ROOT
from gnnu.errors import ConfigError, InputError
from gnnu.events import CLASS_LABELS
from gnnu.models import count_parameters, create_model, flops_per_event, list_models, model_inputs
from gnnu.models.cnn import Inception, apply_freeze, pixels
from gnnu.models.cnn.nova_cvn import NovaCVNParams

MODELS = ("nova_cvn", "dune_cvn", "resnet18")
#: Tiny versions (ResNet18's widths are torchvision's: small images keep it fast instead).
SMALL = {
    "nova_cvn": {"width": 0.125},
    "dune_cvn": {"stem_channels": 8, "channels": [8, 16, 16, 32], "blocks": [1, 1, 1, 1]},
    "resnet18": {"input_norm": "none"},
}
HEADS = {"hidden": [], "dropout": 0.0}


def config(name: str, params: dict | None = None) -> dict:
    """A model config with one linear layer per head and an image preset (required for CNNs)."""
    preset = {"nova_cvn": "nova-cvn", "dune_cvn": "dune-cvn", "resnet18": "resnet-rgb"}[name]
    return {"name": name, "params": params or {}, "heads": HEADS, "image": {"preset": preset}}


def small_model(name: str, views: int = 3, tasks=None, regression=("nu_energy",), seed=0, **params):
    torch.manual_seed(seed)
    return create_model(config(name, {**SMALL[name], **params}), in_features=views, tasks=tasks,
                        regression=regression)


def images(n: int, views: int, h: int, w: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"image": torch.from_numpy(rng.integers(0, 256, (n, views, h, w), dtype=np.uint8))}


def test_registered_as_image_models():
    for name in MODELS:
        assert name in list_models() and model_inputs(name) == "image"


def test_pixels_scale_and_shape_check():
    """uint8 0…255 → float32 0…1; a float batch in the same units gives the same values."""
    img = torch.tensor([0, 51, 255], dtype=torch.uint8).view(1, 1, 1, 3)
    x = pixels({"image": img}, views=1)
    assert x.dtype == torch.float32 and torch.allclose(x, torch.tensor([0.0, 0.2, 1.0]).view(1, 1, 1, 3))
    assert torch.equal(pixels({"image": img.double()}, views=1), x)
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        pixels({"image": torch.zeros(2, 2, 8, 8)}, views=3)
    with pytest.raises(ValueError, match="'image'"):
        pixels(torch.zeros(2, 3, 8, 8), views=3)


@pytest.mark.parametrize("views", [1, 2, 3])
@pytest.mark.parametrize("name", MODELS)
def test_forward_backward_shapes(name, views):
    """Every head's output has its shape and is finite for non-square maps and any number of
    views; every parameter receives a gradient."""
    model = small_model(name, views=views)
    out = model(images(3, views, 24, 32))
    for task in CLASS_LABELS:
        assert out[task].shape == (3, model.head.tasks[task]), task
    assert out["nu_energy"].shape == (3,)
    assert all(torch.isfinite(v).all() for v in out.values())
    sum(v.square().mean() for v in out.values()).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname


@pytest.mark.parametrize("name", MODELS)
def test_uint8_and_float_input_agree_and_events_are_independent(name):
    """Eval mode: float input in pixel units equals uint8 input; an event's output does not
    depend on the other events of its batch."""
    model = small_model(name).eval()
    batch = images(4, 3, 24, 24, seed=1)
    with torch.no_grad():
        ref = model(batch)["flavour"]
        assert torch.allclose(model({"image": batch["image"].float()})["flavour"], ref, atol=1e-5)
        alone = model({"image": batch["image"][2:3]})["flavour"]
    assert torch.allclose(alone[0], ref[2], atol=1e-5)


@pytest.mark.parametrize("name", ["nova_cvn", "dune_cvn"])
def test_each_view_has_its_own_tower(name):
    """Towers/branches have separate weights, and view 0's tower output does not change when
    another view changes (the views meet only at the merge); the event output does."""
    model = small_model(name).eval()
    towers = model.encoder.towers if name == "nova_cvn" else model.encoder.branches
    assert len(towers) == 3
    first = [next(t.parameters()) for t in towers]
    assert len({p.data_ptr() for p in first}) == 3
    seen = []
    towers[0].register_forward_hook(lambda mod, args, out: seen.append(out.clone()))
    a = images(2, 3, 32, 32, seed=2)
    b = {"image": a["image"].clone()}
    b["image"][:, 1] = torch.flip(b["image"][:, 1], dims=[1])
    with torch.no_grad():
        out_a, out_b = model(a)["flavour"], model(b)["flavour"]
    assert torch.equal(seen[0], seen[1])
    assert not torch.allclose(out_a, out_b)


def test_bf16_autocast():
    """Mixed precision (as on GPUs) runs and stays close to fp32 (DUNE CVN, tiny)."""
    model = small_model("dune_cvn").eval()
    batch = images(2, 3, 32, 32, seed=3)
    with torch.no_grad():
        ref = model(batch)["flavour"]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(batch)["flavour"]
    assert torch.allclose(out.float(), ref, atol=0.1)


# ---------------------------------------------------------------- parameter counts and FLOPs

def test_inception_widths_match_googlenet_table():
    """NOvA CVN's default Inception modules are GoogLeNet's 3a, 3b, 4a, 4b; their weight counts
    (biases excluded) match Table 1 of Szegedy et al., CVPR 2015 (159K, 380K, 364K, 437K,
    K = 1024) within 1 %."""
    p = NovaCVNParams()
    modules = [(192, p.inception_a[0], 159), (256, p.inception_a[1], 380),
               (480, p.inception_b[0], 364), (512, p.merged[0], 437)]
    for cin, widths, table_k in modules:
        inc = Inception(cin, widths)
        weights = sum(m.weight.numel() for m in inc.modules() if isinstance(m, nn.Conv2d))
        assert abs(weights / 1024 / table_k - 1) < 0.01, (widths, weights)


def _inception_params(cin, w):
    n1, r3, n3, r5, n5, pp = w
    return n1 * (cin + 1) + r3 * (cin + 1) + n3 * (9 * r3 + 1) + r5 * (cin + 1) + n5 * (25 * r5 + 1) + pp * (cin + 1)


@pytest.mark.parametrize("views", [2, 3])
def test_nova_cvn_parameter_count_default(views):
    """Default NOvA CVN = V towers (stem 7×7/1×1/3×3 convs with biases, 3a, 3b, 4a) + merged 4b
    on V·512 channels + one linear head (flavour, 4 classes); LRN and pools have no parameters."""
    model = create_model(config("nova_cvn"), in_features=views,
                         tasks={"flavour": 4}, regression=())
    stem = 64 * (49 + 1) + 64 * (64 + 1) + 192 * (9 * 64 + 1)
    tower = (stem + _inception_params(192, (64, 96, 128, 16, 32, 32))
             + _inception_params(256, (128, 128, 192, 32, 96, 64))
             + _inception_params(480, (192, 96, 208, 16, 48, 64)))
    expected = views * tower + _inception_params(views * 512, (160, 112, 224, 24, 64, 64)) + 512 * 4 + 4
    assert count_parameters(model) == expected


def test_dune_cvn_parameter_count_default():
    """Default DUNE CVN = the layout of the network released with the paper (DUNE/dune-cvn
    model.json): per view a bias-free 7×7 conv (64) and 3 blocks of 64; then 4/6/3 blocks of
    128/256/512; each pre-activation block = 2 BN + two 3×3 convs + SE (r = 16) + a 1×1
    projection when the shape changes; final BN; one linear head (flavour, 4 classes)."""
    model = create_model(config("dune_cvn"), in_features=3,
                         tasks={"flavour": 4}, regression=())

    def block(cin, c, project):
        return 2 * cin + 9 * cin * c + 2 * c + 9 * c * c + 2 * c * (c // 16) + (cin * c if project else 0)

    branch = 49 * 64 + 3 * block(64, 64, False)
    trunk = (block(192, 128, True) + 3 * block(128, 128, False) + block(128, 256, True)
             + 5 * block(256, 256, False) + block(256, 512, True) + 2 * block(512, 512, False))
    assert count_parameters(model) == 3 * branch + trunk + 2 * 512 + 512 * 4 + 4


def test_resnet18_body_is_torchvision_resnet18():
    """The body plus torchvision's 1000-class layer has 11 689 512 parameters (torchvision's
    documented num_params of ResNet18_Weights.IMAGENET1K_V1)."""
    model = create_model(config("resnet18"), in_features=3, tasks={"flavour": 3}, regression=())
    assert count_parameters(model.encoder.body) + 512 * 1000 + 1000 == 11_689_512
    assert count_parameters(model.head) == 512 * 3 + 3


def test_resnet18_flops_match_torchvision():
    """At 3×224×224 the body costs torchvision's documented 1.81 GFLOPS (multiply-adds) =
    3.63 GFLOPs at gnnu's 2 FLOPs per multiply-add, within 1 %."""
    model = create_model(config("resnet18"), in_features=3, tasks={"flavour": 3}, regression=())
    flops = flops_per_event(model, images(1, 3, 224, 224))
    assert abs(flops / (2 * 1.81e9) - 1) < 0.01


@pytest.mark.parametrize("name", MODELS)
def test_flops_scale_with_pixels(name):
    """Default-size models: four times the pixels (64² → 128²) about quadruple the FLOPs per
    event (convolutions dominate; rounding of strided maps and the per-event heads and SE maps
    keep the ratio a little off 4); the model's mode is restored."""
    views = 2 if name == "nova_cvn" else 3
    model = create_model(config(name), in_features=views, tasks={"flavour": 4}, regression=())
    f1 = flops_per_event(model, images(2, views, 64, 64))
    f2 = flops_per_event(model, images(2, views, 128, 128))
    assert f1 > 1e8
    assert 3.5 < f2 / f1 < 4.3, f2 / f1
    assert model.training


# ---------------------------------------------------------------- ResNet18 weights and freezing

def _torchvision_state(seed=0, factory=torchvision.models.resnet18) -> dict:
    """A state dict in torchvision's format (key names and shapes of its ResNet), random values."""
    torch.manual_seed(seed)
    net = factory(weights=None)
    with torch.no_grad():
        for t in net.state_dict().values():
            if t.is_floating_point():
                t.uniform_(0.5, 1.5)   # positive: valid BatchNorm variances too
    return net.state_dict()


def _resnet(params: dict, views=3, tasks=None):
    return create_model(config("resnet18", params), in_features=views, tasks=tasks or {"flavour": 3},
                        regression=())


def test_imagenet_weights_load_from_hub_cache_and_path(tmp_path, monkeypatch):
    """weights: imagenet reads <hub dir>/checkpoints/resnet18-f37072fd.pth (or weights_path);
    every body tensor equals the file's; the file's 1000-class fc is not used."""
    state = _torchvision_state()
    (tmp_path / "checkpoints").mkdir()
    torch.save(state, tmp_path / "checkpoints" / "resnet18-f37072fd.pth")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    model = _resnet({"weights": "imagenet"})
    body = model.encoder.body.state_dict()
    for key, value in state.items():
        if key.startswith("fc."):
            assert key not in body
        else:
            assert torch.equal(body[key], value), key
    other = tmp_path / "elsewhere.pth"
    state_b = _torchvision_state(seed=1)
    torch.save(state_b, other)
    model = _resnet({"weights": "imagenet", "weights_path": str(other)})
    assert torch.equal(model.encoder.body.conv1.weight, state_b["conv1.weight"])


def test_imagenet_weights_missing_file_says_where(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    expected = tmp_path / "checkpoints" / "resnet18-f37072fd.pth"
    with pytest.raises(ConfigError, match=rf"resnet18-f37072fd\.pth.*put it at {expected}.*weights_path"):
        _resnet({"weights": "imagenet"})
    with pytest.raises(ConfigError, match=rf"{tmp_path / 'nope.pth'}: no such file"):
        _resnet({"weights": "imagenet", "weights_path": str(tmp_path / "nope.pth")})


def test_imagenet_wrong_files_are_refused(tmp_path):
    """A ResNet34 file (extra blocks), a file with a wrong shape and a corrupt file each give one
    InputError naming the file; 4 views with ImageNet weights is a ConfigError."""
    cases = {"resnet34.pth": _torchvision_state(factory=torchvision.models.resnet34)}
    bad_shape = _torchvision_state()
    bad_shape["layer1.0.conv1.weight"] = torch.zeros(64, 64, 5, 5)
    cases["shape.pth"] = bad_shape
    for fname, state in cases.items():
        torch.save(state, tmp_path / fname)
    (tmp_path / "corrupt.pth").write_bytes(b"not a torch file")
    for fname, pattern in (("resnet34.pth", r"unexpected \(layer1\.2\."), ("shape.pth", "another shape"),
                           ("corrupt.pth", "not a loadable")):
        with pytest.raises(InputError, match=rf"{tmp_path / fname}: .*{pattern}"):
            _resnet({"weights": "imagenet", "weights_path": str(tmp_path / fname)})
    with pytest.raises(ConfigError, match="needs 3 views"):
        _resnet({"weights": "imagenet", "weights_path": str(tmp_path / "shape.pth")}, views=4)


def _save_gnnu_checkpoint(model: nn.Module, path):
    """The layout gnnu-train writes: a Lightning checkpoint whose model keys carry 'model.'."""
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
                "gnnu": {"version": "test"}}, path)


def test_gnnu_checkpoint_weights_fine_tune(tmp_path):
    """weights: PATH (pretrain on one sample, fine-tune on another): the body and a head of the
    same shape are copied; a head with another number of classes keeps its fresh weights. A
    checkpoint of another model is refused naming the file."""
    torch.manual_seed(0)
    pre = _resnet({}, tasks={"flavour": 4, "interaction": 4})
    with torch.no_grad():
        pre.encoder.body.layer3[0].bn1.running_mean.add_(3.0)
    ckpt = tmp_path / "best.ckpt"
    _save_gnnu_checkpoint(pre, ckpt)
    torch.manual_seed(1)
    fresh = _resnet({}, tasks={"flavour": 3, "interaction": 4})
    torch.manual_seed(1)
    tuned = _resnet({"weights": str(ckpt)}, tasks={"flavour": 3, "interaction": 4})
    pre_state, tuned_state = pre.state_dict(), tuned.state_dict()
    for key, value in tuned_state.items():
        if key.startswith("encoder.") or key.startswith("head.heads.interaction"):
            assert torch.equal(value, pre_state[key]), key
    assert torch.equal(tuned.head.heads["flavour"].weight, fresh.head.heads["flavour"].weight)

    other = tmp_path / "dune.ckpt"
    _save_gnnu_checkpoint(small_model("dune_cvn"), other)
    with pytest.raises(InputError, match=rf"{other}: not a checkpoint of a resnet18 model"):
        _resnet({"weights": str(other)})
    with pytest.raises(InputError, match="no such checkpoint"):
        _resnet({"weights": str(tmp_path / "missing.ckpt")})


#: Level → torchvision body modules that keep training (the heads always train).
TRAINED = {"none": ("conv1", "bn1", "layer1", "layer2", "layer3", "layer4"),
           "layer1+": ("layer1", "layer2", "layer3", "layer4"), "layer2+": ("layer2", "layer3", "layer4"),
           "layer3+": ("layer3", "layer4"), "layer4": ("layer4",), "head-only": ()}


@pytest.mark.parametrize("level", list(TRAINED))
def test_freeze_levels_freeze_exactly_the_named_parts(level):
    model = _resnet({"freeze": level})
    apply_freeze(model)
    for pname, p in model.named_parameters():
        if pname.startswith("head."):
            assert p.requires_grad, pname
        else:
            module = pname.split(".")[2]          # encoder.body.<module>.…
            assert p.requires_grad == (module in TRAINED[level]), pname
    trainable = count_parameters(model, trainable_only=True)
    expected = count_parameters(model.head) + sum(
        count_parameters(getattr(model.encoder.body, m)) for m in TRAINED[level])
    assert trainable == expected


def test_unknown_freeze_level_is_a_config_error():
    with pytest.raises(ConfigError, match=r"params\.freeze: 'layer5'"):
        _resnet({"freeze": "layer5"})


# ---------------------------------------------------------------- YAML configs

@pytest.mark.parametrize("fname, views, image", [("nova_cvn", 3, "dune-cvn"), ("nova_cvn_nova", 2, "nova-cvn"),
                                                 ("dune_cvn", 3, "dune-cvn"), ("resnet18", 3, "resnet-rgb")])
def test_yaml_configs_build(fname, views, image, tmp_path, monkeypatch):
    """Each shipped CNN config builds a model with the number of views its image preset gives
    (resnet18.yaml asks for ImageNet weights: a torchvision-format file is put in the hub cache)."""
    (tmp_path / "checkpoints").mkdir()
    torch.save(_torchvision_state(), tmp_path / "checkpoints" / "resnet18-f37072fd.pth")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    path = CONFIG_ROOT / "models" / f"{fname}.yaml"
    model = create_model(path, in_features=views)
    assert model.config.image.preset == image
    model.eval()            # BatchNorm: one event of 32 × 32 leaves 1 value per channel in training mode
    out = model(images(1, views, 32, 32))
    assert out["flavour"].shape[0] == 1


# ---------------------------------------------------------------- learning

def toy_images(n: int, views: int, size: int, rng) -> tuple[dict, torch.Tensor]:
    """3 classes drawn in every view: a horizontal, vertical or diagonal track (random position
    and length, charge 120–255) over sparse noise pixels (value ≤ 60)."""
    img = np.zeros((n, views, size, size), dtype=np.uint8)
    noise = rng.random(img.shape) < 0.02
    img[noise] = rng.integers(1, 60, noise.sum())
    labels = np.arange(n) % 3
    for i, cls in enumerate(labels):
        for v in range(views):
            length = int(rng.integers(size // 2, size - 2))
            r, c = (int(x) for x in rng.integers(1, size - length, 2))
            t = np.arange(length)
            rows, cols = {0: (np.full(length, r + length // 2), c + t), 1: (r + t, np.full(length, c + length // 2)),
                          2: (r + t, c + t)}[cls]
            img[i, v, rows, cols] = rng.integers(120, 256, length)
    return {"image": torch.from_numpy(img)}, torch.from_numpy(labels)


def recalibrate_batchnorm(model: nn.Module, batch: dict) -> None:
    """Replace BatchNorm's running statistics by those of ``batch`` under the final weights (a
    few training steps move the weights faster than the running averages follow)."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None                       # cumulative average over the passes
    model.train()
    with torch.no_grad():
        model(batch)
    model.eval()


@pytest.mark.slow
@pytest.mark.parametrize("name, views, steps, lr", [("nova_cvn", 2, 30, 2e-3), ("dune_cvn", 3, 20, 3e-3),
                                                    ("resnet18", 3, 10, 1e-3)])
def test_learns_toy_track_directions(name, views, steps, lr):
    """Minibatch Adam on 192 toy events (20 × 20 pixels): the loss falls below half its start and
    the accuracy on 96 new events (eval mode, BatchNorm statistics of the training events) is
    well above chance (1/3)."""
    rng = np.random.default_rng(7)
    train, y = toy_images(192, views, 20, rng)
    test, y_test = toy_images(96, views, 20, rng)
    model = small_model(name, views=views, tasks={"toy": 3}, regression=(), seed=3)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        idx = torch.from_numpy(rng.choice(192, 32, replace=False))
        loss = nn.functional.cross_entropy(model({"image": train["image"][idx]})["toy"], y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    recalibrate_batchnorm(model, train)
    with torch.no_grad():
        accuracy = (model(test)["toy"].argmax(1) == y_test).float().mean().item()
    assert np.mean(losses[-3:]) < 0.5 * losses[0], losses[::3]
    assert accuracy > 0.8, accuracy
