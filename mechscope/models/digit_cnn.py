"""DigitCNN: a small convolutional digit classifier for 8x8 or 28x28 grey images.

The trunk is a stack of 3x3 conv blocks, `conv{i} -> [bn{i}] -> relu{i}`, the first
`pools` of them followed by a 2x2 max pool `pool{i}`. The last block is never pooled, so its
activation (the CAM layer) keeps the finest resolution the head sees: 7x7 for the
default 28x28 model, 3x3 for the 28x28 GAP model, 4x4 for 8x8 input.

Two heads:
    gap=False   flatten -> fc1 -> relu_fc -> fc2
    gap=True    gap (AdaptiveAvgPool2d(1)) -> flatten -> fc

With `gap=True` the logits are linear in the channel means of the last block, so
class activation maps (Zhou et al., 2016, arXiv:1512.04150) are exact:
`logit_c = b_c + mean_hw(sum_k fc.weight[c, k] * relu_last[k, h, w])`.
`model.last_conv` names that last activation layer (e.g. "relu3"). BatchNorm, on by
default in the GAP models, sits before that ReLU and so does not affect this identity;
like any BatchNorm model, put it in `model.eval()` before analysing it.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from mechscope.errors import ConfigError, DataError
from mechscope.limits import MAX_LAYERS, MAX_WIDTH, check_limit

__all__ = ["DigitCNN", "DigitCNNConfig"]


@dataclass(frozen=True)
class DigitCNNConfig:
    """Shape of a DigitCNN.

    With `channels` left as None the architecture comes from a measured preset
    (>= 97% held-out accuracy with `default_train_config`; without BatchNorm the GAP
    models stall near 96-97%); `pools` and `batch_norm` left as None follow it:

    | image_size | gap   | channels         | pools | batch_norm | last block  |
    |------------|-------|------------------|-------|------------|-------------|
    | > 16       | False | (8, 16, 32)      | 2     | False      | 7x7 (28x28) |
    | > 16       | True  | (16, 32, 64, 64) | 3     | True       | 3x3 (28x28) |
    | <= 16      | False | (16, 32, 64, 64) | 1     | False      | 4x4 (8x8)   |
    | <= 16      | True  | (16, 32, 64, 64) | 1     | True       | 4x4 (8x8)   |

    With `channels` given, `pools=None` pools after every block but the last and
    `batch_norm=None` means no BatchNorm.

    Example:
        >>> DigitCNNConfig(image_size=8, gap=True).final_size
        4
    """

    in_channels: int = 1  # channel of the input images (1 for grey digits)
    image_size: int = 28  # height == width of the input: 28 (MNIST) or 8 (sklearn digits)
    channels: tuple[int, ...] | None = None  # output channel of each conv block; None: preset from image_size, gap
    n_classes: int = 10  # logits returned
    gap: bool = False  # True: global-average-pool head with one Linear `fc` (exact CAM)
    fc_hidden: int = 64  # units of `fc1` in the non-GAP head (ignored when gap=True)
    kernel_size: int = 3  # odd conv kernel size; padding keeps height and width
    pools: int | None = None  # 2x2 max pools, after blocks 1..pools; None: preset, or all blocks but the last
    batch_norm: bool | None = None  # BatchNorm2d `bn{i}` between conv{i} and relu{i}; None: preset, or False

    def __post_init__(self) -> None:
        for name in ("in_channels", "image_size", "n_classes", "fc_hidden", "kernel_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}.")
            check_limit(name, value, MAX_WIDTH)
        if not isinstance(self.gap, bool):
            raise ConfigError(f"gap must be True or False, got {self.gap!r}.")
        if self.batch_norm is not None and not isinstance(self.batch_norm, bool):
            raise ConfigError(f"batch_norm must be True, False or None, got {self.batch_norm!r}.")
        if self.kernel_size % 2 == 0:
            raise ConfigError(f"kernel_size must be odd so padding keeps the size, got {self.kernel_size!r}.")
        if self.n_classes < 2:
            raise ConfigError(f"n_classes must be >= 2, got {self.n_classes!r}.")
        if self.channels is not None and (
            not isinstance(self.channels, tuple)
            or not self.channels
            or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in self.channels)
        ):
            raise ConfigError(
                f"channels must be None or a non-empty tuple of positive integers, got {self.channels!r}; "
                "e.g. (8, 16, 32)."
            )
        if self.channels is not None:
            check_limit("the number of conv blocks", len(self.channels), MAX_LAYERS)
            check_limit("channels", max(self.channels), MAX_WIDTH)
        n_blocks = len(self.block_channels)
        if self.pools is not None and (
            isinstance(self.pools, bool) or not isinstance(self.pools, int) or not 0 <= self.pools < n_blocks
        ):
            raise ConfigError(
                f"pools must be None or an integer in 0..{n_blocks - 1} (the last of the {n_blocks} conv blocks "
                f"is never pooled), got {self.pools!r}."
            )
        if self.final_size < 1:
            raise ConfigError(
                f"image_size={self.image_size} is too small for {self.n_pools} 2x2 pools: they would shrink it "
                "to zero; set pools=... lower or use a larger image_size."
            )
        # Store the resolved values so repr() and dataclasses.asdict() spell the architecture out.
        resolved = (self.block_channels, self.n_pools, self.use_batch_norm)
        for name, value in zip(("channels", "pools", "batch_norm"), resolved):
            object.__setattr__(self, name, value)

    @property
    def block_channels(self) -> tuple[int, ...]:
        """Output channel of each conv block (resolved)."""
        if self.channels is not None:
            return self.channels
        if self.gap or self.image_size <= 16:
            return (16, 32, 64, 64)
        return (8, 16, 32)

    @property
    def n_pools(self) -> int:
        """Number of 2x2 max pools in the trunk (resolved)."""
        if self.pools is not None:
            return self.pools
        if self.channels is None and self.image_size <= 16:
            return 1
        return len(self.block_channels) - 1

    @property
    def use_batch_norm(self) -> bool:
        """Whether conv blocks carry BatchNorm (resolved)."""
        if self.batch_norm is not None:
            return self.batch_norm
        return self.channels is None and self.gap

    @property
    def final_size(self) -> int:
        """Height (== width) of the last conv block's output."""
        return self.image_size // 2**self.n_pools


