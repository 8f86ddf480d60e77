from __future__ import annotations

import pytest
import torch
from torch import nn

from mechscope.capture import capture, record
from mechscope.errors import CaptureOverwrittenError


class _Switch(nn.Module):
    """fc, then an in-place doubling of fc's output only when `double_in_place` is set (data-dependent flow)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(3, 4)
        self.double_in_place = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x)
        if self.double_in_place:
            h.mul_(2)
        return h.sum(dim=1)


def test_guard_raises_when_an_output_kept_without_copy_is_overwritten():
    model = _Switch()
    x = torch.randn(5, 3)
    for _ in range(2):  # learns that fc's output is not changed in place: later passes keep it without a copy
        with torch.no_grad(), capture(model, ["fc"]) as store:
            model(x)
    model.double_in_place = True
    with pytest.raises(CaptureOverwrittenError, match=r"captured value of 'fc' in _Switch was overwritten in place "
                       r"later in the same forward pass .*run the forward pass again"):
        with torch.no_grad(), capture(model, ["fc"]):
            model(x)
    with torch.no_grad(), capture(model, ["fc"]) as store:  # run again: now copied, and right
        model(x)
    with torch.no_grad():
        expected = model.fc(x)
    torch.testing.assert_close(store.act("fc"), expected, rtol=0, atol=0)
    assert isinstance(CaptureOverwrittenError("x"), RuntimeError)


def test_guard_record_reruns_the_batch_by_itself():
    model = _Switch()
    x = torch.randn(9, 3)
    record(model, ["fc"], x)
    model.double_in_place = True
    store = record(model, ["fc"], x, batch_size=4)
    with torch.no_grad():
        expected = torch.cat([model.fc(batch) for batch in x.split(4)])
    torch.testing.assert_close(store.act("fc"), expected, rtol=0, atol=0)


def test_guard_copies_values_the_caller_holds():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2), nn.Dropout(0.5)).eval()  # Dropout in eval returns its input itself
    x = torch.randn(4, 3)
    with torch.no_grad():
        expected = model[0](x)
        for _ in range(3):
            with capture(model, ["0", "1"]) as store:
                out = model(x)
            out.mul_(0)  # the caller changes the model output in place after the pass
            torch.testing.assert_close(store.act("0"), expected, rtol=0, atol=0)
            torch.testing.assert_close(store.act("1"), expected, rtol=0, atol=0)


class _Reuse(nn.Module):
    """Writes each input into one persistent buffer and returns it: every call overwrites the last output."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("buf", torch.zeros(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.buf.copy_(x)
        return self.buf


class _ReuseNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.keep = _Reuse()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.keep(x) * 1.0


def test_guard_catches_an_alias_overwritten_by_a_later_pass_in_the_block():
    model = _ReuseNet()
    a, b = torch.ones(2, 3), torch.full((2, 3), 2.0)
    with capture(model, ["keep"]) as store:  # learns: not changed within a pass
        model(a)
    with pytest.raises(CaptureOverwrittenError, match=r"'keep' in _ReuseNet was overwritten in place after its "
                       r"forward pass"):
        with capture(model, ["keep"]):
            model(a)
            model(b)
    with capture(model, ["keep"]) as store:
        model(a)
        model(b)
    torch.testing.assert_close(store.act("keep"), torch.cat([a, b]))


class _Body(nn.Module):
    """`body` is Linear then an in-place ReLU, but the model's own forward runs only the Linear."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Linear(3, 4), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body[0](x).sum(dim=1)


def test_guard_copies_always_when_a_submodule_runs_directly():
    model = _Body()
    x = torch.randn(6, 3)
    with torch.no_grad():
        for _ in range(2):  # through the model: body.0's output is never changed in place
            with capture(model, ["body.0"]):
                model(x)
        with capture(model, ["body.0"]) as store:
            model.body(x)  # called directly: no end-of-pass check, so the value must be a copy
            model.body(x)
        expected = model.body[0](x)
    torch.testing.assert_close(store.act("body.0"), torch.cat([expected, expected]), rtol=0, atol=0)
    assert store.act("body.0").min() < 0


def test_guard_inference_mode_outputs_are_copied():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(inplace=True))
    x = torch.randn(10, 4)
    with torch.inference_mode():
        for _ in range(2):
            with capture(model, ["0"]) as store:
                model(x)
            torch.testing.assert_close(store.act("0"), model[0](x), rtol=0, atol=0)


def test_guard_learns_train_and_eval_mode_apart():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 6), nn.Dropout(0.5, inplace=True))  # in place only when training
    x = torch.randn(8, 3)
    with torch.no_grad():
        expected = model[0](x)
        model.eval()
        for _ in range(2):
            with capture(model, ["0"]) as store:
                model(x)
        model.train()  # now dropout zeroes Linear's output in place: no error, the value is a copy
        for _ in range(2):
            with capture(model, ["0"]) as store:
                model(x)
            torch.testing.assert_close(store.act("0"), expected, rtol=0, atol=0)
