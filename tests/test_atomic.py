from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from mechscope import atomic
from mechscope.atomic import check_output, owned_png, recover, write_file, writing_folder
from mechscope.capture import record
from mechscope.cli.main import main
from mechscope.errors import OutputError
from mechscope.models import TinyReLU, TinyReLUConfig, build_seeded
from mechscope.models.checkpoint import META_FILE, is_checkpoint, load_checkpoint, save_checkpoint
from mechscope.plots import save_figure
from mechscope.plots._style import plt
from tests.forking import forked_python


def _user_folder(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "thesis.txt").write_text("x")
    (root / "sub" / "data.csv").write_text("1,2")
    return root


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def _model(seed: int = 0) -> TinyReLU:
    return build_seeded(TinyReLU, TinyReLUConfig(n_inputs=3, hidden=2), seed)


def test_train_into_a_user_folder_is_refused_before_training(tmp_path, capsys, monkeypatch):
    folder = _user_folder(tmp_path / "d")
    before = _snapshot(folder)
    monkeypatch.setattr("mechscope.recipes.builtin.train", lambda *a, **k: pytest.fail("trained before checking --out"))
    assert main(["train", "tiny-relu", "--out", str(folder)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not hold a mechscope checkpoint" in err[0]
    assert _snapshot(folder) == before


def test_save_checkpoint_into_a_user_folder_changes_nothing(tmp_path):
    folder = _user_folder(tmp_path / "d")
    before = _snapshot(folder)
    with pytest.raises(OutputError, match="never replaces what it did not write"):
        save_checkpoint(folder, _model())
    assert _snapshot(folder) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


@pytest.mark.parametrize("name", [".", ".."])
def test_save_checkpoint_to_dot_paths_is_refused(tmp_path, monkeypatch, name):
    work = _user_folder(tmp_path / "work")
    monkeypatch.chdir(work)
    with pytest.raises(OutputError, match="does not hold a mechscope checkpoint"):
        save_checkpoint(name, _model())
    assert (work / "thesis.txt").read_text() == "x"


def test_save_checkpoint_into_an_empty_folder_and_over_its_own(tmp_path):
    (tmp_path / "ck").mkdir()
    save_checkpoint(tmp_path / "ck", _model(0))
    save_checkpoint(tmp_path / "ck", _model(1))
    loaded = load_checkpoint(tmp_path / "ck").model
    torch.testing.assert_close(loaded.state_dict()["fc1.weight"], _model(1).state_dict()["fc1.weight"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]


def test_a_checkpoint_marker_is_recognised_by_its_content_not_its_name(tmp_path):
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / META_FILE).write_text('{"my": "own file"}')
    assert not is_checkpoint(tmp_path / "fake")
    with pytest.raises(OutputError):
        save_checkpoint(tmp_path / "fake", _model())
    assert (tmp_path / "fake" / META_FILE).read_text() == '{"my": "own file"}'


def test_crash_between_the_renames_is_recovered_on_the_next_save(tmp_path, monkeypatch):
    target = tmp_path / "ck"
    save_checkpoint(target, _model(0))
    real = os.replace
    calls = []

    def crash_on_second(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt  # stands in for a kill after the old folder was moved aside
        real(src, dst)

    monkeypatch.setattr(atomic.os, "replace", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(target, _model(1))
    monkeypatch.setattr(atomic.os, "replace", real)
    assert not target.exists() and any(".mechscope-old-" in p.name for p in tmp_path.iterdir())
    loaded = load_checkpoint(target)  # a reader puts the old checkpoint back
    torch.testing.assert_close(loaded.model.state_dict()["fc1.weight"], _model(0).state_dict()["fc1.weight"])
    save_checkpoint(target, _model(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]


def test_leftovers_of_dead_writers_are_removed_and_live_ones_kept(tmp_path):
    target = tmp_path / "out"
    dead, live = _dead_pid(), os.getppid()
    (tmp_path / f".out.mechscope-tmp-{dead}-abc").mkdir()
    (tmp_path / f".out.mechscope-tmp-{live}-abc").mkdir()
    (tmp_path / f".other.mechscope-tmp-{dead}-abc").mkdir()  # another output's: not this write's business
    (tmp_path / ".out.backup").mkdir()  # a user's folder that merely looks similar
    recover(target, owned=lambda p: True)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f".out.mechscope-tmp-{live}-abc", f".other.mechscope-tmp-{dead}-abc", ".out.backup"])


def test_an_old_folder_not_recognised_as_ours_is_never_restored(tmp_path):
    old = tmp_path / f".out.mechscope-old-{_dead_pid()}"
    old.mkdir()
    (old / "x").write_text("not ours")
    recover(tmp_path / "out", owned=lambda p: False)
    assert not (tmp_path / "out").exists() and (old / "x").read_text() == "not ours"


def test_writing_folder_removes_its_temporary_folder_on_error(tmp_path):
    with pytest.raises(RuntimeError):
        with writing_folder(tmp_path / "out", owned=lambda p: False, what="x") as tmp:
            (tmp / "part").write_text("half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_figures_replace_their_own_png_but_never_a_user_file(tmp_path):
    fig = plt.figure()
    path = save_figure(fig, tmp_path / "a.png")
    assert owned_png(path)
    save_figure(plt.figure(), path)  # our own: replaced
    (tmp_path / "b.png").write_bytes(b"\x89PNG\r\n\x1a\nmine")
    with pytest.raises(OutputError, match="does not hold a figure"):
        save_figure(plt.figure(), tmp_path / "b.png")
    assert (tmp_path / "b.png").read_bytes() == b"\x89PNG\r\n\x1a\nmine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png"]


def test_record_never_replaces_a_user_folder(tmp_path):
    folder = _user_folder(tmp_path / "acts")
    with pytest.raises(OutputError, match="recorded activations"):
        record(_model(), ["fc1"], torch.randn(4, 3), out_dir=folder)
    assert _snapshot(folder) == {"sub/data.csv": "1,2", "thesis.txt": "x"}
    record(_model(), ["fc1"], torch.randn(4, 3), out_dir=tmp_path / "acts2")
    again = record(_model(), ["fc1"], torch.randn(5, 3), out_dir=tmp_path / "acts2")
    assert again.act("fc1").shape == (5, 2)


def test_check_output_names_the_problem(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        check_output(tmp_path / "file" / "out", owned=lambda p: False, what="a report")
    with pytest.raises(OutputError, match="at most 255"):
        check_output(tmp_path / ("x" * 300), owned=lambda p: False, what="a report")
    os.symlink(tmp_path / "file", tmp_path / "link")
    with pytest.raises(OutputError, match="symbolic link"):
        check_output(tmp_path / "link", owned=lambda p: True, what="a report")


def test_write_file_turns_os_errors_into_one_line(tmp_path):
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o500)
    try:
        if os.access(tmp_path / "ro", os.W_OK):
            pytest.skip("running as a user who may write anywhere")
        with pytest.raises(OutputError, match="no permission"):
            write_file(tmp_path / "ro" / "x.json", lambda p: p.write_text("{}"), owned=lambda p: True, what="a file")
    finally:
        (tmp_path / "ro").chmod(0o700)


_KILLER = textwrap.dedent(
    """
    import os, shutil, sys
    from mechscope.models import TinyReLU, TinyReLUConfig, build_seeded
    from mechscope.models.checkpoint import save_checkpoint
    kill_at, calls = int(sys.argv[2]), [0]
    def deadly(real):
        def call(*args, **kwargs):
            calls[0] += 1
            if calls[0] == kill_at:
                os._exit(9)  # no cleanup runs, as with SIGKILL
            return real(*args, **kwargs)
        return call
    os.replace = deadly(os.replace)
    shutil.rmtree = deadly(shutil.rmtree)
    os.mkdir = deadly(os.mkdir)
    save_checkpoint(sys.argv[1], build_seeded(TinyReLU, TinyReLUConfig(n_inputs=3, hidden=2), 1))
    """
)


def test_killed_at_every_phase_of_a_checkpoint_swap_the_old_or_new_one_survives(tmp_path):
    root = _user_folder(tmp_path / "runs")
    target = root / "ck"
    old, new = _model(0).state_dict()["fc1.weight"], _model(1).state_dict()["fc1.weight"]
    outcomes: list[int] = []
    # A separate process per kill. TinyReLU's first build imports torch._dynamo (seconds): done once, up front.
    with forked_python("mechscope.models.checkpoint", "torch._dynamo") as python:
        for kill_at in range(1, 30):
            if outcomes and outcomes[-1] == 0:
                break  # the write got through: every phase before it was killed once
            save_checkpoint(target, _model(0))
            done = python.run(_KILLER, str(target), str(kill_at))
            outcomes.append(done.returncode)
            weight = load_checkpoint(target).model.state_dict()["fc1.weight"]  # recovers what the kill left
            assert torch.equal(weight, old) or torch.equal(weight, new), kill_at
            save_checkpoint(target, _model(2))  # and the next write tidies every leftover
            assert sorted(p.name for p in root.iterdir()) == ["ck", "sub", "thesis.txt"], kill_at
            assert _snapshot(root / "sub") == {"data.csv": "1,2"}
    assert outcomes[-1] == 0 and set(outcomes[:-1]) == {9} and len(outcomes) >= 6, outcomes


def test_report_json_carries_the_report_marker(tmp_path):
    from mechscope.report import build_report
    from mechscope.report.config import ReportConfig

    build_report(_model(), tmp_path / "r", config=ReportConfig.quick(), progress=False)
    meta = json.loads((tmp_path / "r" / "report.json").read_text())
    assert meta["format"] == "mechscope-report"
