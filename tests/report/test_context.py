from __future__ import annotations

import pytest

from mechscope.errors import ConfigError
from mechscope.models import ModularMLP, ModularMLPConfig, TinyReLU, TinyReLUConfig, build_seeded
from mechscope.report import ReportConfig
from mechscope.report.context import make_context, unit_layers
from tests.report.conftest import EVIL_LAYER, EvilNet, evil_data


def test_unit_layers_pick_activation_outputs():
    assert unit_layers(EvilNet(), image=True) == [EVIL_LAYER, "relu2"]
    mlp = build_seeded(ModularMLP, ModularMLPConfig(modulus=2, n_layers=5, hidden=3), 0)
    assert unit_layers(mlp, image=False) == ["hidden.0", "hidden.1", "hidden.2"]
    assert unit_layers(TinyReLU(TinyReLUConfig()), image=False) == ["act"]


def test_make_context_reads_what_the_model_is(tmp_path):
    ctx = make_context(EvilNet(), tmp_path, data=evil_data(), settings=ReportConfig(), home=None, progress=False)
    assert ctx.is_image and ctx.is_conv and ctx.is_classifier
    assert ctx.class_names == evil_data().class_names
    assert [row.name for row in ctx.layers][:2] == ["conv1", EVIL_LAYER]


def test_make_context_without_data_knows_no_shapes(tmp_path):
    model = build_seeded(ModularMLP, ModularMLPConfig(modulus=2, n_layers=3, hidden=2), 0)
    ctx = make_context(model, tmp_path, data=None, settings=ReportConfig(), home=None, progress=False)
    assert not ctx.is_image and not ctx.is_classifier and ctx.layers == [] and ctx.data_kind == "unknown"


def test_make_context_refuses_other_sources(tmp_path):
    with pytest.raises(ConfigError, match="checkpoint folder, a Checkpoint or an nn.Module"):
        make_context(42, tmp_path, data=None, settings=ReportConfig(), home=None, progress=False)  # type: ignore[arg-type]


def test_report_config_validates_sizes():
    with pytest.raises(ConfigError, match="featurevis_steps"):
        ReportConfig(featurevis_steps=0)
    assert ReportConfig.quick().featurevis_steps < ReportConfig().featurevis_steps
    bads: tuple[object, ...] = ((), [], ("relu", ""), "relu")
    for bad in bads:
        with pytest.raises(ConfigError, match="ReportConfig.layers must be None or a non-empty tuple"):
            ReportConfig(layers=bad)  # type: ignore[arg-type]


def test_report_config_max_units_is_a_count_or_none_for_every_unit():
    assert (ReportConfig().max_units, ReportConfig.quick().max_units) == (128, 64)
    assert ReportConfig(max_units=None).max_units is None
    for bad in (0, -3, True, 2.5, "all"):
        with pytest.raises(ConfigError, match=r"ReportConfig.max_units must be a positive integer or None \(every"):
            ReportConfig(max_units=bad)  # type: ignore[arg-type]


def test_context_pages_the_named_calls_of_a_residual_net(tmp_path):
    from mechscope.errors import LayerNameError
    from tests.zoo import TinyResNet, image_bundle

    model, data = TinyResNet().eval(), image_bundle((1, 16, 16), 4)
    chosen = ReportConfig.quick(layers=("layer1.0.relu:1", "layer2.1"))
    ctx = make_context(model, tmp_path, data=data, settings=chosen, home=None, progress=False)
    assert ctx.unit_layers == ["layer1.0.relu:1", "layer2.1"]
    with pytest.raises(LayerNameError, match="Unknown layer 'layer9'"):
        make_context(model, tmp_path, data=data, settings=ReportConfig(layers=("layer9",)), home=None, progress=False)


def test_context_reads_the_explained_output_of_dict_and_tuple_models(tmp_path):
    from mechscope.errors import UnsupportedModelError
    from tests.zoo import DictNet, TupleNet, image_bundle

    data = image_bundle((1, 8, 8), 3)
    ctx = make_context(DictNet(), tmp_path / "a", data=data, settings=ReportConfig(), home=None, progress=False)
    assert ctx.is_classifier and ctx.explained(data.x_test[:2]).shape == (2, 3)
    ctx = make_context(TupleNet(), tmp_path / "b", data=data, settings=ReportConfig(), home=None, progress=False)
    with pytest.raises(UnsupportedModelError, match=r"ambiguous.*ReportConfig\(output=\.\.\.\) \(now auto\)"):
        ctx.is_classifier
    ctx = make_context(TupleNet(), tmp_path / "c", data=data, settings=ReportConfig(output=0), home=None,
                       progress=False)
    assert ctx.is_classifier


def test_report_config_output_is_a_key_an_index_or_a_callable():
    assert ReportConfig.quick(output="logits").output == "logits"
    assert ReportConfig(output=len).output is len  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="ReportConfig.output"):
        ReportConfig(output=True)
    with pytest.raises(ConfigError, match="ReportConfig.output"):
        ReportConfig(output=1.5)  # type: ignore[arg-type]
