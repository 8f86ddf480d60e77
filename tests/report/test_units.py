from __future__ import annotations

import torch

from mechscope.circuits import ablate
from mechscope.report.units import unit_ablation
from mechscope.models import ModularMLP, ModularMLPConfig, build_seeded
from tests.report.conftest import EvilNet


def test_unit_ablation_matches_ablating_each_channel_alone():
    model = EvilNet().eval()
    x = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    batched = unit_ablation(model, x, "relu2", [0, 2, 5], batch=10)  # 2 replicas per pass: chunks of 2 and 1
    for row, channel in enumerate([0, 2, 5]):
        with torch.no_grad(), ablate(model, "relu2", [channel]):
            expected = model(x)
        torch.testing.assert_close(batched[row], expected)
    assert not any(m._forward_hooks for m in model.modules())


def test_unit_ablation_works_on_dense_blocks():
    model = build_seeded(ModularMLP, ModularMLPConfig(modulus=3, n_layers=4, hidden=4), 0).eval()
    x = torch.eye(6)[[0, 1, 2]] + torch.eye(6)[[3, 4, 5]]
    out = unit_ablation(model, x, "hidden.1", list(range(4)))
    with torch.no_grad(), ablate(model, "hidden.1", [3]):
        torch.testing.assert_close(out[3], model(x))


class _SkipNet(torch.nn.Module):
    """conv -> act -> conv, plus a skip connection from before `act`: the expand shortcut cannot apply."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = torch.nn.Conv2d(1, 3, 3, padding=1)
        self.act = torch.nn.ReLU()
        self.conv2 = torch.nn.Conv2d(3, 3, 3, padding=1)
        self.fc = torch.nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(x)
        return self.fc((self.conv2(self.act(h)) + h).mean(dim=(2, 3)))


def test_unit_ablation_falls_back_when_later_layers_read_earlier_ones():
    model = _SkipNet().eval()
    x = torch.rand(4, 1, 6, 6, generator=torch.Generator().manual_seed(2))
    out = unit_ablation(model, x, "act", [0, 1, 2])
    for channel in range(3):
        with torch.no_grad(), ablate(model, "act", [channel]):
            torch.testing.assert_close(out[channel], model(x))


def test_unit_ablation_of_a_sequence_layer_zeroes_features():
    from tests.zoo import TokenGRU

    model = TokenGRU().eval()
    tokens = torch.randint(0, 11, (4, 6), generator=torch.Generator().manual_seed(3))
    out = unit_ablation(model, tokens, "gru", [0, 2, 7])
    for row, unit in enumerate([0, 2, 7]):
        with torch.no_grad(), ablate(model, "gru", [unit]):
            torch.testing.assert_close(out[row], model(tokens))


def test_unit_connections_follow_the_residual_dataflow(tmp_path):
    from mechscope.circuits import connection_strengths
    from mechscope.report.config import ReportConfig
    from mechscope.report.context import make_context
    from mechscope.report.units import LayerUnits, _connect
    from tests.zoo import TinyResNet, image_bundle

    model = TinyResNet(width=4)
    ctx = make_context(model, tmp_path / "site", data=image_bundle((1, 8, 8), 4), settings=ReportConfig.quick(),
                       home=None, progress=False)
    names = ["relu", "layer1.0.relu", "layer1.0.conv2", "layer1.1.relu"]
    results = {name: LayerUnits(name, n_units=4, shown=4) for name in names}
    _connect(ctx, results)

    def inbound(name):
        return {c.layer for cs in results[name].inbound.values() for c in cs}

    assert inbound("layer1.0.relu") == {"relu"}
    assert inbound("layer1.0.conv2") == {"layer1.0.relu"}
    assert inbound("layer1.1.relu") == {"layer1.0.conv2", "relu"}  # layer1.1.conv1 reads the residual sum
    l2, signed = connection_strengths(model.layer1[1].conv1)
    for u, connections in results["layer1.1.relu"].inbound.items():
        assert [c.strength for c in connections] == sorted((c.strength for c in connections), reverse=True)
        assert all(c.strength == float(l2[u, c.unit]) and c.signed == float(signed[u, c.unit]) for c in connections)
    assert {c.layer for cs in results["relu"].outbound.values() for c in cs} == {"layer1.0.relu", "layer1.1.relu"}
