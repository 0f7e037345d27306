"""The RFC 4475 torture messages are whole, byte-exact and agree with their manifest.

Every check here reads the bytes themselves: a truncated file, converted line endings or a
hand-edited message fails them even if the manifest's sha256 were updated to match.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tomllib
from pathlib import Path
from urllib.parse import unquote_to_bytes

import pytest

from harness import torture
from harness.torture import FIXTURES, MANIFEST, TortureDataError, for_loopback, load_torture_messages

# RFC 4475 section 3, in order.
RFC_NAMES = (
    # 3.1.1 valid
    "wsinv", "intmeth", "esc01", "escnull", "esc02", "lwsdisp", "longreq", "dblreq", "semiuri",
    "transports", "mpart01", "unreason", "noreason",
    # 3.1.2 invalid
    "badinv01", "clerr", "ncl", "scalar02", "scalarlg", "quotbal", "ltgtruri", "lwsruri", "lwsstart",
    "trws", "escruri", "baddate", "regbadct", "badaspec", "baddn", "badvers", "mismatch01", "mismatch02",
    "bigcode",
    # 3.2 transaction layer, 3.3 application layer, 3.4 backward compatibility
    "badbranch", "insuf", "unkscm", "novelsc", "unksm2", "bext01", "invut", "regaut01", "multi01", "mcl01",
    "bcast", "zeromf", "cparam01", "cparam02", "regescrt", "sdp01", "inv2543",
)  # fmt: skip

# SHA-256 of the RFC's own archive files (appendix B) for the 3.1.1 messages, as published in the
# rsiprtp project's fixture catalogue: kept here, apart from the manifest, on purpose.
PUBLISHED_SHA256 = {
    "wsinv": "d6f6cdee99cd0a1f8e3d9a0fdd67c877700e19ab86d8186dada06f61260e3e61",
    "intmeth": "b957a8292c1c0a9851fe94705b90f94320738f43aacde64998e401f742ef688d",
    "esc01": "be3a316d4ce5f69cad474646191e390dd4b50fc8371e44b5197fe1237781973e",
    "escnull": "263fe2ecd12a5ccbb6c67b3174e9211d11da9b600e7d69666a86d2ee42873e90",
    "esc02": "9a9c59449f00327b02071feafc8e5c2a261c98c818044167894cc17809a12199",
    "lwsdisp": "d1b36b6316c12824f6f04bf6b1fd1f021cade9b74871693b9c3474cd9fa7f4e6",
    "longreq": "185739292bc676760e5b1cca77c87705aa570240171c506ad76f8c35af0ecdaa",
    "dblreq": "a6be48426565c2a705389c4ce2ea17e57b891cb13f80490a2cb9392c797b46ef",
    "semiuri": "87bbaed6b4b354dbd3c5c7a20e66686303c63e43a0aa19b89de1ac75231611a2",
    "transports": "33b4553a3b9418121b099ff07882535151edd6a1e81898c63a916aad2cbf90bc",
    "mpart01": "92147c8e24997bac59629e1b163767697d0d6d499af87f89e325d69968bec3ba",
    "unreason": "4f939d6ebf4817eea70f011d3209e83732872ffc20ffd304b244084dc392f4d7",
    "noreason": "07e11e470a69fffa3674de805e5165d1351a9439a91045ee70c9570ea24ab4fe",
}

BOUNDARY = b"7a9cbec02ceef655"
BINARY_PART_HEAD = b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n"
CLOSE_DELIMITER = b"\r\n--" + BOUNDARY + b"--\r\n"
_CONTENT_LENGTH = re.compile(rb"(?im)^(?:content-length|l)[ \t]*:[ \t]*(-?[0-9]+)[ \t]*\r?$")

MESSAGES = load_torture_messages()
BY_NAME = {m.name: m for m in MESSAGES}


def data(name: str) -> bytes:
    return BY_NAME[name].data


def head_and_body(raw: bytes) -> tuple[bytes, bytes | None]:
    end = raw.find(b"\r\n\r\n")
    return (raw, None) if end < 0 else (raw[:end], raw[end + 4 :])


def header_lines(raw: bytes) -> list[bytes]:
    """The header section's lines after the start line, folded continuations joined."""
    head, _ = head_and_body(raw)
    return re.sub(rb"\r\n[ \t]+", b" ", head).split(b"\r\n")[1:]


