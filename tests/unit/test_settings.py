"""Process settings from HOTLINE_* variables: defaults, and every bad value reported at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.errors import ConfigError
from config.settings import Settings, load_settings


def test_defaults_run_the_demo_on_loopback(tmp_path: Path) -> None:
    settings = load_settings({}, tmp_path)
    assert settings == Settings(
        database_url=f"sqlite:///{tmp_path / 'var' / 'hotline.db'}",
        redis_url=None,
        redis_prefix="hotline:",
        sip_host="127.0.0.1",
        sip_port=5060,
        public_host="127.0.0.1",
        http_host="127.0.0.1",
        http_port=8080,
        log_format="console",
        log_level="info",
        var_dir=tmp_path / "var",
        tenant_file=None,
        workers=1,
        worker_capacity=4,
        worker_base_port=5061,
        kamailio="auto",
        kamailio_binary="kamailio",
        kamailio_template=None,
        rtp_port_min=20000,
        rtp_ports_per_worker=200,
        drain_timeout_s=30.0,
        pjsip_log_level=2,
        decision_timeout_s=3.0,
        ice_servers=(),
        rtc_codec="PCMU",
        rtc_host_addresses=(),
        ring_timeout_s=None,
        agent_grace_s=10.0,
    )
    assert settings.cache_dir == tmp_path / "var" / "cache"
    assert settings.run_dir == tmp_path / "var" / "run"
    assert settings.extra == {}


def test_empty_values_mean_the_default(tmp_path: Path) -> None:
    env = {"HOTLINE_SIP_PORT": "", "HOTLINE_REDIS_URL": "", "HOTLINE_TENANT_FILE": "", "HOTLINE_WORKERS": ""}
    assert load_settings(env, tmp_path) == load_settings({}, tmp_path)


def test_every_value_can_be_set(tmp_path: Path) -> None:
    env = {
        "HOTLINE_VAR_DIR": "state",
        "HOTLINE_DATABASE_URL": "postgresql://hotline@db/hotline",
        "HOTLINE_REDIS_URL": "redis://cache:6379/0",
        "HOTLINE_SIP_HOST": "::",
        "HOTLINE_SIP_PORT": "5070",
        "HOTLINE_PUBLIC_HOST": "2001:db8::5",
        "HOTLINE_HTTP_HOST": "0.0.0.0",
        "HOTLINE_HTTP_PORT": "9000",
        "HOTLINE_LOG_FORMAT": "json",
        "HOTLINE_LOG_LEVEL": "debug",
        "HOTLINE_TENANT_FILE": "/etc/hotline/tenant.toml",
        "HOTLINE_WORKERS": "3",
        "HOTLINE_WORKER_CAPACITY": "10",
        "HOTLINE_WORKER_BASE_PORT": "6000",
        "HOTLINE_KAMAILIO": "external",
        "HOTLINE_KAMAILIO_BIN": "/usr/sbin/kamailio",
        "HOTLINE_RTP_PORT_MIN": "30000",
        "HOTLINE_RTP_PORTS_PER_WORKER": "100",
        "HOTLINE_DRAIN_TIMEOUT": "2.5",
        "HOTLINE_PJSIP_LOG_LEVEL": "5",
        "HOTLINE_DECISION_TIMEOUT": "0.5",
        "HOTLINE_ICE_SERVERS": '[{"urls": ["turn:turn.example.com:3478"], "username": "u", "credential": "p"}]',
        "HOTLINE_RTC_CODEC": "opus",
        "HOTLINE_RTC_HOST_ADDRESSES": "192.0.2.10, ::1",
        "HOTLINE_RING_TIMEOUT": "20",
        "HOTLINE_AGENT_GRACE": "30",
        "HOTLINE_RTP_STRICT_SOURCE": "off",
    }
    settings = load_settings(env, tmp_path)
    assert settings == Settings(
        database_url="postgresql://hotline@db/hotline",
        redis_url="redis://cache:6379/0",
        redis_prefix="hotline:",
        sip_host="::",
        sip_port=5070,
        public_host="2001:db8::5",
        http_host="0.0.0.0",
        http_port=9000,
        log_format="json",
        log_level="debug",
        var_dir=tmp_path / "state",
        tenant_file=Path("/etc/hotline/tenant.toml"),
        workers=3,
        worker_capacity=10,
        worker_base_port=6000,
        kamailio="external",
        kamailio_binary="/usr/sbin/kamailio",
        kamailio_template=None,
        rtp_port_min=30000,
        rtp_ports_per_worker=100,
        drain_timeout_s=2.5,
        pjsip_log_level=5,
        decision_timeout_s=0.5,
        ice_servers=({"urls": ["turn:turn.example.com:3478"], "username": "u", "credential": "p"},),
        rtc_codec="opus",
        rtc_host_addresses=("192.0.2.10", "::1"),
        ring_timeout_s=20.0,
        agent_grace_s=30.0,
        strict_rtp_source=False,
    )


def test_absolute_var_dir_is_kept(tmp_path: Path) -> None:
    settings = load_settings({"HOTLINE_VAR_DIR": str(tmp_path / "elsewhere")}, Path("/nonexistent"))
    assert settings.var_dir == tmp_path / "elsewhere"
    assert settings.database_url == f"sqlite:///{tmp_path / 'elsewhere' / 'hotline.db'}"


def test_public_host_defaults_to_a_specific_sip_host(tmp_path: Path) -> None:
    assert load_settings({"HOTLINE_SIP_HOST": "192.0.2.10"}, tmp_path).public_host == "192.0.2.10"


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_public_host_is_required_with_a_wildcard_sip_host(tmp_path: Path, host: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"HOTLINE_SIP_HOST": host}, tmp_path)
    assert caught.value.problems == (
        f"HOTLINE_PUBLIC_HOST: required when HOTLINE_SIP_HOST is {host!r}: it is the address callers' media must reach",
    )
    settings = load_settings({"HOTLINE_SIP_HOST": host, "HOTLINE_PUBLIC_HOST": "198.51.100.1"}, tmp_path)
    assert (settings.sip_host, settings.public_host) == (host, "198.51.100.1")


def test_worker_base_port_follows_the_sip_port(tmp_path: Path) -> None:
    assert load_settings({"HOTLINE_SIP_PORT": "5080"}, tmp_path).worker_base_port == 5081


def test_reads_the_process_environment_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTLINE_HTTP_PORT", "8181")
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.http_port == 8181
    assert settings.var_dir == tmp_path / "var"


def test_one_bad_value() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"HOTLINE_SIP_PORT": "abc"}, Path("/srv"))
    assert caught.value.problems == ("HOTLINE_SIP_PORT: expected a port number 1-65535, got 'abc'",)
    assert str(caught.value) == "HOTLINE_SIP_PORT: expected a port number 1-65535, got 'abc'"


def test_every_bad_value_is_reported_at_once() -> None:
    env = {
        "HOTLINE_SIP_PORT": "abc",
        "HOTLINE_DATABASE_URL": "hotline.db",
        "HOTLINE_SIP_HOST": "localhost",
        "HOTLINE_PUBLIC_HOST": "bridge.example.com",
        "HOTLINE_HTTP_HOST": "256.0.0.1",
        "HOTLINE_HTTP_PORT": "65536",
        "HOTLINE_LOG_FORMAT": "xml",
        "HOTLINE_LOG_LEVEL": "INFO",
        "HOTLINE_WORKERS": "0",
        "HOTLINE_WORKER_CAPACITY": "two",
        "HOTLINE_WORKER_BASE_PORT": "0",
        "HOTLINE_KAMAILIO": "internal",
        "HOTLINE_RTP_PORT_MIN": "-1",
        "HOTLINE_RTP_PORTS_PER_WORKER": "1.5",
        "HOTLINE_DRAIN_TIMEOUT": "-3",
        "HOTLINE_PJSIP_LOG_LEVEL": "7",
        "HOTLINE_DECISION_TIMEOUT": "nan",
    }
    with pytest.raises(ConfigError) as caught:
        load_settings(env, Path("/srv"))
    assert caught.value.problems == (
        "HOTLINE_SIP_PORT: expected a port number 1-65535, got 'abc'",
        "HOTLINE_DATABASE_URL: expected a database URL such as sqlite:///var/hotline.db or "
        "postgresql://user@host/db, got 'hotline.db'",
        "HOTLINE_SIP_HOST: expected an IP address, got 'localhost'",
        "HOTLINE_PUBLIC_HOST: expected an IP address, got 'bridge.example.com'",
        "HOTLINE_HTTP_HOST: expected an IP address, got '256.0.0.1'",
        "HOTLINE_HTTP_PORT: expected a port number 1-65535, got '65536'",
        "HOTLINE_LOG_FORMAT: expected console or json, got 'xml'",
        "HOTLINE_LOG_LEVEL: expected debug, info, warning or error, got 'INFO'",
        "HOTLINE_WORKERS: expected a whole number of workers, at least 1, got '0'",
        "HOTLINE_WORKER_CAPACITY: expected a whole number of calls, at least 1, got 'two'",
        "HOTLINE_WORKER_BASE_PORT: expected a port number 1-65535, got '0'",
        "HOTLINE_KAMAILIO: expected auto or external, got 'internal'",
        "HOTLINE_RTP_PORT_MIN: expected a port number 1-65535, got '-1'",
        "HOTLINE_RTP_PORTS_PER_WORKER: expected a whole number of ports, got '1.5'",
        "HOTLINE_DRAIN_TIMEOUT: expected a number of seconds, got '-3'",
        "HOTLINE_PJSIP_LOG_LEVEL: expected a pjsip log level 0-6, got '7'",
        "HOTLINE_DECISION_TIMEOUT: expected a number of seconds, got 'nan'",
    )


def test_ports_and_numbers_must_be_plain_ascii_and_finite() -> None:
    env = {
        "HOTLINE_SIP_PORT": " 80",
        "HOTLINE_HTTP_PORT": "1_000",
        "HOTLINE_WORKERS": "\u0668",
        "HOTLINE_DRAIN_TIMEOUT": "inf",
        "HOTLINE_REDIS_URL": "nonsense",
    }
    with pytest.raises(ConfigError) as err:
        load_settings(env, cwd=Path("/srv/hotline"))
    assert err.value.problems == (
        "HOTLINE_SIP_PORT: expected a port number 1-65535, got ' 80'",
        "HOTLINE_REDIS_URL: expected a redis://, rediss:// or unix:// URL, got 'nonsense'",
        "HOTLINE_HTTP_PORT: expected a port number 1-65535, got '1_000'",
        "HOTLINE_WORKERS: expected a whole number of workers, at least 1, got '\u0668'",
        "HOTLINE_DRAIN_TIMEOUT: expected a number of seconds, got 'inf'",
    )


def test_worker_ports_must_fit_below_65536() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings({"HOTLINE_SIP_PORT": "65534", "HOTLINE_WORKERS": "3"}, cwd=Path("/srv"))
    assert err.value.problems == (
        "HOTLINE_WORKER_BASE_PORT: 3 workers from port 65535 would need port 65537; expected a base port up to 65533",
    )


def test_relative_tenant_file_resolves_against_the_working_directory() -> None:
    settings = load_settings({"HOTLINE_TENANT_FILE": "tenants/acme.toml"}, cwd=Path("/srv/hotline"))
    assert settings.tenant_file == Path("/srv/hotline/tenants/acme.toml")


def test_ice_servers_must_be_a_json_list_of_stun_or_turn_urls() -> None:
    for raw in ('{"urls": "stun:x"}', '[{"urls": "http://x"}]', "[{}]", "not json"):
        with pytest.raises(ConfigError) as err:
            load_settings({"HOTLINE_ICE_SERVERS": raw}, cwd=Path("/srv"))
        assert err.value.problems[0].startswith("HOTLINE_ICE_SERVERS: expected a JSON list such as ")


def test_strict_rtp_source_is_on_unless_turned_off_and_takes_only_a_yes_or_no(tmp_path: Path) -> None:
    assert load_settings({}, tmp_path).strict_rtp_source is True
    assert load_settings({"HOTLINE_RTP_STRICT_SOURCE": "false"}, tmp_path).strict_rtp_source is False
    with pytest.raises(ConfigError, match="HOTLINE_RTP_STRICT_SOURCE"):
        load_settings({"HOTLINE_RTP_STRICT_SOURCE": "strict"}, tmp_path)
