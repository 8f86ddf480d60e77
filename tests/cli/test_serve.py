from __future__ import annotations

import socket

import pytest

from mechscope.cli.main import main
from mechscope.cli.serve import MAX_SECONDS


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "index.html").write_text("<html></html>")
    return tmp_path


def test_serve_cli_busy_port_prints_one_line_and_exits_1(folder, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = main(["serve", str(folder), "--port", str(port), "--seconds", "0.1"])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.err.strip().splitlines() == [
        f"Error: port {port} on 127.0.0.1 is already in use (another server?); choose another port, or 0 to pick "
        "a free one."
    ]
    assert "Traceback" not in captured.err and "serving" not in captured.out


@pytest.mark.parametrize("seconds", ["inf", "-inf", "nan", "1e300", "-1", str(MAX_SECONDS + 1)])
def test_serve_cli_rejects_seconds_that_are_not_finite_or_over_a_week(folder, seconds, capsys):
    code = main(["serve", str(folder), "--port", "0", "--seconds", seconds])
    err = capsys.readouterr().err
    assert code == 2
    assert "--seconds must be a number from 0 to 604800 (one week" in err and "Traceback" not in err


def test_serve_cli_accepts_the_longest_time_and_stops_on_its_own(folder, capsys):
    assert MAX_SECONDS == 7 * 24 * 3600
    assert main(["serve", str(folder), "--port", "0", "--seconds", "0.2"]) == 0
    assert "http://127.0.0.1:" in capsys.readouterr().out
