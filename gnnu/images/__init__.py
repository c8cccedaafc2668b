"""Image side of gnnu: pixel maps rendered from hits (DESIGN §3.4)."""

from .pixelmap import (DUNE_CVN, NOVA_CVN, PRESETS, PixelMapPreset, get_preset, render,
                       vertex_wire_tick, window_origin)

__all__ = ["DUNE_CVN", "NOVA_CVN", "PRESETS", "PixelMapPreset", "get_preset", "render",
           "vertex_wire_tick", "window_origin"]
