"""One small workload per analysis family, runnable on a model on any device.

`build()` makes the model and its data on the CPU (seeded); `run(model, data)` runs the
family's analyses on the model wherever it is and returns the numbers they produce, moved to
the CPU. `tests/test_devices_follow_model.py` runs each workload with torch's default device
set to meta (a tensor made without an explicit device then fails) and, on a CUDA machine, on
the GPU against the CPU.

Labels, unit choices and ablated channels are fixed rather than read from argmax, so that a
near tie between two logits cannot make the two devices explain different things; what is
compared is listed per family with the tolerance it needs.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mechscope.attribution import GradCAM, Saliency, cascading_randomization, faithfulness
from mechscope.attribution.registry import METHODS, build_method
from mechscope.capture import capture, default_layer, describe_layers, record
from mechscope.capture.modes import model_device
from mechscope.circuits import (
    ablation_effect,
    activation_maps,
    causal_check,
    class_contributions,
    conv_connections,
    dataset_examples,
    depth_statistics,
    polysemanticity,
)
from mechscope.circuits.ablation import channel_means
from mechscope.data import DataBundle, function_data, modular_data
from mechscope.featurevis import InputSpace, RenderConfig, channel, evidence, render, standard_transforms
from mechscope.featurevis.visualize import count_units
from mechscope.fourier import analyze_modular, progress_measures
from mechscope.fourier.clock_pizza import gradient_symmetricity
from mechscope.fourier.construct import gromov_grokking_mlp
from mechscope.fourier.tables import logit_table, neuron_table
from mechscope.models import (
    DigitCNN,
    DigitCNNConfig,
    ModularMLP,
    ModularMLPConfig,
    TinyReLU,
    TinyReLUConfig,
    TrainConfig,
    build_seeded,
    train,
)
from mechscope.models.train import evaluate
from mechscope.models.grokking_train import GrokkingTrainConfig, train_grokking
from mechscope.probes import LinearProbe, MLPProbe, probe_by_layer, untrained_copy
from mechscope.probes.control import control_task
from mechscope.report import ReportConfig, build_report
from mechscope.symbolic import linearize, read_formula
from mechscope.serialize import to_json
from tests.conftest import TokenNet
from tests.zoo import image_bundle

Results = dict[str, Any]
"""Numbers by name: tensors (on the CPU), floats, ints, strings, or lists of them."""

CNN = DigitCNNConfig(image_size=8, channels=(4, 8), pools=1, gap=True, n_classes=4)
"""relu1 (4, 8, 8), relu2 (8, 4, 4), GAP, fc: 4 classes."""


@dataclass(frozen=True)
class Family:
    """A workload and how closely its numbers agree between a CPU and a CUDA run."""

    name: str
    build: Callable[[], tuple[nn.Module, Any]]  # model and data, on the CPU
    run: Callable[[nn.Module, Any], Results]  # the analyses; results on the CPU
    rtol: float = 1e-4  # relative tolerance of every compared number
    atol: float = 1e-5  # absolute tolerance: of a tensor, times its largest magnitude; of a float, as is
    loose: dict[str, float] = field(default_factory=dict)  # key prefix -> absolute tolerance, for counted numbers
    same_device_only: tuple[str, ...] = ()  # keys compared only between two runs on the same device


def _cnn() -> tuple[nn.Module, DataBundle]:
    return build_seeded(DigitCNN, CNN, seed=0).eval(), image_bundle((1, 8, 8), 4, n_train=48, n_test=24)


def _targets(n: int) -> Tensor:
    return torch.arange(n, device="cpu") % CNN.n_classes  # `run` may run with the default device on meta


def _attribution(model: nn.Module, data: DataBundle) -> Results:
    x = data.x_test[:6]
    out: Results = {}
    for name in METHODS:
        maps = build_method(name, model).attribute(x, _targets(6))
        assert maps.device == model_device(model)  # attribute returns maps on the model's device
        out[f"maps.{name}"] = maps.cpu()
    methods = {"saliency": Saliency(model), "gradcam": GradCAM(model)}
    faith = faithfulness(model, methods, x, _targets(6), n_steps=8)
    out["faithfulness.deletion_auc"] = [faith.deletion_auc[k] for k in methods]
    out["faithfulness.insertion"] = [faith.insertion[k] for k in methods]
    sanity = cascading_randomization(model, methods, x[:4], _targets(4))
    out["sanity.spearman"] = [sanity.spearman[k] for k in methods]
    return out


def _tokens() -> tuple[nn.Module, Tensor]:
    return TokenNet().eval(), torch.tensor([[0, 1, 2, 3], [4, 3, 2, 1], [1, 1, 0, 4]])


def _token_attribution(model: nn.Module, tokens: Tensor) -> Results:
    return {name: build_method(name, model).attribute(tokens, torch.tensor([0, 1, 1], device="cpu")).cpu()
            for name in ("gradient-x-input", "integrated-gradients")}


def _capture(model: nn.Module, data: DataBundle) -> Results:
    x = data.x_test
    store = record(model, ["relu1", "relu2", "fc"], x, batch_size=10, progress=False)
    with capture(model, ["relu2"]) as live:
        model(x[:3].to(model_device(model)))
    return {
        "record.relu1": store.act("relu1"), "record.relu2": store.act("relu2"), "record.fc": store.act("fc"),
        "capture.relu2": live.act("relu2").cpu(),
        "layers": [(row.name, row.output_shape) for row in describe_layers(model, x[:2])],
        "default_layer": default_layer(model, x[:1]),
    }


def _circuits(model: nn.Module, data: DataBundle) -> Results:
    x, y = data.x_test, data.y_test
    gap = class_contributions(model, data.x_train, data.y_train, layer="relu2", method="gap")
    grad = class_contributions(model, data.x_train, data.y_train, layer="relu2", method="gradient")
    top = torch.tensor([[0, 1, 2], [3, 4, 5], [6, 7, 0], [1, 3, 5]], device="cpu")  # fixed: no near-tied scores
    means = channel_means(model, "relu2", x)
    effect = ablation_effect(model, x, y, "relu2", [1, 6], mode="mean", means=means)
    check = causal_check(model, x, y, top, layer="relu2", n_random=3)
    found = dataset_examples(model, x, ["relu1", "relu2"], k=3, progress=False)
    poly = polysemanticity(found["relu2"], y, n_classes=4)
    stats = depth_statistics(model, x, ["relu1", "relu2"], progress=False)
    maps = activation_maps(model, x[:1])
    links = conv_connections(model, example=x[:1])
    return {
        "gap.contributions": gap.contributions, "gap.mean_maps": gap.mean_maps,
        "gradient.contributions": grad.contributions,
        "means": means,
        "ablation.logit_change": effect.logit_change,
        "ablation.accuracy": torch.stack([effect.base_accuracy, effect.ablated_accuracy]),
        "causal.logit_drop": torch.stack([check.top_logit_drop, check.random_logit_drop]),
        "causal.accuracy_drop": torch.stack([check.top_drop, check.random_drop]),
        # Values, not indices: inputs whose scores nearly tie may swap places on another device.
        "examples.top": found["relu2"].top.values, "examples.bottom": found["relu1"].bottom.values,
        "examples.indices_hold_the_values": _indices_hold_the_values(model, x, found["relu2"].top),
        "examples.crops": tuple(found["relu1"].crops(x).shape),
        "poly.label_counts": poly.label_counts.shape,
        "depth.mean_activation": [s.mean_activation for s in stats.layers],
        "maps.relu2": maps.maps["relu2"],
        "connections": [c.l2 for c in links],
    }


def _indices_hold_the_values(model: nn.Module, x: Tensor, ranked: Any) -> bool:
    """True when each unit's picked inputs score what the ranking says (relu2's maximum over positions)."""
    scores = record(model, ["relu2"], x, progress=False).act("relu2").flatten(2).amax(dim=2)  # (batch, channel)
    return bool(torch.allclose(scores.gather(0, ranked.indices.t()).t(), ranked.values, rtol=1e-5, atol=1e-6))


def _featurevis(model: nn.Module, data: DataBundle) -> Results:
    space = InputSpace.from_data(data.x_train)
    objective = channel("relu2", [0, 3, 5])
    config = RenderConfig(steps=6, param="fft", restarts=1)
    result = render(model, objective, space, config=config, transforms=standard_transforms(8), progress=False)
    found = evidence(model, objective, result.images, data.x_train, space=space)
    pixel = render(model, objective, space, config=RenderConfig(steps=4, restarts=2), progress=False)
    return {
        "fft.images": result.images, "fft.trace": result.trace, "fft.activation": result.activation,
        "evidence.activation": list(found.activation), "evidence.dataset_max": list(found.dataset_max),
        "pixel.activation": pixel.activation,
        "count_units": count_units(model, "relu2", data.x_test[:2]),
    }


def _grokking() -> tuple[nn.Module, DataBundle]:
    return gromov_grokking_mlp(11, [2, 5], width=24), modular_data(11, encoding="pairs", test_fraction=0.5)


def _fourier(model: nn.Module, data: DataBundle) -> Results:
    analysis = analyze_modular(model, data=data)
    summary = to_json(analysis)
    run = train_grokking(model, data, GrokkingTrainConfig(steps=2, log_every=1, snapshot_every=1), progress=False)
    progress = progress_measures(model, run.snapshots, analysis.key_frequencies, data=data)
    return {
        "logits": logit_table(model), "neurons": neuron_table(model, "act"),
        "key_frequencies": analysis.key_frequencies,
        "energy_share": list(summary["energy_share"].values()),
        "losses": [analysis.train_loss, analysis.test_loss, analysis.restricted_loss, analysis.excluded_loss],
        "accuracy_after_ablation": list(analysis.ablation.values()),
        "gradient_symmetricity": gradient_symmetricity(model, n_triplets=20),
        "train.history": [[r["train_loss"], r["test_loss"]] for r in run.history],
        "train.progress": [[r["train_loss"], r["restricted_loss"]] for r in progress],
    }


def _modular() -> tuple[nn.Module, DataBundle]:
    return build_seeded(ModularMLP, ModularMLPConfig(modulus=3, n_layers=4, hidden=6), seed=0).eval(), \
        modular_data(3, n_train=72, n_test=72)


def _probes(model: nn.Module, data: DataBundle) -> Results:
    pairs = data.extras["pairs_test"]
    labels = {"a": pairs[:, 0], "b": pairs[:, 1]}
    table = probe_by_layer(model, data.x_test, labels, ["hidden.0", "hidden.1"], probe=LinearProbe(), seeds=(0, 1))
    store = record(model, ["hidden.1"], data.x_test, progress=False)
    acts = store.act("hidden.1")
    mlp = MLPProbe(hidden_sizes=(8,), max_epochs=5, batch_size=16, stop_accuracy=None)
    mlp.fit(acts.to(model_device(model)), labels)  # the probe trains where its inputs are
    ridge = LinearProbe().fit(acts, {"sum": pairs.sum(dim=1).float()})
    control = control_task(data.x_test, labels, seed=3)
    fresh = untrained_copy(model, seed=5)
    assert model_device(fresh) == model_device(model)
    return {
        "by_layer.scores": [row.score for row in table.rows],
        "mlp.decision": mlp.decision_function(acts).cpu(),
        "ridge.coef": ridge.coef_.cpu(),
        "control": [group.values for group in control],
        "untrained": [p.detach().cpu() for p in fresh.parameters()],
    }


def _symbolic() -> tuple[nn.Module, DataBundle]:
    data = function_data("sum", n_train=64, n_test=64)
    model = build_seeded(TinyReLU, TinyReLUConfig(), seed=0)
    train(model, data, TrainConfig(epochs=30, batch_size=16, lr=1e-2), progress=False)
    return model.eval(), data


def _symbolic_run(model: nn.Module, data: DataBundle) -> Results:
    report = read_formula(model, data)
    local = linearize(model, data.x_test[:3], data=data.x_test)
    return {
        "formula": report.formulas[0].formula,
        "network_output": report.region_map.network_output,
        "formula_output": report.region_map.formula_output,
        "coefficients": report.region_map.regions[0].coefficients,
        "linearize.coefficients": local.coefficients, "linearize.intercepts": local.intercepts,
    }


def _training() -> tuple[nn.Module, DataBundle]:
    return build_seeded(DigitCNN, CNN, seed=0), image_bundle((1, 8, 8), 4, n_train=40, n_test=20)


def _train(model: nn.Module, data: DataBundle) -> Results:
    # SGD: its steps are linear in the gradient, so rounding differences between devices stay small
    # (Adam's first steps divide each gradient element by its magnitude, and a rounding-level
    # element near zero can step either way).
    config = TrainConfig(epochs=1, batch_size=16, lr=0.05, optimizer="sgd", momentum=0.9, max_shift=1, cosine=True)
    result = train(model, data, config, progress=False)
    return {
        "history": [[r["train_loss"], r["train_accuracy"]] for r in result.history],
        "test_accuracy": result.metrics["test_accuracy"],
        "weights": [p.detach().cpu() for p in model.parameters()],
        "evaluate": evaluate(model, data.x_test, data.y_test, "classification")["test_accuracy"],
    }


def _report(model: nn.Module, data: DataBundle) -> Results:
    with tempfile.TemporaryDirectory() as folder:
        index = build_report(model, Path(folder) / "report", data=data, quick=True, progress=False)
        return _report_results(index.parent / "report.json")


def _report_results(path: Path) -> Results:
    """Each section's error (None) and reason for not showing, the page count, and every number as JSON."""
    summary = json.loads(path.read_text())
    sections = summary["sections"]
    return {
        "errors": {s["key"]: s["error"] for s in sections},
        "reasons": {s["key"]: s["reason"] for s in sections},
        "pages": summary["pages"],
        "numbers": json.dumps(sections, sort_keys=True),
    }