def headers_named(raw: bytes, *names: bytes) -> list[bytes]:
    wanted = {n.lower() for n in names}
    found = []
    for line in header_lines(raw):
        name, _, value = line.partition(b":")
        if name.strip().lower() in wanted:
            found.append(value.strip())
    return found


def binary_part(raw: bytes) -> bytes:
    start = raw.index(BINARY_PART_HEAD) + len(BINARY_PART_HEAD)
    return raw[start : raw.index(CLOSE_DELIMITER, start)]


def line_break_problems(name: str, raw: bytes) -> list[str]:
    """Every line break must be CRLF; only mpart01's binary part may hold bare CR or LF octets."""
    if name == "mpart01" and BINARY_PART_HEAD in raw and CLOSE_DELIMITER in raw:
        part = binary_part(raw)
        raw = raw.replace(part, b"")
    problems = []
    if raw.replace(b"\r\n", b"").count(b"\n"):
        problems.append("bare LF")
    if raw.replace(b"\r\n", b"").count(b"\r"):
        problems.append("bare CR")
    return problems


def framing_of(raw: bytes) -> str:
    """How Content-Length relates to the bytes after the first empty line (see manifest.toml)."""
    head, body = head_and_body(raw)
    if body is None:
        return "unterminated" if raw.endswith(b"\r\n") else "cut off"
    lengths = [int(v) for v in _CONTENT_LENGTH.findall(head + b"\r\n")]
    if not lengths:
        return "absent"
    if len(set(lengths)) > 1:
        return "conflicting"
    length = lengths[0]
    if length < 0:
        return "negative"
    if length > len(body):
        return "short"
    return "trailing" if length < len(body) else "exact"


def problems(name: str, raw: bytes, framing: str) -> list[str]:
    found = line_break_problems(name, raw)
    actual = framing_of(raw)
    if actual != framing:
        found.append(f"framing {actual}, manifest says {framing}")
    return found


# --- manifest against files -----------------------------------------------------------------------------


def test_every_manifest_entry_has_a_file_and_every_file_an_entry() -> None:
    with MANIFEST.open("rb") as f:
        listed = [entry["name"] for entry in tomllib.load(f)["message"]]
    on_disk = sorted(p.stem for p in FIXTURES.glob("*.dat"))
    assert len(listed) == len(set(listed))
    assert sorted(listed) == on_disk


def test_all_49_messages_of_the_rfc_in_rfc_order() -> None:
    assert tuple(m.name for m in MESSAGES) == RFC_NAMES
    sections = [tuple(int(n) for n in m.section.split(".")) for m in MESSAGES]
    assert sections == sorted(sections)
    assert len(set(sections)) == len(sections)
    assert all(m.valid for m in MESSAGES if m.section.startswith("3.1.1."))
    assert not any(m.valid for m in MESSAGES if m.section.startswith("3.1.2."))
    assert {m.name for m in MESSAGES if not m.valid and not m.section.startswith("3.1.2.")} == {
        "insuf",
        "multi01",
        "mcl01",
    }


def test_the_13_valid_messages_are_the_rfcs_archive_files_byte_for_byte() -> None:
    for name, digest in PUBLISHED_SHA256.items():
        assert hashlib.sha256(data(name)).hexdigest() == digest, name
    assert {m.name for m in MESSAGES if m.provenance == "published-sha256"} == set(PUBLISHED_SHA256)


def test_manifest_digests_match_the_files() -> None:
    for message in MESSAGES:
        assert hashlib.sha256(message.data).hexdigest() == message.sha256, message.name


def test_start_line_matches_the_manifest_method() -> None:
    for message in MESSAGES:
        start_line = message.data.split(b"\r\n", 1)[0]
        if message.is_response:
            assert start_line.startswith(b"SIP/2.0 "), message.name
        else:
            assert start_line.startswith(message.method.encode() + b" "), message.name


