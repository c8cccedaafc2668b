r"""Domain-adversarial training (DANN; Ganin et al., JMLR 17 (2016) 59): the pieces the trainer adds.

A network trained on one domain (gnnu's simulator) and applied to another (real DUNE events)
loses accuracy where the two differ. DANN trains, next to the task heads, a domain classifier
:math:`D` on the per-event features :math:`z` (the input of the heads) and reverses its gradient
into the network: the classifier minimises its loss, the network maximises it, so the features
keep what the task needs and lose what tells the domains apart. With the task loss :math:`L_y`
and the domain loss :math:`L_d` (binary cross-entropy, domain 0 = the training data, 1 = the
other dataset) every parameter sees the gradient of :math:`L_y + L_d` except that
:math:`\partial L_d / \partial z` is multiplied by :math:`-\lambda` on its way into the network
(:class:`GradientReversal`). :func:`dann_lambda` is the paper's schedule.

Configured by :class:`gnnu.train.config.DomainAdaptationConfig`; the data module pairs the
batches (:class:`gnnu.train.data.EventDataModule`), :class:`gnnu.train.module.TrainModule` adds
the loss.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class GradientReversal(torch.autograd.Function):
    """Identity forward; the gradient multiplied by ``-lam`` backward."""

    @staticmethod
    def forward(ctx, x: Tensor, lam: float) -> Tensor:
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return -ctx.lam * grad, None


def dann_lambda(progress: float, weight: float) -> float:
    """λ = ``weight`` · (2 / (1 + exp(−10 p)) − 1) at training progress p ∈ [0, 1] (Ganin et al.,
    section 5.2.2): 0 at the start, while the domain classifier is still random, → ``weight``."""
    p = min(max(progress, 0.0), 1.0)
    return weight * (2.0 / (1.0 + math.exp(-10.0 * p)) - 1.0)


class DomainClassifier(nn.Module):
    """Per-event features [B, F] → one logit [B] (> 0: the other domain), behind a gradient
    reversal of strength λ. One hidden layer of ``hidden`` units, ReLU."""

    def __init__(self, in_features: int, hidden: int = 64):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, z: Tensor, lam: float) -> Tensor:
        return self.net(GradientReversal.apply(z, lam)).squeeze(-1)


def domain_loss(logits: Tensor, other: Tensor) -> tuple[Tensor, Tensor]:
    """(mean binary cross-entropy, number of events classified right) of domain ``logits`` [B]
    against the boolean truth ``other`` [B] (True: the other domain)."""
    target = other.to(logits.dtype)
    loss = F.binary_cross_entropy_with_logits(logits.float(), target.float())
    right = ((logits > 0) == other).sum()
    return loss, right
