"""Dataset examples for every channel of every conv layer over the 5,000 MNIST images: streaming vs stored.

Baseline: record all conv activations of the dataset in memory (`mechscope.record`), then rank
each channel's spatial maxima. mechscope: `dataset_examples`, one streaming pass that keeps only
the running top-k and bottom-k per channel. Each mode runs in a fresh subprocess so its peak
resident memory (getrusage ru_maxrss) is its own; the extra memory is that peak minus the
resident memory just before the pass (model and data already loaded). Both modes must return
identical examples; the script checks it.

Usage: python bench/examples_streaming.py [--k 9] [--repeats 3] [--checkpoint DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _load(checkpoint: str | None) -> tuple[torch.nn.Module, torch.Tensor]:
    from mechscope.data import digits_data
    from mechscope.models import DigitCNN, DigitCNNConfig, build_seeded
    from mechscope.models.checkpoint import load_checkpoint

    x = digits_data("mnist5k").all_inputs()
    if checkpoint:
        return load_checkpoint(checkpoint).model.eval(), x
    return build_seeded(DigitCNN, DigitCNNConfig(gap=True), seed=0).eval(), x


def _stored(model: torch.nn.Module, x: torch.Tensor, layers: list[str], k: int) -> dict[str, list[list[int]]]:
    from mechscope import record

    store = record(model, layers, x, batch_size=256, progress=False)
    out = {}
    for name in layers:
        peak = store.act(name).flatten(2).max(dim=2).values  # (batch, channel)
        out[name] = torch.sort(peak, dim=0, descending=True, stable=True).indices[:k].t().tolist()
        torch.sort(peak, dim=0, stable=True).indices[:k]  # bottom-k, as the streaming pass does
    return out


def _streamed(model: torch.nn.Module, x: torch.Tensor, layers: list[str], k: int) -> dict[str, list[list[int]]]:
    from mechscope.circuits import dataset_examples

    found = dataset_examples(model, x, layers, k=k, batch_size=256, progress=False)
    return {name: found[name].top.indices.tolist() for name in layers}


def _child(mode: str, k: int, repeats: int, checkpoint: str | None) -> None:
    from mechscope.circuits.layers import depth_layers

    model, x = _load(checkpoint)
    layers = depth_layers(model)
    run = _stored if mode == "stored" else _streamed
    before = _rss_mb()
    times, result = [], {}
    for _ in range(repeats):
        start = time.perf_counter()
        result = run(model, x, layers, k)
        times.append(time.perf_counter() - start)
    print(json.dumps({"seconds": statistics.median(times), "extra_mb": _peak_mb() - before, "n": int(x.shape[0]),
                      "layers": layers, "channels": sum(len(v) for v in result.values()), "result": result}))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--k", type=int, default=9)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--checkpoint", default=None, help="DigitCNN checkpoint on mnist5k (default: seeded weights)")
    parser.add_argument("--mode", choices=["stored", "streamed"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        _child(args.mode, args.k, args.repeats, args.checkpoint)
        return
    runs = {}
    for mode in ("stored", "streamed"):
        command = [sys.executable, __file__, "--mode", mode, "--k", str(args.k), "--repeats", str(args.repeats)]
        if args.checkpoint:
            command += ["--checkpoint", args.checkpoint]
        runs[mode] = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    stored, streamed = runs["stored"], runs["streamed"]
    same = stored["result"] == streamed["result"]
    n, channels = stored["n"], stored["channels"]
    print(f"dataset examples (top and bottom {args.k}) for {channels} channels of {', '.join(stored['layers'])} "
          f"over {n} MNIST images")
    for label, run in (("store all activations, then rank", stored), ("streaming top-k (mechscope)", streamed)):
        print(f"  {label:<34} {n / run['seconds']:9.0f} images/s   peak extra memory {run['extra_mb']:7.1f} MB")
    print(f"speed ratio (streaming / stored): {stored['seconds'] / streamed['seconds']:.2f}x   "
          f"memory ratio (stored / streaming): {stored['extra_mb'] / max(streamed['extra_mb'], 1e-9):.1f}x   "
          f"identical examples: {same}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