def test_expectations_follow_the_rfc_for_a_uas() -> None:
    for message in MESSAGES:
        preferred = message.outcomes[0]
        if message.is_response:
            assert message.outcomes == ("drop",), message.name
        if not message.valid:
            assert preferred == "drop" or preferred[0] in "45", message.name
    assert BY_NAME["badvers"].outcomes == ("505",)
    assert BY_NAME["intmeth"].outcomes == ("501",)  # unknown methods, however odd their characters
    assert BY_NAME["esc02"].outcomes == ("501",)
    assert BY_NAME["unkscm"].outcomes == ("416",)
    assert BY_NAME["bext01"].outcomes == ("420",)
    assert BY_NAME["invut"].outcomes == ("415",)


# --- the bytes are whole: CRLF everywhere, Content-Length as the RFC has it --------------------------------


@pytest.mark.parametrize("name", RFC_NAMES)
def test_line_endings_and_framing_hold(name: str) -> None:
    assert problems(name, data(name), BY_NAME[name].framing) == []


@pytest.mark.parametrize("name", RFC_NAMES)
def test_checks_catch_truncation_and_converted_line_endings(name: str) -> None:
    message = BY_NAME[name]
    truncated = message.data[:-1]
    lf_only = message.data.replace(b"\r\n", b"\n")
    crlf_doubled = message.data.replace(b"\r\n", b"\r\r\n")
    for damaged in (truncated, lf_only, crlf_doubled):
        assert problems(name, damaged, message.framing), name


def test_content_length_agrees_with_the_body_where_the_rfc_says_it_does() -> None:
    exact = {m.name for m in MESSAGES if m.framing == "exact"}
    assert exact == set(RFC_NAMES) - {"dblreq", "clerr", "ncl", "mcl01", "inv2543", "baddn"}
    _, body = head_and_body(data("clerr"))
    assert body is not None
    assert headers_named(data("clerr"), b"content-length") == [b"9999"]
    assert 0 < len(body) < 9999
    assert headers_named(data("ncl"), b"content-length") == [b"-999"]
    assert headers_named(data("mcl01"), b"content-length", b"l") == [b"13", b"5"]
    assert headers_named(data("inv2543"), b"content-length", b"l") == []
    assert head_and_body(data("baddn"))[1] is None


# --- what the RFC says about particular bytes --------------------------------------------------------------


def test_wsinv_is_folded_and_spaced_as_the_rfc_has_it() -> None:
    raw = data("wsinv")
    assert raw.startswith(b"INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0\r\nTO :\r\n sip:")
    assert b"\r\ncseq: 0009\r\n  INVITE\r\n" in raw
    assert b"\r\nVia  : SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw\r\n" in raw
    assert b'from   : "J Rosenberg \\\\\\""       <sip:jdrosen@example.com>\r\n  ;\r\n  tag = 98asjd8\r\n' in raw
    assert b"\r\ns :\r\n" in raw  # empty Subject
    assert len(headers_named(raw, b"via", b"v")) == 2  # three Via values, two of them in one header
    assert b"Content-Length   : 150\r\n" in raw


def test_intmeth_carries_raw_nul_bel_and_del_as_quoted_pairs_and_utf8() -> None:
    raw = data("intmeth")
    assert raw.count(b"\x00") == 1
    assert b'To: "BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f" <sip:1_unusual.URI~' in raw
    text = raw.decode("utf-8")  # the non-ASCII octets are well-formed UTF-8
    assert ";fromParam''~+*_!.-%=\"работающий\";tag=_token~1'+`*%!-.\r\n" in text
    assert "\r\nextensionHeader-!.%*+_`'~:\ufeff大停電\r\n" in text


def test_escnull_has_escaped_nulls_in_its_user_parts_and_no_raw_nul() -> None:
    raw = data("escnull")
    assert b"\x00" not in raw
    assert headers_named(raw, b"to") == [b"sip:null-%00-null@example.com"]
    assert headers_named(raw, b"from") == [b"sip:null-%00-null@example.com;tag=839923423"]
    assert headers_named(raw, b"contact") == [b"<sip:%00@host5.example.com>", b"<sip:%00%00@host5.example.com>"]
    assert unquote_to_bytes("null-%00-null") == b"null-\x00-null"


def test_esc01_escapes_decode_to_what_the_rfc_says() -> None:
    raw = data("esc01")
    request_uri = raw.split(b"\r\n", 1)[0].split(b" ")[1]
    assert unquote_to_bytes(request_uri.split(b"@example.net")[0][4:]) == b"sips:user@example.com"
    assert b"\r\nContact:\r\n  <sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31>\r\n" in raw


