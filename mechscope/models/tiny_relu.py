"""TinyReLU: `Dense(k, relu) -> Dense(1)`, the smallest network whose weights read as a formula.

With one hidden unit the model computes `w2 * max(0, b1 + W1 . x) + b2`. While the
unit is active this is the affine map `(w2 W1) . x + (w2 b1 + b2)`, so a trained
model that fits `sum(x)` or `m . x + c` exposes the coefficients directly.

The unit has to stay active on (almost) all of the data. Where `b1 + W1 . x <= 0`
the output is the constant `b2` and no gradient reaches `fc1`, and gradient
descent only slowly enlarges the margin `b1 / |W1|` that decides how many samples
fall there (the fitted function is unchanged when `W1, b1` are scaled by `c` and
`w2` by `1/c`). For sum data the held-out MSE left by the dead tail is about
`|m|^2 E[(N + r)^2; N < -r]` with `r = b1 / |W1|`, so reaching 1e-4 needs `r` near 4.
The initialisation therefore starts where that margin is large and stays large:

* `fc1.bias ~ U(*bias_init)`, positive (3..5): every Gaussian input is active at the start;
* `fc2.weight ~ +-U(*out_init) / hidden` with a random sign: a large output weight lets
  `W1 = m / w2` stay small, so `r` is large at the fit;
* `fc2.bias = -fc2.weight @ fc1.bias`: the initial output is 0 at `x = 0`, so there is
  no large intercept error whose gradient would drag `b1` towards the dead zone.

Measured on sum data: with `fc1.bias ~ U(1, 3)` and PyTorch's default `fc2` init
(`|w2| < 1`), Adam (lr 1e-2, 1,600 steps) left 3-5% of inputs dead and a held-out
MSE of 5e-2 to 7e-2; with this initialisation 392 steps reach 1e-12 (see
`default_train_config`).

Layer names: `fc1` (Linear n_inputs -> hidden), `act` (ReLU), `fc2` (Linear hidden -> 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mechscope.errors import ConfigError, DataError
from mechscope.limits import MAX_WIDTH, check_limit

__all__ = ["TinyReLU", "TinyReLUConfig"]


@dataclass(frozen=True)
class TinyReLUConfig:
    """Shape and initialisation of a TinyReLU.

    Example:
        >>> TinyReLUConfig(n_inputs=5, hidden=1)
        TinyReLUConfig(n_inputs=5, hidden=1, bias_init=(3.0, 5.0), out_init=(4.0, 8.0))
    """

    n_inputs: int = 5  # n: features per example (the article uses 5)
    hidden: int = 1  # k: ReLU units between the two dense layers (the article uses 1)
    bias_init: tuple[float, float] = (3.0, 5.0)  # (low, high) of the uniform init of fc1.bias; positive keeps ReLUs on
    out_init: tuple[float, float] = (4.0, 8.0)  # (low, high) of |fc2.weight| * hidden at init; sign is random

    def __post_init__(self) -> None:
        if isinstance(self.n_inputs, bool) or not isinstance(self.n_inputs, int) or self.n_inputs < 1:
            raise ConfigError(f"n_inputs must be a positive integer, got {self.n_inputs!r}; e.g. n_inputs=5.")
        if isinstance(self.hidden, bool) or not isinstance(self.hidden, int) or self.hidden < 1:
            raise ConfigError(f"hidden must be a positive integer, got {self.hidden!r}; e.g. hidden=1.")
        check_limit("n_inputs", self.n_inputs, MAX_WIDTH)
        check_limit("hidden", self.hidden, MAX_WIDTH)
        for name in ("bias_init", "out_init"):
            bounds = getattr(self, name)
            if (
                not isinstance(bounds, tuple)
                or len(bounds) != 2
                or not all(isinstance(b, (int, float)) and math.isfinite(b) for b in bounds)
                or bounds[0] > bounds[1]
            ):
                raise ConfigError(
                    f"{name} must be a (low, high) pair of finite numbers with low <= high, got {bounds!r}."
                )
        if self.out_init[0] < 0:
            raise ConfigError(f"out_init bounds are magnitudes and must be >= 0, got {self.out_init!r}.")


class TinyReLU(nn.Module):
    """Two dense layers with a ReLU between them; returns one value per example.

    Args:
        config: Architecture; see `TinyReLUConfig`.

    Example:
        >>> model = TinyReLU(TinyReLUConfig(n_inputs=5))
        >>> model(torch.zeros(3, 5)).shape
        torch.Size([3])
    """

    def __init__(self, config: TinyReLUConfig) -> None:
        super().__init__()
        if not isinstance(config, TinyReLUConfig):
            raise ConfigError(
                f"TinyReLU needs a TinyReLUConfig, got {type(config).__name__}; "
                "build one with TinyReLUConfig(n_inputs=..., hidden=...)."
            )
        self.config = config
        self.fc1 = nn.Linear(config.n_inputs, config.hidden)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(config.hidden, 1)
        self._init_weights()

    def forward(self, x: Tensor) -> Tensor:
        """Return predictions (batch,) for inputs (batch, n_features)."""
        if x.dim() != 2 or x.shape[1] != self.config.n_inputs:
            raise DataError(
                f"TinyReLU(n_inputs={self.config.n_inputs}) expects inputs of shape "
                f"(batch, {self.config.n_inputs}), got {tuple(x.shape)}."
            )
        return self.fc2(self.act(self.fc1(x))).squeeze(-1)

    def _init_weights(self) -> None:
        # fc1.weight keeps PyTorch's default U(-1/sqrt(n), 1/sqrt(n)); see the module docstring.
        low, high = self.config.out_init
        k = self.config.hidden
        with torch.no_grad():
            nn.init.uniform_(self.fc1.bias, *self.config.bias_init)
            magnitude = torch.empty_like(self.fc2.weight).uniform_(low, high) / k
            sign = torch.where(torch.rand_like(self.fc2.weight) < 0.5, -1.0, 1.0)
            self.fc2.weight.copy_(magnitude * sign)
            self.fc2.bias.copy_(-(self.fc2.weight @ self.fc1.bias))
