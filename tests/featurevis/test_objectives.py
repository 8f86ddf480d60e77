from __future__ import annotations

import pytest
import torch

from mechscope.errors import ConfigError
from mechscope.featurevis import Objective, channel, diversity, layer, logit, neuron, prob
from mechscope.featurevis.objectives import direction

# (batch=2, channel=3, height=2, width=2) with easy means: row b, channel c is filled with 10*b + c,
# except position (0, 1), which holds 100*c.
CONV = torch.tensor([[[[10.0 * b + c, 100.0 * c], [10.0 * b + c, 10.0 * b + c]] for c in range(3)] for b in range(2)])
LOGITS = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])


def acts(name):
    return {"conv": CONV, "fc": LOGITS, None: LOGITS}[name]


def test_channel_rows_score_their_own_unit():
    means = CONV.mean(dim=(2, 3))  # (batch, channel)
    values = channel("conv", [2, 0])(acts)
    assert torch.allclose(values, torch.stack([means[0, 2], means[1, 0]]))


def test_channel_table_scores_every_unit_on_every_input():
    table = channel("conv", [2, 0]).table(acts)
    assert torch.allclose(table, CONV.mean(dim=(2, 3))[:, [2, 0]])
    assert torch.allclose(table.diagonal(), channel("conv", [2, 0])(acts))


def test_neuron_reads_position_and_defaults_to_centre():
    assert neuron("conv", [1, 2], y=0, x=1)(acts).tolist() == [100.0, 200.0]
    assert neuron("conv", [1, 2])(acts).tolist() == [1.0, 12.0]  # centre of a 2x2 map is (1, 1)
    assert neuron("fc", [2, 0])(acts).tolist() == [3.0, 0.0]  # linear layer: the unit itself


def test_layer_mean_fits_any_batch():
    objective = layer("conv")
    assert objective.n_rows is None and objective.units is None
    assert torch.allclose(objective(acts), CONV.flatten(1).mean(1))


def test_logit_and_prob_read_the_model_output():
    assert logit([2, 1])(acts).tolist() == [3.0, 0.0]
    expected = torch.softmax(LOGITS, dim=1)
    assert torch.allclose(prob([2, 1])(acts), torch.stack([expected[0, 2], expected[1, 1]]))
    assert logit(0, layer="fc").layers == frozenset({"fc"})


def test_direction_projects_on_unit_vectors_averaged_over_space():
    vectors = torch.tensor([[2.0, 0.0, 0.0], [0.0, 3.0, 4.0]])
    values = direction("conv", vectors)(acts)
    means = CONV.mean(dim=(2, 3))
    assert torch.allclose(values, torch.stack([means[0, 0], (3 * means[1, 1] + 4 * means[1, 2]) / 5]))


def test_diversity_is_minus_one_for_identical_rows_and_zero_for_orthogonal():
    same = torch.ones(3, 4)
    assert torch.allclose(diversity("h")(lambda name: same), torch.full((3,), -1.0))
    orthogonal = torch.eye(2)
    assert torch.allclose(diversity("h")(lambda name: orthogonal), torch.zeros(2))


def test_sum_combines_per_row_values_with_weights():
    combined = channel("conv", [0, 1]) - 0.5 * layer("conv") + 2
    expected = channel("conv", [0, 1])(acts) - 0.5 * layer("conv")(acts) + 2
    assert torch.allclose(combined(acts), expected)
    expected_table = channel("conv", [0, 1]).table(acts) - 0.5 * layer("conv").table(acts) + 2
    assert torch.allclose(combined.table(acts), expected_table)
    assert combined.units == (0, 1)


def test_algebra_descriptions_read_naturally():
    a, b = channel("relu2", 3), layer("relu1")
    assert (a + 0.5 * b).description == "relu2 channel 3 + 0.5 * mean of relu1"
    assert (a - b).description == "relu2 channel 3 - mean of relu1"
    assert (-a).description == "-relu2 channel 3"
    assert (a / 4).description == "0.25 * relu2 channel 3"
    assert (2 * a).description == (a * 2).description == "2 * relu2 channel 3"
    assert (1 - a).description == "-relu2 channel 3 + 1"
    assert channel("relu3", range(32)).description == "relu3 channels 0-31"
    assert logit([0, 3, 7]).description == "logits 0, 3, 7"


def test_builtin_sum_of_objectives_works():
    total = sum([channel("conv", 0), layer("conv")])
    assert isinstance(total, Objective)
    assert total.description == "conv channel 0 + mean of conv"
    assert torch.allclose(total.table(acts), channel("conv", 0).table(acts) + layer("conv").table(acts))


def test_repr_shows_description_and_rows():
    assert repr(channel("relu2", [0, 1])) == "Objective('relu2 channels 0, 1', rows=2)"
    assert repr(layer("relu1")) == "Objective('mean of relu1', rows=any)"


@pytest.mark.parametrize("other", [channel("conv", 0), "2", [1.0], torch.tensor(2.0), True])
def test_mul_by_non_number_raises_type_error_naming_the_type(other):
    with pytest.raises(TypeError, match=f"got {type(other).__name__}"):
        channel("conv", 0) * other
    with pytest.raises(TypeError, match=f"got {type(other).__name__}"):
        channel("conv", 0) / other


def test_division_by_objective_or_zero_raises():
    with pytest.raises(TypeError, match="can only be divided by a number"):
        2 / channel("conv", 0)
    with pytest.raises(ZeroDivisionError, match="by zero"):
        channel("conv", 0) / 0


