from __future__ import annotations

import math

import pytest

from mechscope.errors import ConfigError
from mechscope.fourier import analyze_modular
from mechscope.models import GrokkingMLPConfig
from mechscope.models.checkpoint import load_checkpoint
from mechscope.models.grokking_train import GrokkingTrainConfig
from mechscope.recipes.grokking import train_grokking_mlp

# Small enough to grok in a few seconds on one core: p = 31, 60% of the pairs for training.
MODEL = GrokkingMLPConfig(modulus=31, d_embed=32, width=64)
TRAIN = GrokkingTrainConfig(steps=2000, lr=1e-2, weight_decay=1.0, snapshot_every=100)


@pytest.fixture(scope="module")
def grokked(tmp_path_factory):
    path = tmp_path_factory.mktemp("grokking") / "p31"
    result = train_grokking_mlp(path, model_config=MODEL, train_config=TRAIN, train_fraction=0.6, progress=False)
    ckpt = load_checkpoint(path)
    return result, ckpt, analyze_modular(ckpt.model, data=ckpt.data())


@pytest.mark.slow
def test_grokking_mlp_memorises_first_then_generalises(grokked):
    result, ckpt, _ = grokked
    assert result.metrics["train_accuracy"] == 1.0 and result.metrics["test_accuracy"] == 1.0
    memorised, grokked_at = ckpt.extra["memorised_at"], ckpt.extra["grokked_at"]
    assert memorised is not None and grokked_at is not None
    assert grokked_at >= memorised + 300  # measured: memorised by step 50, generalised near step 1000
    assert len(ckpt.history) == 201 and ckpt.history[-1]["step"] == 2000


@pytest.mark.slow
def test_restricted_loss_tracks_test_loss_and_excluded_loss_is_far_above_train_loss(grokked):
    _, _, analysis = grokked
    assert analysis.key_frequencies  # measured: 6-7 of the 15 frequencies
    assert len(analysis.key_frequencies) <= 10
    assert analysis.restricted_loss <= analysis.test_loss + 1e-3
    assert analysis.test_loss < 1e-2
    assert analysis.excluded_loss > 1.0  # measured 2.4-2.6; chance is log(31) = 3.43
    assert analysis.excluded_loss > 1e5 * analysis.train_loss
    assert analysis.ablation["key_removed"] < 0.2
    assert analysis.ablation["others_removed"] > 0.99


@pytest.mark.slow
def test_progress_measures_show_circuit_formation_before_cleanup(grokked):
    _, ckpt, _ = grokked
    rows = ckpt.extra["progress"]
    assert [r["step"] for r in rows][:3] == [0.0, 100.0, 200.0] and rows[-1]["step"] == 2000.0
    assert all(math.isfinite(r["restricted_loss"]) and math.isfinite(r["excluded_loss"]) for r in rows)
    first, last = rows[1], rows[-1]  # step 100: memorised, not yet generalised
    assert first["test_loss"] > 1.0
    assert last["excluded_loss"] > 1.5 * first["excluded_loss"]  # measured 1.0-1.4 -> 2.5-2.7 over seeds 0-2
    assert last["restricted_loss"] < 1e-2 * first["restricted_loss"]


@pytest.mark.slow
def test_default_recipe_reaches_the_published_sparsity(tmp_path):
    # The defaults: p = 59, half the pairs, d_embed 64, width 128, 5000 full-batch AdamW steps.
    # Measured (seed 0): 8 key frequencies holding 0.933 of the energy on one thread (0.905 on two),
    # test accuracy 1.0, about 21 s of training; seeds 1 and 2 also 8. Nanda et al. find 5-8.
    result = train_grokking_mlp(tmp_path / "p59", seed=0, progress=False)
    ckpt = load_checkpoint(tmp_path / "p59")
    assert result.epochs_run == GrokkingTrainConfig().steps == 5000
    assert result.metrics["test_accuracy"] >= 0.99
    assert ckpt.extra["key_share"] == 0.9
    assert 1 <= len(ckpt.extra["key_frequencies"]) <= 8


def test_train_grokking_mlp_rejects_a_train_fraction_outside_0_1(tmp_path):
    with pytest.raises(ConfigError, match="train_fraction must be in"):
        train_grokking_mlp(tmp_path / "x", train_fraction=1.0, progress=False)
