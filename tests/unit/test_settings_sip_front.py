"""HOTLINE_SIP_FRONT: parsing, the `auto` decision, and what the control process makes of it (no network)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from config.errors import ConfigError
from config.settings import load_settings, sip_front_problems, sip_fronted
from hotline.control import StartupError, _check_sip_front, _reachable, worker_configs


def settings(**env: str):  # type: ignore[no-untyped-def]
    return load_settings({f"HOTLINE_{k.upper()}": v for k, v in env.items()}, cwd=Path("/srv"))


def test_auto_is_the_default() -> None:
    assert settings().sip_front == "auto"
    assert settings(sip_front="").sip_front == "auto"


@pytest.mark.parametrize("mode", ["auto", "always", "never"])
def test_each_mode_is_read(mode: str) -> None:
    assert settings(sip_front=mode).sip_front == mode


@pytest.mark.parametrize("raw", ["yes", "Always", "off", " auto", "kamailio"])
def test_a_bad_mode_names_the_variable(raw: str) -> None:
    with pytest.raises(ConfigError) as err:
        settings(sip_front=raw)
    assert err.value.problems == (f"HOTLINE_SIP_FRONT: expected auto, always or never, got {raw!r}",)


@pytest.mark.parametrize(
    ("host", "workers", "fronted"),
    [
        ("127.0.0.1", "1", False),  # the demo and most tests: the lone worker binds loopback
        ("127.0.0.53", "1", False),
        ("::1", "1", False),
        ("127.0.0.1", "2", True),  # several workers share the address through the front
        ("0.0.0.0", "1", True),  # exposed: floods arrive, pike must be in front
        ("::", "1", True),
        ("192.0.2.10", "1", True),
        ("2001:db8::10", "1", True),
    ],
)
def test_auto_fronts_several_workers_or_any_address_off_loopback(host: str, workers: str, fronted: bool) -> None:
    assert sip_fronted(settings(sip_host=host, public_host="192.0.2.10", workers=workers)) is fronted


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
def test_always_and_never_mean_what_they_say(host: str) -> None:
    assert sip_fronted(settings(sip_host=host, public_host="192.0.2.10", sip_front="always")) is True
    assert sip_fronted(settings(sip_host=host, public_host="192.0.2.10", sip_front="never")) is False


def test_never_with_several_workers_is_refused() -> None:
    with pytest.raises(ConfigError) as err:
        settings(sip_front="never", workers="3")
    assert err.value.problems == (
        "HOTLINE_SIP_FRONT: 'never' needs exactly one worker, got 3: several workers share the SIP address "
        "through the Kamailio front; use auto or always",
    )


def test_never_with_several_workers_from_the_command_line_is_refused_at_start() -> None:
    # `hotline serve --workers 3` replaces the count after the settings were read.
    overridden = replace(settings(sip_front="never"), workers=3)
    assert sip_front_problems(overridden)
    with pytest.raises(StartupError, match="HOTLINE_SIP_FRONT: 'never' needs exactly one worker, got 3"):
        _check_sip_front(overridden)


def test_a_lone_worker_behind_the_front_needs_its_port_below_65536() -> None:
    assert settings(sip_port="65535").worker_base_port == 65536  # unused: the worker binds 65535 itself
    with pytest.raises(ConfigError) as err:
        settings(sip_port="65535", sip_front="always")
    assert err.value.problems == (
        "HOTLINE_WORKER_BASE_PORT: 1 workers from port 65536 would need port 65536; expected a base port up to 65535",
    )


@pytest.mark.parametrize(
    ("env", "ports", "behind"),
    [
        ({}, [5060], False),
        ({"sip_front": "always"}, [5061], True),
        ({"sip_front": "always", "worker_base_port": "6000"}, [6000], True),
        ({"workers": "2"}, [5061, 5062], True),
        ({"sip_host": "0.0.0.0", "public_host": "192.0.2.10"}, [5061], True),
    ],
)
def test_workers_bind_the_sip_port_alone_and_the_base_ports_behind_the_front(
    env: dict[str, str], ports: list[int], behind: bool
) -> None:
    configs = worker_configs(settings(**env))
    assert [c.adapter.sip_port for c in configs] == ports
    assert {c.behind_front for c in configs} == {behind}


def test_a_missing_kamailio_says_what_to_install_or_to_go_without_knowingly() -> None:
    wanted = settings(sip_host="0.0.0.0", public_host="192.0.2.10", kamailio_bin="no-such-kamailio")
    with pytest.raises(StartupError) as err:
        _check_sip_front(wanted)
    message = str(err.value)
    assert "HOTLINE_SIP_FRONT=auto with the SIP address 0.0.0.0, which is not loopback" in message
    assert "apt-get install kamailio" in message
    assert "HOTLINE_SIP_FRONT=never" in message
    # Not needed: a lone worker on loopback, or an operator who runs Kamailio.
    assert _check_sip_front(settings(kamailio_bin="no-such-kamailio")) is False
    assert _check_sip_front(replace(wanted, kamailio="external")) is True


def test_kamailio_reaches_a_wildcard_bound_worker_over_loopback() -> None:
    assert _reachable("0.0.0.0") == "127.0.0.1"
    assert _reachable("::") == "::1"
    assert _reachable("192.0.2.10") == "192.0.2.10"
    assert _reachable("127.0.0.1") == "127.0.0.1"
