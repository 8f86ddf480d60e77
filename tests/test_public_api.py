"""The public API stays narrow: each package exports the few names users touch, and only those.

Every package's `__all__` holds fewer than MAX_EXPORTS names, each importable from the package,
and the package's `__init__` imports nothing else (its namespace holds no public name outside
`__all__` but submodules). Everything else is imported from the submodule that defines it, whose
own `__all__` is its public surface. The top-level package's lazy names follow the same rule and
point at names their subpackages export.
"""

from __future__ import annotations

import __future__
import importlib
import pkgutil
import types

import pytest

import mechscope

MAX_EXPORTS = 15
"""Exports per package must stay below this: a reader takes in a package's names at a glance."""

VAGUE = {"Method", "Mode", "Reduce", "Kind", "Split", "Units", "Step", "Source", "Features", "Transform"}
"""Names that say nothing outside their module; a package exports a prefixed name instead."""

PACKAGES = sorted(info.name for info in pkgutil.walk_packages(mechscope.__path__, "mechscope.") if info.ispkg)
SUBMODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(mechscope.__path__, "mechscope.")
    if not info.ispkg and not any(part.startswith("_") for part in info.name.split(".")) and ".cli." not in info.name
)


def _exports(package: types.ModuleType) -> list[str]:
    return [name for name in getattr(package, "__all__", []) if not name.startswith("__")]


@pytest.mark.parametrize("name", ["mechscope", *PACKAGES])
def test_each_package_exports_fewer_than_the_limit(name: str) -> None:
    exports = _exports(importlib.import_module(name))
    assert len(exports) < MAX_EXPORTS, f"{name} exports {len(exports)} names: {exports}"
    assert len(set(exports)) == len(exports), f"{name}.__all__ repeats a name"


@pytest.mark.parametrize("name", ["mechscope", *PACKAGES])
def test_each_export_imports_from_its_package(name: str) -> None:
    package = importlib.import_module(name)
    for export in getattr(package, "__all__", []):
        value = getattr(package, export)  # what `from package import export` reads
        assert not isinstance(value, types.ModuleType), f"{name}.{export} is a module, not an export"
    assert not VAGUE & set(_exports(package)), f"{name} exports vague names {sorted(VAGUE & set(_exports(package)))}"


@pytest.mark.parametrize("name", PACKAGES)
def test_each_package_imports_only_what_it_exports(name: str) -> None:
    package = importlib.import_module(name)
    exported = set(getattr(package, "__all__", []))
    stray = sorted(
        attr
        for attr, value in vars(package).items()
        if not attr.startswith("_")
        and attr not in exported
        and not isinstance(value, types.ModuleType)  # submodules are attributes of their package
        and not isinstance(value, __future__._Feature)  # `from __future__ import annotations`
    )
    assert not stray, f"{name} holds names outside its __all__ (import them from their submodule): {stray}"


def test_top_level_names_are_lazy_and_exported_by_their_home() -> None:
    homes = mechscope._HOMES
    assert sorted(mechscope.__all__) == sorted(["__version__", *(n for names in homes.values() for n in names)])
    for module, names in homes.items():
        home = importlib.import_module(module)
        if module.count(".") == 1:  # a subpackage: the name is one of its exports
            assert set(names) <= set(home.__all__), f"{module} does not export {sorted(set(names) - set(home.__all__))}"
        for name in names:
            assert getattr(mechscope, name) is getattr(home, name)
    subpackages = {name.split(".")[1] for name in PACKAGES}
    assert not subpackages & set(mechscope._HOME_OF), "a lazy name that is also a subpackage's name resolves to it"
    with pytest.raises(AttributeError, match="no attribute 'get_layer'"):
        mechscope.get_layer  # noqa: B018  (exported by mechscope.capture, not by the top level)


@pytest.mark.parametrize("name", SUBMODULES)
def test_each_public_submodule_lists_what_it_offers(name: str) -> None:
    module = importlib.import_module(name)
    assert hasattr(module, "__all__"), f"{name} has no __all__"
    missing = [export for export in module.__all__ if not hasattr(module, export)]
    assert not missing, f"{name}.__all__ names what it does not define: {missing}"


def test_a_name_left_out_of_a_package_imports_from_its_submodule() -> None:
    circuits = importlib.import_module("mechscope.circuits")
    assert not hasattr(circuits, "unit_ablation")  # `from mechscope.circuits import unit_ablation` fails
    from mechscope.circuits.ablation import unit_ablation

    assert callable(unit_ablation)
