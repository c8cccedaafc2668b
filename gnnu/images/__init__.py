"""Image side of gnnu: pixel maps rendered from hits, and back (docs/design.md#images).

- :mod:`gnnu.pixelmap` (shared with io and graph): presets (``dune-cvn``, ``nova-cvn``, ``resnet-rgb``), rendering,
  pixel maps → hits;
- :mod:`gnnu.images.config`: the ``image:`` section of an image model's config;
- :mod:`gnnu.images.frame`: units of stored hits (detector hits or map pixels);
- :mod:`gnnu.images.dataset`: :class:`~gnnu.images.dataset.ImageDataset`, the pixel maps of a graph
  dataset's events rendered on the fly (imports torch; not loaded by this package).
"""

from ..pixelmap import (DUNE_CVN, NOVA_CVN, PRESETS, RESNET_RGB, PixelMapPreset, get_preset,
                       pixel_hits_to_detector, pixels_to_hits, render, render_sparse,
                       sparse_to_hits, vertex_pixels, vertex_wire_tick, window_origin)

from .config import ImageConfig

__all__ = ["DUNE_CVN", "NOVA_CVN", "RESNET_RGB", "PRESETS", "ImageConfig", "PixelMapPreset",
           "get_preset", "pixel_hits_to_detector", "pixels_to_hits", "render", "render_sparse",
           "sparse_to_hits", "vertex_pixels", "vertex_wire_tick", "window_origin"]
