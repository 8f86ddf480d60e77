"""Models built by user code: parsing, trust, imports, calls and checkpoints that record the factory."""

from __future__ import annotations

import json
import textwrap

import pytest
import torch
from torch import nn

from mechscope.errors import CheckpointError, ConfigError, UntrustedCodeError
from mechscope.models.checkpoint import META_FILE, load_checkpoint, save_checkpoint
from mechscope.models.factory import TRUST_ENV, ModelFactory, code_trusted, parse_model_args

NET = """
from torch import nn
from helper_block import Block   # a sibling module: the file's folder is on the path


def make(width=4, depth=1):
    return nn.Sequential(nn.Linear(3, width), *[Block(width) for _ in range(depth)], nn.Linear(width, 2))


class Net(nn.Module):
    def __init__(self, width=4):
        super().__init__()
        self.fc = nn.Linear(3, width)

    def forward(self, x):
        return self.fc(x)


def broken(width=4):
    raise ValueError("width must be even")


def not_a_model():
    return 3
"""
BLOCK = """
from torch import nn


class Block(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.fc = nn.Linear(width, width)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act(self.fc(x)) + x
"""


@pytest.fixture
def net_file(tmp_path):
    (tmp_path / "helper_block.py").write_text(textwrap.dedent(BLOCK))
    path = tmp_path / "net.py"
    path.write_text(textwrap.dedent(NET))
    return path


def test_parse_file_and_module_forms(net_file):
    factory = ModelFactory.parse(f"{net_file}:make", {"width": 8})
    assert factory.source == str(net_file.resolve()) and factory.name == "make" and factory.is_file
    module = ModelFactory.parse("pkg.nets:zoo.make_resnet")
    assert (module.source, module.name, module.is_file) == ("pkg.nets", "zoo.make_resnet", False)
    for bad in ["net.py", "pkg.nets:", ":make", "pkg..nets:make", "pkg.nets:1abc"]:
        with pytest.raises(ConfigError, match="MODULE_OR_FILE:FACTORY|neither a .py file|Python name"):
            ModelFactory.parse(bad)


def test_model_args_are_json_or_text():
    assert parse_model_args(["width=64", "dims=[8, 16]", "act=relu", "bias=true", "name="]) == {
        "width": 64, "dims": [8, 16], "act": "relu", "bias": True, "name": ""}
    for bad, message in [(["width"], "KEY=VALUE"), (["1x=2"], "KEY=VALUE"), (["a=1", "a=2"], "given twice"),
                         (["lr=NaN"], "not a finite number")]:
        with pytest.raises(ConfigError, match=message):
            parse_model_args(bad)


def test_build_needs_trust(net_file, monkeypatch):
    monkeypatch.delenv(TRUST_ENV, raising=False)
    factory = ModelFactory.parse(f"{net_file}:make")
    with pytest.raises(UntrustedCodeError, match=r"imports and runs user code \(make\(\) from .*net\.py\).*--trust-code"):
        factory.build()
    monkeypatch.setenv(TRUST_ENV, "1")
    assert code_trusted() and isinstance(factory.build(), nn.Sequential)


def test_build_is_seeded_and_calls_with_args(net_file):
    factory = ModelFactory.parse(f"{net_file}:make", {"width": 6, "depth": 2})
    a, b = factory.build(trust_code=True), factory.build(trust_code=True)
    assert [tuple(p.shape) for p in a.parameters()][:2] == [(6, 3), (6,)]
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    x = torch.randn(5, 3)
    h = a[0](x)
    for block in (a[1], a[2]):
        h = torch.relu(block.fc(h)) + h
    torch.testing.assert_close(a(x), a[3](h))  # the sibling module's Block, in-place ReLU included


@pytest.mark.parametrize("name, message", [
    ("missing", r"has no 'missing'; callables defined there: .*Net.*make"),
    ("broken", r"calling broken\(\) from .* failed: ValueError: width must be even"),
    ("not_a_model", r"returned a int, not a torch.nn.Module"),
])
def test_build_errors_are_one_line(net_file, name, message):
    with pytest.raises(ConfigError, match=message) as caught:
        ModelFactory.parse(f"{net_file}:{name}").build(trust_code=True)
    assert "\n" not in str(caught.value)


