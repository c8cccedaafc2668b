"""Command-line entry points: thin argument parsing that calls the library (no logic here).

:func:`invoke` runs a gnnu command line in the current process — what notebooks and
``gnnu-demo`` use, so they show and run exactly the commands a user would type.
"""

from __future__ import annotations

import importlib
import shlex

#: Command name → module whose ``main(argv)`` implements it (as in pyproject's scripts).
COMMANDS = {"gnnu-sim": "sim", "gnnu-build": "build", "gnnu-train": "train", "gnnu-eval": "eval",
            "gnnu-compare": "compare", "gnnu-demo": "demo", "gnnu-study": "study"}


class CommandFailed(RuntimeError):
    """A command run by :func:`invoke` with ``check=True`` exited with a non-zero status."""


def invoke(command: str | list[str], check: bool = True) -> int:
    """Run one gnnu command line (``"gnnu-sim --events 100 --out ev.h5"`` or its argv list)
    in this process and return its exit status; with ``check`` a non-zero status raises
    :class:`CommandFailed` naming the command (the command has printed its own error line)."""
    argv = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
    if not argv or argv[0] not in COMMANDS:
        raise ValueError(f"not a gnnu command: {argv[:1]} (known: {', '.join(COMMANDS)})")
    module = importlib.import_module(f"{__name__}.{COMMANDS[argv[0]]}")
    rc = module.main(argv[1:])
    if check and rc:
        raise CommandFailed(f"{shlex.join(argv)} exited with status {rc}")
    return rc
