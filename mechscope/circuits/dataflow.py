"""Which conv and linear layers feed which, read from the model's real dataflow.

A conv (or linear) layer reads whatever reaches its input through elementwise ops,
activations, norms, dropout, pooling, reshapes, residual adds and concatenation: every
conv or linear layer at the far end of such a path is one of its *sources*. At an add
the layer reads the sum of its sources, so each summand is reported as its own edge; at a
concatenation each source lands at its own channel offset. `layer_graph` finds the edges

1. by symbolic tracing (`torch.fx.symbolic_trace`): no forward pass, one graph for every
   input; or, where the model cannot be traced (data-dependent control flow, checks on
   input shapes, most Hugging Face models),
2. from the autograd graph of one forward pass on an example input: forward hooks record
   the `grad_fn` of every layer output, and the graph is walked back from each layer's
   input to the outputs of earlier layers.

Any other op (a matmul between positions, an embedding lookup, an op it does not know)
ends a path: attention mixes positions, so the output projection is not wired channel by
channel to the value projection. When neither way works, `layer_graph` raises
UnsupportedModelError instead of pairing layers by registration order, which on residual
nets misses main-path edges and invents shortcut ones.

Example:
    >>> graph = layer_graph(resnet)
    >>> [feed.source for feed in graph.sources("layer1.1.conv1")]
    ['conv1', 'layer1.0.conv2']
"""

from __future__ import annotations

import operator
import re
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn

from mechscope.capture.calls import call_name
from mechscope.capture.modes import eval_mode, model_device
from mechscope.capture.names import split_layer
from mechscope.errors import UnsupportedModelError

__all__ = ["WEIGHT_LAYERS", "Feed", "LayerGraph", "Method", "layer_graph"]

WEIGHT_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
"""Modules whose weights connect units: the nodes of a LayerGraph."""

Method = Literal["fx", "autograd"]
"""How a LayerGraph was read: symbolic tracing, or the autograd graph of one forward pass."""


@dataclass(frozen=True)
class Feed:
    """One path from a layer's output into another layer's input (or output)."""

    source: str  # layer whose output is read: a conv/linear module, or one of the `stops`
    target: str  # layer reading it
    offset: int | None  # unit of `target` that unit 0 of `source` lands on; None: a reshape or reduction lies between
    is_part: bool = False  # `source` fills only some of `target`'s units (a concatenation along the unit axis)

    def aligned(self, source_width: int, target_width: int) -> int | None:
        """First unit of `target` that `source`'s units map onto one to one, or None when unknown.

        Without a concatenation the widths must agree. A path through a reshape or
        reduction keeps the units when they do (global average pooling then flatten).
        """
        if self.is_part:
            fits = self.offset is not None and self.offset + source_width <= target_width
            return self.offset if fits else None
        return 0 if self.offset in (0, None) and source_width == target_width else None


@dataclass(frozen=True)
class LayerGraph:
    """The conv/linear layers of a model and the paths between them."""

    method: Method  # "fx" (symbolic trace) or "autograd" (one forward pass)
    order: tuple[str, ...]  # conv/linear layers and stops, in the order they first ran
    feeds: tuple[Feed, ...]  # into each conv/linear layer's input; by target, then source, in run order
    outputs: Mapping[str, tuple[Feed, ...]] = field(repr=False)  # layer -> what its output is made of

    def sources(self, target: str) -> tuple[Feed, ...]:
        """The feeds into `target`'s input, earliest source first."""
        return tuple(feed for feed in self.feeds if feed.target == target)

    def producers(self, layer: str) -> tuple[Feed, ...]:
        """What `layer`'s output is made of: the conv/linear layers (and stops) whose outputs
        reach it through elementwise ops, norms, pooling, adds and concatenation.

        A conv/linear layer is its own producer. `layer` names one call (`relu` the first,
        `relu:1` the second; see `mechscope.capture.names`); a block (a module with
        children) is read at its last op. Empty when the layer did not run or only opaque
        ops (an embedding, attention) lead to it.
        """
        return self.outputs.get(layer, ())


