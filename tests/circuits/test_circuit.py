from __future__ import annotations

import json

import pytest
import torch

from mechscope.circuits import class_circuits
from mechscope.data import DataBundle, modular_data
from mechscope.errors import DataError
from mechscope.serialize import to_json


def _small(digits: DataBundle) -> DataBundle:
    return DataBundle(digits.x_train[:300], digits.y_train[:300], digits.x_test[:200], digits.y_test[:200],
                      digits.spec, "classification", 10, digits.class_names)


def test_class_circuits_json_has_the_documented_keys(gap_cnn, digits):
    found = class_circuits(gap_cnn, _small(digits), n_random=2)
    data = json.loads(json.dumps(to_json(found), allow_nan=True))
    assert {"classes", "connections"} <= data.keys()
    assert list(data["classes"]) == [str(c) for c in range(10)]
    for entry in data["classes"].values():
        assert set(entry) == {"top_channels", "contributions", "ablation_drop", "random_ablation_drop"}
        assert len(entry["top_channels"]) == len(entry["contributions"]) == 3
    assert [(p["source"], p["target"]) for p in data["connections"]] == [("conv1", "conv2"), ("conv2", "conv3")]
    assert found.feeding().target == "conv3" and found.source_layer == "relu2"
    assert found.source_maps.shape == (10, 16, 4, 4)
    torch.testing.assert_close(found.class_mean_inputs[0], digits.x_train[:300][digits.y_train[:300] == 0].mean(0))


def test_class_circuits_mean_mode_and_regression_rejected(gap_cnn, digits):
    found = class_circuits(gap_cnn, _small(digits), mode="mean", n_random=1, top=2)
    assert found.causal.mode == "mean" and found.contributions.top_channels.shape == (10, 2)
    with pytest.raises(DataError, match="classification data"):
        regression = modular_data(3, n_train=4, n_test=4)
        class_circuits(gap_cnn, DataBundle(regression.x_train, regression.y_train.float(), regression.x_test,
                                           regression.y_test.float(), {}, "regression"))


def test_class_circuits_on_a_dense_model(two_layer_net):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(80, 2, generator=generator)
    y = (x[:, 0] > x[:, 1]).long()
    data = DataBundle(x[:60], y[:60], x[60:], y[60:], {}, "classification", 2, ("low", "high"))
    found = class_circuits(two_layer_net, data, layer="act", top=1, n_random=3)
    # fc2 reads `act` linearly, so the exact head-weight contribution applies here too
    assert (found.contributions.method, found.contributions.head) == ("gap", "fc2")
    assert found.connections == () and found.source_layer is None and found.feeding() is None
    assert set(to_json(found)["classes"]) == {"low", "high"}
    assert found.contributions.mean_maps.shape == (2, 3)


def test_class_circuits_nan_data_raises_naming_the_split(two_layer_net):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(80, 2, generator=generator)
    y = (x[:, 0] > x[:, 1]).long()
    x[70, 1] = float("nan")
    data = DataBundle(x[:60], y[:60], x[60:], y[60:], {}, "classification", 2)
    with pytest.raises(DataError, match=r"Non-finite values in data\.x_test: 1 of 40 \(1 nan\); the first is nan at "
                       r"index \(10, 1\)"):
        class_circuits(two_layer_net, data, layer="act", top=1, n_random=3)


def test_class_circuits_on_zoo_models_use_the_shared_default_layer():
    from tests.zoo import DictNet, TinyResNet, TupleNet, image_bundle

    data = image_bundle((1, 8, 8), 3)
    found = class_circuits(DictNet(), data, top=2, n_random=2)
    assert found.layer == "act" and found.contributions.method == "gap"
    with pytest.raises(Exception, match="ambiguous"):
        class_circuits(TupleNet(), data, top=2, n_random=2)
    assert class_circuits(TupleNet(), data, top=2, n_random=2, output=0).layer == "act"
    resnet = class_circuits(TinyResNet().eval(), image_bundle((1, 16, 16), 4), top=2, n_random=2)
    assert resnet.layer == "layer2.1" and resnet.contributions.method == "gap"
