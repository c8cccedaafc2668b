"""Model registry and config validation: create_model by name / YAML, strict params, heads."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
import yaml
from torch import nn

from gnnu.config import CONFIG_ROOT, to_dict
from gnnu.errors import ConfigError
from gnnu.events import CLASS_LABELS, NUM_CLASSES
from gnnu.models import (HeadsConfig, ModelConfig, MultiTaskHead, create_model, decode_target,
                         encode_target, list_models, load_model_config, register_model)
from gnnu.models import registry
from gnnu.models.gnn.dynedgeconv import DynEdgeConvParams
from gnnu.models.gnn.edgeconv import EdgeConvParams

GNN_MODELS = ("edgeconv", "dynedgeconv", "gravnet")


def test_gnn_models_registered():
    assert set(GNN_MODELS) <= set(list_models())


@pytest.mark.parametrize("path", sorted((CONFIG_ROOT / "models").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_model_yaml_validates(path):
    """Every shipped model YAML names a registered model and has only valid keys."""
    cfg = load_model_config(path)
    assert isinstance(cfg, ModelConfig)
    assert cfg.name in list_models()


@pytest.mark.parametrize("name", GNN_MODELS)
def test_create_from_yaml_and_short_name(name):
    """The YAML file, its path and the short name give the same config and a working model."""
    path = CONFIG_ROOT / "models" / f"{name}.yaml"
    by_path = load_model_config(path)
    assert by_path == load_model_config(name) == load_model_config(str(path))
    model = create_model(path, in_features=7)
    assert model.config == by_path
    heads = set(model.head.heads) | set(model.head.regressors)
    assert heads == set(CLASS_LABELS) | {"nu_energy"}
    assert model.loss_weights["flavour"] == 1.0
    assert model.loss_weights["nu_energy"] == yaml.safe_load(path.read_text())["heads"]["loss_weights"]["nu_energy"]


def test_unknown_model_name_is_named():
    with pytest.raises(ConfigError, match="unknown model 'edgeconvv'"):
        create_model({"name": "edgeconvv"}, in_features=3)
    with pytest.raises(ConfigError, match="unknown model 'nosuchnet'"):
        create_model("nosuchnet", in_features=3)


def test_unknown_param_is_named():
    with pytest.raises(ConfigError, match=r"model\.params: unknown key\(s\) widthz"):
        create_model({"name": "edgeconv", "params": {"widthz": [8]}}, in_features=3)


def test_wrong_param_type_is_named():
    with pytest.raises(ConfigError, match=r"params\.k: expected an integer"):
        create_model({"name": "dynedgeconv", "params": {"k": "sixteen"}}, in_features=3)
    with pytest.raises(ConfigError, match=r"params\.first_knn"):
        create_model({"name": "dynedgeconv", "params": {"first_knn": "edges"}}, in_features=3)
    with pytest.raises(ConfigError, match="widths"):
        create_model({"name": "edgeconv", "params": {"widths": []}}, in_features=3)


def test_unknown_top_level_and_head_keys_are_named():
    with pytest.raises(ConfigError, match="unknown key.*poolin"):
        load_model_config({"name": "edgeconv", "poolin": ["mean"]})
    with pytest.raises(ConfigError, match=r"heads: unknown key.*hiden"):
        load_model_config({"name": "edgeconv", "heads": {"hiden": [8]}})
    with pytest.raises(ConfigError, match=r"pooling\[0\]: 'median'"):
        load_model_config({"name": "edgeconv", "pooling": ["median"]})


def test_yaml_file_errors_name_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: gravnet\nparams:\n  blocks: 2\n  kk: 3\n")
    with pytest.raises(ConfigError, match=rf"{path}\.params: unknown key\(s\) kk"):
        create_model(path, in_features=3)
    with pytest.raises(ConfigError, match="not found"):
        create_model(tmp_path / "missing.yaml", in_features=3)


def test_training_config_with_model_section(tmp_path):
    """A full training config nests the model under ``model``; only that section is read."""
    path = tmp_path / "train.yaml"
    path.write_text("model:\n  name: edgeconv\n  params: {widths: [8, 16]}\ntrain: {epochs: 3}\n")
    cfg = load_model_config(path)
    assert cfg.params == EdgeConvParams(widths=(8, 16))


@pytest.mark.parametrize("name", GNN_MODELS)
def test_resolved_config_round_trips(name):
    """The plain-data form saved next to artefacts loads back to the same config."""
    cfg = load_model_config(name)
    assert load_model_config(yaml.safe_load(yaml.safe_dump(to_dict(cfg)))) == cfg


def test_params_are_validated_into_the_family_dataclass():
    cfg = load_model_config({"name": "dynedgeconv", "params": {"k": 8, "include_self": True}})
    assert cfg.params == DynEdgeConvParams(k=8, include_self=True)
    # a hand-made ModelConfig with plain-dict params is validated the same way
    assert load_model_config(ModelConfig("dynedgeconv", {"k": 8, "include_self": True})) == cfg
    with pytest.raises(ConfigError, match="unknown key.*kk"):
        load_model_config(ModelConfig("dynedgeconv", {"kk": 8}))


def test_heads_on_selects_heads_and_tasks_argument():
    cfg = {"name": "edgeconv", "params": {"widths": [8]},
           "heads": {"enabled": ["flavour", "nu_energy"], "loss_weights": {"flavour": 2.0}}}
    model = create_model(cfg, in_features=3)
    assert set(model.head.heads) == {"flavour"} and set(model.head.regressors) == {"nu_energy"}
    assert model.loss_weights == {"flavour": 2.0, "nu_energy": 1.0}
    # The caller's tasks give class counts; default is every label of gnnu.events.
    model = create_model({"name": "edgeconv"}, in_features=3, tasks={"flavour": 3}, regression=())
    assert dict(model.head.tasks) == {"flavour": 3} and model.head.regression == ()
    model = create_model({"name": "edgeconv"}, in_features=3)
    assert dict(model.head.tasks) == NUM_CLASSES


def test_heads_errors_are_named():
    with pytest.raises(ConfigError, match="heads.enabled: head.*n_neutron not available"):
        create_model({"name": "edgeconv", "heads": {"enabled": ["n_neutron"]}}, in_features=3,
                     tasks={"flavour": 4})
    with pytest.raises(ConfigError, match="loss_weights: unknown head.*flavor"):
        create_model({"name": "edgeconv", "heads": {"loss_weights": {"flavor": 1.0}}}, in_features=3)
    with pytest.raises(ConfigError, match="unknown regression target.*energy"):
        create_model({"name": "edgeconv"}, in_features=3, regression=("energy",))
    with pytest.raises(ConfigError, match="dropout"):
        load_model_config({"name": "edgeconv", "heads": {"dropout": 1.5}})


def test_register_model_and_duplicate(monkeypatch):
    """A new family is one decorated builder; its Params attribute validates its params."""
    monkeypatch.setattr(registry.MODELS, "_entries", dict(registry.MODELS.items()))

    @register_model("toy_mlp")
    class ToyMLP(nn.Module):
        @dataclass(frozen=True)
        class Params:
            width: int = 4

        def __init__(self, config, in_features, tasks, regression):
            super().__init__()
            self.lin = nn.Linear(in_features, config.params.width)
            self.head, self.loss_weights = MultiTaskHead.from_config(
                config.heads, config.params.width, tasks, regression)

        def forward(self, x):
            return self.head(self.lin(x))

    assert "toy_mlp" in list_models()
    model = create_model({"name": "toy_mlp", "params": {"width": 6}}, in_features=3,
                         tasks={"flavour": 4}, regression=())
    assert model(torch.zeros(2, 3))["flavour"].shape == (2, 4)
    with pytest.raises(ConfigError, match=r"params: unknown key\(s\) depth"):
        create_model({"name": "toy_mlp", "params": {"depth": 2}}, in_features=3)
    with pytest.raises(ValueError, match="already registered"):
        register_model("toy_mlp")(ToyMLP)


def test_energy_target_round_trip():
    e = torch.tensor([0.5, 2.5, 10.0])
    assert torch.allclose(encode_target("nu_energy", e), torch.log(e))
    assert torch.allclose(decode_target("nu_energy", encode_target("nu_energy", e)), e)
    assert torch.equal(encode_target("nu_energy", e, "linear"), e)
    assert torch.equal(encode_target("y", e), e)


def test_heads_config_defaults():
    h = HeadsConfig()
    assert h.enabled is None and h.energy_target == "log" and h.hidden == (256,)


def test_generic_registry_register_lookup_and_lazy_modules():
    """gnnu.registry.Registry: decorator and direct registration, one error per misuse, the
    modules that register its entries imported on the first lookup, not before."""
    from gnnu.registry import Registry

    lazy: Registry[int] = Registry("gadget", modules=("gnnu_test_no_such_module",))
    lazy.register("x", 1)                                   # registering imports nothing
    with pytest.raises(ModuleNotFoundError, match="gnnu_test_no_such_module"):
        lazy.lookup("x")

    reg: Registry[object] = Registry("widget")
    reg.register("b", 2)

    @reg.register("a")
    def a():
        return 1

    assert list(reg) == ["b", "a"] and reg["a"] is a and len(reg) == 2
    assert reg.get("zzz") is None and reg.lookup("b") == 2 and dict(reg.items())["b"] == 2
    with pytest.raises(ConfigError, match=r"^cfg\.kind: unknown widget 'c' \(known: b, a\)$"):
        reg.lookup("c", "cfg.kind")
    with pytest.raises(ValueError, match="widget 'b' is already registered"):
        reg.register("b", 3)
    assert reg.register("b", 3, replace=True) == 3 and reg["b"] == 3
    with pytest.raises(ValueError, match="non-empty strings"):
        reg.register("", 4)
    ordered: Registry[int] = Registry("sorted thing", sort=True)
    ordered.register("z", 1)
    ordered.register("m", 2)
    assert list(ordered) == ["m", "z"] and ordered.known() == "m, z"
