"""Stream a dataset through a model and record layer activations with bounded memory."""

from __future__ import annotations

import os
from collections.abc import Iterable
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from mechscope.capture.capture import capture
from mechscope.capture.modes import eval_mode, model_device
from mechscope.capture.names import LayerSpec, resolve_layers
from mechscope.atomic import check_output, writing_folder
from mechscope.capture.store import ActivationStore, finish_memmaps, is_activation_folder, open_memmaps
from mechscope.data.finite import check_finite as check_tensor_finite
from mechscope.errors import CaptureOverwrittenError, DataError

__all__ = ["record", "iter_batches", "model_device"]

Inputs = Tensor | Dataset | DataLoader
"""A tensor of inputs, a Dataset (first item of each sample is the input) or a DataLoader."""


def iter_batches(data: Inputs, batch_size: int) -> tuple[Iterable[Tensor], int | None]:
    """Return an iterable of input batches and the number of examples (None if unknown)."""
    if isinstance(data, Tensor):
        return data.split(batch_size), data.shape[0]
    if isinstance(data, DataLoader):
        size = len(data.dataset) if hasattr(data.dataset, "__len__") else None
        return (_first(b) for b in data), size
    if isinstance(data, Dataset):
        loader = DataLoader(data, batch_size=batch_size, shuffle=False)
        return (_first(b) for b in loader), len(data)  # type: ignore[arg-type]
    raise DataError(
        f"record() takes a Tensor, Dataset or DataLoader of inputs; got {type(data).__name__}. "
        "Wrap arrays with torch.as_tensor(...)."
    )


def record(
    model: nn.Module,
    layers: LayerSpec,
    data: Inputs,
    *,
    batch_size: int = 256,
    out_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    check_finite: bool = True,
) -> ActivationStore:
    """Run `data` through `model` in eval mode and record the named layers' outputs.

    Each name is a layer (`name`) or one call of a module that runs several times per
    forward pass (`name:k`); the values are what each layer returned, whatever in-place ops
    follow it (see `capture`). A batch whose value turns out overwritten in place is run again.

    In memory by default; with `out_dir`, each layer streams into a float32 `.npy` memmap
    so memory stays bounded by one batch. The folder appears only when complete (written
    to a temporary sibling, then renamed).

    Args:
        model: Any module.
        layers: Dotted layer names.
        data: Input tensor (batch, ...), Dataset or DataLoader.
        batch_size: Examples per forward pass (ignored for a DataLoader).
        out_dir: Folder for memory-mapped activations; None keeps them in memory. It must be
            new, empty, or hold earlier recorded activations (replaced once the new ones are complete).
        progress: Show a progress bar on long runs.
        check_finite: Raise DataError on NaN/inf inputs (one `isfinite` over a tensor before
            any forward pass; one per batch for a Dataset or DataLoader). False records them,
            NaN activations included.

    Returns:
        ActivationStore whose `act(name)` has shape (batch, ...) over the whole dataset.

    Raises:
        OutputError: `out_dir` holds something other than recorded activations.
        DataError: The data holds NaN/inf (the message names the first one), or its dtype
            differs from the model's parameters (e.g. float64 inputs to a float32 model).

    Example:
        >>> store = record(model, ["hidden.0", "hidden.1"], x_test)
        >>> store.act("hidden.0").shape
    """
    if batch_size < 1:
        raise DataError(f"batch_size must be >= 1; got {batch_size}.")
    names = resolve_layers(model, layers)
    batches, total = _checked_batches(data, batch_size, out_dir, check_finite=check_finite)
    device = model_device(model)
    with ExitStack() as stack:
        folder = None
        if out_dir is not None:
            folder = stack.enter_context(writing_folder(out_dir, owned=is_activation_folder,
                                                        what="recorded activations"))
        sink = _Sink(folder, int(total or 0))
        bar = tqdm(batches, total=_n_batches(total, batch_size, data), disable=_quiet(progress, total),
                   desc="record", leave=False)
        _stream(model, names, bar, sink, device=device, check_finite=check_finite and not isinstance(data, Tensor))
        sink.finish()
    if out_dir is not None:
        return ActivationStore.load(out_dir)
    return sink.store


