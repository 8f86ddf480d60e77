"""Keep what `capture` stores equal to what each layer returned, whatever in-place ops follow.

An in-place op later in the forward pass (`nn.ReLU(inplace=True)`, `out += identity`)
rewrites a layer's output tensor, so keeping that tensor can return a value the layer never
returned. Copying every output is always right but costs one memory copy per layer and
call. The guard learns which outputs need the copy, per model:

1. The first time a call (`name`, `name:1`, ...) of a model is captured, its output is
   cloned, and its version counter (`Tensor._version`, bumped by every in-place op on the
   tensor or on a view of it) is compared at the end of the root forward pass with its
   value at capture time.
2. Calls seen unmodified are afterwards stored without a copy; calls seen modified keep
   being cloned. What was learned is kept per model and train/eval mode in a
   `WeakKeyDictionary` (it goes with the model).
3. Every stored alias is still checked at the end of each root forward pass and when the
   capture block ends. If one was modified after all (control flow that depends on the
   data), the call is marked for copying and `CaptureOverwrittenError` asks to run again:
   a wrong value is never returned silently (`record` reruns the batch by itself).
4. An alias sharing memory with the root's inputs or outputs, which the caller holds and
   may change in place after the pass, is replaced by a copy at the end of the pass.

Outside a call of the root model (a submodule run directly) and for inference-mode tensors
(they have no version counter), outputs are always cloned. Writes that bypass the version
counter (through `.data` or `.numpy()`) are not seen; torch layers do not write that way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from weakref import WeakKeyDictionary

from torch import Tensor, nn

from mechscope.capture.store import ActivationStore, Kind
from mechscope.errors import CaptureOverwrittenError

__all__ = ["Guard"]

_Key = tuple[Kind, str, bool]  # (kind, call name, model.training): train mode may change in place what eval does not

_KNOWN: WeakKeyDictionary[nn.Module, dict[_Key, bool]] = WeakKeyDictionary()
"""Per model: True for calls seen unmodified after capture (stored without a copy), False for modified ones."""


class _Kept:
    """One stored value the guard still watches."""

    __slots__ = ("key", "kind", "name", "index", "tensor", "version", "aliased")

    def __init__(self, key: _Key, index: int, tensor: Tensor, aliased: bool) -> None:
        self.key = key
        self.kind: Kind = key[0]
        self.name = key[1]
        self.index = index  # position among the store's parts for this name
        self.tensor = tensor  # shares the layer output's storage and version counter, no autograd graph
        self.version = tensor._version
        self.aliased = aliased  # True: the store holds this very memory, not a copy


class Guard:
    """One capture's bookkeeping: decide copy or alias, and check the aliases later.

    Args:
        model: The root model (what was learned is kept per model).
        store: Where values go.
        detach: Store detached values; False keeps the autograd graph (a copy is `out.clone()`).
    """

    def __init__(self, model: nn.Module, store: ActivationStore, *, detach: bool) -> None:
        known = _KNOWN.get(model)
        if known is None:
            known = _KNOWN[model] = {}
        self.known = known
        self.model = model
        self.store = store
        self.detach = detach
        self.model_name = type(model).__name__
        self.pending: list[_Kept] = []  # kept during the current root call, checked at its end
        self.aliases: list[_Kept] = []  # aliases of earlier root calls, checked when the block ends

    def start(self) -> None:
        """A root call begins: forget what an interrupted earlier call left."""
        if self.pending:
            self.aliases.extend(entry for entry in self.pending if entry.aliased)
            self.pending = []

    def keep(self, kind: Kind, name: str, tensor: Tensor, *, in_root: bool) -> None:
        """Store `tensor` (a layer's output or input) as it is now: as a copy, or as itself and watched."""
        key = (kind, name, self.model.training)
        learn = in_root and not tensor.is_inference()
        if learn and self.known.get(key) is True:
            value = tensor.detach() if self.detach else tensor
            index = self.store._append(kind, name, value)
            self.pending.append(_Kept(key, index, value if self.detach else tensor.detach(), aliased=True))
            return
        index = self.store._append(kind, name, tensor.detach().clone() if self.detach else tensor.clone())
        if learn and key not in self.known:
            self.pending.append(_Kept(key, index, tensor.detach(), aliased=False))

    def finish(self, args: tuple[Any, ...], kwargs: Mapping[str, Any], output: Any) -> None:
        """A root call returned: learn from the copies, check the aliases, copy those the caller holds.

        Raises:
            CaptureOverwrittenError: an output stored without a copy was changed in place.
        """
        pending, self.pending = self.pending, []
        overwritten: list[_Kept] = []
        exposed: set[int] | None = None
        for entry in pending:
            modified = entry.tensor._version != entry.version
            if not entry.aliased:
                if modified:
                    self.known[entry.key] = False
                else:
                    self.known.setdefault(entry.key, True)
            elif modified:
                self._mark(entry)
                overwritten.append(entry)
            else:
                if exposed is None:
                    exposed = _storages((args, kwargs, output))
                where = _storage(entry.tensor)
                if where < 0 or where in exposed:
                    self._copy(entry)
                else:
                    self.aliases.append(entry)
        if overwritten:
            raise self._error(overwritten, "later in the same forward pass")

    def close(self) -> None:
        """The capture block ended normally: check every alias once more.

        Raises:
            CaptureOverwrittenError: an output stored without a copy was changed in place
                since its forward pass (by a later forward pass or by code in the block).
        """
        entries = self.aliases + [entry for entry in self.pending if entry.aliased]
        self.aliases, self.pending = [], []
        overwritten = [entry for entry in entries if entry.tensor._version != entry.version]
        for entry in overwritten:
            self._mark(entry)
        if overwritten:
            raise self._error(overwritten, "after its forward pass")

    def _mark(self, entry: _Kept) -> None:
        self.known[entry.key] = False
        entry.aliased = False

    def _copy(self, entry: _Kept) -> None:
        self.store._copy_part(entry.kind, entry.name, entry.index)
        entry.aliased = False

    def _error(self, entries: list[_Kept], when: str) -> CaptureOverwrittenError:
        names = ", ".join(dict.fromkeys(repr(e.name) + (" (input)" if e.kind == "input" else "") for e in entries))
        return CaptureOverwrittenError(
            f"The captured value of {names} in {self.model_name} was overwritten in place {when} (an in-place op "
            "such as nn.ReLU(inplace=True) or `out += identity` that did not happen when this layer was first "
            "captured, so it was kept without a copy). mechscope copies it from now on: run the forward pass "
            "again to capture the value the layer returned."
        )


def _storages(values: Iterable[Any]) -> set[int]:
    """Storage addresses of the tensors in `values`, looking into tuples, lists and mappings (3 levels)."""
    found: set[int] = set()

    def walk(value: Any, depth: int) -> None:
        if isinstance(value, Tensor):
            found.add(_storage(value))
        elif depth < 4 and isinstance(value, (tuple, list)):
            for item in value:
                walk(item, depth + 1)
        elif depth < 4 and isinstance(value, Mapping):
            for item in value.values():
                walk(item, depth + 1)

    for value in values:
        walk(value, 0)
    return found


def _storage(tensor: Tensor) -> int:
    """The address of the memory behind `tensor`, shared by its views; -1 when it has none (then copied)."""
    try:
        return int(tensor.untyped_storage().data_ptr())
    except (RuntimeError, NotImplementedError):
        return -1
