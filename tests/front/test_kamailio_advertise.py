"""A front listening on a wildcard advertises the public address (no network)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from front.support import assert_kamailio_accepts
from telephony.kamailio_front import FrontWorker, KamailioFront


def make(tmp: Path, listen_host: str, advertise_host: str | None) -> KamailioFront:
    return KamailioFront(
        binary="kamailio", listen_host=listen_host, listen_port=5060, workers=[FrontWorker(0, "127.0.0.1", 5061)],
        capacity=4, run_dir=tmp, advertise_host=advertise_host,
    )  # fmt: skip


def test_without_advertise_the_listen_lines_are_the_templates(tmp_path: Path) -> None:
    config = make(tmp_path, "127.0.0.1", None).render_config()
    assert re.findall(r"^listen=.*$", config, re.M) == ["listen=udp:127.0.0.1:5060", "listen=tcp:127.0.0.1:5060"]


@pytest.mark.parametrize(
    ("listen", "advertise", "expected"),
    [
        ("0.0.0.0", "192.0.2.10", "0.0.0.0:5060 advertise 192.0.2.10:5060"),
        ("::", "2001:db8::1", "[::]:5060 advertise [2001:db8::1]:5060"),
    ],
)
def test_a_wildcard_listen_advertises_the_public_host(
    tmp_path: Path, listen: str, advertise: str, expected: str
) -> None:
    # Otherwise Via and Record-Route carry 0.0.0.0, and a caller's ACK and BYE go nowhere.
    config = make(tmp_path, listen, advertise).render_config()
    assert re.findall(r"^listen=.*$", config, re.M) == [f"listen=udp:{expected}", f"listen=tcp:{expected}"]


@pytest.mark.peers
def test_an_advertising_config_passes_kamailio_check(tmp_path: Path, kamailio_bin: str) -> None:
    front = make(tmp_path, "0.0.0.0", "192.0.2.10")
    assert_kamailio_accepts(front, kamailio_bin, tmp_path)