class DigitCNN(nn.Module):
    """Conv blocks then a dense or global-average-pool head; returns logits (batch, n_classes).

    Args:
        config: Architecture; see `DigitCNNConfig`.

    Example:
        >>> model = DigitCNN(DigitCNNConfig(image_size=8, gap=True))
        >>> model(torch.zeros(2, 1, 8, 8)).shape
        torch.Size([2, 10])
    """

    def __init__(self, config: DigitCNNConfig) -> None:
        super().__init__()
        if not isinstance(config, DigitCNNConfig):
            raise ConfigError(
                f"DigitCNN needs a DigitCNNConfig, got {type(config).__name__}; "
                "build one with DigitCNNConfig(image_size=..., gap=...)."
            )
        self.config = config
        c_in = config.in_channels
        for i, c_out in enumerate(config.block_channels, start=1):
            self.add_module(f"conv{i}", nn.Conv2d(c_in, c_out, config.kernel_size, padding=config.kernel_size // 2))
            if config.use_batch_norm:
                self.add_module(f"bn{i}", nn.BatchNorm2d(c_out))
            self.add_module(f"relu{i}", nn.ReLU())
            if i <= config.n_pools:
                self.add_module(f"pool{i}", nn.MaxPool2d(2))
            c_in = c_out
        if config.gap:
            self.gap = nn.AdaptiveAvgPool2d(1)
            self.flatten = nn.Flatten()
            self.fc = nn.Linear(c_in, config.n_classes)
        else:
            self.flatten = nn.Flatten()
            self.fc1 = nn.Linear(c_in * config.final_size**2, config.fc_hidden)
            self.relu_fc = nn.ReLU()
            self.fc2 = nn.Linear(config.fc_hidden, config.n_classes)
        self._init_weights()

    @property
    def last_conv(self) -> str:
        """Name of the last conv block's activation layer (the CAM layer), e.g. "relu3"."""
        return f"relu{len(self.config.block_channels)}"

    def forward(self, x: Tensor) -> Tensor:
        """Return logits (batch, n_classes) for images (batch, channel, height, width)."""
        c, size = self.config.in_channels, self.config.image_size
        if x.dim() != 4 or tuple(x.shape[1:]) != (c, size, size):
            raise DataError(
                f"DigitCNN expects images of shape (batch, {c}, {size}, {size}), got {tuple(x.shape)}; "
                "set DigitCNNConfig(image_size=..., in_channels=...) to match the data."
            )
        # Modules were registered in forward order, so running the children in turn is the forward pass.
        for module in self.children():
            x = module(x)
        return x

    def _init_weights(self) -> None:
        # He init (He et al., 2015) for layers feeding a ReLU; PyTorch's default is about
        # 1/sqrt(6) of it and leaves the first epochs learning slowly.
        logits_layer = self.fc if self.config.gap else self.fc2
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)) and module is not logits_layer:
                nn.init.kaiming_uniform_(module.weight, nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
