from __future__ import annotations

import pytest
import torch

from mechscope.errors import ConfigError, DataError
from mechscope.probes import LinearProbe, evaluate_probe
from mechscope.probes.rigor import split_indices
from mechscope.serialize import to_json

SPEC_KEYS = {
    "heads", "all_heads_accuracy", "baseline_accuracy", "control_accuracy", "selectivity", "untrained_accuracy",
    "seeds",
}


def _data() -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    types = torch.randint(0, 12, (240,), generator=g)
    codes = 3.0 * torch.eye(12)  # every type on its own axis: any labelling is linearly decodable
    x = codes[types] + 0.05 * torch.randn(240, 12, generator=g)
    return x, {"a": types % 3, "b": types % 2}, types


def test_evaluate_probe_reports_every_control_and_seed():
    x, labels, types = _data()
    probe = LinearProbe()
    report = evaluate_probe(probe, x, labels, types=types, seeds=(0, 1, 2), untrained=torch.randn(240, 12))
    assert not hasattr(probe, "heads_")  # cloned per fit, never fitted in place
    assert report.heads.keys() == {"a", "b"} and report.seeds == (0, 1, 2) and len(report.runs) == 3
    assert report.all_heads_accuracy == pytest.approx(1.0)
    assert 0.0 <= report.baseline_accuracy < 0.5
    assert report.selectivity == pytest.approx(report.all_heads_accuracy - report.control_accuracy)
    assert report.untrained_accuracy is not None and report.untrained_accuracy < 0.6
    assert report.n_types == 12 and report.n_test == 24
    data = to_json(report)
    assert set(data) == SPEC_KEYS
    assert data["seeds"]["values"] == [0, 1, 2] and set(data["seeds"]["std"]) >= {"all_heads_accuracy", "heads"}
    assert "all heads right" in report.summary()


def test_evaluate_probe_without_untrained_reports_none():
    x, labels, types = _data()
    report = evaluate_probe(LinearProbe(), x, labels, types=types, seeds=(0,))
    assert report.untrained_accuracy is None and to_json(report)["untrained_accuracy"] is None
    assert report.all_heads_std == 0.0


def test_split_by_types_holds_out_whole_types():
    types = torch.arange(20).repeat(5)
    train, test = split_indices(100, 0.25, seed=0, types=types)
    held_out = set(types[test].tolist())
    assert len(held_out) == 5 and held_out.isdisjoint(types[train].tolist())
    assert train.numel() + test.numel() == 100


def test_evaluate_probe_type_split_scores_unseen_types():
    x, labels, types = _data()
    report = evaluate_probe(LinearProbe(), x, labels, types=types, seeds=(0, 1), split="types", test_fraction=0.25)
    assert report.split == "types" and report.n_test < 240
    assert report.control_accuracy < 0.9  # random labels of unseen types cannot be memorised


def test_split_indices_bad_fraction_raises():
    with pytest.raises(ConfigError, match="test_fraction must lie strictly between 0 and 1, got 1.5"):
        split_indices(10, 1.5, seed=0)


def test_evaluate_probe_no_seed_raises():
    x, labels, types = _data()
    with pytest.raises(ConfigError, match="seeds is empty"):
        evaluate_probe(LinearProbe(), x, labels, types=types, seeds=())


def test_evaluate_probe_untrained_length_mismatch_raises():
    x, labels, types = _data()
    with pytest.raises(DataError, match="untrained activations hold 10 examples, the trained ones 240"):
        evaluate_probe(LinearProbe(), x, labels, types=types, seeds=(0,), untrained=torch.zeros(10, 12))


def test_evaluate_probe_bad_split_raises():
    x, labels, types = _data()
    with pytest.raises(ConfigError, match="split must be 'examples' or 'types', got 'rows'"):
        evaluate_probe(LinearProbe(), x, labels, types=types, split="rows")  # type: ignore[arg-type]


