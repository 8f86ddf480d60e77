"""Every analysis family runs on a model wherever it is, and hands its numbers back on the CPU.

On the CPU alone: with torch's default device set to meta, a tensor the library creates
without an explicit device is a meta tensor, and using it beside the model's CPU tensors
raises ("Tensor on device meta is not on the expected device cpu"), as do reading its values
and copying it out. Such a tensor is exactly the one that would land on the CPU beside a CUDA
model. So each family runs twice on a CPU model, normally and with the default on meta, and
must give the same numbers both times. Models and data are built before the default moves.

On a CUDA machine: each family runs on the model moved to the GPU and is compared with the
CPU run (TF32 off, see the `cuda` fixture). float32 then agrees to about 1e-5 relative; the
tolerances below are 1e-4 relative and 1e-5 of each tensor's largest magnitude, looser where a
family says why (`tests/device_families.py`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from mechscope.circuits.ablation import unit_ablation
from mechscope.circuits.dataflow import layer_graph
from mechscope.data import DataBundle, function_data, modular_data
from mechscope.featurevis.visualize import count_units
from mechscope.models import DigitCNN, ModularMLP, ModularMLPConfig, TinyReLU, TinyReLUConfig, build_seeded
from mechscope.probes import MLPProbe, probe_modular_mlp
from mechscope.report.config import ReportConfig
from mechscope.report.context import make_context
from mechscope.symbolic.regions import network_outputs
from tests.device_families import CNN, FAMILIES, Family, Results
from tests.zoo import image_bundle

MetaDefault = Callable[[], AbstractContextManager[None]]


@pytest.fixture
def meta_default() -> Iterator[MetaDefault]:
    """A context manager that puts torch's default device on meta for its block (and after the test, back)."""
    # None, not "cpu": setting any device leaves a factory-function mode installed for the session.
    before = None if torch.get_default_device().type == "cpu" else torch.get_default_device()

    @contextmanager
    def block() -> Iterator[None]:
        torch.set_default_device("meta")
        try:
            yield
        finally:
            torch.set_default_device(before)

    yield block
    torch.set_default_device(before)


def test_meta_default_catches_a_tensor_made_without_a_device(meta_default):
    def shifted(x: torch.Tensor) -> torch.Tensor:  # forgot device=x.device
        return x + torch.arange(x.shape[1])

    def counts(x: torch.Tensor) -> torch.Tensor:  # accumulates on the CPU, but forgot device= on the increment
        total = torch.zeros(x.shape[1], device="cpu")
        total += torch.ones(x.shape[1])
        return total

    x = torch.rand(2, 5, generator=torch.Generator().manual_seed(0))
    expected = counts(x)
    assert shifted(x).device.type == "cpu"  # both are fine on the CPU alone
    with meta_default(), pytest.raises(RuntimeError, match="meta is not on the expected device cpu"):
        shifted(x)
    with meta_default():
        got = counts(x)
    # An in-place op on a CPU tensor with a meta operand does not raise (the CPU tensor keeps
    # stale values): comparing with a normal run catches it.
    assert not torch.equal(got, expected)


SLOW_FAMILIES = ("report-cnn", "report-modular")
"""Families that build two whole reports of a conv classifier or a modular MLP: seconds each."""


@pytest.mark.parametrize("family", [
    pytest.param(f, id=f.name, marks=pytest.mark.slow if f.name in SLOW_FAMILIES else ()) for f in FAMILIES
])
def test_family_makes_no_tensor_on_the_default_device(family: Family, meta_default):
    expected = family.run(*family.build())
    model, data = family.build()
    with meta_default():
        got = family.run(model, data)
    assert_same(got, expected, family, exact=True)
    if "errors" in got:  # a report
        assert not any(got["errors"].values()), got["errors"]


# ---------------------------------------------------------------------------------------------
# A model on the meta device stands in for an accelerator: inputs left on the CPU meet its
# weights in the first layer and raise a device mismatch; inputs moved to it get as far as the
# first read of a value (which a meta tensor does not have).

_NO_VALUES = ("meta tensors", "out of meta tensor", "meta device type tensor to numpy")


def _cnn_on_meta() -> tuple[nn.Module, DataBundle]:
    return build_seeded(DigitCNN, CNN, seed=0).eval().to("meta"), image_bundle((1, 8, 8), 4, n_train=8, n_test=8)


def _report_explained(model: nn.Module, data: DataBundle, tmp_path: Path) -> object:
    ctx = make_context(model, tmp_path / "r", data=data, settings=ReportConfig.quick(), home=None, progress=False)
    return ctx.explained(data.x_test[:2])


