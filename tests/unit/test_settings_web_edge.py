"""The web edge's settings: HTTPS files checked up front with clear errors, the proxy flag, session lifetimes."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.errors import ConfigError
from config.settings import load_settings
from harness.certs import self_signed


def problems(env: dict[str, str], cwd: Path) -> list[str]:
    with pytest.raises(ConfigError) as refused:
        load_settings(env, cwd=cwd)
    return refused.value.problems


def test_defaults_are_plain_http_with_a_working_day_of_session(tmp_path: Path) -> None:
    settings = load_settings({}, cwd=tmp_path)
    assert (settings.tls_cert, settings.tls_key, settings.tls, settings.behind_tls_proxy) == (None, None, False, False)
    assert (settings.session_lifetime_s, settings.session_idle_s) == (12 * 3600, 3600)


def test_a_certificate_and_its_key_turn_https_on(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    settings = load_settings({"HOTLINE_TLS_CERT": "cert.pem", "HOTLINE_TLS_KEY": str(key)}, cwd=tmp_path)
    assert (settings.tls_cert, settings.tls_key, settings.tls) == (cert, key, True)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"HOTLINE_TLS_CERT": "cert.pem"}, ["HOTLINE_TLS_KEY: required with HOTLINE_TLS_CERT"]),
        ({"HOTLINE_TLS_KEY": "key.pem"}, ["HOTLINE_TLS_CERT: required with HOTLINE_TLS_KEY"]),
        (
            {"HOTLINE_TLS_CERT": "nope.pem", "HOTLINE_TLS_KEY": "gone.pem"},
            ["HOTLINE_TLS_CERT: no such file: {tmp}/nope.pem", "HOTLINE_TLS_KEY: no such file: {tmp}/gone.pem"],
        ),
        (
            {"HOTLINE_TLS_CERT": ".", "HOTLINE_TLS_KEY": "key.pem"},
            ["HOTLINE_TLS_CERT: expected a PEM file, got a directory: {tmp}"],
        ),
        (
            {"HOTLINE_TLS_CERT": "key.pem", "HOTLINE_TLS_KEY": "cert.pem"},
            ["HOTLINE_TLS_CERT, HOTLINE_TLS_KEY: not a PEM certificate and its unencrypted key"],
        ),
        (
            {"HOTLINE_TLS_CERT": "garbage.pem", "HOTLINE_TLS_KEY": "key.pem"},
            ["HOTLINE_TLS_CERT, HOTLINE_TLS_KEY: not a PEM certificate and its unencrypted key"],
        ),
        ({"HOTLINE_BEHIND_TLS_PROXY": "maybe"}, ["HOTLINE_BEHIND_TLS_PROXY: expected true or false, got 'maybe'"]),
        ({"HOTLINE_SESSION_LIFETIME": "12h"}, ["HOTLINE_SESSION_LIFETIME: expected a number of seconds, got '12h'"]),
        ({"HOTLINE_SESSION_IDLE": "0"}, ["HOTLINE_SESSION_IDLE: expected a number of seconds, got '0'"]),
    ],
)
def test_bad_web_edge_settings_say_which_and_why(tmp_path: Path, env: dict[str, str], expected: list[str]) -> None:
    self_signed(tmp_path)
    (tmp_path / "garbage.pem").write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    found = problems(env, tmp_path)
    assert len(found) == len(expected), found
    for problem, start in zip(found, expected, strict=True):
        assert problem.startswith(start.format(tmp=tmp_path)), problem


@pytest.mark.parametrize(("raw", "value"), [("1", True), ("true", True), ("Yes", True), ("off", False), ("0", False)])
def test_the_proxy_flag(tmp_path: Path, raw: str, value: bool) -> None:
    assert load_settings({"HOTLINE_BEHIND_TLS_PROXY": raw}, cwd=tmp_path).behind_tls_proxy is value
