"""What every training loop here shares: a seeded block in train mode and one finite-checked optimiser step.

`train` (epochs of minibatches) and `train_grokking` (full-batch steps logging both splits)
differ in what one iteration is and what they record; both run inside `seeded_training`
and update through `checked_step`, so seeding, mode restoring and divergence errors are
written once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from mechscope.data.finite import check_finite as check_tensor_finite

__all__ = ["seeded_training", "checked_step"]


@contextmanager
def seeded_training(model: nn.Module, seed: int, device: torch.device) -> Iterator[None]:
    """Run the block in train mode with torch's global RNG forked and seeded by `seed`.

    The RNG state (of `device` too, on CUDA) and the model's train/eval mode are restored
    on exit, also after an exception.
    """
    was_training = model.training
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        model.train()
        try:
            yield
        finally:
            model.train(was_training)


def checked_step(
    optimizer: torch.optim.Optimizer, loss: Tensor, *, check_finite: bool, where: str, lr: float, skip_with: str
) -> None:
    """Back-propagate `loss` and step, after checking that it is finite (one scalar check).

    Raises:
        DataError: `loss` is NaN/inf (when `check_finite`); the weights are not updated.
    """
    if check_finite and not bool(torch.isfinite(loss)):  # checked before this step updates the weights
        check_tensor_finite(
            loss.detach(),
            f"the training loss at {where}",
            fix="Training diverged; the model keeps the weights it had before this step. "
            f"Lower the learning rate (lr={lr:g}; try lr={lr / 10:g})",
            skip_with=skip_with,
        )
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