def layer_graph(model: nn.Module, *, example: Tensor | None = None, stops: Iterable[str] = ()) -> LayerGraph:
    """Read which conv/linear layers feed which from the model's traced dataflow.

    Args:
        model: Any module.
        example: A batch of inputs. Used only when torch.fx cannot trace the model: the
            autograd graph of one forward pass on it is read instead (with data-dependent
            control flow, the path this input took). Without it, mechscope image models (a
            `config` with `in_channels` and `image_size`) run on zeros.
        stops: More layers whose outputs count as sources (the unit layers of a report),
            each one call (`name` or `name:k`): a path ends at the first one it meets.

    Returns:
        The LayerGraph.

    Raises:
        UnsupportedModelError: torch.fx cannot trace the model and there is no example,
            or the forward pass on it fails or records no autograd graph.
        LayerNameError: a name in `stops` is not a layer of `model`.

    Example:
        >>> [f.source for f in layer_graph(resnet).sources("layer2.0.downsample.0")]
        ['conv1', 'layer1.0.conv2', 'layer1.1.conv2']
    """
    stop_names = list(dict.fromkeys(stops))
    for name in stop_names:
        split_layer(model, name)
    traced = _fx_trace(model)
    if isinstance(traced, fx.Graph):
        return _FxFlow(model, traced, stop_names).graph()
    given = example
    if example is None:
        example = _default_example(model)
    if example is None:
        raise UnsupportedModelError(
            f"cannot read the dataflow of {type(model).__name__}: torch.fx cannot trace it ({traced}). "
            "Pass example= (a small batch of inputs) to read the autograd graph of one forward pass instead."
        )
    try:
        return _autograd_flow(model, example, stop_names)
    except UnsupportedModelError as err:
        raise UnsupportedModelError(
            f"cannot read the dataflow of {type(model).__name__}: torch.fx cannot trace it ({traced}), and {err}"
            + ("" if given is not None else " Pass example= with inputs the model accepts.")
        ) from None


# ----- torch.fx ---------------------------------------------------------------------------

_FX_CACHE: weakref.WeakKeyDictionary[nn.Module, tuple[tuple[tuple[str, int], ...], fx.Graph | str]] = (
    weakref.WeakKeyDictionary()
)

# Leaf modules that keep the unit axis and its index (channel i in, channel i out).
_KEEP_MODULES: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
    nn.Tanh, nn.Sigmoid, nn.Softplus, nn.Softsign, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Hardshrink,
    nn.Softshrink, nn.Tanhshrink, nn.Threshold, nn.LogSigmoid, nn.Identity,
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.GroupNorm, nn.LayerNorm, nn.RMSNorm,
    nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d, nn.LocalResponseNorm,
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout,
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d,
    nn.AdaptiveMaxPool3d, nn.LPPool1d, nn.LPPool2d, nn.Upsample, nn.UpsamplingNearest2d, nn.UpsamplingBilinear2d,
    nn.ZeroPad2d, nn.ConstantPad1d, nn.ConstantPad2d, nn.ConstantPad3d, nn.ReflectionPad1d, nn.ReflectionPad2d,
    nn.ReplicationPad1d, nn.ReplicationPad2d, nn.ReplicationPad3d,
)
_RESHAPE_MODULES: tuple[type[nn.Module], ...] = (nn.Flatten, nn.Unflatten)

_KEEP_FUNCTIONS: frozenset[Callable[..., Any]] = frozenset({
    operator.add, operator.sub, operator.mul, operator.truediv, operator.neg, operator.pos, operator.pow,
    operator.iadd, operator.isub, operator.imul, operator.itruediv,
    torch.add, torch.sub, torch.mul, torch.div, torch.neg, torch.relu, torch.relu_, torch.sigmoid, torch.tanh,
    torch.abs, torch.clamp, torch.exp, torch.sqrt, torch.square,
    F.relu, F.relu_, F.relu6, F.elu, F.selu, F.celu, F.gelu, F.silu, F.mish, F.leaky_relu, F.hardswish,
    F.hardsigmoid, F.hardtanh, F.softplus, F.sigmoid, F.tanh, F.prelu,
    F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout,
    F.batch_norm, F.layer_norm, F.group_norm, F.instance_norm, F.rms_norm,
    F.max_pool1d, F.max_pool2d, F.max_pool3d, F.avg_pool1d, F.avg_pool2d, F.avg_pool3d,
    F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d,
    F.adaptive_max_pool1d, F.adaptive_max_pool2d, F.adaptive_max_pool3d, F.interpolate, F.pad,
})
_KEEP_METHODS = frozenset({
    "add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_", "neg", "relu", "relu_", "sigmoid", "sigmoid_",
    "tanh", "tanh_", "clamp", "clamp_", "clamp_min", "clamp_min_", "abs", "exp", "sqrt", "pow", "square",
    "contiguous", "clone", "float", "double", "half", "bfloat16", "to", "type_as", "detach",
})
_RESHAPE_FUNCTIONS: frozenset[Callable[..., Any]] = frozenset({
    torch.flatten, torch.reshape, torch.transpose, torch.permute, torch.squeeze, torch.unsqueeze, torch.narrow,
    operator.getitem, torch.max, torch.min,
})
_RESHAPE_METHODS = frozenset({
    "view", "reshape", "flatten", "unflatten", "transpose", "permute", "squeeze", "unsqueeze", "expand",
    "expand_as", "t", "view_as", "reshape_as", "narrow", "max", "min",
})
_REDUCE_FUNCTIONS: frozenset[Callable[..., Any]] = frozenset({torch.mean, torch.sum, torch.amax, torch.amin})
_REDUCE_METHODS = frozenset({"mean", "sum", "amax", "amin"})
_CAT_FUNCTIONS: frozenset[Callable[..., Any]] = frozenset({torch.cat, torch.concat, torch.concatenate})


