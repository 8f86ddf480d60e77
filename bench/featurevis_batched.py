"""Feature visualisation: all 32 channels of a DigitCNN layer in one batched render vs one render each.

The baseline renders each channel in its own optimisation, the way Lucent's `render_vis` is
used; mechscope renders every channel as one row of a single batch. Both use the same
settings (256 Adam steps, pixel parameterisation, per-row seeds), so a batched row starts
and is transformed exactly like its single render; the script prints how many rows still
agree after the run, the per-channel times and their ratio (target >= 10x), and how many
channels beat their best dataset example in each run.

Usage: python bench/featurevis_batched.py [--data mnist5k|digits] [--steps 256] [--checkpoint DIR]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from mechscope.data import digits_data
from mechscope.featurevis import InputSpace, RenderConfig, channel, evidence, render
from mechscope.models import DigitCNN, DigitCNNConfig, build_seeded, train
from mechscope.models.train import default_train_config
from mechscope.models.checkpoint import load_checkpoint


def _model(args: argparse.Namespace) -> tuple[torch.nn.Module, torch.Tensor]:
    if args.checkpoint:
        ckpt = load_checkpoint(args.checkpoint)
        return ckpt.model.eval(), ckpt.data().all_inputs()
    data = digits_data(args.data)
    config = DigitCNNConfig(image_size=data.input_shape[-1])
    model = build_seeded(DigitCNN, config, seed=0)
    start = time.perf_counter()
    result = train(model, data, default_train_config(model, data), progress=False)
    print(f"trained DigitCNN on {args.data}: test accuracy {result.metrics['test_accuracy']:.3f} "
          f"({time.perf_counter() - start:.0f} s)")
    return model.eval(), data.all_inputs()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="mnist5k", choices=["mnist5k", "digits"])
    parser.add_argument("--steps", type=int, default=256)
    parser.add_argument("--checkpoint", default=None, help="use a trained DigitCNN checkpoint instead of training")
    args = parser.parse_args()
    model, data = _model(args)
    space = InputSpace.from_data(data)
    layer = model.last_conv
    n = 32
    config = RenderConfig(steps=args.steps)
    everything = channel(layer, range(n))

    # Warm up both shapes (first calls build kernels and caches).
    render(model, everything, space, config=RenderConfig(steps=3), progress=False)
    render(model, channel(layer, 0), space, config=RenderConfig(steps=3), progress=False)

    start = time.perf_counter()
    batched = render(model, everything, space, config=config, progress=False)
    batched_s = time.perf_counter() - start

    singles, single_s = [], []
    for c in range(n):
        start = time.perf_counter()
        singles.append(render(model, channel(layer, c), space, config=config, progress=False))
        single_s.append(time.perf_counter() - start)
    single_images = torch.cat([r.images for r in singles])

    ev_batched = evidence(model, everything, batched.images, data, space=space)
    ev_single = evidence(model, everything, single_images, data, space=space)
    per_batched = batched_s / n
    per_single = statistics.mean(single_s)
    ratio = per_single / per_batched

    print(f"{layer}: {n} channels, {args.steps} steps, torch threads {torch.get_num_threads()}")
    print(f"one render per channel (baseline): {per_single * 1e3:8.1f} ms per channel ({sum(single_s):.1f} s total)")
    print(f"one batched render (mechscope):    {per_batched * 1e3:8.1f} ms per channel ({batched_s:.1f} s total)")
    print(f"speed-up per channel: {ratio:.1f}x   target >= 10x -> {'met' if ratio >= 10 else 'MISSED'}")
    gap = (batched.images - single_images).flatten(1).abs().amax(dim=1)  # (channel,)
    print(
        f"rows equal to their single render (max pixel difference <= 1e-3): {int((gap <= 1e-3).sum())}/{n}; "
        f"largest difference {gap.max():.2g} (batched and single convolutions round differently, ~1e-7, "
        "and long runs can amplify that into another local optimum)"
    )
    for name, ev in (("baseline", ev_single), ("batched ", ev_batched)):
        defined = [r for r in ev.ratio if r == r]
        print(
            f"activation / dataset max, {name}: {sum(r >= 1 for r in defined)}/{len(defined)} channels >= 1 "
            f"(median {statistics.median(defined):.2f}, min {min(defined):.2f}; "
            f"{ev.defined.count(False)} never active on the data)"
        )


if __name__ == "__main__":
    main()
