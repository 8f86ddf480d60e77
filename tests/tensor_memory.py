"""Measure the tensor memory a block of code holds: every storage an op allocates, until it is freed.

`LiveTensorBytes` is a `TorchDispatchMode`: each op's outputs whose storage is new (not one of
the op's inputs', so views and in-place results count nothing) are added to the live total,
and a finalizer on the storage takes them off when it is freed. `peak` is the most bytes live
at once. Tensors that existed before the block (weights, data) are not counted; allocations
inside an op that it frees before returning (scratch space) are not seen.
"""

from __future__ import annotations

import weakref
from typing import Any

from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


class LiveTensorBytes(TorchDispatchMode):
    """Track the bytes of the tensors allocated inside `with LiveTensorBytes() as live:`; read `live.peak`."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, int] = {}  # id of a live storage -> its bytes
        self.now = 0  # bytes live now
        self.peak = 0  # most bytes live at once

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        given = {id(t.untyped_storage()) for t in tree_leaves((args, kwargs)) if _counted(t)}
        for tensor in tree_leaves(out):
            if not _counted(tensor):
                continue
            storage = tensor.untyped_storage()
            key = id(storage)
            if key in given or key in self.live or storage.nbytes() == 0:
                continue
            self.live[key] = storage.nbytes()
            self.now += storage.nbytes()
            self.peak = max(self.peak, self.now)
            weakref.finalize(storage, self._free, key)
        return out

    def _free(self, key: int) -> None:
        self.now -= self.live.pop(key)


def _counted(value: Any) -> bool:
    return isinstance(value, Tensor) and value.device.type != "meta"