class _Route(NamedTuple):
    """How one source's units sit in a tensor."""

    offset: int | None  # index, along the unit axis, of the source's unit 0
    axis: int | None  # the unit axis: >= 0 from the front, -1 for the last; None when lost
    ndim: int | None  # dimensions of the tensor, when known
    part: bool = False  # a concatenation along the unit axis lies between


_Routes = dict[str, _Route]


def _fx_trace(model: nn.Module) -> fx.Graph | str:
    """The traced graph of `model`, or why torch.fx cannot trace it (cached per model)."""
    signature = tuple((name, id(module)) for name, module in model.named_modules())
    cached = _FX_CACHE.get(model)
    if cached is not None and cached[0] == signature:
        return cached[1]
    try:
        result: fx.Graph | str = fx.symbolic_trace(model).graph
    except Exception as err:  # fx raises TraceError, TypeError, ValueError, ... on what it cannot trace
        text = str(err).strip().splitlines()
        result = f"{type(err).__name__}: {text[0] if text else ''}".strip()
    try:
        _FX_CACHE[model] = (signature, result)
    except TypeError:  # an object that cannot be weakly referenced: no caching
        pass
    return result


class _FxFlow:
    """Propagate, node by node, which sources each value of a traced graph is made of."""

    def __init__(self, model: nn.Module, graph: fx.Graph, stops: Sequence[str]) -> None:
        self.modules = dict(model.named_modules())
        self.fx_graph = graph
        self.routes: dict[fx.Node, _Routes] = {}
        self.inner: dict[fx.Node, _Routes] = {}  # what a stop's own value is made of
        self.widths: dict[fx.Node, int | None] = {}
        self.out_nodes = _fx_out_nodes(graph)
        self.stop_of: dict[fx.Node, str] = {}
        for name in stops:
            node = self.out_nodes.get(name)
            if node is not None and not self._is_weight(node):
                self.stop_of.setdefault(node, name)

    def graph(self) -> LayerGraph:
        order: list[str] = []
        feeds: dict[tuple[str, str], tuple[int | None, bool]] = {}
        for node in self.fx_graph.nodes:
            routes, width = self._propagate(node)
            self.inner[node] = routes
            if self._is_weight(node):
                name = str(node.target)
                module = self.modules[name]
                args = [a for a in node.args if isinstance(a, fx.Node)]
                for source, route in (self.routes.get(args[0], {}) if args else {}).items():
                    key = (source, name)
                    before = feeds.get(key, (route.offset, route.part))
                    feeds[key] = (route.offset if before[0] == route.offset else None, before[1] or route.part)
                routes, width = {name: _weight_route(module, None)}, _out_width(module)
                if name not in order:
                    order.append(name)
            elif node in self.stop_of:
                name = self.stop_of[node]
                routes = {name: _Route(0, *_common_axis(routes))}
                if name not in order:
                    order.append(name)
            self.routes[node], self.widths[node] = routes, width
        rank = {name: i for i, name in enumerate(order)}
        edges = sorted(feeds.items(), key=lambda item: (rank[item[0][1]], rank.get(item[0][0], -1)))
        outputs: dict[str, tuple[Feed, ...]] = {}
        for name, node in self.out_nodes.items():
            # A conv/linear node is its own producer; a stop's value is what flows into it.
            made_of = self.inner[node] if node in self.stop_of else self.routes[node]
            outputs[name] = tuple(
                Feed(source, name, route.offset, route.part)
                for source, route in sorted(made_of.items(), key=lambda item: rank.get(item[0], -1))
            )
        return LayerGraph("fx", tuple(order), tuple(Feed(s, t, *value) for (s, t), value in edges), outputs)

    def _is_weight(self, node: fx.Node) -> bool:
        return node.op == "call_module" and isinstance(self.modules.get(str(node.target)), WEIGHT_LAYERS)

    def _propagate(self, node: fx.Node) -> tuple[_Routes, int | None]:
        """The routes and unit width of `node`'s value, from its arguments."""
        tensors = [a for a in _node_args(node) if isinstance(a, fx.Node)]
        first = tensors[0] if tensors else None
        if node.op == "call_module":
            module = self.modules.get(str(node.target))
            if isinstance(module, WEIGHT_LAYERS):
                return {}, None  # replaced by the layer itself in graph()
            if isinstance(module, _KEEP_MODULES) and first is not None:
                return dict(self.routes[first]), self.widths[first]
            if isinstance(module, _RESHAPE_MODULES) and first is not None:
                return _lose(self.routes[first]), None
            return {}, None
        if node.op not in ("call_function", "call_method"):
            return {}, None
        target = node.target
        is_method = node.op == "call_method"
        if (target in _KEEP_METHODS) if is_method else (target in _KEEP_FUNCTIONS):
            return self._union(tensors)
        if (target in _RESHAPE_METHODS) if is_method else (target in _RESHAPE_FUNCTIONS):
            return (_lose(self.routes[first]), None) if first is not None else ({}, None)
        if (target in _REDUCE_METHODS) if is_method else (target in _REDUCE_FUNCTIONS):
            return self._reduce(node, first)
        if not is_method and target in _CAT_FUNCTIONS:
            return self._cat(node)
        return {}, None  # an op that mixes units or positions in ways not followed

    def _union(self, tensors: list[fx.Node]) -> tuple[_Routes, int | None]:
        merged: _Routes = {}
        width: int | None = None
        for arg in tensors:
            for source, route in self.routes[arg].items():
                merged[source] = _merge(merged.get(source), route)
            width = width if width is not None else self.widths[arg]
        return merged, width

    def _reduce(self, node: fx.Node, first: fx.Node | None) -> tuple[_Routes, int | None]:
        if first is None:
            return {}, None
        dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        keepdim = bool(node.args[2] if len(node.args) > 2 else node.kwargs.get("keepdim", False))
        dim_list = [dims] if isinstance(dims, int) else list(dims) if isinstance(dims, (tuple, list)) else None
        if dim_list is None or not all(isinstance(d, int) for d in dim_list):
            return _lose(self.routes[first]), None
        out = {source: _reduce_route(route, dim_list, keepdim) for source, route in self.routes[first].items()}
        kept = all(r.offset is not None for r in out.values())
        return out, self.widths[first] if kept else None

    def _cat(self, node: fx.Node) -> tuple[_Routes, int | None]:
        parts = node.args[0] if node.args else node.kwargs.get("tensors")
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
        if not isinstance(parts, (list, tuple)) or not isinstance(dim, int):
            return self._union([a for a in _node_args(node) if isinstance(a, fx.Node)])
        merged: _Routes = {}
        shift: int | None = 0
        along: bool | None = None
        for part in parts:
            if not isinstance(part, fx.Node):
                shift = None
                continue
            for source, route in self.routes[part].items():
                on_axis = _on_axis(route, dim)
                along = on_axis if along is None else (along if along == on_axis else None)
                offset = route.offset
                if on_axis is None or offset is None:
                    offset = None
                elif on_axis:
                    offset = None if shift is None else offset + shift
                new = route._replace(offset=offset, part=route.part or on_axis is not False)
                merged[source] = _merge(merged.get(source), new)
            width = self.widths[part]
            shift = None if (shift is None or width is None) else shift + width
        widths = [self.widths[p] if isinstance(p, fx.Node) else None for p in parts]
        if along:
            total = shift
        elif along is False and widths and widths[0] is not None:
            total = widths[0]
        else:
            total = None
        return merged, total


