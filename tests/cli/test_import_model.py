"""Your own model and data through every command: import-model, trust, weights files, data sources, devices."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from mechscope.cli.main import main
from mechscope.models.checkpoint import load_checkpoint

NET = '''
from torch import nn


class Block(nn.Module):
    """A torchvision-style residual block: in-place ReLU called twice, out += identity."""

    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        out = self.relu(self.conv1(x))
        out = self.conv2(out)
        out += x
        return self.relu(out)


class Net(nn.Module):
    def __init__(self, channels=4, classes=3, colour=1):
        super().__init__()
        self.stem = nn.Conv2d(colour, channels, 3, padding=1)
        self.act = nn.ReLU(inplace=True)
        self.block = Block(channels)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(channels, classes)

    def forward(self, x):
        h = self.block(self.act(self.stem(x)))
        return {"logits": self.head(self.pool(h).flatten(1)), "features": h}


def make(channels=4, classes=3, colour=1):
    return Net(channels, classes, colour)


class Reader(nn.Module):
    """A token model: embedding, GRU, linear head."""

    def __init__(self, vocab=7, width=5, classes=2):
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.gru = nn.GRU(width, width, batch_first=True)
        self.head = nn.Linear(width, classes)

    def forward(self, ids):
        states, _ = self.gru(self.embed(ids))
        return self.head(states[:, -1])
'''


@pytest.fixture
def net_file(tmp_path: Path) -> Path:
    path = tmp_path / "net.py"
    path.write_text(textwrap.dedent(NET))
    return path


@pytest.fixture
def npz_file(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    y = np.arange(60) % 3
    x = rng.normal(size=(60, 1, 8, 8)).astype(np.float32)
    x[:, 0, :, :] += y[:, None, None]  # classes differ in brightness
    path = tmp_path / "data.npz"
    np.savez(path, x=x[:45], y=y[:45], x_test=x[45:], y_test=y[45:])
    return path


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run mechscope as its own process, the way a user does."""
    return subprocess.run([sys.executable, "-c", "import sys; from mechscope.cli.main import main; "
                           "sys.exit(main())", *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})


@pytest.mark.slow
def test_own_model_file_goes_through_every_command(net_file, npz_file, tmp_path):
    ckpt = tmp_path / "ckpt"
    made = _cli("import-model", "--model", f"{net_file}:make", "--model-arg", "channels=4",
                "--data", f"npz:{npz_file}", "--out", str(ckpt), "--format", "json")
    assert made.returncode == 0, made.stderr
    summary = json.loads(made.stdout)
    assert summary["factory"]["name"] == "make" and summary["factory"]["args"] == {"channels": 4}
    assert summary["data_spec"]["kind"] == "npz"

    loaded = load_checkpoint(ckpt, trust_code=True)  # the oracle: the same weights, run by hand below
    x_test = torch.from_numpy(np.load(npz_file)["x_test"])
    with torch.no_grad():
        logits = loaded.model(x_test)["logits"]
        stem = loaded.model.stem(x_test)  # before the in-place ReLU that follows it
    assert summary["metrics"]["test_accuracy"] == pytest.approx(
        float((logits.argmax(1) == torch.from_numpy(np.load(npz_file)["y_test"])).float().mean()))

    refused = _cli("layers", str(ckpt), env={"MECHSCOPE_TRUST_CODE": "0"})
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and "make(channels=4) from" in refused.stderr
    assert "--trust-code" in refused.stderr and "Traceback" not in refused.stderr

    layers = _cli("layers", str(ckpt), "--trust-code", "--format", "json")
    assert layers.returncode == 0, layers.stderr
    shapes = {row["name"]: row["output_shape"] for row in json.loads(layers.stdout)["layers"]}
    assert shapes["stem"] == [4, 8, 8] and shapes["block.conv2"] == [4, 8, 8] and shapes["head"] == [3]

    found = _cli("examples", str(ckpt), "--trust-code", "--layer", "stem", "--split", "test", "--k", "3",
                 "--format", "json")
    assert found.returncode == 0, found.stderr
    units = json.loads(found.stdout)["units"]
    best = stem.amax(dim=(2, 3))  # --reduce max over positions, of the conv output before act changed it
    for unit in units:
        expected = best[:, unit["unit"]].topk(3)
        assert unit["top"]["indices"] == expected.indices.tolist()
        np.testing.assert_allclose(unit["top"]["values"], expected.values.numpy(), rtol=1e-5, atol=1e-6)

    attributed = _cli("attribute", str(ckpt), "--trust-code", "--method", "saliency", "--method", "grad-cam",
                      "--n", "4", "--out", str(tmp_path / "attr"), "--format", "json")
    assert attributed.returncode == 0, attributed.stderr
    result = json.loads(attributed.stdout)
    assert result["n_images"] == 4 and set(result["methods"]) == {"saliency", "grad-cam"}
    assert all(Path(p).read_bytes()[:4] == b"\x89PNG" for p in result["figures"])

    rendered = _cli("featurevis", str(ckpt), "--trust-code", "--layer", "block.conv2", "--units", "0,2",
                    "--steps", "8", "--restarts", "1", "--out", str(tmp_path / "fv"), "--format", "json")
    assert rendered.returncode == 0, rendered.stderr
    rows = json.loads(rendered.stdout)["units"]
    assert [row["unit"] for row in rows] == [0, 2] and all(Path(row["image"]).is_file() for row in rows)

    built = _cli("report", str(ckpt), "--trust-code", "--quick", "--units", "2", "--out", str(tmp_path / "site"),
                 "--format", "json")
    assert built.returncode == 0, built.stderr
    site = json.loads(built.stdout)
    assert Path(site["index"]).is_file()
    assert not [s for s in site["sections"] if s.get("error")], site["sections"]
    assert {"units", "attribution"} <= {s["key"] for s in site["sections"] if s.get("page")}


