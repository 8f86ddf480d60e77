"""Grad-CAM speed: mechscope vs Captum's LayerGradCam vs pytorch-grad-cam's GradCAM, and the floor.

DigitCNN (28x28 inputs, last conv block 7x7), batch 256, layer `relu3`, the same target classes
for every library. Each produces the same thing: ReLU of the gradient-weighted channel sum,
upsampled bilinearly to 28x28 and scaled per map. The floor is one forward and one backward
pass of the same batch (`logits[target].sum().backward()`). All timings are interleaved in one
run (median of rounds) so machine noise hits every contender alike.

Peers (benchmark only): `pip install captum`, and
`pip install --no-deps grad-cam ttach opencv-python-headless` (pytorch-grad-cam's import of
torchvision is served by the stand-ins in bench/_stubs, put on sys.path by this script only).

Usage: python bench/gradcam_speed.py [--batch 256] [--rounds 30] [--threads 1]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from mechscope.attribution import GradCAM
from mechscope.models import DigitCNN, DigitCNNConfig, build_seeded


_INFO = "(info) Captum, channels-last model"
_OURS = "mechscope GradCAM"
_FLOOR = "floor (forward + backward)"


def _peers(
    model: torch.nn.Module, layer: str, x: torch.Tensor, target: torch.Tensor
) -> dict[str, Callable[[], object]]:
    peers: dict[str, Callable[[], object]] = {}
    size = (x.shape[-2], x.shape[-1])
    try:
        from captum.attr import LayerAttribution, LayerGradCam

        captum_model = copy.deepcopy(model)
        captum_cam = LayerGradCam(captum_model, captum_model.get_submodule(layer))

        def captum() -> torch.Tensor:
            maps = captum_cam.attribute(x, target=target, relu_attributions=True)
            maps = LayerAttribution.interpolate(maps, size, "bilinear")
            return maps / maps.flatten(1).amax(dim=1).clamp(min=1e-12).view(-1, 1, 1, 1)

        peers["Captum LayerGradCam"] = captum

        # Informational: Captum on a channels-last copy of the model and input, the layout
        # mechscope switches to by itself on CPU (not counted as a peer for the target).
        cl_model = copy.deepcopy(model).to(memory_format=torch.channels_last)
        cl_cam = LayerGradCam(cl_model, cl_model.get_submodule(layer))
        cl_x = x.contiguous(memory_format=torch.channels_last)

        def captum_channels_last() -> torch.Tensor:
            maps = cl_cam.attribute(cl_x, target=target, relu_attributions=True)
            maps = LayerAttribution.interpolate(maps, size, "bilinear")
            return maps / maps.flatten(1).amax(dim=1).clamp(min=1e-12).view(-1, 1, 1, 1)

        peers[_INFO] = captum_channels_last
    except ImportError:
        print("Captum not installed: pip install captum", file=sys.stderr)
    sys.path.insert(0, str(Path(__file__).resolve().parent / "_stubs"))  # torchvision stand-in, this process only
    try:
        from pytorch_grad_cam import GradCAM as PGCGradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        # Its own copy: pytorch-grad-cam keeps hooks on the model for the object's lifetime.
        pgc_model = copy.deepcopy(model)
        pgc_cam = PGCGradCAM(model=pgc_model, target_layers=[pgc_model.get_submodule(layer)])
        pgc_targets = [ClassifierOutputTarget(int(t)) for t in target]

        def pytorch_grad_cam() -> object:
            return pgc_cam(input_tensor=x, targets=pgc_targets)

        peers["pytorch-grad-cam GradCAM"] = pytorch_grad_cam
    except ImportError as err:
        print(f"pytorch-grad-cam unavailable ({err}): pip install --no-deps grad-cam ttach opencv-python-headless",
              file=sys.stderr)
    return peers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 keeps a shared machine's noise low)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = build_seeded(DigitCNN, DigitCNNConfig(), seed=0).eval()
    layer = model.last_conv
    x = torch.rand(args.batch, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        target = model(x).argmax(dim=1)
    ours = GradCAM(model, layer)

    def mechscope_gradcam() -> torch.Tensor:
        return ours.attribute(x, target)

    def floor() -> None:
        model.zero_grad(set_to_none=True)
        model(x).gather(1, target[:, None]).sum().backward()

    contenders: dict[str, Callable[[], object]] = {_FLOOR: floor, _OURS: mechscope_gradcam}
    contenders.update(_peers(model, layer, x, target))
    if "Captum LayerGradCam" in contenders:
        reference = contenders["Captum LayerGradCam"]()
        assert isinstance(reference, torch.Tensor)
        error = float((mechscope_gradcam() - reference[:, 0].detach()).abs().max())
        print(f"max |mechscope - Captum| over the batch: {error:.2e}")
    for fn in contenders.values():  # warm up
        for _ in range(3):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name, fn in contenders.items():
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    times = {name: statistics.median(values) for name, values in samples.items()}
    print(f"DigitCNN 28x28, batch {args.batch}, layer {layer}, {args.threads} thread(s), "
          f"median of {args.rounds} rounds")
    for name, seconds in times.items():
        print(f"  {name:36s} {seconds * 1e3:8.2f} ms   {args.batch / seconds:9.0f} images/s")
    mine = times[_OURS]
    peer_times = {name: t for name, t in times.items() if name not in (_OURS, _FLOOR, _INFO)}
    if peer_times:
        fastest = min(peer_times, key=peer_times.__getitem__)
        speedup = peer_times[fastest] / mine
        print(f"speed-up over the faster peer ({fastest}): {speedup:.2f}x   target >= 1.5x -> "
              f"{'met' if speedup >= 1.5 else 'MISSED'}")
    if _INFO in times:
        print(f"(info) speed-up over Captum given a channels-last model by hand: {times[_INFO] / mine:.2f}x")
    ratio = mine / times[_FLOOR]
    print(f"time / floor: {ratio:.2f}x   target <= 1.3x -> {'met' if ratio <= 1.3 else 'MISSED'}")


if __name__ == "__main__":
    main()
