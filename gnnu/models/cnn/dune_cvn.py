r"""DUNE CVN (DUNE Collaboration, "Neutrino interaction classification with a convolutional neural
network in the DUNE far detector", Phys. Rev. D 102 (2020) 092003): an SE-ResNet-34 with one
branch per view for the first stage, then merged, and the multi-output heads of docs/design.md#labels.

Layout (the paper's network as released with it, DUNE/dune-cvn ``saved_model/model.json``).
Each view v (one channel of the pixel map) has its own branch, with its own weights:

    conv 7×7 / 2 (C_stem, no bias) → max pool 3×3 / 2 → stages[0 : branch_stages]

the V branches are concatenated along the channels, and the remaining stages run on the merged
maps, followed by BatchNorm → ReLU → global average pool → heads. Stage k holds ``blocks[k]``
pre-activation residual blocks of width ``channels[k]``; its first block has stride 2 for k ≥ 1
(1 for k = 0). A block (He et al., ECCV 2016, with squeeze-and-excitation, Hu et al., CVPR 2018):

    h = ReLU(BN(x));  y = conv3×3(ReLU(BN(conv3×3_s(h))));  y ← y · σ(W₂ ReLU(W₁ GAP(y)))
    out = y + (x if the shape is kept else conv1×1_s(h))

with bias-free convolutions and bias-free SE maps W₁ ∈ R^{C/r × C}, W₂ ∈ R^{C × C/r}, reduction
r = ``se_ratio`` = 16. Defaults: C_stem = 64, channels 64/128/256/512, blocks 3/4/6/3 (ResNet-34),
one branched stage: on 3 × 500 × 500 maps the branches end at 125 × 125 and the last stage
runs at 16 × 16.

Simplifications and choices: PyTorch's symmetric "same" padding where Keras pads strided layers
more on the bottom/right; BatchNorm with PyTorch's defaults (ε = 10⁻⁵, momentum 0.1) instead of
Keras' (10⁻³, 0.01); no L2 weight decay in the model (the optimiser's weight decay replaces it).
The released network's seven bias-free dense outputs (is_antineutrino as one sigmoid, flavour,
interaction and the four particle counts as four-way softmaxes) become the shared heads
(``heads.hidden: []`` gives one linear layer with bias per head; is_antinu as two logits).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..registry import register_model
from .common import ImageModel, conv_init_


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: x · σ(W₂ ReLU(W₁ mean_{h,w} x)), [B, C, H, W] → same shape.

    Args:
        channels: C. ratio: r, the hidden width is max(1, C // r).
    """

    def __init__(self, channels: int, ratio: int):
        super().__init__()
        hidden = max(1, channels // ratio)
        self.squeeze = nn.Linear(channels, hidden, bias=False)
        self.excite = nn.Linear(hidden, channels, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        s = torch.sigmoid(self.excite(torch.relu(self.squeeze(x.mean(dim=(2, 3))))))
        return x * s[:, :, None, None]


class PreActSEBlock(nn.Module):
    """Pre-activation residual block with squeeze-and-excitation (module docstring):
    [B, C_in, H, W] → [B, C_out, ⌈H/s⌉, ⌈W/s⌉]."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, se_ratio: int):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.norm2 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.se = SqueezeExcite(out_channels, se_ratio)
        self.project = (nn.Conv2d(in_channels, out_channels, 1, stride, bias=False)
                        if stride != 1 or in_channels != out_channels else None)

    def forward(self, x: Tensor) -> Tensor:
        h = torch.relu(self.norm1(x))
        shortcut = x if self.project is None else self.project(h)
        y = self.conv2(torch.relu(self.norm2(self.conv1(h))))
        return self.se(y) + shortcut


@dataclass(frozen=True)
class DuneCVNParams:
    """``stem_channels``: width of each branch's 7×7 convolution. ``channels`` / ``blocks``:
    width and number of residual blocks of each stage. ``branch_stages``: how many stages run per
    view before the merge (0: merge right after the stem). ``se_ratio``: SE reduction r."""

    stem_channels: int = 64
    channels: tuple[int, ...] = (64, 128, 256, 512)
    blocks: tuple[int, ...] = (3, 4, 6, 3)
    branch_stages: int = 1
    se_ratio: int = 16

    def __post_init__(self):
        if not self.channels or len(self.channels) != len(self.blocks):
            raise ValueError(f"channels and blocks need one entry per stage, got {list(self.channels)} "
                             f"and {list(self.blocks)}")
        if self.stem_channels < 1 or any(c < 1 for c in self.channels) or any(b < 1 for b in self.blocks):
            raise ValueError("stem_channels, channels and blocks must be positive")
        if not 0 <= self.branch_stages <= len(self.blocks):
            raise ValueError(f"branch_stages must lie in [0, {len(self.blocks)}], got {self.branch_stages}")
        if self.se_ratio < 1:
            raise ValueError(f"se_ratio must be ≥ 1, got {self.se_ratio}")


def _stage(params: DuneCVNParams, k: int, in_channels: int) -> nn.Sequential:
    """Stage k: blocks[k] blocks of width channels[k], the first with stride 2 if k ≥ 1."""
    width = params.channels[k]
    return nn.Sequential(*(
        PreActSEBlock(in_channels if i == 0 else width, width, 2 if (i == 0 and k > 0) else 1,
                      params.se_ratio)
        for i in range(params.blocks[k])))


class DuneCVNEncoder(nn.Module):
    """V branches, concatenation, shared stages, BN-ReLU, global average pool:
    [B, V, H, W] → [B, out_features] (channels[-1], or V · channels[-1] when every stage is
    branched)."""

    def __init__(self, views: int, params: DuneCVNParams):
        super().__init__()
        nb, ns = params.branch_stages, len(params.blocks)
        widths = (params.stem_channels, *params.channels)   # widths[k]: input width of stage k
        self.branches = nn.ModuleList(
            nn.Sequential(nn.Conv2d(1, params.stem_channels, 7, 2, padding=3, bias=False),
                          nn.MaxPool2d(3, stride=2, padding=1),
                          *(_stage(params, k, widths[k]) for k in range(nb)))
            for _ in range(views))
        self.stages = nn.Sequential(*(_stage(params, k, views * widths[k] if k == nb else widths[k])
                                      for k in range(nb, ns)))
        self.out_features = params.channels[-1] if nb < ns else views * widths[nb]
        self.norm = nn.BatchNorm2d(self.out_features)
        conv_init_(self)

    def forward(self, x: Tensor) -> Tensor:
        h = torch.cat([branch(x[:, v:v + 1]) for v, branch in enumerate(self.branches)], dim=1)
        return torch.relu(self.norm(self.stages(h))).mean(dim=(2, 3))


@register_model("dune_cvn", params=DuneCVNParams, inputs="image")
def dune_cvn(config, in_features: int, tasks: dict[str, int],
             regression: tuple[str, ...]) -> ImageModel:
    """DUNE CVN (SE-ResNet-34) with one branch per view (``in_features`` = V views)."""
    return ImageModel(DuneCVNEncoder(in_features, config.params), config, tasks, regression, in_features)
