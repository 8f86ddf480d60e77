from __future__ import annotations

from collections import namedtuple

import pytest
import torch

from mechscope.capture import select_output
from mechscope.capture.outputs import describe_output
from mechscope.errors import ConfigError, UnsupportedModelError
from tests.zoo import DictNet, TupleNet, tiny_gpt2, tiny_vit

LOGITS = torch.arange(6.0).reshape(2, 3)
AUX = torch.ones(2)


def test_select_output_auto_returns_a_tensor_itself():
    assert select_output(LOGITS) is LOGITS


def test_select_output_auto_takes_the_logits_entry_of_a_dict():
    out = DictNet()(torch.rand(2, 1, 8, 8))
    assert select_output(out) is out["logits"]


def test_select_output_auto_understands_hugging_face_model_outputs():
    vit = tiny_vit()
    out = vit(torch.rand(2, 3, 8, 8))
    assert type(out).__name__ == "ImageClassifierOutput"
    assert select_output(out) is out.logits
    ids = torch.randint(0, 23, (2, 5))
    lm = tiny_gpt2()(ids)
    assert select_output(lm) is lm.logits  # (batch, pos, vocab): callers slice it with a callable
    assert torch.equal(select_output(lm, lambda o: o.logits[:, -1]), lm.logits[:, -1])


@pytest.mark.parametrize("value", [(LOGITS, "name", None), [LOGITS], {"scores": LOGITS, "n": 3}])
def test_select_output_auto_takes_the_only_tensor_of_a_container(value):
    assert select_output(value) is LOGITS


def test_select_output_tuple_of_two_tensors_is_ambiguous_and_names_positions():
    out = TupleNet()(torch.rand(2, 1, 8, 8))
    with pytest.raises(UnsupportedModelError, match=r"positions: 0 \(2, 3\), 1 \(2\)\).*ambiguous.*output=0"):
        select_output(out)
    assert select_output(out, 0) is out[0]
    assert select_output(out, -1) is out[1]


def test_select_output_dict_without_logits_is_ambiguous_and_names_keys():
    with pytest.raises(UnsupportedModelError, match=r"keys: 'a' \(2, 3\), 'b' \(2\).*output='a'"):
        select_output({"a": LOGITS, "b": AUX})
    with pytest.raises(UnsupportedModelError, match="no tensor"):
        select_output({"a": 1})
    with pytest.raises(UnsupportedModelError, match="output=<callable>"):
        select_output("not a model output")


def test_select_output_by_key_index_and_callable():
    assert select_output({"logits": LOGITS, "aux": AUX}, "aux") is AUX
    assert select_output((AUX, LOGITS), 1) is LOGITS
    Pair = namedtuple("Pair", ["logits", "aux"])
    assert select_output(Pair(LOGITS, AUX), "aux") is AUX
    assert torch.equal(select_output((LOGITS, AUX), lambda out: out[0] * 2), LOGITS * 2)


def test_select_output_index_of_a_model_output_counts_its_set_fields():
    out = tiny_vit()(torch.rand(1, 3, 8, 8))
    assert select_output(out, 0) is out.logits


def test_select_output_bad_choices_say_what_exists():
    with pytest.raises(ConfigError, match=r"not a key.*keys: 'logits', 'aux'"):
        select_output({"logits": LOGITS, "aux": AUX}, "features")
    with pytest.raises(ConfigError, match=r"out of range.*positions 0-1"):
        select_output((LOGITS, AUX), 2)
    with pytest.raises(ConfigError, match="pass an index instead"):
        select_output((LOGITS, AUX), "logits")
    with pytest.raises(ConfigError, match="pass one of the keys"):
        select_output({"logits": LOGITS}, 0)
    with pytest.raises(ConfigError, match="not a tensor"):
        select_output((LOGITS, AUX), lambda out: out[0].tolist())
    with pytest.raises(ConfigError, match="bool"):
        select_output((LOGITS, AUX), True)
    with pytest.raises(ConfigError, match="got float"):
        select_output((LOGITS, AUX), 0.5)  # type: ignore[arg-type]


def test_select_output_keeps_the_autograd_graph():
    x = torch.rand(2, 1, 8, 8, requires_grad=True)
    chosen = select_output(TupleNet()(x), 0)
    (grad,) = torch.autograd.grad(chosen.sum(), x)
    assert grad.abs().sum() > 0


def test_describe_output_is_readable():
    assert describe_output(None) == "auto"
    assert describe_output("logits") == "'logits'"
    assert describe_output(0) == "0"
    assert "lambda" in describe_output(lambda out: out)
