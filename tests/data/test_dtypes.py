from __future__ import annotations

import pytest
import torch
from torch import nn

from mechscope.data import explain_dtype_errors
from mechscope.data.dtypes import dtype_error, dtype_mismatch, parameter_dtype
from mechscope.errors import DataError


def test_explain_dtype_errors_turns_float64_inputs_into_a_clear_error(two_layer_net):
    x = torch.rand(2, 2, dtype=torch.float64)
    with pytest.raises(DataError, match=r"^inputs are float64 but the model's parameters are float32; convert with "
                       r"x\.float\(\) \(or model\.double\(\)\)\. \(torch said: mat1 and mat2") as info:
        with explain_dtype_errors(two_layer_net, x):
            two_layer_net(x)
    assert isinstance(info.value.__cause__, RuntimeError)


def test_explain_dtype_errors_turns_integer_inputs_into_a_clear_error(small_conv_net):
    x = torch.ones(1, 1, 8, 8, dtype=torch.long)
    with pytest.raises(DataError, match=r"inputs are int64 but the model's parameters are float32; convert with "
                       r"x\.float\(\); a model that takes integer ids needs an nn\.Embedding"):
        with explain_dtype_errors(small_conv_net, x):
            small_conv_net(x)


def test_explain_dtype_errors_explains_a_gru(gru_net):
    x = torch.rand(2, 5, 3, dtype=torch.float64)
    with pytest.raises(DataError, match=r"inputs are float64 but the model's parameters are float32"):
        with explain_dtype_errors(gru_net, x):
            gru_net(x)


def test_explain_dtype_errors_leaves_other_errors_alone(two_layer_net):
    x = torch.rand(2, 5)  # wrong width, right dtype
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        with explain_dtype_errors(two_layer_net, x):
            two_layer_net(x)


def test_integer_ids_to_an_embedding_model_are_not_a_mismatch(token_net):
    ids = torch.tensor([[0, 1, 4], [2, 2, 3]])
    assert dtype_mismatch(token_net, ids) is None
    with explain_dtype_errors(token_net, ids):
        assert token_net(ids).shape == (2, 2)
    assert dtype_error(RuntimeError("expected scalar type Float"), token_net, ids) is None


def test_dtype_mismatch_of_matching_or_parameter_free_models_is_none(two_layer_net):
    assert dtype_mismatch(two_layer_net, torch.rand(1, 2)) is None
    assert dtype_mismatch(nn.ReLU(), torch.rand(1, 2, dtype=torch.float64)) is None
    assert parameter_dtype(two_layer_net.double()) == torch.float64
