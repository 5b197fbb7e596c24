"""`mlops up --open` / `--console` and `mlops run --console` are registered, and the server prints a
URL with its token and opens it where a browser exists (webbrowser is replaced here: the test machine
has no display, and a real browser window is not what this checks)."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from harness.emulator import REGION
from mlops.cli import app
from mlops.console import ConsoleServer


@pytest.mark.parametrize(
    ("command", "options"),
    [("up", ["--console", "--open", "--console-port"]), ("run", ["--console", "--console-port"])],
)
def test_the_console_options_are_registered(command: str, options: list[str]) -> None:
    result = CliRunner().invoke(app, [command, "--help"], terminal_width=200)
    assert result.exit_code == 0
    for option in options:
        assert option in result.output


def test_each_server_gets_its_own_token_and_prints_a_loopback_url(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []
    monkeypatch.setattr("webbrowser.open", lambda url: opened.append(url) or True)
    first, second = ConsoleServer(None, REGION), ConsoleServer(None, REGION)
    try:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/pipeline\?token=[A-Za-z0-9_-]{32}", first.url)
        assert first.config.token != second.config.token
        assert first.open_browser() and opened == [first.url]
    finally:
        first.stop()
        second.stop()