def test_add_non_number_raises_type_error():
    with pytest.raises(TypeError, match="got str"):
        channel("conv", 0) + "x"


def test_units_out_of_range_raise_config_error_with_the_layer_size():
    with pytest.raises(ConfigError, match=r"Channel 5 is out of range: layer 'conv' has 3 channels \(valid 0-2\)"):
        channel("conv", [0, 5])(acts)
    with pytest.raises(ConfigError, match="Logit 3 is out of range: the model output has 3 units"):
        logit(3).table(acts)


def test_neuron_position_outside_the_map_raises():
    with pytest.raises(ConfigError, match=r"Neuron position \(y=5, x=0\) is outside"):
        neuron("conv", 0, y=5, x=0).table(acts)


@pytest.mark.parametrize("units", [[], "3", [1.5], [True], None])
def test_bad_units_raise_config_error(units):
    with pytest.raises(ConfigError, match="unit"):
        channel("conv", units)


def test_rows_must_match_the_batch_and_each_other():
    with pytest.raises(ConfigError, match="renders 3 units, one per row, but the batch has 2 rows"):
        channel("conv", [0, 1, 2])(acts)
    with pytest.raises(ConfigError, match="need the same number of rows"):
        channel("conv", [0, 1]) + logit([0, 1, 2])


def test_diversity_has_no_table():
    with pytest.raises(ConfigError, match="couples the rows"):
        diversity("conv").table(acts)


def test_direction_checks_its_vectors():
    with pytest.raises(ConfigError, match="non-zero"):
        direction("conv", torch.zeros(3))
    with pytest.raises(ConfigError, match="have 2 entries but layer 'conv' has 3 channels"):
        direction("conv", torch.ones(2))(acts)


# (batch=2, pos=3, d_model=4): row b, position p, feature f holds 100*b + 10*p + f.
SEQ = torch.tensor([[[100.0 * b + 10.0 * p + f for f in range(4)] for p in range(3)] for b in range(2)])


def test_channel_on_a_sequence_layer_means_a_feature_over_positions():
    values = channel("block", [3, 1])(lambda name: SEQ)
    # row 0, feature 3: (3 + 13 + 23) / 3; row 1, feature 1: (101 + 111 + 121) / 3
    assert values.tolist() == pytest.approx([13.0, 111.0])
    table = channel("block", [3, 1]).table(lambda name: SEQ)
    torch.testing.assert_close(table, SEQ.mean(dim=1)[:, [3, 1]])


def test_neuron_on_a_sequence_layer_reads_one_token():
    assert neuron("block", [3, 1], pos=0)(lambda name: SEQ).tolist() == [3.0, 101.0]
    assert neuron("block", [3, 1])(lambda name: SEQ).tolist() == [13.0, 111.0]  # centre: position 1
    with pytest.raises(ConfigError, match="use pos= instead"):
        neuron("block", 0, y=0)(lambda name: SEQ[:1])
    with pytest.raises(ConfigError, match="Neuron position 5 is outside"):
        neuron("block", 0, pos=5)(lambda name: SEQ[:1])


def test_unit_objectives_read_conv1d_maps_through_the_model():
    from torch import nn

    from mechscope.featurevis.objectives import LayerReader

    model = nn.Sequential(nn.Conv1d(2, 3, 1), nn.ReLU())
    maps = torch.rand(2, 3, 5, generator=torch.Generator().manual_seed(0))  # (batch, channel, length)
    reader = LayerReader(lambda name: maps, model)
    torch.testing.assert_close(channel("1", [2, 0])(reader), torch.stack([maps[0, 2].mean(), maps[1, 0].mean()]))
    torch.testing.assert_close(channel("1", [2, 0], axes="conv")(lambda name: maps), channel("1", [2, 0])(reader))
    with pytest.raises(ConfigError, match="Channel 4 is out of range: layer '1' has 3 channels"):
        channel("1", [4, 0])(reader)


def test_direction_on_a_sequence_projects_features_at_every_position():
    vector = torch.tensor([0.0, 1.0, 0.0, 0.0])
    values = direction("block", vector)(lambda name: SEQ[:1])
    assert values.tolist() == pytest.approx([11.0])  # feature 1 averaged over positions


def test_logit_and_prob_pick_their_output_from_dicts_tuples_and_model_outputs():
    from mechscope.errors import UnsupportedModelError

    as_dict = {None: {"logits": LOGITS, "features": CONV}}.__getitem__
    assert logit([2, 1])(as_dict).tolist() == [3.0, 0.0]  # auto: the "logits" entry
    as_tuple = {None: (LOGITS, CONV)}.__getitem__
    with pytest.raises(UnsupportedModelError, match=r"ambiguous.*output=0"):
        logit([2, 1])(as_tuple)
    assert logit([2, 1], output=0)(as_tuple).tolist() == [3.0, 0.0]
    assert torch.equal(prob([0, 1], output=0).table(as_tuple), prob([0, 1]).table(acts))
    objective = logit(1, output=lambda out: out[0] * 2)
    assert objective.table(as_tuple)[:, 0].tolist() == [4.0, 0.0]
    assert objective.description == "logit 1 of output <lambda>"


def test_logit_output_and_layer_exclude_each_other():
    with pytest.raises(ConfigError, match="pass one of them"):
        logit(0, layer="fc", output="logits")