_SKIP = "check_finite=False to record()"


def _checked_batches(
    data: Inputs, batch_size: int, out_dir: str | os.PathLike[str] | None, *, check_finite: bool
) -> tuple[Iterable[Tensor], int | None]:
    """The batches of `data` and its length (None if unknown), after the checks made before any forward pass."""
    if check_finite and isinstance(data, Tensor):
        check_tensor_finite(data, "data", skip_with=_SKIP)
    batches, total = iter_batches(data, batch_size)
    if out_dir is not None and total is None:
        raise DataError("Streaming to disk needs a dataset with a length; pass a Tensor or a sized Dataset.")
    if out_dir is not None:
        check_output(out_dir, owned=is_activation_folder, what="recorded activations")
    return batches, total


def _stream(
    model: nn.Module, names: list[str], batches: Iterable[Tensor], sink: _Sink, *, device: torch.device,
    check_finite: bool,
) -> None:
    """Run each batch through `model` (eval mode, no autograd) and hand its activations to `sink`.

    With `check_finite`, each batch is checked for NaN/inf before its forward pass.
    """
    offset = 0
    with eval_mode(model), torch.no_grad():
        for number, batch in enumerate(batches):
            if check_finite:
                check_tensor_finite(batch, f"data (batch {number}, from example {offset})", skip_with=_SKIP)
            acts = _run(model, names, batch.to(device))
            n = batch.shape[0]
            sink.write(acts, offset, n)
            offset += n


class _Sink:
    """Where recorded batches go: an in-memory store, or one float32 memmap per layer in `folder`."""

    def __init__(self, folder: Path | None, total: int) -> None:
        self.folder = folder  # the temporary folder being written; None keeps activations in memory
        self.total = total  # examples in the dataset: the first dimension of each memmap
        self.store = ActivationStore()
        self.maps: dict[str, np.memmap] = {}

    def write(self, acts: dict[str, Tensor], offset: int, n: int) -> None:
        """Add one batch's activations: `n` examples from example `offset` on."""
        if self.folder is None:
            for name, value in acts.items():
                self.store._append("act", name, value.cpu())
            return
        if not self.maps:
            shapes = {name: (self.total, *value.shape[1:]) for name, value in acts.items()}
            self.maps = open_memmaps(self.folder, shapes)
        for name, value in acts.items():
            self.maps[name][offset : offset + n] = value.float().cpu().numpy()

    def finish(self) -> None:
        """Flush the memmaps to disk (nothing to do in memory)."""
        if self.folder is not None:
            finish_memmaps(self.folder, self.maps)


def _run(model: nn.Module, names: list[str], batch: Tensor) -> dict[str, Tensor]:
    """One batch's activations; rerun when capture reports a value overwritten in place."""
    reruns = 0
    while True:
        try:
            with capture(model, names, check_finite=False) as store:  # checked by record, once per tensor
                model(batch)
            return {name: store.act(name) for name in names}
        except CaptureOverwrittenError:
            # The overwritten calls are copied from now on, so a rerun (eval mode, no autograd:
            # the same computation) captures them right; each failure marks one more call.
            reruns += 1
            if reruns > len(names):
                raise


def _first(batch: object) -> Tensor:
    if isinstance(batch, Tensor):
        return batch
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], Tensor):
        return batch[0]
    raise DataError(f"Each batch must be a tensor or a (inputs, ...) tuple; got {type(batch).__name__}.")


def _n_batches(total: int | None, batch_size: int, data: Inputs) -> int | None:
    if isinstance(data, DataLoader):
        try:
            return len(data)
        except TypeError:
            return None
    return None if total is None else -(-total // batch_size)


def _quiet(progress: bool, total: int | None) -> bool | None:
    # None lets tqdm decide: shown on a terminal, silent in logs and pipes.
    if not progress or (total is not None and total <= 4096):
        return True
    return None