def _probe_on_meta() -> tuple[MLPProbe, Tensor]:
    x = torch.rand(20, 3, generator=torch.Generator().manual_seed(0))
    probe = MLPProbe(hidden_sizes=(4,), max_epochs=2).fit(x, {"y": (x[:, 0] > 0.5).long()})
    probe.network_.to("meta")  # as if fitted on an accelerator
    return probe, x


EntryPoint = tuple[Callable[[], tuple[Any, Any]], Callable[[Any, Any, Path], object]]
ENTRY_POINTS: dict[str, EntryPoint] = {
    "count_units": (_cnn_on_meta, lambda model, data, _: count_units(model, "relu2", data.x_test[:2])),
    "layer_graph": (_cnn_on_meta, lambda model, data, _: layer_graph(model, example=data.x_test[:2])),
    "report_context": (_cnn_on_meta, _report_explained),
    "unit_ablation": (_cnn_on_meta, lambda model, data, _: unit_ablation(model, data.x_test[:2], "relu2", [0, 1])),
    "probe_modular_mlp": (
        lambda: (build_seeded(ModularMLP, ModularMLPConfig(modulus=3, n_layers=3, hidden=4), 0).to("meta"),
                 modular_data(3, n_train=18, n_test=18)),
        lambda model, data, _: probe_modular_mlp(model, data, seeds=(0,)),
    ),
    "network_outputs": (
        lambda: (build_seeded(TinyReLU, TinyReLUConfig(), 0).to("meta"), function_data("sum", n_train=8, n_test=8)),
        lambda model, data, _: network_outputs(model, data.x_test, 1),
    ),
    "probe_predict": (_probe_on_meta, lambda probe, x, _: probe.predict(x)),
}


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_entry_point_moves_inputs_to_the_models_device(name, tmp_path):
    build, call = ENTRY_POINTS[name]
    model, data = build()
    try:
        call(model, data, tmp_path)
    except (RuntimeError, NotImplementedError, TypeError) as err:
        if not any(text in str(err) for text in _NO_VALUES):
            raise


# ---------------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_family_on_cuda_matches_cpu(family: Family, cuda):
    expected = family.run(*family.build())
    model, data = family.build()
    got = family.run(model.to(cuda), data)
    _assert_on_cpu(got)
    assert_same(got, expected, family)
    if "errors" in got:  # a report
        assert not any(got["errors"].values()), got["errors"]


def _assert_on_cpu(value: Any) -> None:
    """Results meant for plots and JSON come back on the CPU."""
    if isinstance(value, torch.Tensor):
        assert value.device.type == "cpu", value.device
    elif isinstance(value, dict):
        for item in value.values():
            _assert_on_cpu(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _assert_on_cpu(item)


def assert_same(got: Results, expected: Results, family: Family, *, exact: bool = False) -> None:
    """Compare two runs key by key: exactly, or within the family's tolerances."""
    assert got.keys() == expected.keys()
    for key in expected:
        if key in family.same_device_only and not exact:
            continue
        loose = next((tol for prefix, tol in family.loose.items() if key.startswith(prefix)), None)
        _close(got[key], expected[key], key, family, None if exact else loose, exact)


def _close(got: Any, expected: Any, key: str, family: Family, loose: float | None, exact: bool) -> None:
    if isinstance(expected, torch.Tensor):
        assert isinstance(got, torch.Tensor) and got.shape == expected.shape and got.dtype == expected.dtype, key
        if exact or not expected.is_floating_point():
            assert torch.equal(got, expected), key
        elif loose is not None:
            assert (got - expected).abs().max() <= loose, (key, float((got - expected).abs().max()))
        else:
            scale = float(expected.abs().max()) if expected.numel() else 0.0
            atol = family.atol * scale if scale > 0 else family.atol
            torch.testing.assert_close(got, expected, rtol=family.rtol, atol=atol, msg=lambda m: f"{key}: {m}")
    elif isinstance(expected, (list, tuple)):
        assert isinstance(got, (list, tuple)) and len(got) == len(expected), key
        for g, e in zip(got, expected):
            _close(g, e, key, family, loose, exact)
    elif isinstance(expected, float) and not exact:
        ok = abs(got - expected) <= loose if loose is not None else math.isclose(
            got, expected, rel_tol=family.rtol, abs_tol=family.atol)
        assert ok or (math.isnan(got) and math.isnan(expected)), (key, got, expected)
    elif isinstance(expected, float):
        assert got == expected or (math.isnan(got) and math.isnan(expected)), (key, got, expected)
    else:
        assert got == expected, (key, got, expected)
