"""Rendering the Kamailio front's config and dispatcher list (no network)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from front.support import assert_kamailio_accepts
from telephony.kamailio_front import FrontError, FrontWorker, KamailioFront, PikeLimits

WORKERS = [FrontWorker(1, "127.0.0.1", 5071), FrontWorker(2, "127.0.0.1", 5072), FrontWorker(3, "127.0.0.1", 5073)]


def make(tmp: Path, **kwargs: object) -> KamailioFront:
    return KamailioFront(
        binary="kamailio", listen_host="127.0.0.1", listen_port=5060, workers=WORKERS,
        capacity=4, run_dir=tmp, **kwargs,  # type: ignore[arg-type]
    )  # fmt: skip


def test_config_has_every_placeholder_filled_and_kamailio_variables_kept(tmp_path: Path) -> None:
    config = make(tmp_path, retry_after_s=7).render_config()
    assert "${" not in config.replace("${...}", "")
    assert "listen=udp:127.0.0.1:5060" in config
    assert "listen=tcp:127.0.0.1:5060" in config
    assert 'append_to_reply("Retry-After: 7\\r\\n");' in config
    assert "X-Hotline-Source: $siz:$sp;transport=$pr" in config  # pseudo-variables untouched
    assert re.search(r"^dns=no$", config, re.M)
    assert re.search(r"^use_dns_cache=off$", config, re.M)
    assert f'modparam("jsonrpcs", "dgram_socket", "{tmp_path / "rpc.sock"}")' in config


def test_pike_defaults_and_switch(tmp_path: Path) -> None:
    on = make(tmp_path).render_config()
    assert re.search(r"^#!define WITH_PIKE$", on, re.M)
    assert 'modparam("pike", "reqs_density_per_unit", 14)' in on
    assert 'modparam("pike", "sampling_time_unit", 2)' in on
    assert "autoexpire=300;" in on
    tuned = make(tmp_path, pike=PikeLimits(requests=500, window_s=4, block_s=60)).render_config()
    assert 'modparam("pike", "reqs_density_per_unit", 500)' in tuned
    assert "autoexpire=60;" in tuned
    off = make(tmp_path, pike=None).render_config()
    assert not re.search(r"^#!define WITH_PIKE$", off, re.M)


def test_dispatcher_list_has_a_duid_per_incarnation_and_the_capacity(tmp_path: Path) -> None:
    front = make(tmp_path)
    lines = [line for line in front.render_dispatcher_list().splitlines() if not line.startswith("#")]
    assert lines == [
        "1 sip:127.0.0.1:5071 8 0 duid=w1g0;maxload=4",
        "1 sip:127.0.0.1:5072 8 0 duid=w2g0;maxload=4",
        "1 sip:127.0.0.1:5073 8 0 duid=w3g0;maxload=4",
    ]


def test_ipv6_hosts_are_bracketed(tmp_path: Path) -> None:
    front = KamailioFront(
        binary="kamailio", listen_host="::1", listen_port=5060,
        workers=[FrontWorker(1, "::1", 5071)], capacity=2, run_dir=tmp_path,
    )  # fmt: skip
    assert "listen=udp:[::1]:5060" in front.render_config()
    assert "1 sip:[::1]:5071 8 0 duid=w1g0;maxload=2" in front.render_dispatcher_list()
    assert front.address == ("::1", 5060)


def test_unknown_placeholder_in_a_template_is_an_error(tmp_path: Path) -> None:
    template = tmp_path / "bad.tmpl"
    template.write_text("listen=udp:${listen_host}:${listen_prot}\n$si $du\n")
    with pytest.raises(FrontError, match="listen_prot"):
        make(tmp_path, template_path=template).render_config()


def test_bad_worker_sets_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="duplicate worker indices"):
        make(tmp_path / "a").__class__(
            binary="kamailio", listen_host="127.0.0.1", listen_port=5060,
            workers=[WORKERS[0], FrontWorker(1, "127.0.0.1", 5099)], capacity=4, run_dir=tmp_path,
        )  # fmt: skip
    with pytest.raises(FrontError, match="too long"):
        make(tmp_path / ("x" * 120))


@pytest.mark.peers
@pytest.mark.parametrize("pike", [PikeLimits(), None])
def test_rendered_config_passes_kamailio_check(tmp_path: Path, kamailio_bin: str, pike: PikeLimits | None) -> None:
    front = make(tmp_path, pike=pike)
    assert_kamailio_accepts(front, kamailio_bin, tmp_path)
