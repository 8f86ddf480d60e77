"""Token grids: read a vision transformer's tokens (batch, tokens, d_model) as maps (batch, d_model, h, w).

CAM methods weight the channels of a (batch, channel, height, width) map. A ViT layer holds
one feature vector per image patch instead, in row-major patch order, often after a class
token. When the number of patch tokens is a square (a leading class token is skipped when
tokens - 1 is one), the tokens are laid back on their h x w patch grid with the features
as channels, and every CAM method applies unchanged (the approach of pytorch-grad-cam's
`reshape_transform` for ViT, made automatic). `token_grid=(h, w)` and `skip_tokens=` set
the grid by hand, e.g. for models with distillation or register tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import Tensor

from mechscope.errors import ConfigError, UnsupportedModelError

__all__ = ["TokenGrid", "infer_token_grid"]


@dataclass(frozen=True)
class TokenGrid:
    """Where the patch tokens of a (batch, tokens, d_model) output lie."""

    height: int  # patch rows
    width: int  # patch columns
    skip: int = 0  # leading tokens that are not patches (1 for a class token)

    def __post_init__(self) -> None:
        for name in ("height", "width"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"token_grid must be two positive integers (h, w); got {name}={value!r}.")
        if isinstance(self.skip, bool) or not isinstance(self.skip, int) or self.skip < 0:
            raise ConfigError(f"skip_tokens must be a non-negative integer; got {self.skip!r}.")

    def to_maps(self, tokens: Tensor) -> Tensor:
        """(batch, tokens, d_model) -> (batch, d_model, height, width); the skipped tokens are dropped."""
        patches = tokens[:, self.skip : self.skip + self.height * self.width]  # (batch, h * w, d_model)
        return patches.reshape(tokens.shape[0], self.height, self.width, tokens.shape[2]).permute(0, 3, 1, 2)


def infer_token_grid(
    n_tokens: int, *, token_grid: tuple[int, int] | None = None, skip_tokens: int | None = None, layer: str = "layer"
) -> TokenGrid:
    """The patch grid of a layer with `n_tokens` tokens: as given, or inferred from a square count.

    Args:
        n_tokens: Tokens per input at the layer.
        token_grid: (h, w) patch grid; None infers a square one.
        skip_tokens: Leading non-patch tokens; None takes n_tokens - h * w when the grid is
            given, else 0 when n_tokens is a square and 1 when n_tokens - 1 is one.
        layer: Layer name for messages.

    Raises:
        UnsupportedModelError: No grid can be inferred, or the given one does not fit.

    Example:
        >>> infer_token_grid(197)   # ViT-B/16 at 224 x 224: a class token and 14 x 14 patches
        TokenGrid(height=14, width=14, skip=1)
    """
    how = "pass token_grid=(h, w) and skip_tokens= to the method"
    if token_grid is not None:
        if not isinstance(token_grid, (tuple, list)) or len(token_grid) != 2:
            raise ConfigError(f"token_grid must be (h, w); got {token_grid!r}.")
        h, w = TokenGrid(*token_grid).height, TokenGrid(*token_grid).width  # validates the numbers
        skip = n_tokens - h * w if skip_tokens is None else skip_tokens
        if skip < 0 or skip + h * w != n_tokens:
            raise UnsupportedModelError(
                f"Layer {layer!r} has {n_tokens} tokens, but token_grid={tuple(token_grid)} with skip_tokens={skip} "
                f"covers {skip + h * w}; {how} so that skip_tokens + h * w = {n_tokens}."
            )
        return TokenGrid(h, w, skip)
    candidates = [0, 1] if skip_tokens is None else [skip_tokens]
    for skip in candidates:
        side = math.isqrt(max(n_tokens - skip, 0))
        if side > 0 and side * side == n_tokens - skip:
            return TokenGrid(side, side, skip)
    tried = "neither it nor tokens - 1 is a square" if skip_tokens is None else (
        f"{n_tokens} - {skip_tokens} skipped is not a square")
    raise UnsupportedModelError(
        f"Layer {layer!r} has {n_tokens} tokens per input and {tried}, so its patch grid cannot be inferred; {how}."
    )
