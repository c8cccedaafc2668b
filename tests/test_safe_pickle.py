"""Restricted unpickler (docs/design.md#reliability): plain data loads, anything that names a global is refused
without being executed, and every bad file is one InputError naming it."""

from __future__ import annotations

import os
import pickle

import pytest

from gnnu.errors import InputError
from gnnu.io import safe_pickle


class _RunsCommand:
    """Unpickling this with the standard pickle module would run a shell command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Plain:
    pass


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_plain_data_round_trips(tmp_path, protocol):
    data = [["0", "1"], {"0": [0, 1, 2, 3, 0, 2, 0], "1": [-1, 3, -1, 1, 1, 0, 0]},
            (1.5, None, True, False, -7, 2 ** 70, "νμ")]
    path = tmp_path / "p.p"
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    assert safe_pickle.load(path) == data


def test_self_referencing_list_is_fine(tmp_path):
    loop = [1, 2]
    loop.append(loop)
    path = tmp_path / "loop.p"
    path.write_bytes(pickle.dumps(loop))
    got = safe_pickle.load(path)
    assert got[:2] == [1, 2] and got[2] is got


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_os_system_refused_without_running(tmp_path, protocol):
    marker = tmp_path / "executed"
    path = tmp_path / "evil.p"
    path.write_bytes(pickle.dumps([1, {"a": _RunsCommand(marker)}], protocol=protocol))
    with pytest.raises(InputError,
                       match=r"evil\.p: refusing to unpickle global (posix|nt)\.system"):
        safe_pickle.load(path)
    assert not marker.exists()


def test_handwritten_eval_opcode_refused(tmp_path):
    path = tmp_path / "eval.p"
    path.write_bytes(b"cbuiltins\neval\n(S'__import__(\"os\").getpid()'\ntR.")
    with pytest.raises(InputError, match="refusing to unpickle global builtins.eval"):
        safe_pickle.load(path)


def test_class_instances_refused(tmp_path):
    path = tmp_path / "obj.p"
    path.write_bytes(pickle.dumps({"x": _Plain()}))
    with pytest.raises(InputError, match="refusing to unpickle global"):
        safe_pickle.load(path)


@pytest.mark.parametrize("value", [{1, 2}, b"raw bytes", frozenset({3})])
def test_non_plain_builtin_types_refused(tmp_path, value):
    path = tmp_path / "t.p"
    path.write_bytes(pickle.dumps([value], protocol=4))
    with pytest.raises(InputError, match="refusing to unpickle an object of type"):
        safe_pickle.load(path)


def test_corrupt_truncated_and_missing(tmp_path):
    good = pickle.dumps({"a": list(range(100))})
    trunc = tmp_path / "trunc.p"
    trunc.write_bytes(good[: len(good) // 2])
    with pytest.raises(InputError, match=r"trunc\.p: not a readable pickle"):
        safe_pickle.load(trunc)
    junk = tmp_path / "junk.p"
    junk.write_bytes(b"\x00\x01garbage")
    with pytest.raises(InputError, match=r"junk\.p: not a readable pickle"):
        safe_pickle.load(junk)
    with pytest.raises(InputError, match=r"nope\.p: file not found"):
        safe_pickle.load(tmp_path / "nope.p")
