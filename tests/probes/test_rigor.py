from __future__ import annotations

import pytest
import torch

from mechscope.errors import ConfigError, DataError
from mechscope.probes import LinearProbe, evaluate_probe, split_indices

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
    x, targets, types = _data()
    probe = LinearProbe()
    report = evaluate_probe(probe, x, targets, types=types, seeds=(0, 1, 2), untrained=torch.randn(240, 12))
    assert not hasattr(probe, "heads_")  # cloned per fit, never fitted in place
    assert report.heads.keys() == {"a", "b"} and report.seeds == (0, 1, 2) and len(report.runs) == 3
    assert report.all_heads_accuracy == pytest.approx(1.0)
    assert 0.0 <= report.baseline_accuracy < 0.5
    assert report.selectivity == pytest.approx(report.all_heads_accuracy - report.control_accuracy)
    assert report.untrained_accuracy is not None and report.untrained_accuracy < 0.6
    assert report.n_types == 12 and report.n_test == 24
    data = report.to_dict()
    assert set(data) == SPEC_KEYS
    assert data["seeds"]["values"] == [0, 1, 2] and set(data["seeds"]["std"]) >= {"all_heads_accuracy", "heads"}
    assert "all heads right" in report.summary()


def test_evaluate_probe_without_untrained_reports_none():
    x, targets, types = _data()
    report = evaluate_probe(LinearProbe(), x, targets, types=types, seeds=(0,))
    assert report.untrained_accuracy is None and report.to_dict()["untrained_accuracy"] is None
    assert report.all_heads_std == 0.0


def test_split_by_types_holds_out_whole_types():
    types = torch.arange(20).repeat(5)
    train, test = split_indices(100, 0.25, seed=0, types=types)
    held_out = set(types[test].tolist())
    assert len(held_out) == 5 and held_out.isdisjoint(types[train].tolist())
    assert train.numel() + test.numel() == 100


def test_evaluate_probe_type_split_scores_unseen_types():
    x, targets, types = _data()
    report = evaluate_probe(LinearProbe(), x, targets, types=types, seeds=(0, 1), split="types", test_fraction=0.25)
    assert report.split == "types" and report.n_test < 240
    assert report.control_accuracy < 0.9  # random labels of unseen types cannot be memorised


def test_split_indices_bad_fraction_raises():
    with pytest.raises(ConfigError, match="test_fraction must lie strictly between 0 and 1, got 1.5"):
        split_indices(10, 1.5, seed=0)


def test_evaluate_probe_no_seed_raises():
    x, targets, types = _data()
    with pytest.raises(ConfigError, match="seeds is empty"):
        evaluate_probe(LinearProbe(), x, targets, types=types, seeds=())


def test_evaluate_probe_untrained_length_mismatch_raises():
    x, targets, types = _data()
    with pytest.raises(DataError, match="untrained activations hold 10 examples, the trained ones 240"):
        evaluate_probe(LinearProbe(), x, targets, types=types, seeds=(0,), untrained=torch.zeros(10, 12))


def test_evaluate_probe_bad_split_raises():
    x, targets, types = _data()
    with pytest.raises(ConfigError, match="split must be 'examples' or 'types', got 'rows'"):
        evaluate_probe(LinearProbe(), x, targets, types=types, split="rows")  # type: ignore[arg-type]
