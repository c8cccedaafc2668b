"""gnnu.atomic: the one way gnnu writes a file (docs/design.md#reliability)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from gnnu.atomic import (AtomicFile, atomic_path, json_text, jsonable, temporary_path,
                         write_json_atomic, write_text_atomic)


def _leftovers(directory):
    return sorted(p.name for p in directory.iterdir() if ".tmp-" in p.name)


def test_clean_exit_renames_the_temporary_into_place(tmp_path):
    target = tmp_path / "out.txt"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith("out.txt.tmp-")
        tmp.write_text("new")
        assert not target.exists()              # nothing visible before the end
    assert target.read_text() == "new" and _leftovers(tmp_path) == []


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt(), SystemExit(3),
                                   OSError(28, "No space left on device")])
def test_any_exception_removes_the_temporary_and_keeps_the_old_file(tmp_path, error):
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(type(error)):
        with atomic_path(target) as tmp:
            tmp.write_text("half of the new")
            raise error
    assert target.read_text() == "old" and _leftovers(tmp_path) == []


def test_failed_rename_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub"
    target.mkdir()
    (target / "blocker").write_text("x")        # a non-empty directory cannot be replaced by a file
    with pytest.raises(OSError):
        with atomic_path(target) as tmp:
            tmp.write_text("data")
    assert _leftovers(tmp_path) == [] and (target / "blocker").exists()


def test_atomic_file_commit_and_discard_are_idempotent(tmp_path):
    out = AtomicFile(tmp_path / "a.bin")
    assert out.tmp == temporary_path(tmp_path / "a.bin")
    out.tmp.write_bytes(b"1")
    assert out.commit() == tmp_path / "a.bin" and out.commit() == tmp_path / "a.bin"
    out.discard()                                 # after a commit: nothing to remove
    assert (tmp_path / "a.bin").read_bytes() == b"1"
    other = AtomicFile(tmp_path / "b.bin")
    other.tmp.write_bytes(b"2")
    other.discard()
    other.discard()
    assert not (tmp_path / "b.bin").exists() and _leftovers(tmp_path) == []


def test_one_json_policy_nan_inf_numpy():
    obj = {"a": float("nan"), "b": [np.float32(1.5), np.inf, -math.inf], "c": np.arange(3),
           "d": (np.int64(7), np.bool_(True)), 4: None}
    assert jsonable(obj) == {"a": None, "b": [1.5, None, None], "c": [0, 1, 2], "d": [7, True],
                             "4": None}
    text = json_text(obj, indent=None)
    assert "NaN" not in text and "Infinity" not in text and text.endswith("\n")
    assert json.loads(text)["a"] is None


def test_write_helpers(tmp_path):
    write_text_atomic(tmp_path / "t.md", "é\n")
    assert (tmp_path / "t.md").read_bytes() == "é\n".encode()
    write_json_atomic(tmp_path / "m.json", {"x": float("inf")}, indent=1)
    assert (tmp_path / "m.json").read_text() == '{\n "x": null\n}\n'
    assert _leftovers(tmp_path) == []
