from __future__ import annotations

import pytest

from mechscope.data import modular_data
from mechscope.errors import ConfigError
from mechscope.fourier import restricted_loss
from mechscope.fourier.losses import table_loss
from mechscope.fourier.progress import progress_measures, split_pairs
from mechscope.fourier.tables import logit_table
from mechscope.models import GrokkingMLP, GrokkingMLPConfig, build_seeded
from mechscope.models.grokking_train import GrokkingTrainConfig, train_grokking


def test_progress_measures_replay_each_snapshot():
    data = modular_data(11, encoding="pairs", seed=0)
    model = build_seeded(GrokkingMLP, GrokkingMLPConfig(modulus=11, d_embed=8, width=16), seed=0)
    run = train_grokking(model, data, GrokkingTrainConfig(steps=30, snapshot_every=10), progress=False)
    rows = progress_measures(model, run.snapshots, [1, 2], data=data)
    assert [r["step"] for r in rows] == [0.0, 10.0, 20.0, 30.0]
    train_pairs, test_pairs = split_pairs(data)
    logits = logit_table(model)
    assert rows[-1]["train_loss"] == pytest.approx(run.metrics["train_loss"], rel=1e-5)
    assert rows[-1]["test_loss"] == pytest.approx(table_loss(logits, pairs=test_pairs), rel=1e-9)
    assert rows[-1]["restricted_loss"] == pytest.approx(restricted_loss(logits, [1, 2], pairs=test_pairs), rel=1e-9)
    assert rows[0]["train_loss"] > rows[-1]["train_loss"]


def test_split_pairs_needs_modular_data():
    data = modular_data(5)
    object.__setattr__(data, "extras", {})
    with pytest.raises(ConfigError, match="modular_data"):
        split_pairs(data)
