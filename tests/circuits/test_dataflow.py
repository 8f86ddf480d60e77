from __future__ import annotations

import pytest
import torch
from torch import nn

from mechscope.circuits.dataflow import layer_graph
from mechscope.errors import UnsupportedModelError
from tests.zoo import DictNet, TinyResNet, TinyVGG, tiny_vit

# torchvision's BasicBlock computes relu(bn2(conv2(relu(bn1(conv1(x))))) + identity), identity = x or
# downsample(x). So a block's output is made of its conv2 and of whatever its input is made of (or
# of its downsample conv), and the next block's conv1 and downsample conv read all of those.
STEM = {"conv1"}
LAYER1_0_OUT = {"layer1.0.conv2"} | STEM  # identity: the stem's output
LAYER1_1_OUT = {"layer1.1.conv2"} | LAYER1_0_OUT
LAYER2_0_OUT = {"layer2.0.conv2", "layer2.0.downsample.0"}  # identity: the downsample branch
LAYER2_1_OUT = {"layer2.1.conv2"} | LAYER2_0_OUT
RESNET_SOURCES = {
    "layer1.0.conv1": STEM,
    "layer1.0.conv2": {"layer1.0.conv1"},
    "layer1.1.conv1": LAYER1_0_OUT,
    "layer1.1.conv2": {"layer1.1.conv1"},
    "layer2.0.conv1": LAYER1_1_OUT,
    "layer2.0.conv2": {"layer2.0.conv1"},
    "layer2.0.downsample.0": LAYER1_1_OUT,
    "layer2.1.conv1": LAYER2_0_OUT,
    "layer2.1.conv2": {"layer2.1.conv1"},
    "fc": LAYER2_1_OUT,  # through GAP and flatten
}


class CheckedResNet(TinyResNet):
    """TinyResNet with an input check torch.fx cannot trace: the autograd graph is read instead."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError("images only")
        return super().forward(x)


class Concat(nn.Module):
    """Two convs (3 and 5 channels) concatenated into a third conv (8 input channels), then a head."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Conv2d(1, 3, 1)
        self.b = nn.Conv2d(1, 5, 3, padding=1)
        self.c = nn.Conv2d(8, 2, 1)
        self.fc = nn.Linear(2, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat([self.a(x), torch.relu(self.b(x))], dim=1)
        return self.fc(self.c(nn.functional.max_pool2d(y, 2)).mean(dim=(2, 3)))


class CheckedConcat(Concat):
    """Concat with an input check torch.fx cannot trace."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError("images only")
        return super().forward(x)


class Branchy(nn.Module):
    """Data-dependent control flow: conv b runs only when the input sums to more than 0."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(1, 3, 1)
        self.b = nn.Conv2d(3, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x)) if x.sum() > 0 else self.a(x)


def _sources(graph, targets) -> dict[str, set[str]]:
    return {t: {feed.source for feed in graph.sources(t)} for t in targets}


def test_layer_graph_resnet_follows_the_residual_dataflow():
    graph = layer_graph(TinyResNet())
    assert graph.method == "fx"
    assert _sources(graph, RESNET_SOURCES) == RESNET_SOURCES
    assert graph.sources("conv1") == ()
    assert all(feed.offset == 0 for feed in graph.feeds if feed.target != "fc")


def test_layer_graph_reads_the_autograd_graph_when_fx_cannot_trace():
    model, x = CheckedResNet(), torch.rand(2, 1, 16, 16)
    graph = layer_graph(model, example=x)
    assert graph.method == "autograd"
    assert _sources(graph, RESNET_SOURCES) == RESNET_SOURCES
    traced = layer_graph(TinyResNet())
    assert graph.order == traced.order
    widths = {n: m for n, m in model.named_modules()}

    def aligned(feed):
        src, tgt = widths[feed.source], widths[feed.target]
        out = getattr(src, "out_channels", None) or src.out_features
        into = getattr(tgt, "in_channels", None) or tgt.in_features
        return feed.aligned(out, into)

    assert [(f.source, f.target, aligned(f)) for f in graph.feeds] == [
        (f.source, f.target, aligned(f)) for f in traced.feeds
    ]
    assert all(aligned(f) == 0 for f in graph.feeds)


