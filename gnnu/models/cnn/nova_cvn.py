r"""NOvA CVN (Aurisano et al., "A Convolutional Neural Network Neutrino Event Classifier",
JINST 11 (2016) P09001): GoogLeNet-style Inception modules, one tower per view, merged before
the head.

Layout (the paper's Fig. 4, with the operators of GoogLeNet, Szegedy et al., CVPR 2015). Each
view v (one channel of the pixel map) runs through its own tower, with its own weights:

    conv 7×7 / 2 (s₀) → max pool 3×3 / 2 → LRN → conv 1×1 (s₁) → conv 3×3 (s₂) → LRN
    → max pool 3×3 / 2 → Inception × len(inception_a) → max pool 3×3 / 2
    → Inception × len(inception_b)

then the V towers' feature maps are concatenated along the channels, pass the merged Inception
module(s), a global average pool (the paper's 6×5 average pool, which covers the whole 6×5 map
of a 100×80 input), and the heads. Every convolution has a bias and is followed by a ReLU; max
pools round up (Caffe's convention: 100×80 → 50×40 → 25×20 → 12×10 → 6×5); LRN over 5 channels,
α = 10⁻⁴, β = 0.75 (GoogLeNet's).

An Inception module with widths (n₁, r₃, n₃, r₅, n₅, p) — GoogLeNet's Table 1 column order —
concatenates four branches of the same spatial size:

    1×1 (n₁)  |  1×1 (r₃) → 3×3 (n₃)  |  1×1 (r₅) → 5×5 (n₅)  |  max pool 3×3 / 1 → 1×1 (p)

and outputs n₁ + n₃ + n₅ + p channels.

Simplifications and choices: the paper gives the layer sequence but not the module widths; the
defaults take GoogLeNet's (stem 64/64/192, modules 3a and 3b before the third pool, 4a after it,
4b after the merge). He-normal initialisation instead of Caffe's Xavier. No auxiliary
classifiers (the paper has none). The paper's single softmax becomes the shared multi-task heads
(``heads.hidden: []`` gives one linear layer per head). ``width`` scales every channel count
(rounded, at least 1) so tests can run tiny networks; maps need at least 15 × 15 pixels (the
third max pool needs a map of at least 2 × 2).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..registry import register_model
from .common import ImageModel, conv_init_

#: Inception widths (1×1, 3×3 reduce, 3×3, 5×5 reduce, 5×5, pool projection).
InceptionWidths = tuple[int, int, int, int, int, int]


def _conv(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2), nn.ReLU(inplace=True))


def _pool() -> nn.MaxPool2d:
    return nn.MaxPool2d(3, stride=2, ceil_mode=True)


def _lrn() -> nn.LocalResponseNorm:
    return nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)


class Inception(nn.Module):
    """GoogLeNet Inception module: [B, C_in, H, W] → [B, n₁ + n₃ + n₅ + p, H, W].

    Args:
        in_channels: C_in. widths: (n₁, r₃, n₃, r₅, n₅, p) (module docstring).
    """

    def __init__(self, in_channels: int, widths: InceptionWidths):
        super().__init__()
        n1, r3, n3, r5, n5, p = widths
        self.branch1 = _conv(in_channels, n1, 1)
        self.branch3 = nn.Sequential(_conv(in_channels, r3, 1), _conv(r3, n3, 3))
        self.branch5 = nn.Sequential(_conv(in_channels, r5, 1), _conv(r5, n5, 5))
        self.branch_pool = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), _conv(in_channels, p, 1))
        self.out_channels = n1 + n3 + n5 + p

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch1(x), self.branch3(x), self.branch5(x), self.branch_pool(x)], dim=1)


@dataclass(frozen=True)
class NovaCVNParams:
    """``stem``: widths of the conv 7×7, 1×1 and 3×3 layers. ``inception_a`` / ``inception_b``:
    the tower's Inception modules before / after its third max pool. ``merged``: Inception modules
    after the towers are concatenated. ``lrn``: the two local response normalisations.
    ``width``: multiplier on every channel count. Defaults: GoogLeNet's widths (module docstring)."""

    stem: tuple[int, int, int] = (64, 64, 192)
    inception_a: tuple[InceptionWidths, ...] = ((64, 96, 128, 16, 32, 32),
                                                (128, 128, 192, 32, 96, 64))
    inception_b: tuple[InceptionWidths, ...] = ((192, 96, 208, 16, 48, 64),)
    merged: tuple[InceptionWidths, ...] = ((160, 112, 224, 24, 64, 64),)
    lrn: bool = True
    width: float = 1.0

    def __post_init__(self):
        widths = [*self.stem, *(w for m in (*self.inception_a, *self.inception_b, *self.merged) for w in m)]
        if any(w < 1 for w in widths):
            raise ValueError(f"channel widths must be positive, got {widths}")
        if not self.width > 0:
            raise ValueError(f"width: the multiplier must be positive, got {self.width}")

    def scaled(self, channels: int) -> int:
        """A channel count times ``width``, rounded, at least 1."""
        return max(1, round(channels * self.width))


class NovaTower(nn.Module):
    """One view's tower: [B, 1, H, W] → [B, out_channels, ≈H/16, ≈W/16] (module docstring)."""

    def __init__(self, params: NovaCVNParams):
        super().__init__()
        s0, s1, s2 = (params.scaled(c) for c in params.stem)
        norm = _lrn if params.lrn else nn.Identity
        layers: list[nn.Module] = [_conv(1, s0, 7, stride=2), _pool(), norm(),
                                   _conv(s0, s1, 1), _conv(s1, s2, 3), norm(), _pool()]
        channels = s2
        for i, group in enumerate((params.inception_a, params.inception_b)):
            if i == 1:
                layers.append(_pool())
            for widths in group:
                layers.append(Inception(channels, tuple(params.scaled(w) for w in widths)))
                channels = layers[-1].out_channels
        self.layers = nn.Sequential(*layers)
        self.out_channels = channels

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class NovaCVNEncoder(nn.Module):
    """V towers, concatenation, merged Inception modules, global average pool:
    [B, V, H, W] → [B, out_features]."""

    def __init__(self, views: int, params: NovaCVNParams):
        super().__init__()
        self.towers = nn.ModuleList(NovaTower(params) for _ in range(views))
        channels = views * self.towers[0].out_channels
        merged = []
        for widths in params.merged:
            merged.append(Inception(channels, tuple(params.scaled(w) for w in widths)))
            channels = merged[-1].out_channels
        self.merged = nn.Sequential(*merged)
        self.out_features = channels
        conv_init_(self)

    def forward(self, x: Tensor) -> Tensor:
        h = torch.cat([tower(x[:, v:v + 1]) for v, tower in enumerate(self.towers)], dim=1)
        return self.merged(h).mean(dim=(2, 3))


@register_model("nova_cvn", params=NovaCVNParams, inputs="image")
def nova_cvn(config, in_features: int, tasks: dict[str, int],
             regression: tuple[str, ...]) -> ImageModel:
    """NOvA CVN with one tower per view (``in_features`` = V views)."""
    return ImageModel(NovaCVNEncoder(in_features, config.params), config, tasks, regression, in_features)
