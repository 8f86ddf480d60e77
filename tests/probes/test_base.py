from __future__ import annotations

import pytest
import torch

from mechscope.errors import ConfigError, DataError, NotFittedError
from mechscope.probes import ConvProbe, LinearProbe, MLPProbe, Probe
from mechscope.probes.base import _head_loss, clone, distinct_rows, HeadSpec

FAMILY = [
    lambda: LinearProbe(),
    lambda: MLPProbe(hidden_sizes=(16,), seed=0),
    lambda: ConvProbe(kernel_size=(2, 2), n_kernels=3, hidden_sizes=(16,), dropout=0.0, seed=0),
]
IDS = ["linear", "mlp", "conv"]


@pytest.fixture(params=FAMILY, ids=IDS)
def probe(request) -> Probe:
    return request.param()


def test_probe_fit_returns_self_and_sets_fitted_state(probe, blobs):
    x, a, b = blobs
    assert probe.fit(x, {"a": a, "b": b}) is probe
    assert probe.input_shape_ == (3, 4) and probe.n_features_in_ == 12
    assert [h.name for h in probe.heads_] == ["a", "b"]
    assert probe.classes_["a"].tolist() == [0, 1, 2]


def test_probe_predict_before_fit_raises_not_fitted(probe, blobs):
    with pytest.raises(NotFittedError, match="not fitted yet; call fit"):
        probe.predict(blobs[0])


def test_probe_family_contract_shapes_dtypes_and_accuracy(probe, blobs):
    x, a, b = blobs
    probe.fit(x[:90], {"a": a[:90], "b": b[:90]})
    predicted = probe.predict_groups(x[90:])
    assert predicted["a"].dtype == torch.int64 and predicted["a"].shape == (30,)
    proba = probe.predict_proba(x[90:])
    assert proba["a"].shape == (30, 3) and proba["b"].shape == (30, 2)
    assert torch.allclose(proba["a"].sum(dim=1), torch.ones(30), atol=1e-5)
    assert probe.decision_function(x[90:]).shape == (30, 5)
    assert probe.score(x[90:], {"a": a[90:], "b": b[90:]}) >= 0.95


def test_probe_plain_tensor_predicts_tensor_with_original_labels(probe, blobs):
    x, a, _ = blobs
    labels = torch.tensor([3, 7, 11])[a]
    predicted = probe.fit(x, labels).predict(x)
    assert isinstance(predicted, torch.Tensor)
    assert set(predicted.unique().tolist()) <= {3, 7, 11}


def test_probe_continuous_group_scores_r2(probe, blobs):
    x, a, b = blobs
    value = 2.0 * a.float() + b.float()
    if "max_epochs" in probe.get_params():  # a continuous group trains all epochs: keep them few
        probe.set_params(max_epochs=150, lr=0.03)
    probe.fit(x[:90], {"a": a[:90], "v": value[:90]})
    scores = probe.score_groups(x[90:], {"a": a[90:], "v": value[90:]})
    assert scores["a"] >= 0.95 and scores["v"] >= 0.8
    assert probe.predict_groups(x[90:])["v"].shape == (30,)


def test_probe_get_set_params_round_trip(probe):
    params = probe.get_params()
    again = clone(probe)
    assert again.get_params() == params and again is not probe
    assert probe.set_params(**params) is probe


def test_probe_set_params_unknown_raises(probe):
    with pytest.raises(ConfigError, match="Invalid parameter 'nope' for probe .*Valid parameters are"):
        probe.set_params(nope=1)


def test_probe_does_not_mutate_inputs(probe, blobs):
    x, a, b = blobs
    x_copy, a_copy = x.clone(), a.clone()
    probe.fit(x, {"a": a, "b": b}).predict(x)
    assert torch.equal(x, x_copy) and torch.equal(a, a_copy)


def test_probe_same_seed_same_predictions(probe, blobs):
    x, a, b = blobs
    first = clone(probe).fit(x, {"a": a, "b": b}).decision_function(x)
    second = clone(probe).fit(x, {"a": a, "b": b}).decision_function(x)
    assert torch.equal(first, second)