def _fx_out_nodes(graph: fx.Graph) -> dict[str, fx.Node]:
    """The node holding each call's output (`name`, `name:1`, ...): a leaf's call, a block's last op."""
    calls: dict[str, list[fx.Node]] = {}  # leaf module -> its call nodes
    runs: dict[str, list[fx.Node]] = {}  # block -> the last node of each run of nodes inside it
    previous: set[str] = set()
    for node in graph.nodes:
        if node.op == "call_module":
            calls.setdefault(str(node.target), []).append(node)
        stack = node.meta.get("nn_module_stack") or {}
        paths = {v[0] if isinstance(v, tuple) else v for v in stack.values()}
        current = {p for p in paths if isinstance(p, str) and p}
        for path in current:
            if path in previous:
                runs[path][-1] = node
            else:
                runs.setdefault(path, []).append(node)
        previous = current
    out: dict[str, fx.Node] = {}
    for name, nodes in {**runs, **calls}.items():
        for k, node in enumerate(nodes):
            out[call_name(name, k)] = node
    return out


def _node_args(node: fx.Node) -> Iterator[Any]:
    def walk(value: Any) -> Iterator[Any]:
        if isinstance(value, (list, tuple)):
            for item in value:
                yield from walk(item)
        elif isinstance(value, dict):
            for item in value.values():
                yield from walk(item)
        else:
            yield value

    yield from walk(node.args)
    yield from walk(node.kwargs)


def _weight_route(module: nn.Module, ndim: int | None) -> _Route:
    if isinstance(module, nn.Linear):
        return _Route(0, -1, ndim)
    dims: dict[type[nn.Module], int] = {nn.Conv1d: 3, nn.Conv2d: 4, nn.Conv3d: 5}
    return _Route(0, 1, dims.get(type(module)))


