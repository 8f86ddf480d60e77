from __future__ import annotations

import json
import re

import pytest

from mechscope.cli.main import main
from mechscope.cli.report import report_memory, report_units
from mechscope.data import modular_data
from mechscope.models import ModularMLP, ModularMLPConfig, build_seeded
from mechscope.models.checkpoint import save_checkpoint


def _checkpoint(tmp_path):
    data = modular_data(2, n_train=40, n_test=40)
    model = build_seeded(ModularMLP, ModularMLPConfig(modulus=2, n_layers=3, hidden=2), 0)
    return save_checkpoint(tmp_path / "mod2", model, data_spec=data.spec, metrics={"test_accuracy": 0.5})


def test_report_cli_prints_the_index_and_sections(tmp_path, capsys):
    ckpt = _checkpoint(tmp_path)
    code = main(["report", str(ckpt), "--out", str(tmp_path / "out"), "--quick", "--format", "json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0
    assert result["index"] == str(tmp_path / "out" / "index.html")
    assert (tmp_path / "out" / "index.html").is_file()
    shown = {s["key"] for s in result["sections"] if s["page"]}
    assert {"units", "probes", "fourier"} <= shown
    assert all(s["reason"] for s in result["sections"] if not s["page"])


def _failing(monkeypatch, keys):
    from mechscope.report import SECTIONS

    def boom(self, ctx):
        raise RuntimeError("boom")

    for section in SECTIONS:
        if section.key in keys:
            monkeypatch.setattr(section, "applies", boom)


def test_report_cli_lists_a_failed_section_and_exits_0(tmp_path, capsys, monkeypatch):
    _failing(monkeypatch, {"probes"})
    code = main(["report", str(_checkpoint(tmp_path)), "--out", str(tmp_path / "out"), "--quick"])
    out = capsys.readouterr()
    assert code == 0
    assert "Probes by layer: not shown (failed: RuntimeError: boom)" in out.out
    assert "units" in out.out and out.err == ""
    assert re.search(r"report written: .*index\.html \(\d+ pages; \d+ files, [\d.]+ [KM]B; [\d.]+s\)", out.out)


def test_report_cli_exits_1_when_every_section_failed(tmp_path, capsys, monkeypatch):
    from mechscope.report import SECTIONS

    _failing(monkeypatch, {section.key for section in SECTIONS})
    code = main(["report", str(_checkpoint(tmp_path)), "--out", str(tmp_path / "out"), "--format", "json"])
    out = capsys.readouterr()
    assert code == 1
    assert all(s["error"] == "RuntimeError: boom" for s in json.loads(out.out)["sections"])
    assert f"no section of the report could be built ({len(SECTIONS)} failed)" in out.err


def test_report_cli_missing_checkpoint_exits_1(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope"), "--out", str(tmp_path / "out")]) == 1
    assert "No checkpoint folder" in capsys.readouterr().err


def test_report_units_default_to_every_unit_when_the_work_is_spread():
    assert report_units(None, workers=0, ray_address=None, quick=False) == 128
    assert report_units(None, workers=0, ray_address=None, quick=True) == 64
    assert report_units(None, workers=4, ray_address=None, quick=True) is None
    assert report_units(None, workers=0, ray_address="10.0.0.1:6379", quick=False) is None
    assert report_units("all", workers=0, ray_address=None, quick=True) is None
    assert report_units(" ALL ", workers=0, ray_address=None, quick=False) is None
    assert report_units("7", workers=2, ray_address=None, quick=False) == 7


def test_report_cli_units_all_gives_every_unit_a_page(tmp_path, capsys):
    ckpt = _checkpoint(tmp_path)
    code = main(["report", str(ckpt), "--out", str(tmp_path / "out"), "--quick", "--units", "all", "--format", "json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["settings"]["max_units"] is None
    code = main(["report", str(ckpt), "--out", str(tmp_path / "one"), "--quick", "--units", "1", "--format", "json"])
    assert code == 0 and json.loads(capsys.readouterr().out)["settings"]["max_units"] == 1
    assert sorted(p.name for p in (tmp_path / "one" / "layers" / "hidden.0").glob("unit-*.html")) == ["unit-0.html"]


@pytest.mark.parametrize("value", ["0", "lots", "-1", "2.5", "", "9" * 40])
def test_report_cli_bad_units_is_one_line_and_exit_2(tmp_path, capsys, value):
    code = main(["report", str(_checkpoint(tmp_path)), "--out", str(tmp_path / "out"), "--units", value])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith(f"Error: --units must be a positive integer up to 1,048,576 or 'all'; got {value!r}.")
    assert not (tmp_path / "out").exists()


def test_serve_cli_serves_for_a_bounded_time(tmp_path, capsys):
    (tmp_path / "index.html").write_text("<html></html>")
    assert main(["serve", str(tmp_path), "--port", "0", "--seconds", "0.3"]) == 0
    assert "http://127.0.0.1:" in capsys.readouterr().out


def test_serve_cli_refuses_a_folder_without_index(tmp_path, capsys):
    assert main(["serve", str(tmp_path), "--port", "0"]) == 2
    assert "no index.html" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.ray
def test_report_cli_on_ray_workers_is_the_same_report(tmp_path, capsys):
    pytest.importorskip("ray")
    data = modular_data(2, n_train=400, n_test=400)  # 800 inputs: the unit pages' search runs as shards
    model = build_seeded(ModularMLP, ModularMLPConfig(modulus=2, n_layers=3, hidden=2), 0)
    ckpt = save_checkpoint(tmp_path / "mod2", model, data_spec=data.spec)
    runs = []
    for name, extra in (("one", []), ("ray", ["--workers", "2"])):
        code = main(["report", str(ckpt), "--out", str(tmp_path / name), "--quick", "--format", "json", *extra])
        assert code == 0
        runs.append(json.loads(capsys.readouterr().out)["sections"])
    assert runs[0] == runs[1]


def _cnn_checkpoint(tmp_path):
    from mechscope.data import digits_data
    from mechscope.models.digit_cnn import DigitCNN, DigitCNNConfig

    data = digits_data()
    model = build_seeded(DigitCNN, DigitCNNConfig(image_size=8, channels=(4, 8)), 0)
    return save_checkpoint(tmp_path / "cnn", model, data_spec=data.spec)


def _close(a, b, where="sections"):
    """Equal JSON, numbers within REPORT_TOLERANCE (relative); strings, ints and indices exact."""
    assert type(a) is type(b), where
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _close(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, f"{where}[{i}]")
    elif isinstance(a, float):
        assert abs(a - b) <= REPORT_TOLERANCE * max(1.0, abs(b)), (where, a, b)
    else:
        assert a == b, (where, a, b)


REPORT_TOLERANCE = 1e-5
"""Floats of a report built on Ray workers against one process (docs/ray.md): thread counts differ, so sums may."""


def _sections(out):
    summary = json.loads((out / "report.json").read_text())
    return summary["sections"], summary


@pytest.mark.slow
@pytest.mark.ray
def test_report_on_a_two_node_cluster_is_the_one_process_report(tmp_path, capsys):
    """A head and a second node (separate `ray start` processes on loopback) build the same report as one process."""
    pytest.importorskip("ray")
    import subprocess
    import sys
    from pathlib import Path

    from tests.ray_cluster import ENV, loopback_cluster

    ckpt = _cnn_checkpoint(tmp_path)
    args = ["report", str(ckpt), "--quick", "--format", "json", "--units", "6"]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    capsys.readouterr()
    with loopback_cluster(nodes=2, cpus=1) as address:  # the driver is a process of its own, as a user's is
        run = subprocess.run([str(Path(sys.executable).with_name("mechscope")), *args, "--out",
                              str(tmp_path / "cluster"), "--ray-address", address, "--cache", str(tmp_path / "cache")],
                             env=ENV, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-2000:]
    one, _ = _sections(tmp_path / "one")
    cluster, summary = _sections(tmp_path / "cluster")
    assert not [s["error"] for s in cluster if s.get("error")]
    _close(one, cluster)
    assert summary["tasks"]["run"] > 0 and summary["tasks"]["cached"] == 0
    _same_unit_pages(tmp_path / "one", tmp_path / "cluster")


def _same_unit_pages(one, other):
    """The unit pages list the same examples, ablation effects and render evidence (as printed)."""
    pages = sorted(p.relative_to(one) for p in one.rglob("unit-*.html"))
    assert len(pages) >= 12
    for rel in pages:
        assert (one / rel).read_text() == (other / rel).read_text(), rel


@pytest.mark.slow
@pytest.mark.ray
def test_a_killed_driver_resumes_from_its_finished_tasks(tmp_path):
    """SIGKILL the driver of a 2-worker build once some tasks are stored; the rerun computes only the rest."""
    pytest.importorskip("ray")
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.ray_cluster import running_in_group

    ckpt = _cnn_checkpoint(tmp_path)
    cache = tmp_path / "cache"
    from pathlib import Path

    args = [str(Path(sys.executable).with_name("mechscope")), "report", "build", str(ckpt), "--quick", "--units", "6",
            "--format", "json", "--cache", str(cache)]
    driver = subprocess.Popen([*args, "--out", str(tmp_path / "killed"), "--workers", "2"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        end = time.monotonic() + 600
        while len(list(cache.glob("*/*.json"))) < 3 and driver.poll() is None and time.monotonic() < end:
            time.sleep(0.2)
        assert driver.poll() is None, "the build finished before it could be killed"
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
        stored = len(list(cache.glob("*/*.json")))
        end = time.monotonic() + 30
        while (left := running_in_group(driver.pid)) and time.monotonic() < end:
            time.sleep(0.5)
    finally:
        try:
            os.killpg(driver.pid, signal.SIGKILL)  # whatever the driver left
        except ProcessLookupError:
            pass
    assert not (tmp_path / "killed").exists()  # nothing half-written in the output's place
    rerun = subprocess.run([*args, "--out", str(tmp_path / "resumed"), "--workers", "2"], capture_output=True,
                           text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    resumed, summary = _sections(tmp_path / "resumed")
    assert summary["tasks"]["cached"] >= stored >= 3 and summary["tasks"]["run"] > 0
    fresh = subprocess.run([*args[:-2], "--no-cache", "--out", str(tmp_path / "one")], capture_output=True,
                           text=True, timeout=900)
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    _close(_sections(tmp_path / "one")[0], resumed)
    _same_unit_pages(tmp_path / "one", tmp_path / "resumed")
    assert not left, f"Ray processes outlived their killed driver: {left}"


def test_report_memory_reads_a_size_in_bytes():
    assert report_memory(None) is None
    assert report_memory("2GB") == 2 << 30
    assert report_memory(" 512mb ") == 512 << 20
    assert report_memory("1.5GiB") == 3 << 29
    assert report_memory("1000") == 1000


@pytest.mark.parametrize("value", ["lots", "0", "0.5", "-1", "", "2XB", "1e9"])
def test_report_cli_bad_max_memory_is_one_line_and_exit_2(tmp_path, capsys, value):
    code = main(["report", str(_checkpoint(tmp_path)), "--out", str(tmp_path / "out"), "--max-memory", value])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith(f"Error: --max-memory must be a memory size such as 2GB, 512MB or 1.5G; got {value!r}.")
    assert not (tmp_path / "out").exists()


def test_report_cli_max_memory_below_one_input_is_one_line_naming_the_least_that_works(tmp_path, capsys):
    code = main(["report", str(_checkpoint(tmp_path)), "--out", str(tmp_path / "out"), "--max-memory", "8"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert re.match(r"Error: a memory budget of 8 B is below what one input of this model needs \(about \d+ B of "
                    r"activations\); give at least \d+B\.$", err.strip())
    assert not (tmp_path / "out").exists()


def test_report_cli_max_memory_is_the_report_budget(tmp_path, capsys):
    code = main(["report", str(_checkpoint(tmp_path)), "--out", str(tmp_path / "out"), "--quick", "--max-memory",
                 "64MB", "--format", "json"])
    assert code == 0 and json.loads(capsys.readouterr().out)["settings"]["max_memory"] == 64 << 20
