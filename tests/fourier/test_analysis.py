from __future__ import annotations

import json

import pytest

from mechscope.data import function_data, modular_data
from mechscope.errors import ConfigError
from mechscope.fourier import analyze_modular, gromov_modular_mlp
from mechscope.fourier.analysis import default_neuron_layer
from mechscope.fourier.construct import gromov_grokking_mlp
from mechscope.models import (
    GrokkingMLP,
    GrokkingMLPConfig,
    ModularMLP,
    ModularMLPConfig,
    TinyReLU,
    TinyReLUConfig,
    build_seeded,
)
from mechscope.serialize import to_json

P = 31
PLANTED = [3, 7, 12]
REQUIRED = {
    "key_frequencies",
    "energy_share",
    "top_k_energy",
    "restricted_loss",
    "excluded_loss",
    "test_loss",
    "accuracy_after_ablation",
}


@pytest.fixture(scope="module")
def gromov_analysis():
    model = gromov_grokking_mlp(P, PLANTED, width=768)
    return analyze_modular(model, data=modular_data(P, encoding="pairs", test_fraction=0.5))


def test_analyze_modular_recovers_gromovs_network(gromov_analysis):
    result = gromov_analysis
    assert result.key_frequencies == PLANTED
    assert result.test_accuracy == 1.0
    assert result.restricted_loss < 1e-10 < 1.0 < result.excluded_loss
    assert result.ablation["none"] == 1.0
    assert result.ablation["key_removed"] < 0.1 and result.ablation["others_removed"] == 1.0
    assert set(result.neurons.clusters()) == set(PLANTED)
    assert result.clock_pizza.algorithm == "clock"


def test_analyze_modular_json_has_the_documented_keys(gromov_analysis):
    payload = json.loads(json.dumps(to_json(gromov_analysis)))
    assert REQUIRED <= set(payload)
    assert payload["key_frequencies"] == PLANTED
    assert set(payload["energy_share"]) == {str(k) for k in range(1, P // 2 + 1)}
    assert payload["top_k_energy"]["3"] == pytest.approx(1.0)
    assert payload["neuron_clusters"]["cluster_sizes"] == {"3": 256, "7": 256, "12": 256}


def test_analyze_modular_reads_one_hot_models_without_data():
    result = analyze_modular(gromov_modular_mlp(P, PLANTED, width=768), share=0.99)
    assert result.key_frequencies == PLANTED
    assert result.neurons is not None and result.neurons.kind == "activations"


def test_analyze_modular_handles_the_mod_2_learner():
    model = build_seeded(ModularMLP, ModularMLPConfig(modulus=2), seed=0)
    result = analyze_modular(model, data=modular_data(2, n_train=100, n_test=100))
    assert result.modulus == 2
    assert result.key_frequencies == [1]  # Z_2 has one non-constant frequency
    assert set(to_json(result)["energy_share"]) == {"1"}


def test_default_neuron_layer_knows_the_built_in_models():
    assert default_neuron_layer(GrokkingMLP(GrokkingMLPConfig(modulus=5))) == "act"
    assert default_neuron_layer(ModularMLP(ModularMLPConfig(modulus=5))) == "hidden.0"


def test_analyze_modular_refuses_non_modular_data():
    with pytest.raises(ConfigError, match="needs modular-arithmetic data"):
        analyze_modular(TinyReLU(TinyReLUConfig()), data=function_data("sum", n_train=10, n_test=10))


def test_analyze_modular_refuses_other_operations():
    model = GrokkingMLP(GrokkingMLPConfig(modulus=5))
    with pytest.raises(ConfigError, match=r"\(a \+ b\) mod p"):
        analyze_modular(model, data=modular_data(5, "*", encoding="pairs"))


def test_the_toolbox_runs_on_the_grokking_transformer() -> None:
    """Same calls as on the MLP: embedding found, neurons read at "=", clock-or-pizza defined."""
    import torch

    from mechscope.fourier import analyze_modular
    from mechscope.fourier.tables import neuron_table
    from mechscope.models.grokking_transformer import GrokkingTransformer, GrokkingTransformerConfig

    torch.manual_seed(0)
    model = GrokkingTransformer(GrokkingTransformerConfig(modulus=7, d_model=8, n_heads=2, d_mlp=12))
    result = analyze_modular(model)
    assert result.modulus == 7 and result.neurons is not None and result.neurons.n_units == 12
    assert result.clock_pizza is not None
    table = neuron_table(model, "blocks.0.mlp.act")
    with torch.no_grad():
        from mechscope.capture import capture

        with capture(model, ["blocks.0.mlp.act"]) as store:
            model(torch.tensor([[2, 5]]))
    assert torch.allclose(table[2, 5], store.act("blocks.0.mlp.act")[0, -1])  # the "=" position