def _out_width(module: nn.Module) -> int:
    return int(module.out_features if isinstance(module, nn.Linear) else getattr(module, "out_channels"))


def _lose(routes: _Routes) -> _Routes:
    return {source: _Route(None, None, None, route.part) for source, route in routes.items()}


def _merge(old: _Route | None, new: _Route) -> _Route:
    """One source reached along two paths: keep what both agree on."""
    if old is None or old == new:
        return new
    return _Route(None, None, None, old.part or new.part)


def _common_axis(routes: _Routes) -> tuple[int | None, int | None]:
    kinds = {(r.axis, r.ndim) for r in routes.values()}
    return kinds.pop() if len(kinds) == 1 else (None, None)


def _on_axis(route: _Route, dim: int) -> bool | None:
    """Whether `dim` is the route's unit axis; None when that cannot be told."""
    if route.axis is None:
        return None
    if route.ndim is not None:
        return dim % route.ndim == route.axis % route.ndim
    if route.axis == -1 and dim < 0:
        return dim == -1
    if route.axis >= 0 and dim >= 0:
        return dim == route.axis
    return None


def _reduce_route(route: _Route, dims: list[int], keepdim: bool) -> _Route:
    lost = _Route(None, None, None, route.part)
    if route.axis is None or route.offset is None:
        return lost
    if route.ndim is not None:
        normal = {d % route.ndim for d in dims}
        axis = route.axis % route.ndim
        if axis in normal:
            return lost
        if keepdim:
            return route
        return _Route(route.offset, axis - sum(d < axis for d in normal), route.ndim - len(normal))
    if route.axis == -1 and all(d < 0 for d in dims):
        return lost if -1 in dims else route._replace(ndim=None)
    return lost


# ----- autograd ----------------------------------------------------------------------------

# grad_fn names (without "Backward<n>") of ops that keep every axis and unit index.
_KEEP_GRAD = frozenset({
    "Add", "Sub", "Mul", "Div", "Neg", "Relu", "Threshold", "Hardtanh", "LeakyRelu", "Elu", "Gelu", "Silu",
    "Hardswish", "Hardsigmoid", "Sigmoid", "Tanh", "Softplus", "Mish", "Clamp", "ClampMin", "ClampMax", "Abs",
    "Exp", "Sqrt", "Rsqrt", "Pow", "Log", "Prelu", "PreluKernel", "RreluWithNoise", "Celu", "Softshrink",
    "Hardshrink", "LogSigmoid", "NativeBatchNorm", "CudnnBatchNorm", "MiopenBatchNorm", "NativeLayerNorm",
    "NativeGroupNorm", "FusedRmsNorm", "MaxPool2DWithIndices", "MaxPool3DWithIndices", "AvgPool2D", "AvgPool3D",
    "AdaptiveAvgPool2D", "AdaptiveAvgPool3D", "AdaptiveMaxPool2D", "AdaptiveMaxPool3D", "Clone", "ToCopy",
    "Alias", "NativeDropout", "UpsampleNearest1D", "UpsampleNearest2D", "UpsampleNearest3D", "UpsampleLinear1D",
    "UpsampleBilinear2D", "UpsampleBicubic2D", "UpsampleTrilinear3D", "ConstantPadNd", "ReflectionPad1D",
    "ReflectionPad2D", "ReflectionPad3D", "ReplicationPad1D", "ReplicationPad2D", "ReplicationPad3D",
})
# Ops that keep the values but may move the unit axis; followed by shape (`_back`).
_VIEW_GRAD = frozenset({"View", "UnsafeView", "Reshape", "ReshapeAlias", "Squeeze", "SqueezeDims", "Unsqueeze"})
_MOVE_GRAD = frozenset({
    "Transpose", "Permute", "T", "Select", "Mean", "Sum", "Amax", "Amin", "Expand", "Slice", "Index", "Max",
    "Min", "Split", "SplitWithSizes", "Unbind", "Stack", "Narrow", "AsStrided", "Unfold", "Cat",
})
_GRAD_SUFFIX = re.compile(r"Backward\d*$")

_Place = tuple[int | None, int | None, bool]  # unit axis counted from the end, offset, through a concatenation
_RawOutputs = dict[str, dict[str, tuple[set[_Place], set[_Place]]]]  # call -> source -> (by channel, by last axis)


def _autograd_flow(model: nn.Module, example: Tensor, stops: Sequence[str]) -> LayerGraph:
    """Read the layer graph from the autograd graph of one forward pass on `example`."""
    modules = {name: module for name, module in model.named_modules() if name}
    trace = _AutogradTrace(stops)
    trace.run(model, modules, example)
    stop_of = {trace.first_out[n]: n for n in reversed(stops) if trace.first_out.get(n) is not None}
    ends = {**{fn: n for fn, n in stop_of.items() if fn not in trace.weight_out}, **trace.weight_out}
    end_ndim = {name: trace.ndims.get(fn) for fn, name in ends.items()}
    raw_feeds = _raw_feeds(modules, trace.calls, ends)
    raw_outputs = _raw_outputs(modules, trace, ends)
    kinds = _end_kinds(modules, stops, raw_outputs)
    return _autograd_graph(trace.order, raw_feeds, raw_outputs, end_ndim, kinds)


