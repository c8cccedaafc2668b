"""Domain-adversarial training (DANN, gnnu/train/domain.py; issue 22): the gradient reversal, the
λ schedule, the paired sampler and a gnnu-train run against a second, shifted domain."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import yaml

from test_train import TINY, synthetic_event

from gnnu.errors import ConfigError
from gnnu.train.data import EpochSampler, EventDataModule
from gnnu.train.domain import DomainClassifier, GradientReversal, dann_lambda, domain_loss


def test_gradient_reversal_is_identity_forward_and_minus_lambda_backward():
    x = torch.randn(5, 3, requires_grad=True)
    y = GradientReversal.apply(x, 0.7)
    assert torch.equal(y, x)
    g = torch.randn(5, 3)
    y.backward(g)
    assert torch.allclose(x.grad, -0.7 * g)


def test_domain_classifier_trains_itself_and_reverses_into_the_features():
    """The classifier's own weights get the plain gradient of the domain loss; the features
    get it times −λ (λ = 0.5 here), compared with the same network without the reversal."""
    torch.manual_seed(0)
    clf = DomainClassifier(4, hidden=8)
    z = torch.randn(6, 4, requires_grad=True)
    other = torch.tensor([0, 0, 0, 1, 1, 1], dtype=torch.bool)
    loss, right = domain_loss(clf(z, 0.5), other)
    loss.backward()
    reversed_grad, w_grad = z.grad.clone(), clf.net[0].weight.grad.clone()
    z.grad, clf.net[0].weight.grad = None, None
    plain = torch.nn.functional.binary_cross_entropy_with_logits(clf.net(z).squeeze(-1), other.float())
    plain.backward()
    assert torch.allclose(reversed_grad, -0.5 * z.grad, atol=1e-7)
    assert torch.allclose(w_grad, clf.net[0].weight.grad, atol=1e-7)
    assert 0 <= int(right) <= 6


def test_lambda_schedule_is_ganins():
    """λ(p) = w (2 / (1 + e^(−10 p)) − 1) (Ganin et al. 2016, sec. 5.2.2): 0 at p = 0,
    w · 0.98661 at p = 0.5, w · 0.99991 at p = 1; clamped outside [0, 1]."""
    assert dann_lambda(0.0, 0.3) == 0.0
    assert dann_lambda(0.5, 1.0) == pytest.approx(2 / (1 + math.exp(-5)) - 1) == pytest.approx(0.98661, abs=1e-5)
    assert dann_lambda(1.0, 0.3) == pytest.approx(0.3 * 0.99991, abs=1e-6)
    assert dann_lambda(2.0, 0.3) == dann_lambda(1.0, 0.3)


@pytest.mark.parametrize("n,draw", [(10, 25), (40, 16), (7, 7)])
def test_paired_sampler_draws_as_many_as_the_training_split(n, draw):
    """The second domain's sampler yields ``draw`` indices per epoch: a permutation of its n
    events repeated (n < draw: every event ⌊draw/n⌋ or ⌈draw/n⌉ times) or cut (n > draw: no
    repeats); a new permutation each epoch."""
    s = EpochSampler(n, shuffle=True, seed=3, batch_size=4, draw=draw)
    first = list(s)
    assert len(first) == len(s) == draw
    counts = np.bincount(first, minlength=n)
    assert counts.max() - counts.min() <= 1 and counts.max() <= math.ceil(draw / n)
    s.set_epoch(1)
    assert list(s) != first or n == 1


def _dataset(root, seed: int, charge_scale: float, n: int = 160):
    from dataclasses import replace

    from gnnu.detectors import load_detector
    from gnnu.events import Hits
    from gnnu.graph.build import BuildOptions, build_dataset
    from gnnu.io.hitfile import write_hits

    root.mkdir(parents=True, exist_ok=True)
    events = []
    for i in range(n):
        ev = synthetic_event(i, seed=seed)
        cols = {k: ev.hits[k] for k in ev.hits.columns}
        cols["charge"] = (cols["charge"] * charge_scale).astype(cols["charge"].dtype)
        events.append(replace(ev, hits=Hits(cols)))
    write_hits(root / "events.h5", events, load_detector("dune"))
    build_dataset(BuildOptions(inputs=(str(root / "events.h5"),), out=str(root / "data")))
    return root / "data"


@pytest.fixture(scope="module")
def domains(tmp_path_factory):
    base = tmp_path_factory.mktemp("domains")
    return _dataset(base / "a", seed=0, charge_scale=1.0), _dataset(base / "b", seed=1, charge_scale=1.6)


def test_train_with_a_second_domain_runs_records_it_and_evaluates(domains, tmp_path, capsys):
    """gnnu-train with domain_adaptation.data: completes; its progress lines count the training
    events; run.json counts the other domain's events; the checkpoint holds the domain
    classifier, which gnnu-eval leaves out."""
    from gnnu.cli import eval as eval_cli
    from gnnu.cli import train as train_cli

    main, other = domains
    cfg = tmp_path / "dann.yaml"
    cfg.write_text(yaml.safe_dump({**TINY, "epochs": 2,
                                   "domain_adaptation": {"data": str(other), "weight": 0.5}}))
    run = tmp_path / "run"
    assert train_cli.main(["--config", str(cfg), "--data", str(main), "--out", str(run), "--device", "cpu",
                           "--progress", "lines", "--progress-every", "1"]) == 0
    captured = capsys.readouterr()
    steps = [line for line in captured.err.splitlines() if ", step " in line]
    assert steps and all(" 0 ev" not in line for line in steps), steps[:3]
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "complete"
    drawn = record["dataset"]["domain"]
    assert drawn["path"] == str(other) and drawn["split"] == "train" and drawn["in_split"] > 0
    assert drawn["drawn_per_epoch"] == record["dataset"]["n_train"]
    assert (f"domain adaptation: {drawn['drawn_per_epoch']} events per epoch drawn from the "
            f"{drawn['in_split']} of {other}") in captured.out
    state = torch.load(run / "best.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    assert any(k.startswith("domain_head.") for k in state)
    assert all(math.isfinite(r["train/epoch_loss"]) for r in record["history"])
    rc = eval_cli.main(["--checkpoint", str(run / "best.ckpt"), "--data", str(main), "--out",
                        str(tmp_path / "rep"), "--device", "cpu", "--no-plots", "--progress", "none"])
    assert rc == 0 and (tmp_path / "rep" / "metrics.json").exists()


def test_a_second_domain_with_other_inputs_is_refused(domains, monkeypatch):
    """A second domain whose node features differ (here: one renamed) is one ConfigError."""
    import gnnu.train.data as data_mod
    from gnnu.train.config import DomainAdaptationConfig, train_config_from_dict

    main, other = domains
    cfg = train_config_from_dict({**TINY})
    assert EventDataModule(main, cfg.model, 8, domain=DomainAdaptationConfig(data=str(other))).other_set

    real_open = data_mod.open_dataset

    def renamed(root, split, model, stats=None):
        ds = real_open(root, split, model, stats)
        if str(root) == str(other):
            monkeypatch.setattr(ds, "feature_names", ["renamed", *list(ds.feature_names)[1:]], raising=False)
        return ds

    monkeypatch.setattr(data_mod, "open_dataset", renamed)
    with pytest.raises(ConfigError, match="differ from the training data"):
        EventDataModule(main, cfg.model, 8, domain=DomainAdaptationConfig(data=str(other)))


def test_domain_config_is_validated():
    from gnnu.train.config import DomainAdaptationConfig

    with pytest.raises(ValueError, match="weight"):
        DomainAdaptationConfig(data="x", weight=-1)
    with pytest.raises(ValueError, match="hidden"):
        DomainAdaptationConfig(data="x", hidden=0)
    assert not DomainAdaptationConfig().enabled
