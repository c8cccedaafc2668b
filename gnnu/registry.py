"""One typed registry for every extension point (docs/design.md#extending-gnnu).

A :class:`Registry` maps names to components of one kind — models, detector kinds, readouts,
input formats, edge builders, pixel-map presets, node features, image layouts — and is read
like a ``dict`` (``name in R``, ``R[name]``, ``list(R)``, ``R.items()``). A component registers
itself from its own file with one line::

    @EDGE_BUILDERS.register("knn")          # decorator: registers the object and returns it
    def knn_edges(nodes, spec): ...

    PRESETS.register("dune-cvn", DUNE_CVN)  # or a direct call with the object

Registries that live in a package whose modules are not all imported up front name those
modules (``modules=``); they are imported on the first lookup, which is when their
components register. Registering a name twice is an error (``replace=True`` swaps an entry on
purpose, e.g. a benchmark wrapping a component with a timer). :meth:`Registry.lookup` raises
one :class:`~gnnu.errors.ConfigError` naming the unknown name, where it came from and the known
ones.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar, overload

from .errors import ConfigError

T = TypeVar("T")


class Registry(Mapping[str, T], Generic[T]):
    """Named components of one kind (``kind``: what they are, for messages, e.g. "edge
    builder"). ``modules``: modules imported before the first lookup (their imports register
    the components); names are listed sorted with ``sort``, else in the order of ``modules``
    (by the module that defines each entry; stable) or, without modules, of registration."""

    def __init__(self, kind: str, modules: tuple[str, ...] = (), sort: bool = False):
        self.kind = kind
        self._modules = tuple(modules)
        self._loaded = not self._modules
        self._loading = False
        self._sort = sort
        self._entries: dict[str, T] = {}

    # -- registering --------------------------------------------------------------------------
    @overload
    def register(self, name: str) -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, obj: T, *, replace: bool = False) -> T: ...

    def register(self, name, obj=None, *, replace=False):
        """Register ``obj`` under ``name`` and return it; without ``obj`` a decorator that does
        so. ValueError if ``name`` is taken (unless ``replace``) or not a non-empty string."""
        if obj is None:
            return lambda target: self.register(name, target, replace=replace)
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} names must be non-empty strings, got {name!r}")
        if name in self._entries and not replace:
            raise ValueError(f"{self.kind} '{name}' is already registered")
        self._entries[name] = obj
        return obj

    def unregister(self, name: str) -> T:
        """Remove and return the entry ``name`` (tests that register temporary components)."""
        return self._entries.pop(name)

    # -- reading -------------------------------------------------------------------------------
    def _load(self) -> None:
        if self._loaded or self._loading:       # (a module being imported may look up too)
            return
        self._loading = True
        try:
            for module in self._modules:
                importlib.import_module(module)
            self._loaded = True
        finally:
            self._loading = False

    def __getitem__(self, name: str) -> T:
        self._load()
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        self._load()
        if self._sort:
            return iter(sorted(self._entries))
        if self._modules:                       # the modules' order, whoever imported them first
            rank = {m: i for i, m in enumerate(self._modules)}
            names = list(self._entries)
            return iter(sorted(names, key=lambda n: rank.get(
                getattr(self._entries[n], "__module__", None), len(rank))))
        return iter(list(self._entries))

    def __len__(self) -> int:
        self._load()
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def known(self) -> str:
        """The registered names, comma-separated (``none`` if empty)."""
        return ", ".join(self) or "none"

    def unknown(self, name: str) -> str:
        """The message for an unknown ``name``: ``unknown <kind> '<name>' (known: …)``."""
        return f"unknown {self.kind} '{name}' (known: {self.known()})"

    def lookup(self, name: str, where: str | None = None) -> T:
        """The entry ``name``; ConfigError ``"<where>: unknown <kind> '<name>' (known: …)"``."""
        if name not in self:
            raise ConfigError((f"{where}: " if where else "") + self.unknown(name))
        return self._entries[name]

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"
