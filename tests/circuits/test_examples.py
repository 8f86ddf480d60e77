from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from mechscope.capture import UnitAxes, capture
from mechscope.circuits import dataset_examples
from mechscope.circuits.examples import StreamingTopK, unit_scores
from mechscope.errors import ConfigError, DataError
from mechscope.serialize import to_json


def _brute_force(scores: torch.Tensor, k: int, largest: bool) -> tuple[torch.Tensor, torch.Tensor]:
    order = torch.sort(scores, dim=0, descending=largest, stable=True).indices[:k]  # (k, unit)
    return scores.gather(0, order).t(), order.t()


@pytest.mark.parametrize("largest", [True, False])
def test_streaming_topk_equals_brute_force_with_ties(largest):
    generator = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 5, (203, 6), generator=generator).float()  # many exact ties
    top = StreamingTopK(7, largest=largest)
    for first in range(0, 203, 10):
        chunk = scores[first : first + 10]
        top.update(chunk, torch.arange(first, first + chunk.shape[0]))
    values, indices = _brute_force(scores, 7, largest)
    assert torch.equal(top.values_.t(), values)
    assert torch.equal(top.indices_.t(), indices)


def test_dataset_examples_equals_brute_force_top_and_bottom(gap_cnn):
    x = torch.rand(97, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    found = dataset_examples(gap_cnn, x, ["relu2", "relu3"], k=5, batch_size=13, progress=False)
    with torch.no_grad(), capture(gap_cnn, ["relu2", "relu3"]) as store:
        gap_cnn(x)
    for name in ("relu2", "relu3"):
        act = store.act(name)
        peak = act.flatten(2).max(dim=2).values  # (batch, channel)
        for ranked, largest in ((found[name].top, True), (found[name].bottom, False)):
            values, indices = _brute_force(peak, 5, largest)
            torch.testing.assert_close(ranked.values, values, rtol=1e-5, atol=1e-6)
            assert torch.equal(ranked.indices, indices)
            # the stored position holds the maximum of that input's map
            for unit in range(act.shape[1]):
                for j in range(5):
                    i, (r, c) = int(ranked.indices[unit, j]), ranked.positions[unit, j].tolist()
                    assert act[i, unit, r, c] == pytest.approx(float(act[i, unit].max()), rel=1e-5)


def test_dataset_examples_mean_reduce_and_dataloader(gap_cnn, images):
    tensor_run = dataset_examples(gap_cnn, images, "relu1", k=3, reduce="mean", progress=False)["relu1"]
    loader = DataLoader(TensorDataset(images, torch.zeros(len(images))), batch_size=2)
    loader_run = dataset_examples(gap_cnn, loader, "relu1", k=3, reduce="mean", progress=False)["relu1"]
    with torch.no_grad(), capture(gap_cnn, "relu1") as store:
        gap_cnn(images)
    means = store.act("relu1").mean(dim=(2, 3))
    values, indices = _brute_force(means, 3, True)
    assert torch.equal(tensor_run.top.indices, indices)
    assert torch.equal(loader_run.top.indices, indices)
    assert tensor_run.n_inputs == loader_run.n_inputs == 5


def test_dataset_examples_dense_layer_and_small_dataset(dense_head_cnn, images):
    found = dataset_examples(dense_head_cnn, images, "fc1", k=9, progress=False)["fc1"]
    assert found.k == 5  # only five inputs
    assert found.top.positions is None and found.receptive_field is None and found.windows() is None
    assert found.n_units == 64
    with pytest.raises(DataError, match="cannot be cropped"):
        found.crops(images)


def test_crops_are_the_receptive_field_around_the_maximum(conv_pair):
    x = torch.rand(40, 1, 6, 6, generator=torch.Generator().manual_seed(5))
    found = dataset_examples(conv_pair, x, "conv_b", k=4, progress=False)["conv_b"]
    field = found.receptive_field
    assert field is not None and field.size == (3, 3)
    crops = found.crops(x)
    assert crops.shape == (3, 4, 1, 3, 3)
    for unit in range(3):
        for j in range(4):
            i, (r, c) = int(found.top.indices[unit, j]), found.top.positions[unit, j].tolist()
            torch.testing.assert_close(crops[unit, j], x[i, :, r : r + 3, c : c + 3])


def test_crops_pad_outside_the_image(gap_cnn, images):
    found = dataset_examples(gap_cnn, images, "relu3", k=2, progress=False)["relu3"]
    crops = found.crops(images)
    assert crops.shape == (32, 2, 1, 18, 18)  # field 18 > image 8: zero padding around it
    assert crops[0, 0].sum() == pytest.approx(float(images[int(found.top.indices[0, 0])].sum()), rel=1e-5)


def test_dataset_examples_to_json_round_numbers(gap_cnn, images):
    data = to_json(dataset_examples(gap_cnn, images, "relu2", k=2, progress=False))["layers"]["relu2"]
    assert data["k"] == 2 and data["receptive_field"]["size"] == [8, 8]
    assert len(data["units"]) == 16 and len(data["units"][0]["top"]["positions"][0]) == 2


def test_examples_errors(gap_cnn, images):
    with pytest.raises(ConfigError, match="k must be a positive integer"):
        dataset_examples(gap_cnn, images, "relu1", k=0)
    with pytest.raises(ConfigError, match="reduce must be"):
        unit_scores(torch.zeros(2, 3, 4, 4), "median")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="empty dataset"):
        dataset_examples(gap_cnn, images[:0], "relu1", progress=False)


