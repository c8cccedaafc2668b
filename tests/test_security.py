"""Security (docs/design.md#reliability, issue #8): no unsafe deserialisation or evaluation anywhere in ``gnnu/``
or ``tools/``, and hostile inputs refused without running anything.

- :func:`unsafe_calls` scans the source (Python's own parser, so docstrings and comments do not
  count, and ``import pickle as p`` / ``from torch import load`` aliases are followed) for
  ``pickle.load(s)``/``Unpickler`` (only :mod:`gnnu.io.safe_pickle` may use the pickle module),
  ``dill``/``cloudpickle``/``shelve``/``marshal`` loads, ``torch.load`` without
  ``weights_only=True``, ``eval(``/``exec(``/``compile(`` of the builtins, ``yaml.load`` without
  a safe loader, ``yaml.unsafe_load``/``full_load``, ``numpy.load(allow_pickle=True)`` and
  ``pandas.read_pickle``; a self-test proves it finds each of them.
- A checkpoint holding an object whose ``__reduce__`` would run code, given to ``gnnu-eval``,
  ``gnnu-train --init-from`` and ``gnnu-train --resume``, and YAML with a
  ``!!python/object/apply`` tag, given as every kind of config and as a ``--set`` value: each is
  refused with one line on stderr (exit code 2) and the code never runs.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest
import torch
import yaml

from conftest import REPO

SCANNED = ("gnnu", "tools")
#: The one module allowed to use the pickle module (a refusing Unpickler subclass).
PICKLE_ALLOWED = {Path("gnnu/io/safe_pickle.py")}
#: Qualified names whose every call is unsafe.
ALWAYS = {"pickle.load", "pickle.loads", "pickle.Unpickler", "_pickle.load", "_pickle.loads",
          "cPickle.load", "cPickle.loads", "dill.load", "dill.loads", "cloudpickle.load",
          "cloudpickle.loads", "shelve.open", "marshal.load", "marshal.loads",
          "builtins.eval", "builtins.exec", "builtins.compile", "yaml.unsafe_load",
          "yaml.unsafe_load_all", "yaml.full_load", "yaml.full_load_all", "pandas.read_pickle",
          "jsonpickle.decode"}
SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader"}


def _is_true(node) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def _kw(call: ast.Call, name: str):
    return next((k.value for k in call.keywords if k.arg == name), None)


def unsafe_calls(source: str, path: str = "<source>", pickle_allowed: bool = False) -> list[str]:
    """``'path:line: what'`` for every unsafe call (or pickle import) in ``source``."""
    tree = ast.parse(source, path)
    alias: dict[str, str] = {"eval": "builtins.eval", "exec": "builtins.exec",
                             "compile": "builtins.compile"}
    found = []
    for node in ast.walk(tree):                       # imports anywhere (gnnu imports lazily)
        if isinstance(node, ast.Import):
            for a in node.names:
                alias[(a.asname or a.name).split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
                if a.name.split(".")[0] in ("pickle", "_pickle", "cPickle", "dill", "cloudpickle") \
                        and not pickle_allowed:
                    found.append(f"{path}:{node.lineno}: import {a.name}")
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                alias[a.asname or a.name] = f"{node.module}.{a.name}"
                if node.module.split(".")[0] in ("pickle", "_pickle", "cPickle", "dill") \
                        and not pickle_allowed:
                    found.append(f"{path}:{node.lineno}: from {node.module} import {a.name}")

    def qualified(func) -> str | None:
        parts = []
        while isinstance(func, ast.Attribute):
            parts.append(func.attr)
            func = func.value
        if not isinstance(func, ast.Name):
            return None                               # a method of an object: model.eval()
        head = alias.get(func.id, func.id)
        if not parts and func.id not in alias:
            return None
        return ".".join([head, *reversed(parts)])

    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = qualified(node.func)
        if name is None:
            continue
        name = name.replace("numpy.", "np.", 1) if name.startswith("numpy.") else name
        where = f"{path}:{node.lineno}"
        if name in ALWAYS and not (pickle_allowed and name.startswith("pickle.")):
            found.append(f"{where}: {name}(...)")
        elif name == "torch.load" and not _is_true(_kw(node, "weights_only")):
            found.append(f"{where}: torch.load without weights_only=True")
        elif name in ("yaml.load", "yaml.load_all"):
            loader = _kw(node, "Loader") or (node.args[1] if len(node.args) > 1 else None)
            loader_name = (loader.attr if isinstance(loader, ast.Attribute)
                           else loader.id if isinstance(loader, ast.Name) else None)
            if loader_name not in SAFE_YAML_LOADERS:
                found.append(f"{where}: {name} without a safe Loader")
        elif name == "np.load" and not (_kw(node, "allow_pickle") is None
                                        or (isinstance(_kw(node, "allow_pickle"), ast.Constant)
                                            and _kw(node, "allow_pickle").value is False)):
            found.append(f"{where}: numpy.load with allow_pickle")
    return found


def test_scanner_finds_every_unsafe_form():
    bad = '''
import pickle
import pickle as pk
from pickle import loads as L
import torch, yaml
import torch as T
import numpy as np
from torch import load
from yaml import load as yl
import builtins
pickle.load(f)
pk.loads(b)
L(b)
torch.load(p)
T.load(p, weights_only=False)
load(p, map_location="cpu")
eval("1")
exec("x = 1")
builtins.eval("2")
yaml.load(text)
yaml.load(text, Loader=yaml.Loader)
yl(text, yaml.UnsafeLoader)
yaml.unsafe_load(text)
yaml.full_load(text)
np.load(p, allow_pickle=True)
pickle.Unpickler(f).load()
'''
    found = unsafe_calls(bad, "bad.py")
    lines = sorted({int(f.split(":")[1]) for f in found})
    assert lines == [2, 3, 4] + list(range(11, 27)), found
    good = '''
import torch, yaml
import numpy as np
torch.load(p, map_location="cpu", weights_only=True)
yaml.safe_load(text)
yaml.load(text, Loader=yaml.SafeLoader)
yaml.load(text, yaml.CSafeLoader)
model.eval()
np.load(p)
np.load(p, allow_pickle=False)
re.compile("x")
ast.literal_eval("1")
"""pickle.load(f) in a docstring, eval( and torch.load(p) too"""  # eval( in a comment
'''
    assert unsafe_calls(good, "good.py") == []


def test_no_unsafe_deserialisation_or_eval_in_the_source():
    found = []
    files = [p for d in SCANNED for p in sorted((REPO / d).rglob("*.py"))]
    assert len(files) > 50
    for p in files:
        rel = p.relative_to(REPO)
        found += unsafe_calls(p.read_text(), str(rel), pickle_allowed=rel in PICKLE_ALLOWED)
    assert not found, "unsafe calls:\n" + "\n".join(found)


# -- hostile checkpoints ------------------------------------------------------------------------
class RunsCode:
    """Unpickling this calls ``os.mkdir(marker)`` — if the loader allows any callable."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def _one_line_refusal(capsys, rc: int, path: Path) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert str(path) in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    from test_train import make_dataset
    return make_dataset(tmp_path_factory.mktemp("security"), n_events=60)


@pytest.fixture
def tiny_cfg(tmp_path):
    from test_train import TINY
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, small_data):
    """A one-epoch run (constant learning rate, so --resume --epochs 2 may extend it)."""
    from gnnu.cli.train import main
    from test_train import TINY

    root = tmp_path_factory.mktemp("security_run")
    (root / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    assert main(["--config", str(root / "tiny.yaml"), "--data", str(small_data), "--out",
                 str(root / "run"), "--epochs", "1", "--max-events", "16", "--device", "cpu",
                 "--set", "schedule.name=none"]) == 0
    return root / "run"


def _evil_checkpoint(path: Path, marker: Path, like: Path | None = None) -> Path:
    """A checkpoint with a code-running object in it (next to real content if ``like``)."""
    ckpt = torch.load(like, weights_only=True) if like else {"state_dict": {}}
    ckpt["gnnu_extra"] = RunsCode(marker)
    torch.save(ckpt, path)
    return path


def test_malicious_checkpoint_refused_by_eval_and_train(tmp_path, capsys, small_data, tiny_cfg):
    from gnnu.cli.eval import main as eval_main
    from gnnu.cli.train import main as train_main

    marker = tmp_path / "code-ran"
    evil = _evil_checkpoint(tmp_path / "evil.ckpt", marker)
    rc = eval_main(["--checkpoint", str(evil), "--data", str(small_data), "--out",
                    str(tmp_path / "report"), "--device", "cpu"])
    assert "refused" in _one_line_refusal(capsys, rc, evil)
    rc = train_main(["--config", str(tiny_cfg), "--data", str(small_data), "--out",
                     str(tmp_path / "ft"), "--init-from", str(evil), "--epochs", "1",
                     "--max-events", "16", "--device", "cpu"])
    _one_line_refusal(capsys, rc, evil)
    assert not marker.exists(), "a checkpoint ran code"


def test_malicious_last_checkpoint_refused_on_resume(tmp_path, capsys, finished_run):
    """A run directory whose last.ckpt was replaced by a hostile one: --resume refuses it."""
    import shutil

    from gnnu.cli.train import main

    run = shutil.copytree(finished_run, tmp_path / "run")
    capsys.readouterr()
    marker = tmp_path / "code-ran"
    _evil_checkpoint(run / "last.ckpt", marker, like=run / "last.ckpt")
    rc = main(["--out", str(run), "--resume", "--epochs", "2", "--device", "cpu"])
    _one_line_refusal(capsys, rc, run / "last.ckpt")
    assert not marker.exists(), "a checkpoint ran code"


# -- hostile YAML --------------------------------------------------------------------------------
def _tagged(marker: Path) -> str:
    return f"!!python/object/apply:os.mkdir [{str(marker)!r}]"


def test_yaml_python_tags_refused_everywhere(tmp_path, capsys, small_data, tiny_cfg, dune):
    from gnnu.cli import build, sim, train
    from gnnu.io.hitfile import write_hits
    from conftest import make_event

    marker = tmp_path / "code-ran"
    tag = _tagged(marker)
    hostile = {
        "detector": f"name: evil\nkind: {tag}\n",
        "graph": f"name: evil\nshard_size: {tag}\n",
        "train": yaml.safe_dump({k: v for k, v in yaml.safe_load(tiny_cfg.read_text()).items()
                                 if k != "epochs"}) + f"epochs: {tag}\n",
        "whole file": f"{tag}\n",
    }
    paths = {}
    for kind, text in hostile.items():
        paths[kind] = tmp_path / f"{kind.replace(' ', '_')}.yaml"
        paths[kind].write_text(text)
    src = write_hits(tmp_path / "a.h5", [make_event(i, n_hits=20) for i in range(4)], dune)
    runs = [
        (sim.main, ["--detector", str(paths["detector"]), "--events", "1", "--out",
                    str(tmp_path / "s.h5")], paths["detector"]),
        (build.main, ["--input", str(src), "--out", str(tmp_path / "ds"), "--graph",
                      str(paths["graph"])], paths["graph"]),
        (train.main, ["--config", str(paths["train"]), "--data", str(small_data), "--out",
                      str(tmp_path / "r1"), "--device", "cpu"], paths["train"]),
        (train.main, ["--config", str(paths["whole file"]), "--data", str(small_data), "--out",
                      str(tmp_path / "r2"), "--device", "cpu"], paths["whole file"]),
    ]
    for main, args, path in runs:
        line = _one_line_refusal(capsys, main(args), path)
        assert "invalid YAML" in line, line
    rc = train.main(["--config", str(tiny_cfg), "--data", str(small_data), "--out",
                     str(tmp_path / "r3"), "--device", "cpu", "--set", f"epochs={tag}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "invalid YAML" in err[0], err
    assert not marker.exists(), "a YAML tag ran code"


def test_tampered_run_config_refused_on_resume(tmp_path, capsys, finished_run):
    """--resume reads RUN_DIR/config.yaml: a python tag planted there is refused too."""
    import shutil

    from gnnu.cli.train import main

    run = shutil.copytree(finished_run, tmp_path / "run")
    capsys.readouterr()
    marker = tmp_path / "code-ran"
    cfg = run / "config.yaml"
    cfg.write_text(cfg.read_text() + f"extra: {_tagged(marker)}\n")
    line = _one_line_refusal(capsys, main(["--out", str(run), "--resume", "--epochs", "2",
                                           "--device", "cpu"]), cfg)
    assert "invalid YAML" in line
    assert not marker.exists()