class _AutogradTrace:
    """What forward hooks see of one forward pass: the grad_fn each layer call reads and makes."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.wanted = set(stops)
        self.weight_out: dict[Any, str] = {}  # grad_fn of a conv/linear output -> layer
        self.first_out: dict[str, Any] = {}  # call (`name`, `name:1`, ...) -> grad_fn of its output
        self.seen_calls: dict[str, int] = {}  # module -> calls so far
        self.ndims: dict[Any, int] = {}  # grad_fn -> dimensions of the output it made
        self.calls: list[tuple[str, Any, int]] = []  # (conv/linear layer, grad_fn of its input, input ndim), every call
        self.order: list[str] = []  # conv/linear layers (first call) and stops, in run order

    def run(self, model: nn.Module, modules: Mapping[str, nn.Module], example: Tensor) -> None:
        """Run `model` once on `example`, gradients on, with hooks on every module.

        Raises:
            UnsupportedModelError: the forward pass fails, or records no autograd graph at
                any conv/linear layer.
        """
        handles = []
        try:
            for name, module in modules.items():
                is_weight = isinstance(module, WEIGHT_LAYERS)
                if is_weight:
                    handles.append(module.register_forward_pre_hook(self._before(name)))
                handles.append(module.register_forward_hook(self._after(name, is_weight)))
            inputs = example.detach().to(model_device(model))
            inputs = inputs.requires_grad_() if inputs.is_floating_point() else inputs
            with eval_mode(model), _grad_on(model), torch.enable_grad():  # eval: no running statistics change
                model(inputs)
        except Exception as err:  # whatever the forward raises: the model cannot be read this way
            raise UnsupportedModelError(
                f"one forward pass on the example (shape {tuple(example.shape)}) failed: {type(err).__name__}: {err}"
            ) from None
        finally:
            for handle in handles:
                handle.remove()
        if not self.weight_out:
            raise UnsupportedModelError(
                "one forward pass on the example recorded no autograd graph at any conv/linear layer "
                "(no such layer ran, or the forward runs under torch.no_grad)."
            )

    def _before(self, name: str) -> Callable[..., None]:
        """A pre-hook keeping the grad_fn of a conv/linear layer's input."""

        def hook(module: nn.Module, args: tuple[Any, ...]) -> None:
            tensor = _first_tensor(args)
            if tensor is not None and tensor.grad_fn is not None:
                self.calls.append((name, tensor.grad_fn, tensor.dim()))

        return hook

    def _after(self, name: str, is_weight: bool) -> Callable[..., None]:
        """A forward hook keeping the grad_fn of a module's output and counting its calls."""

        def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            tensor = _first_tensor(output)
            fn = None if tensor is None else tensor.grad_fn
            if fn is not None and tensor is not None:
                self.ndims.setdefault(fn, tensor.dim())
                if is_weight:
                    self.weight_out.setdefault(fn, name)
            index = self.seen_calls.get(name, 0)
            self.seen_calls[name] = index + 1
            call = call_name(name, index)
            self.first_out[call] = fn
            if (is_weight and index == 0) or call in self.wanted:
                self.order.append(call)

        return hook


def _raw_feeds(
    modules: Mapping[str, nn.Module], calls: Sequence[tuple[str, Any, int]], ends: Mapping[Any, str]
) -> dict[tuple[str, str], set[_Place]]:
    """For each (source, conv/linear layer) pair, where the paths into the layer's input leave the source."""
    raw_feeds: dict[tuple[str, str], set[_Place]] = {}
    for target, fn, ndim in calls:
        axis = -1 if isinstance(modules[target], nn.Linear) else 1 - ndim  # dim 1 of a conv input
        for source, places in _walk(fn, ends, axis, start_is_end=True).items():
            raw_feeds.setdefault((source, target), set()).update(places)
    return raw_feeds


def _raw_outputs(modules: Mapping[str, nn.Module], trace: _AutogradTrace, ends: Mapping[Any, str]) -> _RawOutputs:
    """For each layer call, the sources its output is made of: places by channel and by last axis."""
    raw_outputs: _RawOutputs = {}
    for name, fn in trace.first_out.items():
        if fn is None:
            raw_outputs[name] = {}
        elif fn in trace.weight_out:
            layer = trace.weight_out[fn]
            own: set[_Place] = {(-1 if isinstance(modules[layer], nn.Linear) else 1 - trace.ndims[fn], 0, False)}
            raw_outputs[name] = {layer: (own, own)}
        else:  # the unit axis of a layer's output is dim 1 if convs make it, the last if linear layers do
            ndim = trace.ndims.get(fn, 2)
            by_channel = _walk(fn, ends, 1 - ndim if ndim >= 2 else -1, start_is_end=False)
            by_last = _walk(fn, ends, -1, start_is_end=False)
            raw_outputs[name] = {s: (by_channel.get(s, set()), by_last.get(s, set()))
                                 for s in {**by_channel, **by_last}}
    return raw_outputs


