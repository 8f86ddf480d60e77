"""Seed 000's target trained the article's way: per-sample backpropagation in NumPy (bench baseline).

Shared by the benchmarks that time mechscope against the article's algorithm.
"""

from __future__ import annotations

import numpy as np


def article_weights(n_inputs: int, n_outputs: int, n_hidden: int = 5, n_layers: int = 7, seed: int = 4) -> list[np.ndarray]:
    """The article's initialisation: first layer U(0, 2), the others U(-1, 1)."""
    rng = np.random.default_rng(seed)
    weights = [2.0 * rng.random((n_inputs, n_hidden))]
    weights += [2.0 * rng.random((n_hidden, n_hidden)) - 1.0 for _ in range(n_layers - 3)]
    return weights + [2.0 * rng.random((n_hidden, n_outputs)) - 1.0]


def target_epoch(weights: list[np.ndarray], x: np.ndarray, y: np.ndarray, alpha: float = 1e-4) -> float:
    """One per-sample pass of the target's backpropagation; returns the mean squared error."""
    err = 0.0
    for i in range(x.shape[0]):
        acts = [x[i]]
        for w in weights[:-1]:
            acts.append(np.tanh(acts[-1] @ w))
        z = acts[-1] @ weights[-1]
        out = np.exp(z) / np.exp(z).sum()
        delta = out - y[i]
        back = delta * out * (1.0 - out)
        grads = []
        for j in range(len(weights) - 1, -1, -1):
            grads.append((j, np.outer(acts[j], back)))
            if j > 0:
                back = (back @ weights[j].T) * (1.0 - acts[j] ** 2)
        for j, grad in grads:
            weights[j] -= alpha * grad
        err += float((delta**2).sum())
    return err / x.shape[0]


def predict(weights: list[np.ndarray], x: np.ndarray) -> np.ndarray:
    """Class predictions of the trained target (batched: only the training is per-sample)."""
    h = x
    for w in weights[:-1]:
        h = np.tanh(h @ w)
    return (h @ weights[-1]).argmax(1)
