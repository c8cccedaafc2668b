"""Graph neural networks: one operator/network a file, one registry line each.

Importing this package registers ``edgeconv``, ``dynedgeconv`` and ``gravnet`` with
:mod:`gnnu.models.registry`. A new GNN family is a new file here plus an import line below.
"""

from . import dynedgeconv, edgeconv, gravnet  # noqa: F401  (registers the models)
from .base import GraphModel
from .dynedgeconv import DynamicEdgeConv
from .edgeconv import EdgeConv
from .gravnet import GravNetConv
from .pooling import GlobalPooling

__all__ = ["GraphModel", "EdgeConv", "DynamicEdgeConv", "GravNetConv", "GlobalPooling"]
