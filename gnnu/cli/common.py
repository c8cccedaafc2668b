"""What every gnnu command shares: ``--debug``, and one-line errors for expected failures.

An expected failure (:class:`gnnu.errors.GnnuError`: bad input, bad config, refused overwrite)
prints ``<prog>: error: <message>`` on stderr and exits with its code (2) — no traceback unless
``--debug``. Ctrl-C exits 130 with one line. A fault of the output's file system — full disk,
exceeded quota, read-only file system, no permission (:func:`gnnu.atomic.output_error_message`)
— is an expected failure too: one line naming the file, exit 2 (the writers have already
discarded their temporary files, so nothing half-written is left). Anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import warnings
from typing import Callable, Iterator, Sequence

from ..atomic import output_error_message
from ..errors import GnnuError


# A dependency's import-time deprecation notice (torch.jit.script, used inside PyG/Lightning) is
# not the user's business and would break "one line on stderr" for expected failures.
warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
# Lightning 2.6's own notice about a torch pytree API it calls (printed on every gnnu-train).
warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")


def parser(prog: str, description: str) -> argparse.ArgumentParser:
    """An ArgumentParser with gnnu's shared flags."""
    p = argparse.ArgumentParser(prog=prog, description=description,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--debug", action="store_true", help="show full tracebacks")
    return p


#: Set while a command runs as a stage of another (``gnnu-demo``): see :func:`stage`.
_STAGE = False


@contextlib.contextmanager
def stage() -> Iterator[None]:
    """Run gnnu commands as stages of another: inside, :func:`run` lets expected failures
    (GnnuError, a full disk) and Ctrl-C propagate instead of printing its own line, so the
    outer command prints the one error line. Commands run outside are unaffected."""
    global _STAGE
    before, _STAGE = _STAGE, True
    try:
        yield
    finally:
        _STAGE = before


def run(prog: str, body: Callable[[argparse.Namespace], int | None],
        p: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run ``body(args)``, mapping expected failures to one-line errors."""
    args = p.parse_args(argv)
    if _STAGE:
        return int(body(args) or 0)
    try:
        return int(body(args) or 0)
    except GnnuError as exc:
        if args.debug:
            raise
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        line = output_error_message(exc)
        if line is None or args.debug:
            raise
        print(f"{prog}: error: {line}", file=sys.stderr)
        return 2


def parse_fractions(text: str, n: int = 3) -> tuple[float, ...]:
    """``'0.8,0.1,0.1'`` → (0.8, 0.1, 0.1); must be n non-negative numbers summing to 1."""
    try:
        vals = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {n} comma-separated numbers, got '{text}'") from None
    if len(vals) != n or any(v < 0 for v in vals) or abs(sum(vals) - 1) > 1e-6:
        raise argparse.ArgumentTypeError(f"expected {n} non-negative fractions summing to 1, got '{text}'")
    return vals
