"""ConvProbe: the convolutional probe of the modular-addition article, generalised.

The article slides `k` kernels of `r x c` over the activation image (one row per hidden
layer), keeps at each position the largest of the `k` responses ("max over kernels"),
applies tanh, and reads the result with fully connected tanh layers ending in one
softmax per label group. Here the sliding is one `F.conv2d` over the whole batch.
`pooling="channels"` keeps the `k` response maps as ordinary channels instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from mechscope.errors import ConfigError, DataError
from mechscope.probes.base import ArrayLike, NetworkProbe
from mechscope.probes.mlp import ACTIVATIONS, check_hidden, fully_connected

__all__ = ["ConvProbe", "Pooling"]

Pooling = Literal["kernels", "channels"]


class ConvProbe(NetworkProbe):
    """Kernels over an activation image, pooled, then fully connected layers and one head per group.

    Args:
        kernel_size: Kernel rows and columns `(r, c)`, or one int for square kernels.
        n_kernels: Number of kernels `k`.
        pooling: "kernels" (the article: the maximum of the k responses at each position,
            one feature map) or "channels" (k feature maps, an ordinary conv layer).
        hidden_sizes: Units of the fully connected hidden layers.
        activation: Nonlinearity after the pooling and after each hidden layer.
        dropout: Dropout probability after each hidden layer.
        lr: Adam learning rate.
        max_epochs: Upper bound on passes over the training set.
        batch_size: Examples per step; None trains full-batch.
        weight_decay: L2 penalty handed to Adam.
        stop_accuracy: Stop once every head reaches this training accuracy (checked every
            epoch on up to 512 distinct rows, else every 5); None, or any continuous
            group, trains all `max_epochs`.
        seed: Seeds the initial weights (kernels uniform in [-0.5, 0.5] for 2 x 2, as in the
            article), dropout and shuffling.

    Inputs are images (batch, height, width) or (batch, channel, height, width); the
    kernels have no bias, as in the article.

    Fitted attributes:
        network_, history_, n_epochs_ (see NetworkProbe); kernels_ (n_kernels, channel, r, c).

    Example:
        >>> probe = ConvProbe(kernel_size=(2, 2), n_kernels=3).fit(images, {"a": a, "b": b, "output": out})
        >>> probe.kernel_responses(images[:4]).shape        # (batch, n_kernels, height - 1, width - 1)
    """

    def __init__(
        self,
        *,
        kernel_size: int | tuple[int, int] = (2, 2),
        n_kernels: int = 3,
        pooling: Pooling = "kernels",
        hidden_sizes: Sequence[int] = (30, 30),
        activation: str = "tanh",
        dropout: float = 0.5,
        lr: float = 0.03,
        max_epochs: int = 400,
        batch_size: int | None = None,
        weight_decay: float = 0.0,
        stop_accuracy: float | None = 1.0,
        seed: int = 0,
    ) -> None:
        self.kernel_size = kernel_size
        self.n_kernels = n_kernels
        self.pooling = pooling
        self.hidden_sizes = hidden_sizes
        self.activation = activation
        self.dropout = dropout
        self.lr = lr
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.stop_accuracy = stop_accuracy
        self.seed = seed

    @property
    def kernels_(self) -> Tensor:
        """Learned kernels (n_kernels, channel, r, c)."""
        self._check_is_fitted()
        net: _ConvNetwork = self.network_  # type: ignore[assignment]
        return net.kernels.weight.detach().clone()

    def kernel_responses(self, x: ArrayLike) -> Tensor:
        """Each kernel's response before pooling, (batch, n_kernels, height - r + 1, width - c + 1)."""
        x = self._checked(x)
        net: _ConvNetwork = self.network_  # type: ignore[assignment]
        with torch.no_grad():
            return net.kernels(self._prepare(x.to(net.kernels.weight.device))).to(x.device)

    def _check_params(self) -> None:
        super()._check_params()
        _kernel_pair(self.kernel_size)
        if isinstance(self.n_kernels, bool) or not isinstance(self.n_kernels, int) or self.n_kernels < 1:
            raise ConfigError(f"n_kernels must be a positive integer, got {self.n_kernels!r}; the article uses 3.")
        if self.pooling not in ("kernels", "channels"):
            raise ConfigError(
                f"pooling must be 'kernels' (max over kernels, as in the article) or 'channels', got {self.pooling!r}."
            )
        check_hidden(self.hidden_sizes, self.activation, self.dropout)

    def _check_input_shape(self, shape: tuple[int, ...]) -> None:
        if len(shape) not in (2, 3):
            raise DataError(
                f"ConvProbe reads activation images (batch, height, width) or (batch, channel, height, width), "
                f"got examples of shape {shape}; stack layers with activation_image(...)."
            )
        rows, cols = _kernel_pair(self.kernel_size)
        height, width = shape[-2:]
        if rows > height or cols > width:
            raise ConfigError(
                f"kernel_size ({rows}, {cols}) does not fit activation images of height {height} and width {width}; "
                f"use kernels of at most ({height}, {width})."
            )

    def _prepare(self, x: Tensor) -> Tensor:
        return x.unsqueeze(1) if x.dim() == 3 else x  # (batch, channel, height, width)

    def _build_network(self, input_shape: tuple[int, ...], n_outputs: int) -> nn.Module:
        channels, height, width = input_shape
        rows, cols = _kernel_pair(self.kernel_size)
        return _ConvNetwork(
            channels,
            (rows, cols),
            self.n_kernels,
            self.pooling,
            (height - rows + 1) * (width - cols + 1),
            self.hidden_sizes,
            n_outputs,
            self.activation,
            self.dropout,
        )


class _ConvNetwork(nn.Module):
    """kernels -> pool (max over kernels, or keep channels) -> activation -> fully connected heads."""

    def __init__(
        self,
        channels: int,
        kernel_size: tuple[int, int],
        n_kernels: int,
        pooling: Pooling,
        n_positions: int,
        hidden_sizes: Sequence[int],
        n_outputs: int,
        activation: str,
        dropout: float,
    ) -> None:
        super().__init__()
        self.pooling = pooling
        self.kernels = nn.Conv2d(channels, n_kernels, kernel_size, bias=False)
        self.act = ACTIVATIONS[activation]()
        n_maps = 1 if pooling == "kernels" else n_kernels
        self.head = fully_connected(n_maps * n_positions, hidden_sizes, n_outputs, activation, dropout)

    def forward(self, x: Tensor) -> Tensor:
        responses = self.kernels(x)  # (batch, n_kernels, height', width')
        pooled = responses.amax(dim=1, keepdim=True) if self.pooling == "kernels" else responses
        return self.head(self.act(pooled).flatten(1))


def _kernel_pair(kernel_size: object) -> tuple[int, int]:
    is_int = isinstance(kernel_size, int) and not isinstance(kernel_size, bool)
    pair = (kernel_size, kernel_size) if is_int else kernel_size
    if (
        not isinstance(pair, (tuple, list))
        or len(pair) != 2
        or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in pair)
    ):
        raise ConfigError(
            f"kernel_size must be a positive int or a pair (rows, cols), got {kernel_size!r}; e.g. (2, 2)."
        )
    return int(pair[0]), int(pair[1])