def _tiny_report(kind: str) -> Callable[[], tuple[nn.Module, DataBundle]]:
    def build() -> tuple[nn.Module, DataBundle]:
        if kind == "modular":
            return _modular()
        return build_seeded(TinyReLU, TinyReLUConfig(), seed=0).eval(), function_data("sum", n_train=64, n_test=64)

    return build


def _small_report(model: nn.Module, data: DataBundle) -> Results:
    config = ReportConfig(k=3, max_units=4, featurevis_steps=2, featurevis_restarts=1, attribution_images=2,
                          faithfulness_images=4, sanity_images=2, probe_seeds=1, probe_inputs=60, circuit_draws=2,
                          ablation_inputs=40, article_probe=True)
    with tempfile.TemporaryDirectory() as folder:
        index = build_report(model, Path(folder) / "report", data=data, config=config, progress=False)
        return _report_results(index.parent / "report.json")


FAMILIES: tuple[Family, ...] = (
    # Faithfulness and sanity rank pixels: two nearly equal map values may rank the other way on the
    # GPU, which moves a curve by one pixel's effect; 2e-3 in probability covers it.
    Family("attribution", _cnn, _attribution, loose={"faithfulness": 2e-3, "sanity": 2e-3}),
    Family("token-attribution", _tokens, _token_attribution),
    Family("capture", _cnn, _capture),
    # Accuracies count argmax hits: a logit pair that nearly ties may flip one of 24 inputs (6 per class).
    Family("circuits", _cnn, _circuits, loose={"ablation.accuracy": 0.17, "causal.accuracy_drop": 0.17}),
    # Adam divides each gradient element by its magnitude: an element that rounding leaves near zero
    # can step differently on the two devices, which moves a pixel by a few thousandths (while the
    # objective, insensitive to that element, agrees closely).
    Family("featurevis", _cnn, _featurevis, rtol=1e-3, atol=1e-4, loose={"fft.images": 5e-3}),
    # Key frequencies come from planted weights (no near ties); accuracies count argmax hits of 121 pairs.
    Family("fourier", _grokking, _fourier, loose={"accuracy_after_ablation": 2 / 121}),
    # Probe scores count correct predictions on a test split of 14 inputs; the MLP probe trains with Adam.
    Family("probes", _modular, _probes, rtol=1e-3, atol=1e-4, loose={"by_layer": 2 / 14, "mlp.decision": 1e-2}),
    Family("symbolic", _symbolic, _symbolic_run),
    # Three SGD steps on 40 images; accuracies count argmax hits of 40 and 20 inputs (one flip allowed).
    Family("train", _training, _train, rtol=1e-3, atol=1e-4, loose={"history": 0.03, "test_accuracy": 0.05,
                                                                      "evaluate": 0.05}),
    # A report's numbers differ in their last digits between devices: on CUDA, sections must build
    # alike (no error, the same reasons and pages).
    Family("report-cnn", _cnn, _report, same_device_only=("numbers",)),
    Family("report-modular", _tiny_report("modular"), _small_report, same_device_only=("numbers",)),
    Family("report-function", _tiny_report("function"), _small_report, same_device_only=("numbers",)),
)
