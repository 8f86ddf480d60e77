"""Benchmark-only stand-in for the torchvision names pytorch-grad-cam imports; never called."""

from torchvision import ops, transforms

__all__ = ["ops", "transforms"]
