"""Evaluation metrics on hand-computed examples, ideal and random classifiers, edge cases."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from gnnu.evaluate.metrics import (EvaluationError, auc, bin_index, binned_efficiency,
                                   check_event_count, class_names, confusion_matrix,
                                   efficiency_matrix, energy_resolution, evaluate_task,
                                   per_class_rates, purity_matrix, roc_auc, roc_curve)

# Hand example (3 classes, 10 events):
#   true  0 0 0 0 1 1 1 2 2 2
#   pred  0 0 1 2 1 1 0 2 2 2
# confusion (rows true) [[2,1,1],[1,2,0],[0,0,3]]; accuracy 7/10;
# efficiency 2/4, 2/3, 3/3; purity 2/3, 2/3, 3/4;
# F1 = 2PE/(P+E): 4/7, 2/3, 6/7; macro F1 = 44/63.
TRUE = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
PRED = np.array([0, 0, 1, 2, 1, 1, 0, 2, 2, 2])


def one_hot_scores(pred, n_classes, high=0.8):
    """Scores whose argmax is ``pred`` (rows sum to 1)."""
    low = (1.0 - high) / (n_classes - 1)
    s = np.full((len(pred), n_classes), low)
    s[np.arange(len(pred)), pred] = high
    return s


def test_confusion_and_rates_hand_example():
    conf = confusion_matrix(TRUE, PRED, 3)
    np.testing.assert_array_equal(conf, [[2, 1, 1], [1, 2, 0], [0, 0, 3]])
    r = per_class_rates(conf)
    np.testing.assert_array_equal(r["n"], [4, 3, 3])
    np.testing.assert_allclose(r["efficiency"], [0.5, 2 / 3, 1.0])
    np.testing.assert_allclose(r["purity"], [2 / 3, 2 / 3, 0.75])
    np.testing.assert_allclose(r["f1"], [4 / 7, 2 / 3, 6 / 7])
    np.testing.assert_allclose(efficiency_matrix(conf), [[0.5, 0.25, 0.25], [1 / 3, 2 / 3, 0],
                                                         [0, 0, 1]])
    np.testing.assert_allclose(purity_matrix(conf), [[2 / 3, 1 / 3, 0.25], [1 / 3, 2 / 3, 0],
                                                     [0, 0, 0.75]])


def test_evaluate_task_hand_example():
    m = evaluate_task(TRUE, one_hot_scores(PRED, 3), ["a", "b", "c"], task="t")
    assert m.n_labelled == 10 and m.n_undefined == 0
    assert m.accuracy == pytest.approx(0.7)
    assert m.macro_f1 == pytest.approx(44 / 63)
    np.testing.assert_allclose(m.f1, [4 / 7, 2 / 3, 6 / 7])
    block = m.to_dict()
    assert block["per_class"]["a"] == pytest.approx(
        {"efficiency": 0.5, "purity": 2 / 3, "f1": 4 / 7, "auc": m.auc[0], "n": 4})
    assert block["confusion"] == [[2, 1, 1], [1, 2, 0], [0, 0, 3]]


def test_f1_is_the_nova_formula():
    """F1 = 2·purity·efficiency/(purity + efficiency) (docs/design.md#training-and-evaluation) wherever both are defined."""
    rng = np.random.default_rng(3)
    for _ in range(20):
        conf = rng.integers(0, 30, (4, 4))
        r = per_class_rates(conf)
        p, e = r["purity"], r["efficiency"]
        ok = np.isfinite(p) & np.isfinite(e) & (p + e > 0)
        np.testing.assert_allclose(r["f1"][ok], 2 * p[ok] * e[ok] / (p[ok] + e[ok]))


def test_roc_hand_example_with_ties():
    """Signal scores 0.9, 0.6, 0.5 vs background 0.6, 0.3: of the 6 pairs 4 are ordered
    correctly and 1 is tied (counts ½), so AUC = 4.5/6 = 0.75."""
    is_sig = np.array([True, True, True, False, False])
    score = np.array([0.9, 0.6, 0.5, 0.6, 0.3])
    fpr, tpr, thr = roc_curve(is_sig, score)
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 1 / 3, 2 / 3, 1, 1])
    np.testing.assert_allclose(thr, [np.inf, 0.9, 0.6, 0.5, 0.3])
    assert auc(fpr, tpr) == pytest.approx(0.75)