def _many_types(n_types: int, n_per_type: int = 2) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
    """`n_types` inputs, each on its own axis, repeated; labels a = type % 3 and b = type % 2."""
    g = torch.Generator().manual_seed(0)
    types = torch.arange(n_types).repeat(n_per_type)
    x = 3.0 * torch.eye(n_types)[types] + 0.05 * torch.randn(types.numel(), n_types, generator=g)
    return x, {"a": types % 3, "b": types % 2}, types


def test_evaluate_probe_warns_when_a_type_split_holds_out_too_few_types():
    x, labels, types = _data()  # 12 types: a tenth held out is one type
    report = evaluate_probe(LinearProbe(), x, labels, types=types, seeds=(0, 1), split="types")
    assert len(report.warnings) == 2
    assert report.warnings[0].startswith("only 1 distinct input type(s) were held out")
    assert "below 10" in report.warnings[0]
    assert "held-out input type(s) in some split (fewer than 3 per class)" in report.warnings[1]
    assert to_json(report)["seeds"]["warnings"] == list(report.warnings)
    assert "warning: only 1 distinct input type(s)" in report.summary()
    assert set(to_json(report)) == SPEC_KEYS  # the headline keys stay as they are


def test_evaluate_probe_type_split_of_enough_types_has_no_warning():
    x, labels, types = _many_types(120)
    report = evaluate_probe(LinearProbe(), x, labels, types=types, seeds=(0, 1), test_fraction=0.25, split="types")
    assert report.warnings == ()  # 30 held-out types, at least 3 of every class of a and b


def test_evaluate_probe_warns_about_a_class_with_too_few_held_out_types():
    x, labels, types = _many_types(120)
    rare = torch.where(types < 4, torch.tensor(7), types % 3)  # class 7 of "a": only 4 types of 120
    report = evaluate_probe(LinearProbe(), x, {"a": rare}, types=types, seeds=(0,), test_fraction=0.25, split="types")
    assert len(report.warnings) == 1
    assert report.warnings[0].startswith("class 7 of 'a' has only ")


def test_evaluate_probe_example_split_never_warns_about_types():
    x, labels, types = _data()
    assert evaluate_probe(LinearProbe(), x, labels, types=types, seeds=(0,)).warnings == ()


@pytest.mark.parametrize("split", ["examples", "types"])
def test_reports_of_single_seeds_merge_into_the_report_of_all_seeds(split):
    """Probes fitted seed by seed (tasks on several workers) give exactly the report of one call over all seeds."""
    import dataclasses

    from mechscope.probes.rigor import merge_reports

    g = torch.Generator().manual_seed(1)
    x, labels, types = _data()
    x = x + 1.5 * torch.randn(x.shape, generator=g)  # noisy: scores differ from seed to seed
    untrained = torch.randn(240, 12, generator=g)
    kwargs = dict(types=types, untrained=lambda seed: untrained + seed, split=split)
    whole = evaluate_probe(LinearProbe(), x, labels, seeds=(0, 1, 2), **kwargs)
    merged = merge_reports([evaluate_probe(LinearProbe(), x, labels, seeds=(s,), **kwargs) for s in (0, 1, 2)])
    assert len({run.all_heads_accuracy for run in whole.runs}) > 1 and whole.all_heads_std > 0
    for f in dataclasses.fields(whole):
        if f.name in ("runs", "warnings"):
            continue
        assert getattr(merged, f.name) == getattr(whole, f.name), f.name
    assert to_json(list(merged.runs)) == to_json(list(whole.runs))
    assert set(whole.warnings) <= set(merged.warnings)


def test_merge_reports_refuses_different_probes():
    from mechscope.probes.rigor import merge_reports

    x, labels, types = _data()
    one = evaluate_probe(LinearProbe(), x, labels, types=types, seeds=(0,))
    other = evaluate_probe(LinearProbe(max_iter=5), x, labels, types=types, seeds=(1,))
    with pytest.raises(ConfigError, match="one probe"):
        merge_reports([one, other])
    with pytest.raises(ConfigError, match="at least one"):
        merge_reports([])
