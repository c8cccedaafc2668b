"""Configs are data: YAML validated into typed, frozen dataclasses.

:func:`from_dict` checks every key against the dataclass fields (unknown keys and wrong
types are errors naming the file and the dotted key), fills defaults, and recurses into
nested dataclasses, lists and dicts. Nothing is ever ``eval``-ed.

YAML is read by :func:`parse_yaml`: PyYAML's safe loader, with numbers in exponent form read
as numbers as YAML 1.2 does (``lr: 1e-3``; YAML 1.1 makes it a string), and documents that
expand to more than :data:`MAX_YAML_NODES` values (an alias bomb: a few hundred bytes of
``&a [*b, *b, …]`` that expand to 10⁹ values) refused. Values quoted in error messages are cut
to :data:`MAX_SHOWN` characters.

Usage::

    @dataclass(frozen=True)
    class Drift:
        velocity_cm_per_us: float = 0.16

    cfg = load_yaml(path, Drift)
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import types
from importlib import resources
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .errors import ConfigError

T = TypeVar("T")

#: The shipped configs (detectors, graphs, models, training, studies): package data of
#: ``gnnu`` read through :mod:`importlib.resources`, so an installed wheel has them. In the
#: repository ``gnnu/configs`` is a symbolic link to the top-level ``configs/`` directory, the one
#: copy of each file (setuptools puts the files themselves into the wheel).
CONFIG_ROOT = Path(os.fspath(resources.files("gnnu") / "configs"))
#: Kinds of shipped configs: the sub-directories of :data:`CONFIG_ROOT`.
CONFIG_KINDS = ("detectors", "graphs", "models", "train", "studies")


def shipped_config(kind: str, name: str) -> Path | None:
    """The shipped config ``<kind>/<name>.yaml`` (a short name such as ``knn16``), or None."""
    candidate = CONFIG_ROOT / kind / f"{name}.yaml"
    return candidate if candidate.is_file() else None


def shipped_names(kind: str) -> list[str]:
    """Sorted short names of the shipped configs of ``kind``."""
    folder = CONFIG_ROOT / kind
    return sorted(q.stem for q in folder.glob("*.yaml")) if folder.is_dir() else []


def repository_path(path: str | os.PathLike) -> Path | None:
    """The shipped file a repository-style relative path ``configs/<kind>/<file>.yaml`` names
    (as README and scripts write them), or None for any other path. Lets
    ``--config configs/models/edgeconv.yaml`` work from an installed wheel in any directory."""
    p = Path(path)
    parts = p.parts
    if p.is_absolute() or len(parts) < 3 or parts[0] != "configs" or ".." in parts:
        return None
    candidate = CONFIG_ROOT.joinpath(*parts[1:])
    return candidate if candidate.is_file() else None


#: Values (scalars, list items, mapping entries, shared ones counted each time) a config may expand to.
MAX_YAML_NODES = 1_000_000
#: Characters of a value quoted in an error message.
MAX_SHOWN = 200
#: A float written in exponent form without a dot (``1e-3``, ``-2E5``), which YAML 1.1 reads as text.
_EXPONENT_FLOAT = re.compile(r"[-+]?[0-9][0-9_]*(\.[0-9_]*)?[eE][-+]?[0-9]+")


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, plus YAML 1.2's floats in exponent form without a dot."""


_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+0123456789"))


def _expanded_size_ok(data: Any, limit: int = MAX_YAML_NODES) -> bool:
    """Whether ``data`` expands to at most ``limit`` values (shared nodes counted every time
    they are reached, as a consumer walking the document would)."""
    budget, stack = limit, [data]
    while stack:
        node = stack.pop()
        budget -= 1
        if budget < 0:
            return False
        if isinstance(node, dict):
            stack.extend(node.values())
            stack.extend(node.keys())
        elif isinstance(node, (list, tuple)):
            stack.extend(node)
    return True