def test_auc_equals_mann_whitney_with_many_ties():
    """Cross-check: AUC = P(s⁺ > s⁻) + ½ P(s⁺ = s⁻), counted over all pairs by brute force."""
    rng = np.random.default_rng(7)
    is_sig = rng.random(400) < 0.3
    score = np.round(rng.random(400) + 0.3 * is_sig, 1)  # coarse rounding: many ties
    pos, neg = score[is_sig][:, None], score[~is_sig][None, :]
    expected = ((pos > neg).sum() + 0.5 * (pos == neg).sum()) / (pos.size * neg.size)
    assert roc_auc(is_sig, score) == pytest.approx(expected, abs=1e-12)


def test_perfect_inverted_and_random_classifiers():
    rng = np.random.default_rng(11)
    n = 20000
    is_sig = rng.random(n) < 0.25
    perfect = is_sig + 0.1 * rng.random(n)
    assert roc_auc(is_sig, perfect) == 1.0
    assert roc_auc(is_sig, -perfect) == 0.0
    # Random scores: AUC = 0.5 with σ ≈ sqrt((n⁺ + n⁻ + 1)/(12 n⁺ n⁻)) ≈ 0.0047 here; 4σ band.
    assert roc_auc(is_sig, rng.random(n)) == pytest.approx(0.5, abs=0.02)
    labels = rng.integers(0, 4, n)
    m = evaluate_task(labels, one_hot_scores(labels, 4, high=0.9), class_names("flavour", 4))
    assert m.accuracy == 1.0 and m.macro_f1 == 1.0
    np.testing.assert_array_equal(m.auc, 1.0)
    m = evaluate_task(labels, rng.dirichlet(np.ones(4), n), class_names("flavour", 4))
    np.testing.assert_allclose(m.auc, 0.5, atol=0.02)
    assert m.accuracy == pytest.approx(0.25, abs=0.02)


def test_roc_undefined_without_background():
    fpr, tpr, thr = roc_curve(np.ones(5, bool), np.linspace(0, 1, 5))
    assert fpr.size == tpr.size == thr.size == 0
    assert math.isnan(auc(fpr, tpr))


@pytest.mark.filterwarnings("error")
def test_undefined_labels_excluded_and_counted():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 4, 500)
    scores = rng.dirichlet(np.ones(4), 500)
    undefined = rng.random(500) < 0.3
    with_undef = np.where(undefined, -1, labels)
    m = evaluate_task(with_undef, scores, class_names("n_proton"), task="n_proton")
    ref = evaluate_task(labels[~undefined], scores[~undefined], class_names("n_proton"))
    assert m.n_undefined == int(undefined.sum()) and m.n_labelled == int((~undefined).sum())
    np.testing.assert_array_equal(m.confusion, ref.confusion)
    np.testing.assert_allclose(m.auc, ref.auc)
    assert m.accuracy == ref.accuracy
    assert any("undefined label" in note for note in m.notes)


@pytest.mark.filterwarnings("error")
def test_absent_class_is_nan_with_note_and_no_warning():
    # Class 2 never true but predicted once; class 3 neither true nor predicted.
    labels = np.array([0, 0, 1, 1, 1])
    pred = np.array([0, 2, 1, 1, 0])
    m = evaluate_task(labels, one_hot_scores(pred, 4), ["a", "b", "c", "d"])
    assert math.isnan(m.efficiency[2]) and math.isnan(m.auc[2])
    assert m.f1[2] == 0.0  # predicted once, never right: 2TP/(2TP+FP+FN) = 0
    assert math.isnan(m.purity[3]) and math.isnan(m.f1[3])
    assert m.macro_f1 == pytest.approx(np.mean(m.f1[:2]))  # only classes present count
    assert any("'c' absent" in note for note in m.notes)
    assert any("'d' never predicted" in note for note in m.notes)
    block = m.to_dict()
    assert math.isnan(block["per_class"]["d"]["purity"])


