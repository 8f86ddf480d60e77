"""Reference computations for capture tests: forward passes done by hand, module by module."""

from __future__ import annotations

import torch
from torch import nn

from tests.zoo import TinyResNet


def manual_resnet(model: TinyResNet, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every call's output of TinyResNet, computed by calling its submodules by hand, each cloned at once."""
    ref: dict[str, torch.Tensor] = {}

    def run(name: str, module: nn.Module, inp: torch.Tensor) -> torch.Tensor:
        out = module(inp)
        ref[name] = out.clone()
        return out

    h = run("relu", model.relu, run("bn1", model.bn1, run("conv1", model.conv1, x)))
    for stage_name in ("layer1", "layer2"):
        for i, block in enumerate(getattr(model, stage_name)):
            p = f"{stage_name}.{i}"
            identity = h
            out = run(f"{p}.conv1", block.conv1, h)
            out = run(f"{p}.bn1", block.bn1, out)
            out = run(f"{p}.relu", block.relu, out)
            out = run(f"{p}.conv2", block.conv2, out)
            out = run(f"{p}.bn2", block.bn2, out)
            if block.downsample is not None:
                ds = run(f"{p}.downsample.0", block.downsample[0], h)
                identity = run(f"{p}.downsample.1", block.downsample[1], ds)
                ref[f"{p}.downsample"] = identity.clone()
            out += identity
            h = run(f"{p}.relu:1", block.relu, out)
            ref[p] = h.clone()
        ref[stage_name] = h.clone()
    pooled = run("avgpool", model.avgpool, h)
    run("fc", model.fc, torch.flatten(pooled, 1))
    return ref


class TwoResolutions(nn.Module):
    """One conv applied to the image and to its half-size version: one module, two calls, two shapes."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.pool = nn.AvgPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).mean(dim=(2, 3)) + self.conv(self.pool(x)).mean(dim=(2, 3))
