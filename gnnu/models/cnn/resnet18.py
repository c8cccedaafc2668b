"""Transfer learning with torchvision's ResNet18 (He et al., CVPR 2016) on the three views as RGB
(Chappell & Whitehead, Eur. Phys. J. C 82 (2022) 1099).

The body is ``torchvision.models.resnet18`` (built with ``weights=None``: nothing is ever
downloaded) with its final 1000-class layer removed; the new final layer is the shared heads
(:class:`~gnnu.models.heads.MultiTaskHead`; ``heads.hidden: []`` gives one linear layer per
head, e.g. 512 → 3 for CC νμ / CC νe / NC) on the body's 512 pooled features.

Initial weights (``params.weights``):

- ``none``: torchvision's random initialisation;
- ``imagenet``: torchvision's IMAGENET1K_V1 weights, read from the torch hub cache
  (``torch.hub.get_dir()/checkpoints/resnet18-f37072fd.pth``, where torchvision itself keeps
  them) or from ``params.weights_path``; every tensor of the body must be in the file with its
  shape (the 1000-class ``fc`` is ignored). Needs V = 3 views;
- a path to a gnnu checkpoint (``gnnu-train``'s ``.ckpt``, :mod:`gnnu.models.checkpoint`): pretrain
  on one simulated sample, fine-tune on another. The whole body must match; heads are copied where
  names and shapes match and otherwise keep their fresh initialisation.

Input: the pixel maps / 255 (:func:`~gnnu.models.cnn.common.pixels`), then, with
``input_norm: imagenet``, each channel standardised with the ImageNet statistics the weights were
trained with (mean 0.485, 0.456, 0.406; std 0.229, 0.224, 0.225: torchvision's documented
transform for IMAGENET1K_V1). With V ≠ 3 views the first convolution takes V channels.

Fine-tuning depth (``params.freeze``): the level names the part that keeps training —
``head-only`` (the body is frozen), ``layer4`` (layer4 and the heads train), ``layer3+``,
``layer2+``, ``layer1+`` (layer1 … layer4 and the heads train; conv1/bn1 frozen), ``none``
(nothing frozen). The model carries the frozen parameter-name prefixes as
``model.default_freeze``; the trainer applies them with :func:`gnnu.models.checkpoint.freeze`
(which also keeps those modules' BatchNorm in eval mode), :func:`apply_freeze` does it directly.

Simplification: the ImageNet statistics are the weights' own constants, not a detector number.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torchvision
from torch import Tensor, nn

from ...errors import ConfigError, InputError
from ..checkpoint import freeze, load_checkpoint, load_matching, model_state
from ..registry import register_model
from .common import ImageModel

#: File name of torchvision's ResNet18 IMAGENET1K_V1 weights in the torch hub cache.
IMAGENET_FILE = "resnet18-f37072fd.pth"
#: Where torchvision publishes it (gnnu never downloads; the error message names it).
IMAGENET_URL = "https://download.pytorch.org/models/" + IMAGENET_FILE
#: Per-channel (R, G, B) statistics of the ImageNet training images, on pixel values in [0, 1].
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

FreezeLevel = Literal["head-only", "layer4", "layer3+", "layer2+", "layer1+", "none"]
#: Body modules in forward order; a level freezes every module before the first one it trains.
_BODY = ("conv1", "bn1", "layer1", "layer2", "layer3", "layer4")
_FIRST_TRAINED = {"none": 0, "layer1+": 2, "layer2+": 3, "layer3+": 4, "layer4": 5, "head-only": 6}
#: Attribute path of the torchvision body inside the model.
BODY_PREFIX = "encoder.body"


@dataclass(frozen=True)
class ResNet18Params:
    """``weights``: ``none``, ``imagenet`` or the path of a gnnu checkpoint. ``weights_path``:
    where the ImageNet file lies, if not in the torch hub cache (only with ``imagenet``).
    ``freeze``: fine-tuning depth (module docstring). ``input_norm``: ``imagenet`` (standardise
    the 3 channels with ImageNet's statistics) or ``none``."""

    weights: str = "none"
    weights_path: str | None = None
    freeze: FreezeLevel = "none"
    input_norm: Literal["imagenet", "none"] = "imagenet"

    def __post_init__(self):
        if not self.weights:
            raise ValueError("weights: give none, imagenet or a checkpoint path")
        if self.weights_path is not None and self.weights != "imagenet":
            raise ValueError("weights_path: only used with weights: imagenet")


def freeze_prefixes(level: str) -> list[str]:
    """Parameter-name prefixes a ``freeze`` level stops training (module docstring)."""
    if level == "head-only":
        return [BODY_PREFIX]
    return [f"{BODY_PREFIX}.{name}" for name in _BODY[:_FIRST_TRAINED[level]]]


class ResNet18Encoder(nn.Module):
    """torchvision ResNet18 without its final layer: [B, V, H, W] in [0, 1] → [B, 512].

    Args:
        views: V input channels (3 = torchvision's own first convolution).
        input_norm: ``imagenet`` standardises the channels first (needs V = 3); ``none``.
    """

    def __init__(self, views: int, input_norm: str):
        super().__init__()
        self.body = torchvision.models.resnet18(weights=None)
        if views != 3:
            self.body.conv1 = nn.Conv2d(views, 64, kernel_size=7, stride=2, padding=3, bias=False)
            nn.init.kaiming_normal_(self.body.conv1.weight, mode="fan_out", nonlinearity="relu")
        self.out_features = self.body.fc.in_features
        self.body.fc = nn.Identity()
        self.standardise = input_norm == "imagenet"
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        if self.standardise:
            x = (x - self.mean) / self.std
        return self.body(x)


def imagenet_file(weights_path: str | None) -> Path:
    """The ImageNet weights file: ``weights_path`` or the torch hub cache; ConfigError saying
    where to put it when absent (no download is attempted)."""
    if weights_path is not None:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise ConfigError(f"params.weights_path: {path}: no such file (torchvision's ResNet18 "
                              f"ImageNet weights {IMAGENET_FILE}, from {IMAGENET_URL})")
        return path
    path = Path(torch.hub.get_dir()) / "checkpoints" / IMAGENET_FILE
    if not path.is_file():
        raise ConfigError(f"resnet18 weights: imagenet needs torchvision's IMAGENET1K_V1 file "
                          f"{IMAGENET_FILE} (from {IMAGENET_URL}); gnnu does not download it: put it "
                          f"at {path}, or give its location as params.weights_path")
    return path


def _examples(names: list, n: int = 3) -> str:
    return ", ".join(str(x) for x in names[:n]) + (", …" if len(names) > n else "")


def load_imagenet(encoder: ResNet18Encoder, path: str | os.PathLike) -> None:
    """Copy torchvision's ResNet18 ImageNet weights (a state dict file, torchvision's key names,
    ``torch.load(weights_only=True)``) into the encoder's body; the file's ``fc.*`` is ignored.
    InputError naming the file when it is unreadable or any body tensor is missing or of
    another shape."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 — pickle/zip errors have many types; all mean "bad file"
        raise InputError(f"not a loadable torch weights file ({type(exc).__name__})", path) from None
    if not isinstance(state, dict):
        raise InputError("not a state dict (expected a mapping of tensor names to tensors)", path)
    state = {k: v for k, v in state.items() if isinstance(v, torch.Tensor) and not k.startswith("fc.")}
    report = load_matching(encoder.body, state)
    missing = [k for k in report["missing"] if not k.endswith("num_batches_tracked")]
    if missing or report["reinitialised"] or report["unused"]:
        problems = [f"{len(missing)} tensor(s) missing ({_examples(missing)})" if missing else "",
                    f"{len(report['reinitialised'])} of another shape ({_examples(report['reinitialised'])})"
                    if report["reinitialised"] else "",
                    f"{len(report['unused'])} unexpected ({_examples(report['unused'])})"
                    if report["unused"] else ""]
        raise InputError("not torchvision's ResNet18 weights: " + "; ".join(p for p in problems if p), path)


def load_gnnu_checkpoint(model: ImageModel, path: str | os.PathLike) -> None:
    """Initialise ``model`` from a gnnu checkpoint: the whole body must match (names and shapes),
    heads are copied where they match. InputError naming the file otherwise."""
    report = load_matching(model, model_state(load_checkpoint(path)))
    body = [k for k in model.state_dict() if k.startswith(BODY_PREFIX + ".")]
    loaded = set(report["loaded"])
    absent = [k for k in body if k not in loaded and not k.endswith("num_batches_tracked")]
    if absent:
        raise InputError(f"not a checkpoint of a resnet18 model with {model.views} views: "
                         f"{len(absent)} body tensor(s) missing or of another shape ({_examples(absent)}); "
                         f"for torchvision's own weights file use weights: imagenet with weights_path",
                         path)


def apply_freeze(model: nn.Module) -> list[str]:
    """Stop training the parameters under ``model.default_freeze``; returns those prefixes."""
    return freeze(model, model.default_freeze)


@register_model("resnet18", params=ResNet18Params, inputs="image")
def resnet18(config, in_features: int, tasks: dict[str, int],
             regression: tuple[str, ...]) -> ImageModel:
    """ResNet18 body with new heads, initial weights and fine-tuning depth from ``config.params``
    (``in_features`` = V views)."""
    p = config.params
    for option, value in (("weights", p.weights), ("input_norm", p.input_norm)):
        if value == "imagenet" and in_features != 3:
            raise ConfigError(f"resnet18 {option}: imagenet needs 3 views as RGB (the resnet-rgb "
                              f"image preset), got {in_features}")
    model = ImageModel(ResNet18Encoder(in_features, p.input_norm), config, tasks, regression, in_features)
    if p.weights == "imagenet":
        load_imagenet(model.encoder, imagenet_file(p.weights_path))
    elif p.weights != "none":
        load_gnnu_checkpoint(model, p.weights)
    model.default_freeze = freeze_prefixes(p.freeze)
    return model
