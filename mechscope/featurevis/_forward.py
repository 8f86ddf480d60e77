"""Forward passes that record the layers an objective reads and stop once they have all run."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from torch import Tensor, nn

from mechscope.capture import ActivationStore, HookPoint, capture, patch
from mechscope.errors import ConfigError
from mechscope.featurevis.objectives import Activations

__all__ = ["forward_until", "reader"]


class _StopForward(Exception):
    """Raised from a hook once every recorded layer has produced its output."""


def forward_until(
    model: nn.Module,
    x: Tensor,
    names: Collection[str],
    *,
    need_output: bool,
    inputs: bool = False,
    detach: bool = True,
) -> tuple[Any, ActivationStore]:
    """Run `model(x)` recording `names`; skip the rest of the network when the output is not needed.

    Rendering an early layer then costs only the layers before it (Lucent always runs the
    whole network).

    Args:
        model: Any module.
        x: Its input batch.
        names: Layers to record (validated by `capture`).
        need_output: Run to the end and return the model output.
        inputs: Also record each layer's input.
        detach: False keeps the autograd graph of the recorded tensors.

    Returns:
        (model output as the model returned it (a tensor, dict, tuple or `ModelOutput`; the
        objectives that read it pick their tensor with `mechscope.capture.select_output`), or
        None when the pass stopped early; the recorded activations).
    """
    store = ActivationStore()
    if not names:
        return model(x), store
    # Callers check their data once up front (`evidence`) or build it (`render`): no per-pass check.
    with capture(model, list(names), inputs=inputs, detach=detach, check_finite=False) as store:
        if need_output:
            return model(x), store
        seen: set[str] = set()

        def stop_when_done(_output: Tensor, *, hook: HookPoint) -> None:
            # `capture` registered its hooks first, so this layer's output is already stored.
            seen.add(hook.name)
            if len(seen) == len(names):
                raise _StopForward

        try:
            with patch(model, {name: stop_when_done for name in names}):
                output = model(x)
        except _StopForward:
            return None, store
    return output, store


def reader(output: Any, store: ActivationStore) -> Activations:
    """Activations lookup over a `forward_until` result: None names the model output, as returned."""

    def acts(name: str | None) -> Tensor:
        if name is None:
            if output is None:
                raise ConfigError("The model output was not computed; pass need_output=True to forward_until.")
            return output
        return store.act(name)

    return acts