def _autograd_graph(
    order: Sequence[str],
    raw_feeds: Mapping[tuple[str, str], set[_Place]],
    raw_outputs: _RawOutputs,
    end_ndim: Mapping[str, int | None],
    kinds: Mapping[str, str | None],
) -> LayerGraph:
    """The LayerGraph of the paths found: feeds and outputs in run order, each with its units' offset."""

    def offset(source: str, places: set[_Place]) -> tuple[int | None, bool]:
        return _unit_offset(places, end_ndim.get(source), kinds.get(source))

    def made_of(source: str, both: tuple[set[_Place], set[_Place]]) -> tuple[int | None, bool]:
        return offset(source, both[0] if kinds.get(source) == "channel" else both[1])

    rank = {name: i for i, name in enumerate(order)}
    feeds = tuple(
        Feed(source, target, *offset(source, places))
        for (source, target), places in sorted(raw_feeds.items(), key=lambda i: (rank[i[0][1]], rank.get(i[0][0], -1)))
    )
    outputs = {
        name: tuple(Feed(source, name, *made_of(source, both))
                    for source, both in sorted(found.items(), key=lambda i: rank.get(i[0], -1)))
        for name, found in raw_outputs.items()
    }
    return LayerGraph("autograd", tuple(order), feeds, outputs)


def _unit_offset(places: set[_Place], ndim: int | None, kind: str | None) -> tuple[int | None, bool]:
    """(offset of the units in a source with `ndim` dimensions and unit axis `kind`, any path through a concatenation).

    The offset is None unless every path reaches the source's unit axis at the same offset.
    """
    part = any(place[2] for place in places)
    if ndim is None or kind is None:
        return None, part
    expected = -1 if kind == "last" else 1 - ndim
    found = {off if axis == expected else None for axis, off, _ in places}
    return (found.pop() if len(found) == 1 else None), part


def _walk(start: Any, ends: Mapping[Any, str], axis: int, *, start_is_end: bool) -> dict[str, set[_Place]]:
    """Walk back from grad_fn `start` through unit-keeping ops to the nodes in `ends`.

    `axis` is the unit axis of the start tensor, counted from the end; each source found
    comes with where that axis and the offset of the units lie in the source's output.
    """
    found: dict[str, set[_Place]] = {}
    stack: list[tuple[Any, int | None, int | None, bool]] = [(start, axis, 0, False)]
    seen: set[tuple[Any, int | None, int | None, bool]] = set()
    while stack:
        state = stack.pop()
        if state in seen:
            continue
        seen.add(state)
        fn, pos, off, part = state
        if fn in ends and (start_is_end or fn is not start):
            found.setdefault(ends[fn], set()).add((pos, off, part))
            continue
        kind = _GRAD_SUFFIX.sub("", type(fn).__name__)
        if kind not in _KEEP_GRAD and kind not in _VIEW_GRAD and kind not in _MOVE_GRAD:
            continue  # an op that mixes positions or units (matmul, embedding, softmax, ...): the path ends
        nexts = [(nf, i) for nf, i in fn.next_functions if nf is not None]
        if kind in _KEEP_GRAD:
            stack.extend((nf, pos, off, part) for nf, _ in nexts)
        elif kind == "Cat":
            stack.extend(_cat_back(fn, nexts, pos, off, part))
        else:
            for nf, i in nexts:
                moved = _back(fn, kind, _shape(nf, i), pos)
                stack.append((nf, moved, off if moved is not None else None, part))
    return found


