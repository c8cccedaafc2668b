"""Packaging (issue 18): configs are package data read through importlib.resources, one copy of
each file; names, YAML paths and the repository's ``configs/<kind>/<file>.yaml`` paths work from
any directory; and a wheel installed into a fresh virtual environment (reusing this interpreter's
installed dependencies: no second torch) runs sim → build → train → eval outside the source tree."""

from __future__ import annotations

import fnmatch
import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from conftest import REPO
from gnnu.config import CONFIG_ROOT, resolve_config, shipped_names
from gnnu.errors import ConfigError

tomllib = pytest.importorskip("tomllib")


def _package_data() -> list[str]:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    return data["tool"]["setuptools"]["package-data"]["gnnu"]


def test_configs_live_in_the_package_once():
    """CONFIG_ROOT is gnnu/configs (package data); the repository's configs/ is that same
    directory (a link, not a second copy of any file)."""
    import gnnu

    package = Path(gnnu.__file__).resolve().parent
    assert CONFIG_ROOT == package / "configs" or CONFIG_ROOT.resolve() == (package / "configs").resolve()
    files = sorted(p for p in (REPO / "configs").rglob("*.yaml"))
    assert len(files) >= 18
    real = {p.resolve() for p in files}
    in_package = {p.resolve() for p in CONFIG_ROOT.rglob("*.yaml")}
    assert real == in_package and len(real) == len(files)     # the same files, not copies


def test_package_data_covers_every_config():
    """Every YAML under the configs (studies included, any depth the patterns allow) matches a
    package-data pattern, so the wheel carries it; the shipped checkpoints' folder is listed."""
    patterns = _package_data()
    for path in CONFIG_ROOT.rglob("*.yaml"):
        rel = "configs/" + path.relative_to(CONFIG_ROOT).as_posix()
        assert any(fnmatch.fnmatch(rel, p) for p in patterns), rel
    assert any(fnmatch.fnmatch("configs/studies/tl.yaml", p) for p in patterns)
    models = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["gnnu.models"]
    for name in ("pretrained/dune-real.ckpt", "pretrained/dune-real.json"):
        assert any(fnmatch.fnmatch(name, p) for p in models), name


def test_license_is_an_spdx_string():
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert data["project"]["license"] == "MIT"


def test_names_and_repository_paths_resolve_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                       # no configs/ here
    assert resolve_config("graphs", "knn16") == CONFIG_ROOT / "graphs" / "knn16.yaml"
    assert resolve_config("models", "configs/models/edgeconv.yaml") == CONFIG_ROOT / "models" / "edgeconv.yaml"
    own = tmp_path / "mine.yaml"
    own.write_text("name: edgeconv\n")
    assert resolve_config("models", own) == own       # a user's YAML path is taken as it is
    with pytest.raises(ConfigError, match="config file not found"):
        resolve_config("models", "configs/models/nonexistent.yaml")
    with pytest.raises(ConfigError, match="config file not found"):
        resolve_config("models", "elsewhere/edgeconv.yaml")
    with pytest.raises(ConfigError, match=r"unknown model 'nope' \(known: .*edgeconv"):
        resolve_config("models", "nope")
    assert "knn16" in shipped_names("graphs") and "dune" in shipped_names("detectors")


def test_train_config_by_name_and_repository_path(tmp_path, monkeypatch):
    from gnnu.models.registry import load_model_config
    from gnnu.train.config import load_train_config

    monkeypatch.chdir(tmp_path)
    by_name = load_train_config("edgeconv", require_data=False)
    by_path = load_train_config("configs/models/edgeconv.yaml", require_data=False)
    assert by_name.model == by_path.model and by_name.model.name == "edgeconv"
    assert load_model_config("configs/models/gravnet.yaml").name == "gravnet"
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        load_train_config("nope", require_data=False)


# -- the wheel --------------------------------------------------------------------------------
def _clean_env() -> dict:
    """This environment without PYTHONPATH / PYTHONHOME (which could point at the sources)."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


def _fresh_venv(root: Path, wheel: Path) -> Path:
    """A new virtual environment at ``root`` with ``wheel`` installed (no dependencies), then
    made to see this interpreter's installed packages (a .pth file naming its site-packages,
    searched after the venv's own; the .pth files there are not run, so an editable gnnu of this
    environment stays invisible), never the source tree; returns its python. The wheel goes in
    first: with the parent packages visible pip would take this environment's gnnu for it."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--no-deps", "--no-index", str(wheel)], check=True, cwd=root, env=_clean_env())
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    parents = [p for p in dict.fromkeys(site.getsitepackages() + [sysconfig.get_paths()["purelib"]])
               if Path(p).is_dir()]
    (Path(purelib) / "_parent_site.pth").write_text("\n".join(parents) + "\n")
    return python


@pytest.mark.slow
def test_wheel_installs_and_runs_the_chain_outside_the_source_tree(tmp_path):
    # build from a copy: setuptools writes build/ and gnnu.egg-info/ beside the sources
    src = tmp_path / "src"
    shutil.copytree(REPO, src, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
        ".hypothesis", "nb-out", "demo-out"))
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(dist), str(src)], check=True, cwd=tmp_path, env=_clean_env())
    (wheel,) = dist.glob("gnnu-*.whl")
    python = _fresh_venv(tmp_path / "venv", wheel)
    bin_ = python.parent
    env = _clean_env()
    work = tmp_path / "work"
    work.mkdir()

    def run(*argv):
        r = subprocess.run([str(bin_ / argv[0]), *map(str, argv[1:])], cwd=work, env=env,
                           capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, f"{argv[0]} failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
        return r.stdout + r.stderr

    where = subprocess.run([str(python), "-c", "import gnnu, gnnu.config as c; "
                            "print(gnnu.__file__); print(c.CONFIG_ROOT)"],
                           cwd=work, env=env, capture_output=True, text=True, check=True).stdout.split()
    venv = (tmp_path / "venv").resolve()
    assert all(Path(p).resolve().is_relative_to(venv) for p in where), where
    assert not Path(where[1], "graphs").resolve().is_relative_to(REPO)
    run("gnnu-sim", "--detector", "dune", "--events", "40", "--seed", "3", "--out", "events.h5")
    run("gnnu-build", "--input", "events.h5", "--format", "gnnu", "--graph", "knn16", "--out", "graphs")
    run("gnnu-train", "--config", "configs/models/edgeconv.yaml", "--data", "graphs", "--out", "run",
        "--epochs", "1", "--device", "cpu", "--set", "model.params.widths=[8,8]",
        "--set", "model.heads.hidden=[16]", "--set", "batch_size=8")
    out = run("gnnu-eval", "--checkpoint", "run/best.ckpt", "--data", "graphs", "--split", "test",
              "--out", "report", "--no-plots", "--device", "cpu")
    assert "test events" in out and (work / "report" / "metrics.json").is_file()
    assert not any(REPO in p.parents for p in work.rglob("*"))