def test_probe_length_mismatch_raises(probe, blobs):
    x, a, _ = blobs
    with pytest.raises(DataError, match="x has 120 examples but the labels have 119"):
        probe.fit(x, a[:119])


def test_probe_nan_activations_raise(probe, blobs):
    x, a, _ = blobs
    x = x.clone()
    x[5, 0, 0] = float("inf")
    with pytest.raises(DataError, match=r"Non-finite values in x: 1 of [\d,]+ \(1 inf\); the first is inf at "
                       r"index \(5, 0, 0\)"):
        probe.fit(x, a)


def test_probe_single_class_group_raises(probe, blobs):
    x, a, _ = blobs
    with pytest.raises(DataError, match="label group 'b' has a single class \\(4\\)"):
        probe.fit(x, {"a": a, "b": torch.full_like(a, 4)})


def test_probe_wrong_example_shape_at_predict_raises(probe, blobs):
    x, a, _ = blobs
    probe.fit(x, a)
    with pytest.raises(DataError, match="fitted on examples of shape \\(3, 4\\), got \\(4, 3\\)"):
        probe.predict(x.transpose(1, 2))


def test_probe_score_missing_group_raises(probe, blobs):
    x, a, b = blobs
    probe.fit(x, {"a": a, "b": b})
    with pytest.raises(DataError, match="lack the group\\(s\\) \\['b'\\]"):
        probe.score(x, {"a": a})


def test_probe_repr_shows_changed_params():
    assert repr(LinearProbe(alpha=0.5)) == "LinearProbe(alpha=0.5)"
    assert repr(MLPProbe()) == "MLPProbe()"


def test_network_probe_bad_lr_raises():
    with pytest.raises(ConfigError, match="lr must be a positive finite number, got -1"):
        MLPProbe(lr=-1).fit(torch.randn(10, 3), torch.arange(10) % 2)


def test_distinct_rows_weights_match_counts():
    x = torch.tensor([[1.0, 2.0], [1.0, 2.0], [0.0, 0.0], [1.0, 2.0]])
    y_index = torch.tensor([[0], [0], [1], [0]])
    xs, ys, vs, w = distinct_rows(x, y_index, torch.zeros(4, 0))
    assert xs.shape[0] == 2 and vs.shape == (2, 0)
    by_row = {tuple(r.tolist()): float(wi) for r, wi in zip(xs, w)}
    assert by_row == {(1.0, 2.0): 0.75, (0.0, 0.0): 0.25}


def test_weighted_distinct_loss_equals_full_batch_loss():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(3, 4, generator=g)
    pick = torch.tensor([0, 1, 1, 2, 2, 2, 0, 1])
    out, y_index, y_value = base[pick], (pick % 2)[:, None], torch.randn(3, 1, generator=g)[pick]
    heads = (HeadSpec("c", "categorical", 0, 2, torch.tensor([0, 1])), HeadSpec("v", "continuous", 2, 3))
    full = _head_loss(out[:, :3], heads, y_index, y_value)
    xs, ys, vs, w = distinct_rows(out, y_index, y_value)
    assert torch.allclose(_head_loss(xs[:, :3], heads, ys, vs, w), full, atol=1e-6)


def test_probe_score_checks_held_out_activations_and_targets(blobs):
    x, a, _ = blobs
    probe = LinearProbe().fit(x[:90], a[:90])
    held_out = x[90:].clone()
    held_out[7, 2, 1] = float("nan")
    with pytest.raises(DataError, match=r"Non-finite values in x: 1 of 360 \(1 nan\); the first is nan at index "
                       r"\(7, 2, 1\)"):
        probe.score(held_out, a[90:])
    values = torch.rand(120)
    values[100] = float("inf")
    with pytest.raises(DataError, match=r"continuous label group 'v': .*the first is inf at index \(100,\)"):
        LinearProbe().fit(x, {"v": values})