def test_dataset_examples_nan_tensor_raises_naming_the_index(gap_cnn, images):
    bad = images.clone()
    bad[3, 0, 1, 2] = float("nan")
    with pytest.raises(DataError, match=r"Non-finite values in data: 1 of 320 \(1 nan\); the first is nan at index "
                       r"\(3, 0, 1, 2\)"):
        dataset_examples(gap_cnn, bad, "relu1", k=2, progress=False)


def test_dataset_examples_nan_loader_batch_raises(gap_cnn, images):
    bad = images.clone()
    bad[4, 0, 0, 0] = float("inf")
    loader = DataLoader(TensorDataset(bad, torch.zeros(len(bad))), batch_size=2)
    with pytest.raises(DataError, match=r"Non-finite values in data \(batch 2, from example 4\): .*index "
                       r"\(0, 0, 0, 0\)"):
        dataset_examples(gap_cnn, loader, "relu1", k=2, progress=False)


def test_dataset_examples_on_a_residual_cnn_and_a_gru(residual_cnn, gru_net, images):
    found = dataset_examples(residual_cnn, images, ["relu1", "relu2"], k=2, progress=False)
    assert found["relu2"].top.indices.shape == (4, 2)
    sequences = torch.rand(6, 4, 3)
    assert dataset_examples(gru_net, sequences, "head", k=2, progress=False)["head"].n_inputs == 6


def test_dataset_examples_on_a_gru_rank_features_and_locate_tokens():
    from tests.zoo import TokenGRU

    model = TokenGRU().eval()
    tokens = torch.randint(0, 11, (40, 7), generator=torch.Generator().manual_seed(5))
    found = dataset_examples(model, tokens, "gru", k=4, batch_size=9, progress=False)["gru"]
    with torch.no_grad(), capture(model, "gru") as store:
        model(tokens)
    act = store.act("gru")  # (batch, pos, d_model): the GRU's output sequence, not its last state
    assert found.n_units == act.shape[2] == 8  # units are features, not the 7 positions
    assert found.unit_axes is not None and found.unit_axes.kind == "sequence"
    assert found.receptive_field is None and found.windows() is None
    peak, where = act.max(dim=1)  # (batch, d_model): each feature's largest value over positions
    values, indices = _brute_force(peak, 4, largest=True)
    torch.testing.assert_close(found.top.values, values)
    assert torch.equal(found.top.indices, indices)
    assert found.top.positions is not None and found.top.positions.shape == (8, 4, 1)
    manual = act.argmax(dim=1)  # (batch, d_model): the token where each feature peaks
    for unit in range(8):
        assert found.top.positions[unit, :, 0].tolist() == manual[indices[unit], unit].tolist()
        assert found.top.positions[unit, :, 0].tolist() == where[indices[unit], unit].tolist()
    mean = dataset_examples(model, tokens, "gru", k=4, reduce="mean", progress=False)["gru"]
    torch.testing.assert_close(mean.top.values, _brute_force(act.mean(dim=1), 4, largest=True)[0])


def test_dataset_examples_axes_override_reads_positions_as_units():
    from tests.zoo import TokenGRU

    model = TokenGRU().eval()
    tokens = torch.randint(0, 11, (10, 5), generator=torch.Generator().manual_seed(6))
    found = dataset_examples(model, tokens, "gru", k=2, axes={"gru": "conv"}, progress=False)["gru"]
    with torch.no_grad(), capture(model, "gru") as store:
        model(tokens)
    assert found.n_units == 5  # the old reading, on request: positions as units
    torch.testing.assert_close(found.top.values, _brute_force(store.act("gru").amax(dim=2), 2, True)[0])


def test_unit_scores_with_explicit_axes():
    x = torch.arange(24.0).reshape(2, 3, 4)
    scores, positions = unit_scores(x, axes=UnitAxes(1, (2,), "conv"))  # (batch, channel, length)
    assert torch.equal(scores, x.amax(dim=2)) and positions is not None
    scores, positions = unit_scores(x)  # inferred from the shape: (batch, pos, d_model)
    assert torch.equal(scores, x.amax(dim=1)) and positions is not None and positions.shape == (2, 4, 1)
