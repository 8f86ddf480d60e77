"""Every choice the command line offers is the library's Literal, value for value and in order."""

from __future__ import annotations

from enum import Enum
from typing import Any, get_args

import pytest

from mechscope.circuits.ablation import Mode
from mechscope.circuits.contributions import Method
from mechscope.circuits.examples import Reduce
from mechscope.cli._options import Choice, DataPartChoice, OperationChoice
from mechscope.cli.circuits import AblationChoice, MethodChoice
from mechscope.cli.examples import ReduceChoice
from mechscope.cli.featurevis import ObjectiveChoice, TransformChoice
from mechscope.cli.patch import AlongChoice, DirectionChoice, MetricChoice
from mechscope.cli.probe import PoolingChoice, SplitChoice
from mechscope.cli.train import ActivationChoice, CombineChoice, FunctionChoice
from mechscope.data import DataPart
from mechscope.data.functions import FunctionName
from mechscope.data.modular import Operation
from mechscope.featurevis.visualize import ObjectiveKind, TransformPreset
from mechscope.models.grokking_mlp import Combine
from mechscope.models.modular_mlp import Activation
from mechscope.patching import Direction
from mechscope.patching.cells import CellKind
from mechscope.patching.metrics import MetricName
from mechscope.probes.conv import Pooling
from mechscope.probes.rigor import Split

PAIRS: list[tuple[type[Enum], Any]] = [
    (DataPartChoice, DataPart),
    (ReduceChoice, Reduce),
    (MethodChoice, Method),
    (AblationChoice, Mode),
    (ObjectiveChoice, ObjectiveKind),
    (TransformChoice, TransformPreset),
    (PoolingChoice, Pooling),
    (SplitChoice, Split),
    (OperationChoice, Operation),
    (ActivationChoice, Activation),
    (FunctionChoice, FunctionName),
    (CombineChoice, Combine),
    (MetricChoice, MetricName),
    (AlongChoice, CellKind),
    (DirectionChoice, Direction),
]


@pytest.mark.parametrize(("choice", "literal"), PAIRS, ids=[c.__name__ for c, _ in PAIRS])
def test_choice_is_its_literal(choice: type[Enum], literal: Any) -> None:
    assert [m.value for m in choice] == list(get_args(literal))
    assert all(isinstance(m, str) and m == m.value for m in choice)  # str members: typer prints the value


def test_every_choice_subclass_is_checked() -> None:
    assert {c for c in Choice.__subclasses__()} == {c for c, _ in PAIRS}


def test_choice_takes_no_values_beyond_its_literal() -> None:
    with pytest.raises(ValueError):
        OperationChoice("/")
    assert OperationChoice("*").value == "*" and DataPartChoice("test").value == "test"