def test_import_errors_name_the_source(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import no_such_module_here\n")
    with pytest.raises(ConfigError, match=r"importing .*bad\.py' failed: ModuleNotFoundError"):
        ModelFactory.parse(f"{bad}:make").build(trust_code=True)
    with pytest.raises(ConfigError, match="no Python file at"):
        ModelFactory.parse(f"{tmp_path}/gone.py:make").build(trust_code=True)
    with pytest.raises(ConfigError, match=r"importing module 'no_such_pkg_x' failed \(run from the folder"):
        ModelFactory.parse("no_such_pkg_x:make").build(trust_code=True)


def test_checkpoint_of_factory_model_loads_only_when_trusted(net_file, tmp_path, monkeypatch):
    monkeypatch.delenv(TRUST_ENV, raising=False)
    factory = ModelFactory.parse(f"{net_file}:make", {"width": 5})
    model = factory.build(trust_code=True, seed=7)
    path = save_checkpoint(tmp_path / "ckpt", model, factory=factory)
    meta = json.loads((path / META_FILE).read_text())
    assert meta["factory"]["source"] == str(net_file.resolve()) and meta["factory"]["args"] == {"width": 5}
    assert meta["model_class"] == "Sequential" and len(meta["factory"]["sha256"]) == 64
    with pytest.raises(UntrustedCodeError, match=r"is built by user code \(make\(width=5\) from .*net\.py\); "
                       r"loading it imports and runs that code: pass --trust-code or set MECHSCOPE_TRUST_CODE=1"):
        load_checkpoint(path)
    loaded = load_checkpoint(path, trust_code=True)
    assert loaded.factory == factory
    x = torch.randn(4, 3)
    torch.testing.assert_close(loaded.model(x), model(x), rtol=0, atol=0)  # seed 0 rebuild, then the saved weights
    net_file.write_text(net_file.read_text() + "\n# edited\n")
    with pytest.warns(RuntimeWarning, match="changed since"):
        load_checkpoint(path, trust_code=True)


def test_registered_user_class_records_its_module(tmp_path, monkeypatch):
    package = tmp_path / "userpkg_reg"
    package.mkdir()
    (package / "__init__.py").write_text(textwrap.dedent("""
        from dataclasses import dataclass
        from torch import nn
        from mechscope.models import register_model

        @dataclass
        class WideConfig:
            width: int = 3

        class Wide(nn.Module):
            def __init__(self, config):
                super().__init__()
                self.config = config
                self.fc = nn.Linear(2, config.width)

            def forward(self, x):
                return self.fc(x)

        register_model(Wide, WideConfig, name="UserWide")
    """))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(TRUST_ENV, raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    import userpkg_reg  # noqa: PLC0415 - a user's package, imported the way the user would

    path = save_checkpoint(tmp_path / "ckpt", userpkg_reg.Wide(userpkg_reg.WideConfig(width=4)))
    assert json.loads((path / META_FILE).read_text())["module"] == "userpkg_reg"
    from mechscope.models.registry import MODEL_REGISTRY

    monkeypatch.delitem(MODEL_REGISTRY, "UserWide")  # a new process: the class is not registered yet
    monkeypatch.delitem(__import__("sys").modules, "userpkg_reg")
    with pytest.raises(UntrustedCodeError, match=r"holds a UserWide registered by the module 'userpkg_reg'"):
        load_checkpoint(path)
    assert load_checkpoint(path, trust_code=True).model.fc.out_features == 4


def test_corrupt_factory_entry_is_a_checkpoint_error(net_file, tmp_path):
    factory = ModelFactory.parse(f"{net_file}:Net")
    path = save_checkpoint(tmp_path / "ckpt", factory.build(trust_code=True), factory=factory)
    meta = json.loads((path / META_FILE).read_text())
    meta["factory"] = {"source": str(net_file)}
    (path / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="'factory' entry is not a valid model factory"):
        load_checkpoint(path, trust_code=True)
    meta["factory"] = "net.py:Net"
    (path / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="'factory' must be an object or null"):
        load_checkpoint(path, trust_code=True)
