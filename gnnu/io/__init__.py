"""Readers and writers, one module per format (see :mod:`gnnu.io.base` for the registry)."""

from .base import READERS, EventReader, open_source

__all__ = ["READERS", "EventReader", "open_source"]