def parse_yaml(text: str, where: str) -> Any:
    """Parse YAML ``text`` safely (module docstring); ConfigError naming ``where`` when invalid
    or absurdly large once its aliases are expanded."""
    loader = _Loader(text)            # = yaml.safe_load, with the float rule above
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: invalid YAML: {_short(str(exc).splitlines()[0])}") from None
    except RecursionError:
        raise ConfigError(f"{where}: invalid YAML: nested too deeply") from None
    finally:
        loader.dispose()
    if not _expanded_size_ok(data):
        raise ConfigError(f"{where}: YAML document expands to more than {MAX_YAML_NODES:,} values "
                          "(aliases repeated inside aliases?); refused")
    return data


def _short(value: Any) -> str:
    """``repr(value)`` cut to :data:`MAX_SHOWN` characters (never expands a huge value fully)."""
    if isinstance(value, (dict, list, tuple)) and not _expanded_size_ok(value, MAX_SHOWN):
        return f"<{type(value).__name__} of more than {MAX_SHOWN} values>"
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + f"… ({len(text):,} characters)"


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp, where: str):
    """Convert ``value`` to type ``tp`` or raise ConfigError naming ``where``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {_short(value)}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {_short(value)} is not one of {list(args)}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__} {_short(value)}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
            return tuple(_convert(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        out = [_convert(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        kt, vt = args if args else (Any, Any)
        return {_convert(k, kt, where): _convert(v, vt, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if tp is float:
        if isinstance(value, str) and _EXPONENT_FLOAT.fullmatch(value.strip()):
            return float(value)              # e.g. a value built in code from YAML 1.1 text
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {_short(value)}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {_short(value)}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {_short(value)}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {_short(value)}")
        return value
    raise ConfigError(f"{where}: unsupported config type {_type_name(tp)}")


def from_dict(cls: type[T], data: Any, where: str = "config") -> T:
    """Build dataclass ``cls`` from a mapping, strictly.

    Unknown keys, wrong types and missing required fields raise :class:`ConfigError` whose
    message names ``where`` (file name and dotted key).
    """
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping for {cls.__name__}, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(str, unknown))} "
                          f"(allowed: {', '.join(fields)})")
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], f"{where}.{name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{where}: missing required key '{name}'")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:  # __post_init__ checks
        raise ConfigError(f"{where}: {exc}") from None


def to_dict(obj) -> Any:
    """Plain-data (JSON/YAML-safe) form of a config dataclass (inverse of :func:`from_dict`)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def read_yaml(path: str | os.PathLike) -> Any:
    """Parse a YAML file with the safe loader; errors name the file."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from None
    return parse_yaml(text, str(path))


def load_yaml(path: str | os.PathLike, cls: type[T]) -> T:
    """Read ``path`` and validate it into ``cls``."""
    return from_dict(cls, read_yaml(path), where=str(path))


def config_file(p: Path) -> Path:
    """A config given as a path: ``p`` itself when it exists, else the shipped file it names
    (:func:`repository_path`, e.g. ``configs/models/edgeconv.yaml`` from any directory); a
    ConfigError when neither exists."""
    if p.exists():
        return p
    shipped = repository_path(p)
    if shipped is None:
        raise ConfigError(f"{p}: config file not found")
    return shipped


def resolve_config(kind: str, name_or_path: str | os.PathLike) -> Path:
    """Find a config by path, or by short name among the shipped ``configs/<kind>/<name>.yaml``.

    A path that does not exist but reads ``configs/<kind>/<file>.yaml`` (relative) is the shipped
    file (:func:`repository_path`): the repository's paths work from any directory."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        return config_file(p)
    candidate = shipped_config(kind, str(name_or_path))
    if candidate is not None:
        return candidate
    known = shipped_names(kind)
    raise ConfigError(f"unknown {kind[:-1] if kind.endswith('s') else kind} '{name_or_path}' "
                      f"(known: {', '.join(known) or 'none'}; or give a YAML path)")


def to_json(obj) -> str:
    """Canonical JSON of a config (sorted keys) for file attributes and manifests."""
    return json.dumps(to_dict(obj), sort_keys=True)