def _back(fn: Any, kind: str, before: tuple[int, ...] | None, pos: int | None) -> int | None:
    """Where the unit axis `pos` (from the end) of `fn`'s output lies in its input, or None."""
    after = _shape(fn, 0)
    if pos is None or before is None or after is None or not -len(after) <= pos < 0:
        return None
    index = len(after) + pos  # the unit axis from the front, in the output
    try:
        if kind in _VIEW_GRAD or kind == "Expand":
            if kind == "Expand" and len(before) != len(after):
                return None
            return _view_axis(before, after, index)
        if kind in ("Transpose", "T"):
            dims = (0, 1) if kind == "T" else (_dim(fn._saved_dim0, len(after)), _dim(fn._saved_dim1, len(after)))
            source = dims[1] if index == dims[0] else dims[0] if index == dims[1] else index
            return source - len(before)
        if kind == "Permute":
            return _dim(tuple(fn._saved_dims)[index], len(before)) - len(before)
        if kind == "Select":
            chosen = _dim(fn._saved_dim, len(before))
            return (index if index < chosen else index + 1) - len(before)
        if kind in ("Mean", "Sum", "Amax", "Amin"):
            dims = fn._saved_dim
            reduced = {_dim(d, len(before)) for d in (dims if isinstance(dims, (tuple, list)) else (dims,))}
            if not reduced or bool(fn._saved_keepdim):
                return None if not reduced else index - len(before)
            kept = [d for d in range(len(before)) if d not in reduced]
            return kept[index] - len(before) if index < len(kept) else None
        if kind == "Slice":
            return index - len(before) if _dim(fn._saved_dim, len(before)) != index else None
    except (AttributeError, RuntimeError, IndexError, TypeError, ValueError):
        return None
    return None  # Index, Split, Stack, ...: where the units go is not followed


def _cat_back(
    fn: Any, nexts: list[tuple[Any, int]], pos: int | None, off: int | None, part: bool
) -> list[tuple[Any, int | None, int | None, bool]]:
    """Each input of a concatenation, with the unit offset shifted when it runs along the unit axis."""
    after = _shape(fn, 0)
    try:
        dim = _dim(fn._saved_dim, len(after)) if after is not None else None
    except (AttributeError, RuntimeError):
        dim = None
    if pos is None or dim is None or after is None:
        return [(nf, None, None, True) for nf, _ in nexts]
    if dim != len(after) + pos:
        return [(nf, pos, off, part) for nf, _ in nexts]
    out: list[tuple[Any, int | None, int | None, bool]] = []
    shift: int | None = 0
    for nf, i in nexts:
        out.append((nf, pos, None if off is None or shift is None else off + shift, True))
        shape = _shape(nf, i)
        shift = None if shift is None or shape is None else shift + shape[dim]
    return out


def _shape(fn: Any, index: int) -> tuple[int, ...] | None:
    """Shape of the tensor `fn` produced (its `index`th output); None when autograd does not say."""
    try:
        return tuple(int(s) for s in fn._input_metadata[index].shape)
    except (AttributeError, RuntimeError, IndexError, TypeError):
        return None


def _dim(value: Any, ndim: int) -> int:
    """A saved dim as a non-negative index (autograd stores negative dims as unsigned 64-bit)."""
    d = int(value)
    if d >= 2**63:
        d -= 2**64
    return d % ndim


def _view_axis(before: tuple[int, ...], after: tuple[int, ...], index: int) -> int | None:
    """The input dim that output dim `index` of a view is, when the view leaves it whole."""
    size, prefix = after[index], _prod(after[:index])
    for j in range(len(before)):
        if _prod(before[:j]) == prefix and before[j] == size:
            return j - len(before)
    return None


def _prod(values: Sequence[int]) -> int:
    out = 1
    for v in values:
        out *= v
    return out


def _end_kinds(
    modules: Mapping[str, nn.Module], stops: Sequence[str],
    raw: Mapping[str, Mapping[str, tuple[set[_Place], set[_Place]]]],
) -> dict[str, str | None]:
    """The unit axis of every layer a path can end at: "channel" (dim 1) or "last"."""
    kinds: dict[str, str | None] = {
        name: ("last" if isinstance(m, nn.Linear) else "channel") for name, m in modules.items()
        if isinstance(m, WEIGHT_LAYERS)
    }
    for name in stops:  # run order: a stop's own sources come before it
        found = {kinds.get(source) for source in raw.get(name, {})}
        kinds.setdefault(name, found.pop() if len(found) == 1 else None)
    return kinds


@contextmanager
def _grad_on(model: nn.Module) -> Iterator[None]:
    """Let every parameter require grad while the block runs, so each layer output has a grad_fn."""
    saved = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in saved:
            if p.is_floating_point() or p.is_complex():
                p.requires_grad_(True)
        yield
    finally:
        for p, flag in saved:
            p.requires_grad_(flag)


def _first_tensor(value: Any) -> Tensor | None:
    if isinstance(value, Tensor):
        return value
    items = value.values() if isinstance(value, Mapping) else value if isinstance(value, (list, tuple)) else ()
    for item in items:
        found = _first_tensor(item)
        if found is not None:
            return found
    return None


def _default_example(model: nn.Module) -> Tensor | None:
    """Zeros of the input shape a mechscope image model's config names, else None."""
    config = getattr(model, "config", None)
    channels, size = getattr(config, "in_channels", None), getattr(config, "image_size", None)
    if not isinstance(channels, int) or not isinstance(size, int) or isinstance(channels, bool):
        return None
    param = next(model.parameters(), None)
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    return torch.zeros(2, channels, size, size, device=model_device(model), dtype=dtype)
