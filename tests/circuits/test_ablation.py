from __future__ import annotations

import pytest
import torch

from mechscope.capture import capture
from mechscope.circuits import ablate, ablation_effect, causal_check, class_contributions
from mechscope.circuits.ablation import channel_means, unit_ablation, unit_ablation_effect
from mechscope.errors import ConfigError, DataError
from mechscope.serialize import to_json


def _hooks(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def _snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_zero_ablation_matches_hand_computed_gap_logits(gap_cnn, images):
    with torch.no_grad(), capture(gap_cnn, "relu3") as store:
        gap_cnn(images)
    act = store.act("relu3").clone()
    act[:, [1, 7]] = 0
    expected = gap_cnn.fc(act.mean(dim=(2, 3))).detach()
    with torch.no_grad(), ablate(gap_cnn, "relu3", [1, 7]):
        got = gap_cnn(images)
    torch.testing.assert_close(got, expected)


def test_mean_ablation_substitutes_channel_means(gap_cnn, images):
    means = channel_means(gap_cnn, "relu2", images, batch_size=2)
    with torch.no_grad(), capture(gap_cnn, "relu2") as store:
        gap_cnn(images)
    torch.testing.assert_close(means, store.act("relu2").mean(dim=0))
    # capture registered inside the ablation sees the replaced output
    with torch.no_grad(), ablate(gap_cnn, "relu2", [3], mode="mean", means=means), capture(gap_cnn, "relu2") as inner:
        gap_cnn(images)
    ablated = inner.act("relu2")
    torch.testing.assert_close(ablated[:, 3], means[3].expand(len(images), -1, -1))
    torch.testing.assert_close(ablated[:, 4], store.act("relu2")[:, 4])


def test_ablation_leaves_no_hooks_and_model_unchanged(gap_cnn, images):
    labels = torch.tensor([0, 1, 2, 1, 0])
    before, outputs = _snapshot(gap_cnn), gap_cnn(images).detach()
    gap_cnn.train()
    effect = ablation_effect(gap_cnn, images, labels, "relu3", [0, 5], mode="mean")
    check = causal_check(gap_cnn, images, labels, torch.arange(20).reshape(10, 2), layer="relu3", n_random=2)
    assert gap_cnn.training  # mode restored
    gap_cnn.eval()
    with pytest.raises(RuntimeError, match="inside"):
        with ablate(gap_cnn, "relu3", [0]):
            raise RuntimeError("failure inside the block")
    with pytest.raises(ConfigError, match="cannot ablate channels \\[40\\]"):
        with ablate(gap_cnn, "relu3", [40]):
            gap_cnn(images)
    assert _hooks(gap_cnn) == 0
    after = _snapshot(gap_cnn)
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    torch.testing.assert_close(gap_cnn(images).detach(), outputs, rtol=0, atol=0)
    assert all(p.grad is None for p in gap_cnn.parameters())
    assert effect.accuracy_drop.shape == (10,) and check.cross_drop.shape == (10, 10)


def test_ablation_effect_per_class_numbers(gap_cnn, images):
    labels = torch.tensor([0, 1, 2, 1, 0])
    with torch.no_grad():
        base = gap_cnn(images)
        with ablate(gap_cnn, "relu3", torch.arange(32)):
            ablated = gap_cnn(images)
    effect = ablation_effect(gap_cnn, images, labels, "relu3", torch.arange(32))
    torch.testing.assert_close(ablated, gap_cnn.fc.bias.detach().expand(5, -1))  # every channel off: bias only
    change = ablated.gather(1, labels[:, None])[:, 0] - base.gather(1, labels[:, None])[:, 0]
    torch.testing.assert_close(effect.logit_change[:3], torch.stack([change[labels == c].mean() for c in range(3)]))
    assert effect.class_counts.tolist() == [2, 2, 1] + [0] * 7
    assert effect.logit_change[3:].abs().sum() == 0  # classes without inputs report no change
    assert to_json(effect)["channels"] == list(range(32))


def test_causal_check_errors(gap_cnn, images):
    labels = torch.tensor([0, 1, 2, 1, 0])
    with pytest.raises(ConfigError, match="too few to draw 20 random channels"):
        causal_check(gap_cnn, images, labels, torch.arange(200).reshape(10, 20) % 32, layer="relu3")
    with pytest.raises(DataError, match="top_channels has 2 rows for 10 classes"):
        causal_check(gap_cnn, images, labels, torch.zeros(2, 1, dtype=torch.long), layer="relu3")
    with pytest.raises(ConfigError, match="mode='mean' needs means"):
        with ablate(gap_cnn, "relu3", [0], mode="mean"):
            pass


@pytest.mark.slow
def test_top_detectors_hurt_their_class_more_than_random_channels(trained_gap_cnn, digits):
    found = class_contributions(trained_gap_cnn, digits.x_train, digits.y_train)
    check = causal_check(
        trained_gap_cnn, digits.x_test, digits.y_test, found.top_channels, layer=found.layer, n_random=10
    )
    # Measured (seed 0, 8x8 digits, test accuracy 0.96, zero ablation): ratio ~ 34, all 10 classes hurt more.
    assert check.ratio > 10
    assert check.classes_hurt_more >= 9
    assert float(check.top_drop.mean()) > 0.5
    mean_check = causal_check(
        trained_gap_cnn, digits.x_test, digits.y_test, found.top_channels, layer=found.layer, mode="mean",
        n_random=10, means=channel_means(trained_gap_cnn, found.layer, digits.x_train),
    )
    # Mean ablation is gentler (measured ratio ~ 11, 7 of 10 classes) but still favours the detectors.
    assert mean_check.ratio > 2


def test_ablation_entry_points_reject_nan_inputs(gap_cnn, images):
    labels = torch.tensor([0, 1, 2, 1, 0])
    bad = images.clone()
    bad[1, 0, 3, 3] = float("nan")
    match = r"Non-finite values in inputs: 1 of 320 \(1 nan\); the first is nan at index \(1, 0, 3, 3\)"
    with pytest.raises(DataError, match=match):
        ablation_effect(gap_cnn, bad, labels, "relu3", [0, 1])
    with pytest.raises(DataError, match=match):
        causal_check(gap_cnn, bad, labels, torch.zeros(10, 1, dtype=torch.long), layer="relu3")
    with pytest.raises(DataError, match=match):
        channel_means(gap_cnn, "relu3", bad)


def test_mean_ablation_rejects_nan_means(gap_cnn):
    means = torch.zeros(32, 2, 2)
    means[5, 1, 0] = float("nan")
    with pytest.raises(DataError, match=r"Non-finite values in means: .*index \(5, 1, 0\)"):
        with ablate(gap_cnn, "relu3", [5], mode="mean", means=means):
            pass


def test_ablating_a_sequence_unit_zeroes_that_feature_at_every_position():
    from tests.zoo import TokenGRU

    model = TokenGRU().eval()
    tokens = torch.randint(0, 11, (4, 6), generator=torch.Generator().manual_seed(7))
    with torch.no_grad(), capture(model, "gru") as base:
        model(tokens)
    with torch.no_grad(), ablate(model, "gru", [2]), capture(model, "gru") as inner:
        logits = model(tokens)
    before, after = base.act("gru"), inner.act("gru")  # (batch, pos, d_model)
    assert bool((after[:, :, 2] == 0).all())  # feature 2 at every position
    keep = [f for f in range(8) if f != 2]
    torch.testing.assert_close(after[:, :, keep], before[:, :, keep])
    assert bool((after[:, 2, keep] != 0).all())  # token 2 is untouched
    expected = before.clone()
    expected[:, :, 2] = 0
    torch.testing.assert_close(logits, model.head(expected[:, -1]))
    assert _hooks(model) == 0


def test_mean_ablation_of_a_sequence_unit_substitutes_its_means():
    from tests.zoo import TokenGRU

    model = TokenGRU().eval()
    tokens = torch.randint(0, 11, (5, 6), generator=torch.Generator().manual_seed(8))
    means = channel_means(model, "gru", tokens)
    with torch.no_grad(), capture(model, "gru") as base:
        model(tokens)
    torch.testing.assert_close(means, base.act("gru").mean(dim=0).T)  # (d_model, pos)
    with torch.no_grad(), ablate(model, "gru", [1, 4], mode="mean", means=means), capture(model, "gru") as inner:
        model(tokens)
    torch.testing.assert_close(inner.act("gru")[:, :, [1, 4]], means[[1, 4]].T.expand(5, -1, -1))
    with pytest.raises(ConfigError, match=r"cannot ablate channels \[8\].*units are dimension 2"):
        with torch.no_grad(), ablate(model, "gru", [8]):
            model(tokens)
    with torch.no_grad(), ablate(model, "gru", [3], axes="conv"), capture(model, "gru") as old:
        model(tokens)
    assert bool((old.act("gru")[:, 3] == 0).all())  # axes= overrides: position 3 this time


def test_ablation_effect_on_a_language_model_reads_the_chosen_output():
    from tests.zoo import SelectOutput, tiny_gpt2

    model = tiny_gpt2()
    ids = torch.randint(0, 23, (6, 5), generator=torch.Generator().manual_seed(0))
    labels = torch.randint(0, 23, (6,), generator=torch.Generator().manual_seed(1))

    def last(out):
        return out.logits[:, -1]

    with pytest.raises(DataError, match=r"\(6, 5, 23\).*output="):
        ablation_effect(model, ids, labels, "transformer.h.0.mlp.act", [0, 3])
    ours = ablation_effect(model, ids, labels, "transformer.h.0.mlp.act", [0, 3], output=last)
    theirs = ablation_effect(SelectOutput(model, last), ids, labels, "model.transformer.h.0.mlp.act", [0, 3])
    assert torch.equal(ours.logit_change, theirs.logit_change)
    assert torch.equal(ours.base_accuracy, theirs.base_accuracy)
    assert ours.logit_change.abs().sum() > 0


def test_causal_check_on_a_tuple_model_with_output_equals_the_wrapper():
    from tests.zoo import SelectOutput, TupleNet

    model = TupleNet().eval()
    x = torch.rand(24, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    y = torch.arange(24) % 3
    top = torch.tensor([[0], [1], [2]])
    ours = causal_check(model, x, y, top, layer="act", n_random=3, output=0)
    theirs = causal_check(SelectOutput(model, lambda out: out[0]), x, y, top, layer="model.act", n_random=3)
    for field in ("base_accuracy", "top_drop", "random_drop", "top_logit_drop", "random_logit_drop", "cross_drop"):
        assert torch.equal(getattr(ours, field), getattr(theirs, field)), field
    assert ours.top_logit_drop.abs().sum() > 0


def test_unit_ablation_matches_ablating_each_channel_alone(gap_cnn):
    x = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    batched = unit_ablation(gap_cnn, x, "relu2", [0, 2, 5], batch=10)  # 2 replicas per pass: chunks of 2 and 1
    for row, channel in enumerate([0, 2, 5]):
        with torch.no_grad(), ablate(gap_cnn, "relu2", [channel]):
            expected = gap_cnn(x)
        torch.testing.assert_close(batched[row], expected)
    assert _hooks(gap_cnn) == 0


def test_unit_ablation_runs_more_inputs_than_batch_in_parts_of_batch(gap_cnn):
    x = torch.rand(7, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    whole = unit_ablation(gap_cnn, x, "relu2", [0, 2, 5])
    seen: list[int] = []
    handle = gap_cnn.register_forward_hook(lambda module, args, out: seen.append(int(out.shape[0])))
    try:
        parts = unit_ablation(gap_cnn, x, "relu2", [0, 2, 5], batch=3)
    finally:
        handle.remove()
    torch.testing.assert_close(parts, whole)
    assert seen == [3] * 7  # inputs 0-2 and 3-5: a pass per unit; input 6: its 3 copies in one pass


def test_unit_ablation_effect_bounds_every_forward_pass_by_batch(gap_cnn):
    x = torch.rand(9, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    y = torch.arange(9) % 3
    whole = unit_ablation_effect(gap_cnn, x, y, "relu2", [0, 1, 4], task="classification")
    sizes: list[int] = []
    handle = gap_cnn.register_forward_hook(lambda module, args, out: sizes.append(int(out.shape[0])))
    try:
        split = unit_ablation_effect(gap_cnn, x, y, "relu2", [0, 1, 4], task="classification", batch=4)
    finally:
        handle.remove()
    assert max(sizes) == 4 and sum(sizes) == 9 + 3 * 9  # the unablated pass, then each unit on every input
    torch.testing.assert_close(split.change, whole.change)
    torch.testing.assert_close(split.per_class, whole.per_class)
    with pytest.raises(ConfigError, match=r"^batch must be a positive integer; got 0\.$"):
        unit_ablation_effect(gap_cnn, x, y, "relu2", [0], task="classification", batch=0)


def test_unit_ablation_works_on_dense_blocks():
    from mechscope.models import ModularMLP, ModularMLPConfig, build_seeded

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


def _identity_net(n_in: int, n_hidden: int, readout: torch.Tensor) -> torch.nn.Sequential:
    model = torch.nn.Sequential(torch.nn.Linear(n_in, n_hidden, bias=False), torch.nn.ReLU(),
                                torch.nn.Linear(n_hidden, readout.shape[0], bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(n_hidden, n_in))
        model[2].weight.copy_(readout)
    return model.eval()


def test_unit_ablation_effect_classification_hand_computed():
    model = _identity_net(3, 3, torch.eye(3))  # logits = relu(x): zeroing unit k leaves all-zero logits on x = e_k
    effect = unit_ablation_effect(model, torch.eye(3), torch.tensor([0, 1, 2]), "1", [0, 1, 2], task="classification")
    assert effect.metric == "accuracy drop" and effect.units == (0, 1, 2)
    torch.testing.assert_close(effect.change, torch.tensor([0.0, 1 / 3, 1 / 3]))  # argmax of zeros is class 0
    torch.testing.assert_close(effect.per_class, torch.tensor([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))


def test_unit_ablation_effect_regression_is_the_mse_increase():
    model = _identity_net(2, 2, torch.tensor([[1.0, 1.0]]))  # y = x1 + x2 on positive inputs
    effect = unit_ablation_effect(model, torch.tensor([[1.0, 2.0]]), torch.tensor([3.0]), "1", [0, 1],
                                  task="regression")
    assert effect.metric == "MSE increase" and effect.per_class is None
    torch.testing.assert_close(effect.change, torch.tensor([1.0, 4.0]))  # predictions 2 and 1 for the target 3
    with pytest.raises(ConfigError, match="task must be 'classification' or 'regression'"):
        unit_ablation_effect(model, torch.ones(1, 2), torch.ones(1), "1", [0], task="ranking")  # type: ignore[arg-type]
