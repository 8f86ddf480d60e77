from __future__ import annotations

import pytest
import torch

from mechscope.data import check_finite
from mechscope.errors import DataError


def test_check_finite_returns_a_clean_tensor_itself():
    x = torch.rand(4, 3)
    assert check_finite(x, "x") is x


def test_check_finite_names_tensor_kind_first_index_and_count():
    x = torch.zeros(3, 4)
    x[1, 2] = float("nan")
    x[2, 0] = float("nan")
    with pytest.raises(DataError, match=r"^Non-finite values in x_train: 2 of 12 \(2 nan\); the first is nan at "
                       r"index \(1, 2\)\. Clean the data first: drop or impute those values\.$"):
        check_finite(x, "x_train")


def test_check_finite_counts_each_kind_and_finds_the_first_in_row_major_order():
    x = torch.zeros(2, 2, 3)
    x[1, 1, 2] = float("nan")
    x[0, 1, 0] = float("-inf")
    x[1, 0, 0] = float("inf")
    with pytest.raises(DataError, match=r"3 of 12 \(1 nan, 1 inf, 1 -inf\); the first is -inf at index \(0, 1, 0\)"):
        check_finite(x, "acts")


def test_check_finite_mentions_the_opt_out_and_a_custom_fix():
    x = torch.tensor([1.0, float("inf")])
    with pytest.raises(DataError, match=r"Retrain it, or pass check_finite=False to record\(\) to let them through"):
        check_finite(x, "data", fix="Retrain it", skip_with="check_finite=False to record()")


def test_check_finite_reports_a_scalar_without_an_index():
    with pytest.raises(DataError, match=r"^Non-finite value: the training loss at step 3 is nan\. "):
        check_finite(torch.tensor(float("nan")), "the training loss at step 3")


def test_check_finite_passes_integer_and_bool_tensors():
    ids = torch.arange(6).reshape(2, 3)
    assert check_finite(ids, "ids") is ids
    assert check_finite(torch.ones(2, dtype=torch.bool), "mask").all()


def test_check_finite_handles_half_bfloat16_and_complex():
    half = torch.tensor([0.0, float("inf")], dtype=torch.float16)
    with pytest.raises(DataError, match=r"\(1 inf\); the first is inf at index \(1,\)"):
        check_finite(half, "h")
    with pytest.raises(DataError, match=r"the first is nan at index \(0,\)"):
        check_finite(torch.tensor([float("nan")], dtype=torch.bfloat16), "b")
    z = torch.zeros(2, dtype=torch.complex64)
    z[1] = complex(0.0, float("inf"))
    with pytest.raises(DataError, match=r"1 of 2 \(1 inf\); the first is inf at index \(1,\)"):
        check_finite(z, "z")


def test_check_finite_rejects_non_tensors():
    with pytest.raises(DataError, match=r"x must be a torch.Tensor, got list; wrap it with torch.as_tensor"):
        check_finite([1.0, float("nan")], "x")  # type: ignore[arg-type]


def test_check_finite_does_not_modify_its_input():
    x = torch.tensor([[1.0, float("nan")]])
    before = x.clone()
    with pytest.raises(DataError):
        check_finite(x, "x")
    assert torch.equal(x.isnan(), before.isnan()) and x[0, 0] == 1.0


def test_check_finite_uses_one_isfinite_call_on_clean_data(monkeypatch):
    calls = []
    real = torch.isfinite

    def spy(t):
        calls.append(t.shape)
        return real(t)

    monkeypatch.setattr(torch, "isfinite", spy)
    check_finite(torch.rand(100, 10), "x")
    assert calls == [torch.Size([100, 10])]