def test_layer_graph_names_calls_and_stops_paths_at_stops():
    graph = layer_graph(TinyResNet(), stops=["relu", "layer1.0.relu", "layer1.0.relu:1"])
    assert [f.source for f in graph.sources("layer1.0.conv2")] == ["layer1.0.relu"]
    assert [f.source for f in graph.sources("layer1.1.conv1")] == ["layer1.0.relu:1"]
    assert [f.source for f in graph.producers("layer1.0.relu")] == ["layer1.0.conv1"]
    assert [f.source for f in graph.producers("layer1.0.relu:1")] == ["relu", "layer1.0.conv2"]  # a residual sum
    assert [f.source for f in graph.producers("layer1.0.conv2")] == ["layer1.0.conv2"]


def test_layer_graph_concatenation_offsets_in_both_readings():
    traced, walked = layer_graph(Concat()), layer_graph(CheckedConcat(), example=torch.rand(2, 1, 6, 6))
    assert (traced.method, walked.method) == ("fx", "autograd")
    for graph in (traced, walked):
        assert [(f.source, f.offset, f.is_part) for f in graph.sources("c")] == [("a", 0, True), ("b", 3, True)]
        assert graph.sources("fc")[0].aligned(2, 2) == 0
        assert graph.sources("c")[0].aligned(3, 8) == 0 and graph.sources("c")[1].aligned(5, 8) == 3


def test_layer_graph_feeds_through_a_spatial_mean_and_a_dict_output():
    (feed,) = layer_graph(DictNet()).sources("fc")
    assert (feed.source, feed.offset) == ("conv", 0)


def test_layer_graph_sequential_vgg():
    graph = layer_graph(TinyVGG())
    assert [(f.source, f.target) for f in graph.feeds] == [
        ("features.0", "features.3"), ("features.3", "classifier.0"), ("classifier.0", "classifier.2")
    ]
    assert graph.sources("classifier.0")[0].aligned(12, 48) is None  # flattened 12x2x2: no one-to-one map


def test_layer_graph_untraceable_without_example_says_so():
    with pytest.raises(UnsupportedModelError, match=r"torch.fx cannot trace it \(TraceError.*Pass example="):
        layer_graph(Branchy())


def test_layer_graph_follows_the_path_one_forward_pass_took():
    assert [(f.source, f.target) for f in layer_graph(Branchy(), example=torch.ones(1, 1, 2, 2)).feeds] == [("a", "b")]
    assert layer_graph(Branchy(), example=-torch.ones(1, 1, 2, 2)).feeds == ()


def test_layer_graph_failed_forward_pass_says_so():
    with pytest.raises(UnsupportedModelError, match=r"forward pass on the example \(shape \(2, 3\)\) failed: ValueError"):
        layer_graph(CheckedResNet(), example=torch.rand(2, 3))


def test_layer_graph_hugging_face_vit_ends_paths_at_attention():
    model = tiny_vit()
    graph = layer_graph(model, example=torch.rand(2, 3, 8, 8))
    assert graph.method == "autograd"
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    attention_scores = [n for n in names if n.rsplit(".", 1)[-1] in ("query", "key", "q_proj", "k_proj")]
    assert len(attention_scores) == 4
    assert not [f for f in graph.feeds if f.source in attention_scores]  # queries and keys only weigh positions
    patch = next(n for n, m in model.named_modules() if isinstance(m, nn.Conv2d))
    assert patch in {f.source for f in graph.sources("classifier")}  # the residual stream carries it to the head
    assert all(f.aligned(16, 16) == 0 for f in graph.sources("classifier"))
