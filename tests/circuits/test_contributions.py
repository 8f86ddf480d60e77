from __future__ import annotations

import pytest
import torch

from mechscope.capture import capture
from mechscope.circuits import class_contributions
from mechscope.circuits.contributions import class_mean_maps, find_gap_head
from mechscope.errors import ConfigError, DataError, UnsupportedModelError


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(4)
    return torch.rand(60, 1, 8, 8, generator=generator), torch.arange(60) % 10


def test_gap_contributions_sum_to_the_mean_class_logit(gap_cnn, batch):
    x, y = batch
    found = class_contributions(gap_cnn, x, y, batch_size=16)
    assert (found.method, found.head, found.layer) == ("gap", "fc", "relu3")
    with torch.no_grad():
        logits = gap_cnn(x)
    for c in range(10):
        mean_logit = logits[y == c, c].mean()
        total = found.contributions[c].sum() + gap_cnn.fc.bias.detach()[c]
        assert float(total) == pytest.approx(float(mean_logit), abs=1e-5)


def test_gradient_times_activation_agrees_with_exact_gap(gap_cnn, batch):
    x, y = batch
    exact = class_contributions(gap_cnn, x, y, method="gap")
    estimate = class_contributions(gap_cnn, x, y, method="gradient")
    assert estimate.method == "gradient" and estimate.head is None
    torch.testing.assert_close(estimate.contributions, exact.contributions, rtol=1e-4, atol=1e-5)
    assert torch.equal(estimate.top_channels, exact.top_channels)


def test_dense_head_uses_gradient_and_leaves_no_gradients(dense_head_cnn, batch):
    x, y = batch
    found = class_contributions(dense_head_cnn, x, y, top=4)
    assert found.method == "gradient"
    assert found.top_channels.shape == (10, 4)
    assert all(p.grad is None for p in dense_head_cnn.parameters())
    assert not dense_head_cnn.training
    # top channels are sorted by contribution
    picked = found.contributions.gather(1, found.top_channels)
    assert torch.all(picked[:, :-1] >= picked[:, 1:])
    with pytest.raises(UnsupportedModelError, match="use method='gradient'"):
        class_contributions(dense_head_cnn, x, y, method="gap")


def test_mean_maps_are_class_means(gap_cnn, batch):
    x, y = batch
    found = class_contributions(gap_cnn, x, y, layer="relu2")
    with torch.no_grad(), capture(gap_cnn, "relu2") as store:
        gap_cnn(x)
    act = store.act("relu2")
    torch.testing.assert_close(found.mean_maps[3], act[y == 3].mean(dim=0))
    torch.testing.assert_close(found.top_maps(3), act[y == 3].mean(dim=0)[found.top_channels[3]])
    torch.testing.assert_close(class_mean_maps(gap_cnn, x, y, "relu2"), found.mean_maps)


def test_find_gap_head_needs_the_exact_map(gap_cnn, batch):
    x, _ = batch
    with torch.no_grad(), capture(gap_cnn, ["relu3", "relu2"]) as store:
        logits = gap_cnn(x)
    assert find_gap_head(gap_cnn, store.act("relu3"), logits) == "fc"
    assert find_gap_head(gap_cnn, store.act("relu3") * 1.01 + 0.1, logits) is None


def test_contributions_errors(gap_cnn, batch):
    x, y = batch
    with pytest.raises(DataError, match="one label per input"):
        class_contributions(gap_cnn, x, y[:-1])
    with pytest.raises(DataError, match="labels go up to 12"):
        class_contributions(gap_cnn, x, y + 3)
    with pytest.raises(ConfigError, match="top must be a positive integer"):
        class_contributions(gap_cnn, x, y, top=0)
    with pytest.raises(ConfigError, match="method must be"):
        class_contributions(gap_cnn, x, y, method="cam")  # type: ignore[arg-type]


def test_contributions_reject_nan_inputs(gap_cnn, batch):
    x, y = batch
    x = x.clone()
    x[59, 0, 7, 7] = float("inf")
    with pytest.raises(DataError, match=r"Non-finite values in inputs: .*the first is inf at index \(59, 0, 7, 7\)"):
        class_contributions(gap_cnn, x, y)
    with pytest.raises(DataError, match=r"the first is inf at index \(59, 0, 7, 7\)"):
        class_mean_maps(gap_cnn, x, y, "relu2")


def test_class_contributions_on_a_dict_model_use_the_default_layer_and_the_logits():
    from tests.zoo import DictNet, SelectOutput

    model = DictNet().eval()
    x = torch.rand(30, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    y = torch.arange(30) % 3
    found = class_contributions(model, x, y, top=2)
    assert found.layer == "act" and found.method == "gap" and found.head == "fc"
    reference = class_contributions(SelectOutput(model, lambda out: out["logits"]), x, y, top=2, layer="model.act")
    assert torch.equal(found.contributions, reference.contributions)


def test_class_contributions_on_a_tuple_model_need_output():
    from tests.zoo import TupleNet

    model = TupleNet().eval()
    x = torch.rand(12, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    y = torch.arange(12) % 3
    with pytest.raises(UnsupportedModelError, match=r"ambiguous.*output=0"):
        class_contributions(model, x, y)
    found = class_contributions(model, x, y, output=0, method="gradient")
    assert found.layer == "act" and found.contributions.shape == (3, 5)
    exact = class_contributions(model, x, y, output=0, method="gap")
    assert torch.allclose(found.contributions, exact.contributions, atol=1e-5)  # equal for a GAP head


def test_class_contributions_on_token_features_sum_over_positions_not_features():
    class Tokens(torch.nn.Module):
        """(batch, pos, 3) -> Linear(3, 4) per token -> ReLU -> mean over tokens -> Linear(4, 2)."""

        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.proj = torch.nn.Linear(3, 4)
            self.act = torch.nn.ReLU()
            self.head = torch.nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.act(self.proj(x)).mean(dim=1))

    model = Tokens().eval()
    x, y = torch.randn(10, 5, 3), torch.arange(10) % 2
    found = class_contributions(model, x, y, layer="act", top=1, method="gradient")
    with torch.no_grad():
        acts = model.act(model.proj(x))  # (batch, pos, unit)
    per_input = acts * model.head.weight[y][:, None, :] / 5  # d logit_y / d act = w_y / pos
    expected = torch.stack([per_input[y == c].sum(dim=1).mean(0) for c in range(2)])
    assert found.contributions.shape == (2, 4)  # 4 features are the units, not the 5 positions
    torch.testing.assert_close(found.contributions, expected, rtol=1e-4, atol=1e-6)