@pytest.mark.filterwarnings("error")
def test_all_labels_undefined_gives_nan_not_crash():
    m = evaluate_task(np.full(6, -1), np.full((6, 4), 0.25), class_names("n_neutron"),
                      energy=np.linspace(1, 5, 6))
    assert m.n_labelled == 0 and m.n_undefined == 6
    assert math.isnan(m.accuracy) and math.isnan(m.macro_f1)
    assert np.isnan(m.efficiency).all() and np.isnan(m.auc).all()
    assert (m.n_vs_energy == 0).all()


def test_only_one_class_present_auc_undefined():
    m = evaluate_task(np.zeros(4, int), one_hot_scores(np.array([0, 0, 1, 0]), 2), ["nu", "antinu"])
    assert math.isnan(m.auc[0]) and math.isnan(m.auc[1])
    assert m.efficiency[0] == 0.75
    assert any("only class 'nu' present" in note for note in m.notes)


def test_bad_inputs_rejected():
    with pytest.raises(ValueError, match="outside"):
        evaluate_task(np.array([0, 3]), np.full((2, 3), 1 / 3), ["a", "b", "c"])
    with pytest.raises(ValueError, match="scores"):
        evaluate_task(np.array([0, 1]), np.full((2, 4), 0.25), ["a", "b", "c"])
    with pytest.raises(EvaluationError, match="non-finite"):
        evaluate_task(np.array([0, 1]), np.array([[0.5, np.nan], [0.5, 0.5]]), ["a", "b"])


@pytest.mark.filterwarnings("error")
def test_binned_efficiency_hand_example():
    # Bins [0, 1) and [1, 2] (last edge included); 2.5 and NaN lie outside.
    x = np.array([0.2, 0.7, 0.8, 1.5, 1.9, 2.0, 2.5, np.nan])
    passed = np.array([1, 0, 1, 1, 0, 1, 1, 1], bool)
    eff, err, n, k = binned_efficiency(passed, x, np.array([0.0, 1.0, 2.0]))
    np.testing.assert_array_equal(n, [3, 3])
    np.testing.assert_array_equal(k, [2, 2])
    np.testing.assert_allclose(eff, [2 / 3, 2 / 3])
    np.testing.assert_allclose(err, np.sqrt([2 / 27, 2 / 27]))  # sqrt(ε(1−ε)/N)
    eff, err, n, _ = binned_efficiency(passed, x, np.array([0.0, 1.0, 2.0, 3.0, 4.0]))
    np.testing.assert_array_equal(n, [3, 2, 2, 0])  # 2.0 now opens bin [2, 3)
    assert eff[2] == 1.0 and err[2] == 0.0
    assert np.isnan(eff[3]) and np.isnan(err[3])
    np.testing.assert_array_equal(bin_index(np.array([-1.0, 0.0, 4.0, 5.0]),
                                            np.array([0.0, 2.0, 4.0])), [-1, 0, 1, -1])


def test_efficiency_vs_energy_per_class():
    labels = np.array([0, 0, 0, 1, 1, 1])
    pred = np.array([0, 1, 0, 1, 1, 0])
    energy = np.array([0.5, 0.7, 3.0, 0.4, 3.5, 3.9])
    m = evaluate_task(labels, one_hot_scores(pred, 2), ["nu", "antinu"], energy=energy,
                      energy_edges=np.array([0.0, 1.0, 4.0]))
    np.testing.assert_array_equal(m.n_vs_energy, [[2, 1], [1, 2]])
    np.testing.assert_allclose(m.eff_vs_energy, [[0.5, 1.0], [1.0, 0.5]])
    h = np.sqrt(0.5 * 0.5 / 2)  # sqrt(ε(1−ε)/N) for ε = 1/2, N = 2
    np.testing.assert_allclose(m.eff_vs_energy_err, [[h, 0.0], [0.0, h]])