def test_model_flag_without_checkpoint(net_file, npz_file, capsys):
    code = main(["layers", "--model", f"{net_file}:Net", "--model-arg", "channels=2", "--data", f"npz:{npz_file}",
                 "--format", "json"])
    assert code == 0
    rows = json.loads(capsys.readouterr().out)["layers"]
    assert {r["name"]: r["output_shape"] for r in rows}["block.conv1"] == [2, 8, 8]


def test_weights_file_loads_and_pickles_need_the_flag(net_file, npz_file, tmp_path, capsys):
    from mechscope.models.factory import ModelFactory

    trained = ModelFactory.parse(f"{net_file}:make").build(trust_code=True, seed=5)
    save_file(trained.state_dict(), str(tmp_path / "w.safetensors"))
    torch.save(trained.state_dict(), tmp_path / "w.pt")
    out = tmp_path / "ckpt"
    args = ["import-model", "--model", f"{net_file}:make", "--data", f"npz:{npz_file}", "--out", str(out)]
    assert main([*args, "--weights", str(tmp_path / "w.pt")]) == 2
    err = capsys.readouterr().err
    assert "--allow-pickle" in err and err.count("\n") == 1 and not out.exists()
    assert main([*args, "--weights", str(tmp_path / "w.pt"), "--allow-pickle"]) == 0
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(load_checkpoint(out, trust_code=True).model(x)["logits"], trained(x)["logits"],
                                   rtol=0, atol=0)
    assert main([*args, "--weights", str(tmp_path / "w.safetensors")]) == 0  # replaces its own checkpoint
    with torch.no_grad():
        torch.testing.assert_close(load_checkpoint(out, trust_code=True).model(x)["features"], trained(x)["features"],
                                   rtol=0, atol=0)


