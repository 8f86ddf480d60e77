"""Time affine-region extraction: a per-point autograd loop against `extract_regions`.

The baseline reads each point's affine map the obvious way, one Jacobian per point with
autograd (b = f(x) - J x), then groups equal maps; `extract_regions` computes all
activation patterns in one batched float64 pass, groups them with torch.unique and
composes one map per pattern. Both run in this process on the same network and points.

Run: python bench/formula_regions.py
"""

from __future__ import annotations

import time

import torch
from torch import nn

from mechscope.symbolic import extract_regions


def per_point_maps(model: nn.Module, x: torch.Tensor) -> int:
    """Affine map of every point by autograd, one point at a time; returns the number of distinct maps."""
    model = model.double()
    maps = set()
    for row in x.double():
        point = row[None].clone().requires_grad_(True)
        out = model(point)[0]
        (jac,) = torch.autograd.grad(out.sum(), point)
        intercept = out.detach() - (jac * point.detach()).sum()
        maps.add(tuple(torch.round(torch.cat([jac[0], intercept]) * 1e6).tolist()))
    model.float()
    return len(maps)


def compare(name: str, model: nn.Module, x: torch.Tensor) -> None:
    """Time both ways on one network and print the ratio."""
    start = time.perf_counter()
    baseline_maps = per_point_maps(model, x)
    baseline = time.perf_counter() - start
    start = time.perf_counter()
    result = extract_regions(model, x)
    ours = time.perf_counter() - start
    print(f"{name}: {x.shape[0]} points, {len(result.regions)} regions (per-point loop: {baseline_maps} maps)")
    print(f"  baseline (per-point autograd loop): {baseline:.3f} s")
    print(f"  mechscope extract_regions:         {ours:.3f} s (includes verifying every map)")
    print(f"  speed-up: {baseline / ours:.1f}x")


def main() -> None:
    torch.manual_seed(0)
    deep = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 1)).eval()
    compare("10-32-32-1 MLP, nearly one region per point", deep, torch.randn(5_000, 10))
    first = nn.Linear(5, 1)
    with torch.no_grad():
        first.weight.fill_(0.36)
        first.bias.fill_(2.8)  # the article's sum network: active on ~99.98% of N(0, 1) inputs
    one_unit = nn.Sequential(first, nn.ReLU(), nn.Linear(1, 1)).eval()
    compare("5-1-1 one-unit network (seed 002)", one_unit, torch.randn(20_000, 5))


if __name__ == "__main__":
    main()
