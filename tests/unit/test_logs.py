"""Caller-supplied strings can't forge log lines or drive a terminal."""

from __future__ import annotations

import json

import pytest
import structlog

from hotline.logs import configure_logging, escape_control


def test_control_characters_are_escaped_and_tabs_kept() -> None:
    assert escape_control("0612\r\n[info] forged\x1b[2J\tok") == "0612\\x0d\\x0a[info] forged\\x1b[2J\tok"


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_a_forged_line_stays_on_its_own_line(fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(fmt, "info")  # type: ignore[arg-type]
    try:
        structlog.get_logger("t").info("call_arrived", caller="0612\n2026-01-01 [error] bridge compromised")
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        if fmt == "json":
            assert json.loads(err)["caller"] == "0612\\x0a2026-01-01 [error] bridge compromised"
    finally:
        structlog.reset_defaults()
