from __future__ import annotations

import http.client
import socket
import threading
import urllib.error
import urllib.request

import pytest

from mechscope.errors import ConfigError, OutputError
from mechscope.report import make_server
from mechscope.report.serve import HOST


def test_make_server_serves_the_folder_on_localhost_only(site):
    server = make_server(site, port=0)
    host, port = server.server_address[:2]
    assert host == HOST == "127.0.0.1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/index.html", timeout=10) as response:
            assert response.status == 200 and b"test tour" in response.read()
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"http://{HOST}:{port}/evil/", timeout=10)  # no directory listings
    finally:
        server.shutdown()
        server.server_close()


def test_make_server_refuses_a_missing_folder(tmp_path):
    with pytest.raises(ConfigError, match="not a folder"):
        make_server(tmp_path / "missing")


@pytest.fixture
def served(tmp_path):
    """A server on a free port for `tmp_path/site`, beside a secret file that a link inside points to."""
    root = tmp_path / "site"
    (root / "sub").mkdir(parents=True)
    (root / "index.html").write_text("<p>home</p>")
    (root / "sub" / "page.html").write_text("<p>page</p>")
    (root / "sub" / "index.html").write_text("<p>sub</p>")
    (tmp_path / "secret.txt").write_text("secret")
    (root / "link.txt").symlink_to(tmp_path / "secret.txt")
    (root / "away").symlink_to(tmp_path)
    server = make_server(root, port=0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _status(port, path, method="GET"):
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        connection.putrequest(method, path, skip_host=False, skip_accept_encoding=True)
        connection.endheaders()
        response = connection.getresponse()
        body = response.read()
        return response.status, body
    finally:
        connection.close()


@pytest.mark.parametrize("path", ["/index.html", "/", "/sub/page.html", "/sub/", "/index.html?x=%00#frag"])
def test_make_server_serves_files_inside_the_folder(served, path, capfd):
    status, body = _status(served, path)
    assert status == 200 and b"<p>" in body
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/%00", 400),
        ("/index.html%00", 400),
        ("/..%2f..", 400),
        ("/..%2f..%2fsecret.txt", 400),
        ("/%2e%2e/secret.txt", 400),
        ("/sub/%2e%2e/%2e%2e/secret.txt", 400),
        ("/..%5c..%5csecret.txt", 400),
        ("/%ff%fe", 400),  # not UTF-8
        ("/%c3", 400),  # a truncated UTF-8 sequence
        ("/%ed%a0%80", 400),  # an encoded surrogate
        ("/a%0ab", 400),
        ("/" + "a/" * 2000, 400),  # longer than MAX_PATH
        ("/" + "a" * 1000, 404),  # one name longer than the file system allows
        ("/missing.html", 404),
        ("/link.txt", 404),  # a link that leads out of the folder
        ("/away/secret.txt", 404),
        ("/away/", 404),
        ("//etc/passwd", 404),
    ],
)
def test_make_server_answers_malformed_paths_without_a_traceback(served, path, expected, capfd):
    for method in ("GET", "HEAD"):
        status, body = _status(served, path, method)
        assert status == expected
        assert b"secret" not in body
    err = capfd.readouterr().err
    assert "Traceback" not in err and err == ""


def test_make_server_refuses_a_busy_port_in_one_message(tmp_path):
    with socket.socket() as busy:
        busy.bind((HOST, 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(OutputError, match=f"port {port} on 127.0.0.1 is already in use.*0 to pick a free one"):
            make_server(tmp_path, port=port)
