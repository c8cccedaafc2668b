"""Convolutional networks on pixel maps: one network a file, one registry line each.

Importing this package registers ``nova_cvn`` (NOvA CVN, Inception towers), ``dune_cvn``
(DUNE CVN, SE-ResNet-34 with per-view branches) and ``resnet18`` (torchvision ResNet18 for
transfer learning) with :mod:`gnnu.models.registry`, each reading image batches
(:mod:`gnnu.models.cnn.common`). A new CNN is a new file here plus an import line below.
"""

from . import dune_cvn, nova_cvn, resnet18  # noqa: F401  (registers the models)
from .common import ImageModel, pixels
from .dune_cvn import DuneCVNEncoder, PreActSEBlock, SqueezeExcite
from .nova_cvn import Inception, NovaCVNEncoder
from .resnet18 import ResNet18Encoder, apply_freeze

__all__ = ["ImageModel", "pixels", "NovaCVNEncoder", "Inception", "DuneCVNEncoder", "PreActSEBlock",
           "SqueezeExcite", "ResNet18Encoder", "apply_freeze"]
