"""gnnu's own exception types.

Every *expected* failure (bad input file, bad config, refused overwrite) raises a
:class:`GnnuError`; the command-line tools print its one-line message and exit non-zero
without a traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import os


class GnnuError(Exception):
    """An expected failure with a one-line message meant for the user."""

    exit_code = 2


class ConfigError(GnnuError):
    """A configuration file or value is invalid (unknown key, wrong type, missing file)."""


class InputError(GnnuError):
    """An input file is unreadable or holds invalid data.

    The message names the file and, where it applies, the event (row index and id).
    """

    def __init__(self, message: str, path: str | os.PathLike | None = None,
                 event: int | None = None, event_id=None):
        self.path = None if path is None else os.fspath(path)
        self.event = event
        self.event_id = event_id
        self.reason = message
        where = []
        if self.path is not None:
            where.append(self.path)
        if event is not None:
            where.append(f"event {event}" + (f" (id {tuple(int(v) for v in event_id)})"
                                            if event_id is not None else ""))
        super().__init__(": ".join(where + [message]))


class SchemaError(InputError):
    """A file's schema is unknown, of an unsupported version, or lacks required columns."""


class OutputExistsError(GnnuError):
    """Refusing to overwrite an existing output without ``--force``."""


class OutputBusyError(GnnuError):
    """Another process holds the output's lock (:func:`gnnu.atomic.output_lock`)."""

    exit_code = 75                      # EX_TEMPFAIL: try again once the other run has finished


def ignore_interrupts_in_worker(*_args) -> None:
    """Pool initializer: a worker process ignores Ctrl-C (SIGINT reaches the whole process
    group), so only the parent reacts — one "interrupted" line instead of a traceback per
    worker. SIGTERM, with which the parent's pool ends its workers, keeps its default action:
    the kernel ends the worker at once. A Python-level handler (or one inherited through fork,
    e.g. Lightning's) would run only at the worker's next bytecode, and a SIGTERM arriving just
    before an idle worker blocks on the task queue's lock is then never acted on: the pool's
    final join waits forever (seen in the suite). What a killed worker was writing is a
    temporary file (``NAME.tmp-PID``) that the parent removes once its pool is gone
    (:func:`gnnu.atomic.remove_stale_temporaries`)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
