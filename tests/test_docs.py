"""docs/design.md is the design inside the repo: every reference to one of its sections, from
code, tests, tools, configs, notebooks or the other documents, names a section that exists."""

from __future__ import annotations

import re

from conftest import REPO

DESIGN = REPO / "docs" / "design.md"
REFERENCE = re.compile(r"docs/design\.md#([a-z0-9-]+)")
PLACES = ("gnnu", "tests", "tools", "configs", "notebooks")


def anchors() -> set[str]:
    """GitHub's anchor of every heading of docs/design.md."""
    out = set()
    for line in DESIGN.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            out.add(re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", title)))
    return out


def references():
    files = [REPO / name for name in ("README.md", "RELIABILITY.md", "BENCHMARKS.md", "docs/design.md")]
    for place in PLACES:
        files += [p for p in (REPO / place).rglob("*") if p.is_file()
                  and p.suffix in (".py", ".md", ".yaml", ".ipynb", ".toml")]
    for path in files:
        text = path.read_text(encoding="utf-8")
        for m in REFERENCE.finditer(text):
            yield path.relative_to(REPO), text.count("\n", 0, m.start()) + 1, m.group(1)
        for m in re.finditer(r"\]\(#([a-z0-9-]+)\)", text if path == DESIGN else ""):
            yield path.relative_to(REPO), text.count("\n", 0, m.start()) + 1, m.group(1)


def test_every_design_reference_names_a_section():
    known = anchors()
    assert {"the-house", "hit-file", "graph-dataset", "images", "labels", "adding-a-detector",
            "performance-method", "reliability", "command-line-contract"} <= known
    refs = list(references())
    assert len(refs) > 50                       # the code does point here
    broken = [f"{path}:{line}: #{anchor}" for path, line, anchor in refs if anchor not in known]
    assert not broken, "references to missing sections of docs/design.md: " + "; ".join(broken)