def test_esc02_method_is_not_register() -> None:
    raw = data("esc02")
    assert raw.startswith(b"RE%47IST%45R sip:registrar.example.com SIP/2.0\r\n")
    assert headers_named(raw, b"cseq") == [b"29344 RE%47IST%45R"]
    assert headers_named(raw, b"contact") == [b"<sip:alias1@host1.example.com>", b"<sip:alias3@host3.example.com>"]


def test_longreq_is_long() -> None:
    raw = data("longreq")
    assert len(raw) > 3 * 1024
    assert len(headers_named(raw, b"via", b"v")) == 34
    assert max(len(line) for line in raw.split(b"\r\n")) > 500
    (from_,) = headers_named(raw, b"from", b"f")
    assert b";tag=12" + b"982" * 50 + b"424;" in from_


def test_dblreq_trailing_octets_look_like_an_invite() -> None:
    raw = data("dblreq")
    head, rest = head_and_body(raw)
    assert rest is not None
    assert headers_named(raw, b"content-length") == [b"0"]
    assert head.startswith(b"REGISTER sip:example.com SIP/2.0\r\n")
    assert rest.startswith(b"\r\nINVITE sip:joe@example.com SIP/2.0\r\n")
    assert b"\r\nContent-Length: 150\r\n" in rest


def test_mpart01_has_the_rfcs_boundary_and_binary_part() -> None:
    raw = data("mpart01")
    (content_type,) = headers_named(raw, b"content-type")
    assert content_type == b"multipart/mixed;boundary=" + BOUNDARY
    _, body = head_and_body(raw)
    assert body is not None
    assert len(body) == 553
    assert body.startswith(b"--" + BOUNDARY + b"\r\nContent-Type: text/plain\r\n")
    assert body.count(b"\r\n--" + BOUNDARY + b"\r\n") == 1
    assert body.endswith(CLOSE_DELIMITER)
    assert b"Content-Transfer-Encoding: binary\r\n\r\nHello\r\n--" + BOUNDARY in body
    part = binary_part(raw)
    # A DER SEQUENCE whose two-octet length covers exactly the rest of the part.
    assert part[:2] == b"\x30\x82"
    assert len(part) == 4 + int.from_bytes(part[2:4], "big") == 342
    assert b"\x00" in part
    assert b"Sipit Test Certificate Authority" in part


def test_reason_phrases() -> None:
    status = data("unreason").split(b"\r\n", 1)[0].decode("utf-8")
    assert status == "SIP/2.0 200 = 2**3 * 5**2 но сто девяносто девять - простое"
    assert data("noreason").startswith(b"SIP/2.0 100 \r\n")
    assert data("bigcode").startswith(b"SIP/2.0 4294967301 better not break the receiver\r\n")
    assert 4294967301 == 2**32 + 5


def test_request_line_defects() -> None:
    assert data("trws").startswith(b"OPTIONS sip:remote-target@example.com SIP/2.0  \r\n")
    assert data("lwsstart").startswith(b"INVITE  sip:user@example.com  SIP/2.0\r\n")
    assert data("lwsruri").startswith(b"INVITE sip:user@example.com; lr SIP/2.0\r\n")
    assert data("ltgtruri").startswith(b"INVITE <sip:user@example.com> SIP/2.0\r\n")
    assert data("escruri").startswith(b"INVITE sip:user@example.com?Route=%3Csip:example.com%3E SIP/2.0\r\n")
    assert data("badvers").startswith(b"OPTIONS sip:t.watson@example.org SIP/7.0\r\n")
    assert data("unkscm").startswith(b"OPTIONS nobodyKnowsThisScheme:totallyopaquecontent SIP/2.0\r\n")
    assert data("novelsc").startswith(b"OPTIONS soap.beep://192.0.2.103:3002 SIP/2.0\r\n")


