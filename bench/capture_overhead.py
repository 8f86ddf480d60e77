"""Capture overhead: DigitCNN forward with every layer captured vs a plain forward, batch 256.

Rows: a plain forward; raw forward hooks that keep every output (the floor for any capture);
raw hooks that copy every output (the always-right answer to in-place ops, without
capture's guard, which copies only outputs it has seen changed in place); mechscope capture
(after its first forward on the model, which copies every output once to learn).

Usage: python bench/capture_overhead.py [--repeats 50]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from mechscope.capture import capture, layer_names
from mechscope.models import DigitCNN, DigitCNNConfig, build_seeded


def _time(fn, repeats: int) -> float:
    for _ in range(5):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    model = build_seeded(DigitCNN, DigitCNNConfig(), seed=0).eval()
    x = torch.rand(256, 1, 28, 28)
    names = layer_names(model)

    def plain() -> None:
        with torch.no_grad():
            model(x)

    def hooked(keep) -> None:
        kept: list[torch.Tensor] = []
        modules = dict(model.named_modules())
        handles = [modules[n].register_forward_hook(lambda _m, _i, out: kept.append(keep(out))) for n in names]
        try:
            with torch.no_grad():
                model(x)
        finally:
            for handle in handles:
                handle.remove()

    def raw_hooks() -> None:
        # The floor for any capture: plain forward hooks that keep every output alive.
        hooked(lambda out: out)

    def raw_clones() -> None:
        # What keeping a copy of every output costs: the always-right fix without the guard.
        hooked(lambda out: out.clone())

    def captured() -> None:
        with torch.no_grad(), capture(model, names) as store:
            model(x)
        store.act(names[-1])

    # Interleave the measurements so machine noise hits all alike.
    plain_t, raw_t, clone_t, capture_t = [], [], [], []
    for _ in range(3):
        plain_t.append(_time(plain, args.repeats))
        raw_t.append(_time(raw_hooks, args.repeats))
        clone_t.append(_time(raw_clones, args.repeats))
        capture_t.append(_time(captured, args.repeats))
    base, raw, ours = statistics.median(plain_t), statistics.median(raw_t), statistics.median(capture_t)
    clones = statistics.median(clone_t)
    ratio = ours / base
    print(f"plain forward:                      {base * 1e3:7.2f} ms")
    print(f"raw hooks keeping {len(names):2d} outputs:      {raw * 1e3:7.2f} ms  ({raw / base:.3f}x plain)")
    print(f"raw hooks copying {len(names):2d} outputs:      {clones * 1e3:7.2f} ms  ({clones / base:.3f}x plain)")
    print(f"mechscope capture of {len(names):2d} layers:    {ours * 1e3:7.2f} ms  ({ours / raw:.3f}x raw hooks)")
    print(f"overhead ratio vs plain: {ratio:.3f}x   target <= 1.10x -> {'met' if ratio <= 1.10 else 'MISSED'}")


if __name__ == "__main__":
    main()
