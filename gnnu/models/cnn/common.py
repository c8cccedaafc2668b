"""What every CNN model shares: pixel maps → float, encoder → multi-task heads.

Input of :meth:`ImageModel.forward`: a mapping whose ``image`` entry holds the pixel maps of a
batch, a tensor [B, V, H, W] with one channel per detector view (docs/design.md#images): ``uint8`` pixel
values 0–255, or a float tensor in the same units. :func:`pixels` turns it into float32 in
[0, 1] (value / 255), the one conversion every CNN uses. H × W may be any size the model's
strides allow: every network here ends with a global average pool, so tests can use tiny maps.

An encoder maps the float maps [B, V, H, W] to one feature vector per event [B, F]
(``encoder.out_features`` = F); :class:`ImageModel` applies the heads
(:class:`~gnnu.models.heads.MultiTaskHead`). Output: dict of logits [B, C] per classification
task and regression values [B] (:mod:`gnnu.models.heads`), the same as the GNNs'.

Note: the networks use BatchNorm, so only in eval mode is each event's output independent of
the other events in its batch.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from ..heads import MultiTaskHead

#: Largest pixel value of a uint8 pixel map; pixels() divides by it.
PIXEL_MAX = 255.0


def pixels(batch: Mapping, views: int) -> Tensor:
    """The batch's pixel maps as float32 in [0, 1]: ``batch["image"]`` [B, V, H, W] / 255.

    ``views``: V the model was built for. ValueError if the batch has no ``image`` entry or
    its shape is not [B, V, H, W].
    """
    if not isinstance(batch, Mapping) or "image" not in batch:
        raise ValueError("a CNN batch is a mapping with an 'image' entry [B, V, H, W]")
    image = batch["image"]
    if image.dim() != 4 or image.size(1) != views:
        raise ValueError(f"image batch must have shape [B, {views}, H, W] "
                         f"(one channel per view), got {list(image.shape)}")
    return image.to(torch.float32) / PIXEL_MAX


class ImageModel(nn.Module):
    """Encoder on the pixel maps, then multi-task heads.

    Args:
        encoder: module ``encoder(x: Tensor [B, V, H, W] float in [0, 1]) -> Tensor [B, F]``
            with attribute ``out_features`` = F.
        config: the :class:`~gnnu.models.registry.ModelConfig` (its heads are read).
        tasks, regression: offered heads (see :func:`gnnu.models.heads.select_heads`).
        views: V, the number of views (input channels) the batches carry.

    Attributes: ``loss_weights`` (head name → weight, for the trainer), ``energy_target``.
    """

    def __init__(self, encoder: nn.Module, config, tasks: dict[str, int],
                 regression: tuple[str, ...], views: int):
        super().__init__()
        self.views = views
        self.encoder = encoder
        self.head, self.loss_weights = MultiTaskHead.from_config(
            config.heads, encoder.out_features, tasks, regression)
        self.energy_target = config.heads.energy_target

    def embed(self, batch: Mapping) -> Tensor:
        """Per-event features [B, F] (input of the heads)."""
        return self.encoder(pixels(batch, self.views))

    def forward(self, batch: Mapping) -> dict[str, Tensor]:
        return self.head(self.embed(batch))


def conv_init_(module: nn.Module) -> None:
    """He-normal initialisation (std = √(2 / fan_in)) of every convolution and bias-free linear
    map in ``module``, biases zero; BatchNorm scale 1, shift 0 (He et al. 2015)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
