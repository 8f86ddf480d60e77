from __future__ import annotations

import pytest
import sympy
import torch

from mechscope.errors import ConfigError
from mechscope.symbolic.transforms import Transforms


def test_transforms_from_extras_reads_product_declaration():
    t = Transforms.from_extras({"transforms": {"input": "log", "output": "exp"}})
    assert t == Transforms("log", "exp") and t.is_monomial and not t.is_identity


def test_transforms_from_extras_empty_is_identity():
    assert Transforms.from_extras({"transforms": {}}).is_identity
    assert Transforms.from_extras(None).is_identity


def test_transforms_round_trip_original_and_network_spaces():
    t = Transforms("log", "exp")
    x = torch.tensor([[0.5, 2.0, 7.0]])
    assert torch.allclose(t.original_inputs(t.network_inputs(x)), x)
    assert torch.allclose(t.original_outputs(torch.log(x)), x)


def test_transforms_expression_monomial_and_general():
    x1, x2 = sympy.symbols("x1 x2", positive=True)
    assert Transforms("log", "exp").expression([1, 2], sympy.Integer(3), [x1, x2]) == 3 * x1 * x2**2
    assert Transforms("identity", "exp").expression([1, 1], sympy.Integer(0), [x1, x2]) == sympy.exp(x1 + x2)


def test_transforms_article_text_general_wraps_functions():
    text = Transforms("log", "identity").article_text([1.0, 0.5], 0.25, ["x1", "x2"], 2)
    assert text == "1.0*log(x1) + 0.5*log(x2) + 0.25"


def test_transforms_display_parameters_use_factor_for_monomial():
    _, factor = Transforms("log", "exp").display_parameters([1.0], 0.0)
    _, constant = Transforms().display_parameters([1.0], 0.7)
    assert factor == 1.0 and constant == 0.7


def test_transforms_unknown_name_raises():
    with pytest.raises(ConfigError, match="input transform must be one of identity, log, exp, got 'sqrt'"):
        Transforms(input="sqrt")


def test_transforms_from_extras_unknown_key_raises():
    with pytest.raises(ConfigError, match="unknown keys"):
        Transforms.from_extras({"transforms": {"inputs": "log"}})
