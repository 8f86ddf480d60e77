from __future__ import annotations

import pytest
import torch

from mechscope.capture import capture
from mechscope.errors import DataError, LayerNameError
from mechscope.models import ModularMLP, ModularMLPConfig, build_seeded
from mechscope.probes.activation_image import activation_image, stack_activations
from mechscope.serialize import to_json


def test_stack_activations_rows_follow_layer_order():
    acts = {"one": torch.ones(4, 3), "two": 2 * torch.ones(4, 3)}
    image = stack_activations(acts, layers=["two", "one"])
    assert image.images.shape == (4, 2, 3)
    assert image.images[:, 0].unique().tolist() == [2.0] and image.layers == ("two", "one")
    assert not image.padded and image.notes == ()


def test_stack_activations_pads_unequal_widths_and_says_so():
    acts = {"wide": torch.ones(2, 4), "narrow": torch.ones(2, 2, 1)}  # (batch, 2, 1) flattens to width 2
    with pytest.warns(UserWarning, match="unequal widths \\(wide: 4, narrow: 2\\).*padded on the right with -1"):
        image = stack_activations(acts, pad_value=-1.0)
    assert image.padded and image.widths == (4, 2)
    assert image.images[0, 1].tolist() == [1.0, 1.0, -1.0, -1.0]
    assert image.mask.tolist() == [[True, True, True, True], [True, True, False, False]]
    assert "padded" in image.notes[0] and to_json(image)["padded"] is True


def test_stack_activations_nan_names_the_layer():
    bad = torch.zeros(3, 2)
    bad[1, 0] = float("nan")
    with pytest.raises(DataError, match=r"activations of layer 'b' .*: 1 of 6 \(1 nan\); the first is nan at "
                       r"index \(1, 0\)"):
        stack_activations({"a": torch.zeros(3, 2), "b": bad})


def test_stack_activations_different_lengths_raise():
    with pytest.raises(DataError, match="different numbers of examples: \\{'a': 3, 'b': 2\\}"):
        stack_activations({"a": torch.zeros(3, 2), "b": torch.zeros(2, 2)})


def test_stack_activations_rounds_like_the_article():
    image = stack_activations({"a": torch.tensor([[0.123456, -0.987654]])}, decimals=2)
    assert image.images[0, 0].tolist() == pytest.approx([0.12, -0.99])
    assert image.notes == ("activations rounded to 2 decimals",)


def test_activation_image_matches_captured_layers():
    model = build_seeded(ModularMLP, ModularMLPConfig(modulus=3), seed=0)
    x = torch.eye(6)[[0, 1, 2]] + torch.eye(6)[[3, 4, 5]]
    image = activation_image(model, ["hidden.0", "hidden.2"], x)
    with capture(model, ["hidden.0", "hidden.2"]) as store:
        model(x)
    assert torch.equal(image.images[:, 0], store.act("hidden.0"))
    assert torch.equal(image.images[:, 1], store.act("hidden.2"))


def test_activation_image_unknown_layer_suggests_close_match():
    model = ModularMLP(ModularMLPConfig(modulus=2))
    with pytest.raises(LayerNameError, match="Unknown layer 'hiden.0'.*Did you mean 'hidden.0'"):
        activation_image(model, ["hiden.0"], torch.zeros(1, 4))
