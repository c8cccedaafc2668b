"""The house (docs/design.md#the-house): data walks one way, and so do imports.

Every import inside ``gnnu/`` — module level or inside a function — is read from the source, and
no module may import one of a later stage. Shared modules (events, errors, config, registry,
atomic, the numba helper) come first; ``cli`` and ``demo`` last. ``evaluate`` (metrics, reports,
comparisons: torch-free) comes before ``train``, which uses its metric definitions and report
writer; ``gnnu-compare --remeasure`` reaches the training stage's inference through a registry,
not an import."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import REPO

#: Stage of each top-level module or sub-package of gnnu, in the order data walks.
STAGES = {
    "gnnu": 0, "gnnu._jit": 0, "gnnu.errors": 0, "gnnu.config": 0, "gnnu.registry": 0,
    "gnnu.atomic": 0, "gnnu.events": 0,
    "gnnu.detectors": 1,
    "gnnu.pixelmap": 2,
    "gnnu.sim": 3, "gnnu.display": 3,
    "gnnu.io": 4,
    "gnnu.graph": 5,
    "gnnu.images": 6,
    "gnnu.models": 7,
    "gnnu.evaluate": 8,
    "gnnu.train": 9,
    "gnnu.deploy": 10,
    "gnnu.study": 11,
    "gnnu.cli": 12, "gnnu.demo": 12,
}
GNNU = REPO / "gnnu"


def _module(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _stage(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 1 and not ((GNNU / parts[1]).is_dir() or (GNNU / f"{parts[1]}.py").is_file()):
        parts = parts[:1]                        # from gnnu import __version__: an attribute
    name = ".".join(parts[:2])
    if name not in STAGES:
        raise AssertionError(f"{module}: no stage assigned in tests/test_layers.py STAGES")
    return name


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every gnnu import in ``path``, wherever it is."""
    module = _module(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "gnnu"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == "gnnu":
                if node.module is None:          # from . import x: x may be a module
                    found += [(node.lineno, f"{target}.{a.name}") for a in node.names]
                else:
                    found.append((node.lineno, target))
    return found


SOURCES = sorted(GNNU.rglob("*.py"))


def test_every_stage_is_known():
    assert {_stage(_module(p)) for p in SOURCES} <= set(STAGES)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_stage_imports_a_later_one(path):
    here = _stage(_module(path))
    later = [f"line {line}: {target} ({_stage(target)})" for line, target in imports(path)
             if STAGES[_stage(target)] > STAGES[here]]
    assert not later, f"{_module(path)} ({here}) imports a later stage: " + "; ".join(later)


def test_the_checker_sees_function_level_and_relative_imports(tmp_path):
    """The rule cannot pass vacuously: a lazy import of a later stage inside a function is
    found, with its line."""
    fake = GNNU / "evaluate" / "_layers_probe.py"
    fake.write_text("def f():\n    from ..train import run\n    import gnnu.cli\n")
    try:
        assert imports(fake) == [(2, "gnnu.train"), (3, "gnnu.cli")]
    finally:
        fake.unlink()
