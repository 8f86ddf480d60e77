from __future__ import annotations

import threading
import urllib.error
import urllib.request

import pytest

from mechscope.errors import ConfigError
from mechscope.report import HOST, make_server


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
