from __future__ import annotations

import pytest
import torch
from torch import nn

from mechscope.circuits import DepthStatistics, activation_maps, depth_statistics
from mechscope.circuits.activations import LayerStatistics
from mechscope.errors import DataError
from mechscope.serialize import to_json


def _scaling_net() -> nn.Sequential:
    model = nn.Sequential(nn.Conv2d(1, 1, 1, bias=False), nn.ReLU(), nn.Conv2d(1, 1, 1, bias=False), nn.ReLU())
    with torch.no_grad():
        model[0].weight.fill_(1.0)
        model[2].weight.fill_(2.0)
    return model


def test_depth_statistics_hand_values():
    x = torch.tensor([[[[-1.0, 2.0], [0.0, 3.0]]], [[[1.0, 1.0], [1.0, -5.0]]]])  # (2, 1, 2, 2)
    stats = depth_statistics(_scaling_net(), x, batch_size=1, progress=False)
    first, second = stats.layers
    assert [s.layer for s in stats.layers] == ["1", "3"]
    # relu1 = [0, 2, 0, 3] and [1, 1, 1, 0]; relu2 doubles it.
    assert first.mean_activation == pytest.approx(8 / 8)
    assert first.fraction_zeros == pytest.approx(3 / 8)
    assert first.active_units == pytest.approx(5 / 2)
    assert first.mean_active_value == pytest.approx(8 / 5)
    assert second.mean_activation == pytest.approx(2.0)
    assert stats.sparser_deeper and not stats.larger_early and not stats.claim_holds
    assert "partly holds" in stats.verdict()


def test_depth_statistics_claim_logic():
    def layer(name: str, mean: float, zeros: float) -> LayerStatistics:
        return LayerStatistics(name, 10, mean, mean, zeros, 10 * (1 - zeros))

    holds = DepthStatistics((layer("a", 2.0, 0.1), layer("b", 1.0, 0.5), layer("c", 0.5, 0.9)), n_inputs=4)
    assert holds.claim_holds and "' holds" in holds.verdict()
    fails = DepthStatistics((layer("a", 1.0, 0.5), layer("b", 2.0, 0.1)), n_inputs=4)
    assert not fails.sparser_deeper and not fails.larger_early
    assert to_json(fails)["claim_holds"] is False


def test_depth_statistics_default_layers_and_batch_invariance(gap_cnn, images):
    small = depth_statistics(gap_cnn, images, batch_size=2, progress=False)
    whole = depth_statistics(gap_cnn, images, batch_size=64, progress=False)
    assert [s.layer for s in small.layers] == ["relu1", "relu2", "relu3"]
    for a, b in zip(small.layers, whole.layers):
        assert a.mean_activation == pytest.approx(b.mean_activation, rel=1e-6)  # float32 convs differ by batch
        assert a.fraction_zeros == pytest.approx(b.fraction_zeros)


def test_activation_maps_shapes_and_no_hooks_left(gap_cnn, images):
    maps = activation_maps(gap_cnn, images[:1])
    assert {name: tuple(v.shape) for name, v in maps.maps.items()} == {
        "relu1": (8, 8, 8), "relu2": (16, 4, 4), "relu3": (32, 2, 2)
    }
    assert to_json(maps)["layers"]["relu2"]["shape"] == [16, 4, 4]
    assert sum(len(m._forward_hooks) for m in gap_cnn.modules()) == 0


def test_activation_maps_rejects_a_batch(gap_cnn, images):
    with pytest.raises(DataError, match=r"batch of one.*x\[i : i \+ 1\]"):
        activation_maps(gap_cnn, images[:2])


def test_depth_statistics_nan_inputs_raise_naming_the_index(gap_cnn, images):
    bad = images.clone()
    bad[2, 0, 5, 6] = float("-inf")
    with pytest.raises(DataError, match=r"Non-finite values in inputs: 1 of 320 \(1 -inf\); the first is -inf at "
                       r"index \(2, 0, 5, 6\)"):
        depth_statistics(gap_cnn, bad, progress=False)


def test_activation_maps_nan_input_raises(gap_cnn, images):
    bad = images[:1].clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(DataError, match=r"Non-finite values in x: .*index \(0, 0, 0, 0\)"):
        activation_maps(gap_cnn, bad)


def test_activation_maps_of_a_sequence_are_units_first():
    from mechscope.capture import capture
    from tests.zoo import TokenGRU

    model = TokenGRU().eval()
    tokens = torch.randint(0, 11, (1, 6), generator=torch.Generator().manual_seed(9))
    grid = activation_maps(model, tokens, "gru")
    with torch.no_grad(), capture(model, "gru") as store:
        model(tokens)
    torch.testing.assert_close(grid.maps["gru"], store.act("gru")[0].T)  # (d_model, pos)
    assert grid.unit_axes["gru"].kind == "sequence"
    summary = to_json(grid)["layers"]["gru"]
    assert summary["shape"] == [8, 6]
    torch.testing.assert_close(torch.tensor(summary["max"]), store.act("gru")[0].amax(dim=0))
