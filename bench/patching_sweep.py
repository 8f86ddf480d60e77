"""Activation patching sweep (layers x positions): mechscope's batched sweep vs one forward per cell.

The baseline is the loop of the TransformerLens tutorials: for every layer and every position,
one forward pass of the corrupt batch with a hook that writes the clean activation into that
cell, then the metric. mechscope repeats the inputs once per cell and patches many cells in
one forward pass. Both run on the same GPT-2 (built from a config, random weights, no
download) with the same clean/corrupt prompts; the results must agree to 1e-5. Attribution
patching (one forward + one backward) is timed beside exact patching, with its error.

Timings interleave the contenders in one run (median of rounds) so machine noise hits both.

Usage: python bench/patching_sweep.py [--layers 6] [--pos 24] [--batch 8] [--rounds 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from mechscope.patching import activation_patching, attribution_patching, compare, logit_diff
from mechscope.patching.metrics import Metric


def _model(n_layers: int, n_pos: int) -> nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=512, n_positions=n_pos, n_embd=128, n_layer=n_layers, n_head=4,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, use_cache=False)
    return GPT2LMHeadModel(config).eval()


def _logits(out: Any) -> Tensor:
    return out.logits if hasattr(out, "logits") else out


def _loop(model: nn.Module, clean: Tensor, corrupt: Tensor, layers: list[str], metric: Metric) -> Tensor:
    """One forward per (layer, position), as in the tutorials."""
    modules = dict(model.named_modules())
    cached: dict[str, Tensor] = {}
    handles = [modules[name].register_forward_hook(
        lambda m, i, o, name=name: cached.__setitem__(name, _first(o).detach())) for name in layers]
    with torch.no_grad():
        model(clean)
    for handle in handles:
        handle.remove()
    n, n_pos = clean.shape[0], cached[layers[0]].shape[1]
    examples = torch.arange(n)
    out = torch.empty(len(layers), n_pos, dtype=torch.float64)
    for i, name in enumerate(layers):
        for pos in range(n_pos):
            def hook(m: nn.Module, inputs: Any, o: Any, name: str = name, pos: int = pos) -> Any:
                patched = _first(o).clone()
                patched[:, pos] = cached[name][:, pos]
                return (patched, *o[1:]) if isinstance(o, tuple) else patched

            handle = modules[name].register_forward_hook(hook)
            with torch.no_grad():
                logits = _logits(model(corrupt))
            handle.remove()
            out[i, pos] = metric(logits, examples).double().mean()
    return out


def _first(output: Any) -> Tensor:
    return output[0] if isinstance(output, tuple) else output


def _gpt2(args: argparse.Namespace) -> tuple[nn.Module, Tensor, Tensor, Metric, list[str]]:
    model = _model(args.layers, args.pos)
    g = torch.Generator().manual_seed(0)
    clean = torch.randint(0, 512, (args.batch, args.pos), generator=g)
    corrupt = clean.clone()
    corrupt[:, args.pos // 3] = torch.randint(0, 512, (args.batch,), generator=g)  # one token changed
    with torch.no_grad():
        answer = model(clean).logits[:, -1].argmax(dim=1)
        wrong = model(corrupt).logits[:, -1].argmax(dim=1)
    wrong = torch.where(wrong == answer, (answer + 1) % 512, wrong)
    return model, clean, corrupt, logit_diff(answer, wrong), [f"transformer.h.{i}" for i in range(args.layers)]


def _grokking() -> tuple[nn.Module, Tensor, Tensor, Metric, list[str]]:
    from mechscope.data import modular_data
    from mechscope.models import build_seeded
    from mechscope.models.grokking_transformer import GrokkingTransformer, GrokkingTransformerConfig
    from mechscope.patching import default_pairing

    model = build_seeded(GrokkingTransformer, GrokkingTransformerConfig(), 0).eval()
    pairing = default_pairing(modular_data(59, "+", encoding="pairs", test_fraction=0.4, seed=0), 16)
    layers = ["blocks.0.resid_pre", "blocks.0.resid_mid", "blocks.0.resid_post"]
    return model, pairing.clean, pairing.corrupt, pairing.metric, layers


def _median(fn: Callable[[], object], rounds: int, timings: list[float]) -> None:
    start = time.perf_counter()
    fn()
    timings.append(time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["gpt2", "grokking"], default="gpt2",
                        help="GPT-2 from a config, or the default GrokkingTransformer (p = 59) on 16 pairs")
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--pos", type=int, default=24)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.model == "grokking":
        model, clean, corrupt, metric, layers = _grokking()
        title = f"GrokkingTransformer (p = 59, d_model 128), {len(layers)} layers x 3 positions, 16 pairs"
    else:
        model, clean, corrupt, metric, layers = _gpt2(args)
        title = f"GPT-2 {args.layers} layers x {args.pos} positions, batch {args.batch}"
    ours = activation_patching(model, clean, corrupt, layers, metric, along="pos")
    loop = _loop(model, clean, corrupt, layers, metric)
    diff = float((ours.metric_values - loop).abs().max())
    print(f"{title}: max |batched - loop| = {diff:.2e}")
    if diff > 1e-4:
        raise SystemExit("the batched sweep and the loop disagree")
    times: dict[str, list[float]] = {"loop (one forward per cell)": [], "mechscope batched sweep": [],
                                     "attribution patching": []}
    for _ in range(args.rounds):
        _median(lambda: _loop(model, clean, corrupt, layers, metric), args.rounds, times["loop (one forward per cell)"])
        _median(lambda: activation_patching(model, clean, corrupt, layers, metric, along="pos"), args.rounds,
                times["mechscope batched sweep"])
        _median(lambda: attribution_patching(model, clean, corrupt, layers, metric, along="pos"), args.rounds,
                times["attribution patching"])
    medians = {name: statistics.median(t) for name, t in times.items()}
    base = medians["loop (one forward per cell)"]
    for name, seconds in medians.items():
        print(f"  {name:<30} {seconds * 1000:9.1f} ms   {base / seconds:6.1f}x the loop")
    approx = attribution_patching(model, clean, corrupt, layers, metric, along="pos")
    comparison = compare(ours, approx)
    print(f"attribution patching vs exact (recovered fraction): mean |error| {comparison.mean_error:.3f}, "
          f"max {comparison.max_error:.3f}")


if __name__ == "__main__":
    main()