def test_header_defects() -> None:
    assert headers_named(data("badinv01"), b"via") == [b"SIP/2.0/UDP 192.0.2.15;;,;,,"]
    assert headers_named(data("quotbal"), b"to") == [b'"Mr. J. User <sip:j.user@example.com>']
    assert headers_named(data("badaspec"), b"to") == [b'"Watson, Thomas" < sip:t.watson@example.org >']
    assert headers_named(data("baddn"), b"from") == [b"Bell, Alexander <sip:a.g.bell@example.com>;tag=43"]
    assert headers_named(data("baddate"), b"date") == [b"Fri, 01 Jan 2010 16:00:00 EST"]
    assert headers_named(data("regbadct"), b"contact") == [b"sip:user@example.com?Route=%3Csip:sip.example.com%3E"]
    assert headers_named(data("mismatch01"), b"cseq") == [b"8 INVITE"]
    assert headers_named(data("mismatch02"), b"cseq") == [b"8 INVITE"]
    assert headers_named(data("badbranch"), b"via") == [b"SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK"]


def test_scalar_overflows() -> None:
    (cseq,) = headers_named(data("scalar02"), b"cseq")
    assert int(cseq.split()[0]) == 2**65
    assert headers_named(data("scalar02"), b"max-forwards") == [b"300"]
    assert headers_named(data("scalar02"), b"expires") == [str(10**100).encode()]
    assert headers_named(data("scalar02"), b"contact") == [b"<sip:user@host129.example.com> ;expires=280297596632815"]
    (cseq,) = headers_named(data("scalarlg"), b"cseq")
    assert int(cseq.split()[0]) > 2**32 - 1
    assert headers_named(data("scalarlg"), b"warning") == [b'1812 overture "In Progress"']


def test_application_layer_defects() -> None:
    insuf = data("insuf")
    assert headers_named(insuf, b"to", b"t", b"from", b"f", b"call-id", b"i") == []
    multi01 = data("multi01")
    for names in ((b"cseq",), (b"call-id", b"i"), (b"to", b"t"), (b"from", b"f"), (b"max-forwards",)):
        assert len(headers_named(multi01, *names)) == 2, names
    assert headers_named(data("bext01"), b"require") == [b"nothingSupportsThis, nothingSupportsThisEither"]
    assert headers_named(data("invut"), b"content-type") == [b"application/unknownformat"]
    assert headers_named(data("sdp01"), b"accept") == [b"text/nobodyKnowsThis"]
    assert headers_named(data("zeromf"), b"max-forwards") == [b"0"]
    assert b"Via: SIP/2.0/UDP 255.255.255.255;branch=z9hG4bK1saber23\r\n" in data("bcast")
    inv2543 = data("inv2543")
    assert headers_named(inv2543, b"via") == [b"SIP/2.0/UDP iftgw.example.com"]
    assert b"tag=" not in b"".join(headers_named(inv2543, b"from"))


# --- the loader -------------------------------------------------------------------------------------------


def _copy_fixtures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    copy = tmp_path / "rfc4475"
    shutil.copytree(FIXTURES, copy)
    monkeypatch.setattr(torture, "FIXTURES", copy)
    monkeypatch.setattr(torture, "MANIFEST", copy / "manifest.toml")
    return copy


def test_loader_refuses_a_damaged_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = _copy_fixtures(tmp_path, monkeypatch)
    assert len(load_torture_messages()) == 49
    wsinv = copy / "wsinv.dat"
    wsinv.write_bytes(wsinv.read_bytes().replace(b"\r\n", b"\n"))
    with pytest.raises(TortureDataError, match=r"wsinv\.dat"):
        load_torture_messages()


def test_loader_refuses_a_missing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = _copy_fixtures(tmp_path, monkeypatch)
    (copy / "bigcode.dat").unlink()
    with pytest.raises(TortureDataError, match="bigcode"):
        load_torture_messages()


def test_for_loopback_keeps_the_bytes_and_only_aims_at_loopback() -> None:
    for message in MESSAGES:
        assert for_loopback(message.data, "127.0.0.1", 5070) == message.data
    assert for_loopback(data("wsinv"), "::1", 5070) == data("wsinv")
    assert for_loopback(data("wsinv"), "127.0.0.2", 5060) == data("wsinv")
    for host in ("example.com", "192.0.2.1", "0.0.0.0", "localhost"):
        with pytest.raises(ValueError, match="loopback"):
            for_loopback(data("wsinv"), host, 5060)
    for port in (0, 65536):
        with pytest.raises(ValueError, match="port"):
            for_loopback(data("wsinv"), "127.0.0.1", port)