def test_image_folder_data_through_the_cli(net_file, tmp_path, capsys):
    root = tmp_path / "photos"
    rng = np.random.default_rng(1)
    for label, shade in (("cat", 40), ("dog", 200)):
        (root / label).mkdir(parents=True)
        for i in range(6):
            pixels = np.clip(shade + rng.integers(-20, 20, size=(10, 12, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels, "RGB").save(root / label / f"{i}.png")
    out = tmp_path / "ckpt"
    code = main(["import-model", "--model", f"{net_file}:make", "--model-arg", "classes=2", "--model-arg", "colour=3",
                 "--data", f"images:{root}", "--image-size", "8", "--out", str(out), "--format", "json"])
    assert code == 0, capsys.readouterr().err
    spec = json.loads(capsys.readouterr().out)["data_spec"]
    assert spec["kind"] == "images" and Path(spec["directory"]) == root.resolve()
    data = load_checkpoint(out, trust_code=True).data()
    assert data.x_train.shape[1:] == (3, 8, 8) and data.class_names == ("cat", "dog")
    assert main(["layers", str(out), "--trust-code", "--format", "json"]) == 0  # the recorded spec rebuilds it
    capsys.readouterr()


def test_token_data_and_a_sequence_model(net_file, tmp_path, capsys):
    rng = np.random.default_rng(2)
    ids = rng.integers(0, 7, size=(40, 6))
    np.savez(tmp_path / "tokens.npz", x=ids, y=(ids[:, -1] > 3).astype(np.int64))
    code = main(["examples", "--model", f"{net_file}:Reader", "--data", f"npz:{tmp_path / 'tokens.npz'}",
                 "--layer", "embed", "--k", "2", "--split", "all", "--format", "json"])
    assert code == 0, capsys.readouterr().err
    result = json.loads(capsys.readouterr().out)
    assert result["unit_axes"]["kind"] == "sequence" and len(result["units"]) == 5


@pytest.mark.parametrize("args, message", [
    (["layers"], "give a checkpoint folder or --model"),
    (["layers", "some/ckpt", "--model", "net.py:Net"], "give a checkpoint folder or --model"),
    (["layers", "some/ckpt", "--weights", "w.safetensors"], "--model-arg and --weights go with --model"),
    (["layers", "--model", "net.py"], "--model: model 'net.py' must be MODULE_OR_FILE:FACTORY"),
    (["layers", "--model", "x.py:Net", "--device", "tpu"], "unknown device 'tpu'; choose one of auto|cpu|cuda|cuda:N|mps"),
    (["layers", "--model", "x.py:Net", "--image-size", "8"], "describe --data images:DIR; add --data"),
    (["layers", "--model", "x.py:Net", "--data", "images:d", "--image-size", "0x3"], "--image-size must be N or HxW"),
    (["layers", "--model", "x.py:Net", "--data", "images:d", "--normalize", "0.5/0"], "--normalize must be auto"),
])
def test_bad_model_options_are_one_line_exit_2(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_device_cuda_without_cuda_names_what_is_available(net_file, npz_file, capsys):
    assert main(["layers", "--model", f"{net_file}:Net", "--data", f"npz:{npz_file}", "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "device 'cuda' is not available" in err and "available: cpu" in err and err.count("\n") == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_device_cuda_runs_the_commands_on_the_gpu(net_file, npz_file, tmp_path, capsys):
    base = ["--model", f"{net_file}:make", "--data", f"npz:{npz_file}"]
    assert main(["examples", *base, "--layer", "stem", "--k", "3", "--format", "json"]) == 0
    on_cpu = json.loads(capsys.readouterr().out)
    assert main(["examples", *base, "--layer", "stem", "--k", "3", "--device", "cuda", "--format", "json"]) == 0
    on_gpu = json.loads(capsys.readouterr().out)
    for a, b in zip(on_cpu["units"], on_gpu["units"]):
        np.testing.assert_allclose(a["top"]["values"], b["top"]["values"], rtol=1e-4, atol=1e-5)
    assert main(["report", *base, "--device", "cuda", "--quick", "--units", "2", "--out", str(tmp_path / "r")]) == 0


def test_report_layer_and_units_flags_choose_the_pages(net_file, npz_file, tmp_path, capsys):
    base = ["report", "--model", f"{net_file}:make", "--data", f"npz:{npz_file}", "--quick"]
    assert main([*base, "--layer", "block.relu:1", "--units", "2", "--out", str(tmp_path / "r"), "--format", "json"]) == 0
    site = json.loads(capsys.readouterr().out)
    units = next(s for s in site["sections"] if s["key"] == "units")
    assert units["page"] and "block.relu:1" in json.dumps(units)
    pages = sorted(p.name for p in (tmp_path / "r" / "layers").iterdir())
    assert len(pages) == 1  # only the chosen layer has pages
    assert len(list((tmp_path / "r" / "layers" / pages[0]).glob("unit*"))) == 2  # --units 2 of its 4
    assert main([*base, "--layer", "block.relux", "--out", str(tmp_path / "r2")]) == 2
    err = capsys.readouterr().err
    assert "Unknown layer 'block.relux'" in err and "Did you mean 'block.relu'" in err and err.count("\n") == 1