@pytest.mark.filterwarnings("error")
def test_energy_resolution_hand_example_and_exclusions():
    e_true = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 0.0, np.nan, 2.0])
    e_reco = np.array([0.8, 0.9, 1.0, 1.1, 1.5, 1.0, 1.0, np.inf])
    res = energy_resolution(e_reco, e_true, edges=np.array([0.0, 1.0, 2.0, 3.0]))
    assert res.n == 5 and res.n_excluded == 3
    np.testing.assert_allclose(res.residuals, [-0.2, -0.1, 0.0, 0.1, 0.5], atol=1e-12)
    assert res.bias == pytest.approx(0.0, abs=1e-12)
    assert res.mean == pytest.approx(0.06)
    assert res.rms == pytest.approx(np.std([-0.2, -0.1, 0.0, 0.1, 0.5]))
    np.testing.assert_array_equal(res.bin_n, [0, 5, 0])  # E_true = 1 falls in [1, 2)
    assert np.isnan(res.bin_bias[0]) and res.bin_bias[1] == pytest.approx(0.0, abs=1e-12)


def test_energy_resolution_gaussian():
    """r ~ N(0.05, 0.10): the median is 0.05 and the 68.27 % half-width and RMS are σ = 0.10."""
    rng = np.random.default_rng(2)
    e_true = rng.uniform(0.5, 10, 40000)
    e_reco = e_true * (1 + rng.normal(0.05, 0.10, e_true.size))
    res = energy_resolution(e_reco, e_true)
    assert res.bias == pytest.approx(0.05, abs=0.003)
    assert res.resolution_68 == pytest.approx(0.10, rel=0.03)
    assert res.rms == pytest.approx(0.10, rel=0.03)
    filled = res.bin_n > 500
    np.testing.assert_allclose(res.bin_resolution_68[filled], 0.10, rtol=0.1)
    block = res.to_dict()
    assert block["n"] == 40000 and len(block["vs_true_energy"]["n"]) == res.edges.size - 1


def test_check_event_count():
    ids = np.stack([np.ones(5, int), np.zeros(5, int), np.arange(5)], axis=1)
    check_event_count(ids, 5, "test")
    check_event_count(ids, 5, "test", expected_ids=ids[::-1])
    with pytest.raises(EvaluationError, match="evaluated 4 events but the dataset holds 5"):
        check_event_count(ids[:4], 5, "test")
    doubled = np.concatenate([ids[:4], ids[:1]])  # e.g. padding by a distributed sampler
    with pytest.raises(EvaluationError, match="more than once"):
        check_event_count(doubled, 5, "val")
    other = ids.copy()
    other[0, 2] = 99
    with pytest.raises(EvaluationError, match="differ"):
        check_event_count(other, 5, "test", expected_ids=ids)


def test_class_names():
    assert class_names("flavour", 4) == ["numu_cc", "nue_cc", "nutau_cc", "nc"]
    assert class_names("flavour") == ["numu_cc", "nue_cc", "nutau_cc", "nc", "cosmic"]
    assert class_names("interaction") == ["QE", "RES", "DIS", "other"]
    assert class_names("n_charged_pion") == ["0", "1", "2", ">2"]
    assert class_names("is_antinu") == ["nu", "antinu"]
    with pytest.raises(ValueError, match="unknown task"):
        class_names("flavour3")
    with pytest.raises(ValueError):
        class_names("is_antinu", 3)


def test_no_division_warnings_on_empty_rows():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        conf = np.array([[0, 0], [0, 3]])
        assert np.isnan(efficiency_matrix(conf)[0]).all()
        assert np.isnan(purity_matrix(conf)[:, 0]).all()
