"""Reading INVITEs pjsip has accepted."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telephony.sip_message import SipParseError, diverted_from, parse_name_addr, parse_request, uri_user

INVITE = (
    "INVITE sip:1001@127.0.0.1:5060 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5199;branch=z9hG4bK-1\r\n"
    'f: "Jane \\"J\\" Doe" <sip:+33612345678@carrier.example>;tag=abc\r\n'
    "To: <sip:1001@127.0.0.1>\r\n"
    "i: 42@127.0.0.1\r\n"
    "CSeq: 1 INVITE\r\n"
    "Diversion: <sip:0140000000@pbx.example>;reason=no-answer\r\n"
    "Subject: first line\r\n"
    " continued\r\n"
    "Content-Length: 0\r\n\r\n"
)


def test_request_line_and_compact_headers() -> None:
    req = parse_request(INVITE)
    assert req.method == "INVITE"
    assert uri_user(req.uri) == "1001"
    assert req.header("Call-ID") == "42@127.0.0.1"
    assert (
        req.header(
            "FROM",
        )
        is not None
    )
    assert req.header("subject") == "first line continued"
    assert req.header_all("diversion") == ["<sip:0140000000@pbx.example>;reason=no-answer"]


def test_name_addr_with_display_and_params() -> None:
    req = parse_request(INVITE)
    addr = parse_name_addr(req.header("from") or "")
    assert addr.uri == "sip:+33612345678@carrier.example"
    assert addr.user == "+33612345678"
    assert addr.display is not None
    assert addr.display.startswith("Jane")


def test_bare_uri_and_tel_uri() -> None:
    assert parse_name_addr("sip:alice@example.com;tag=1").user == "alice"
    assert uri_user("tel:+4420123") == "+4420123"
    assert uri_user("http://nope") == ""


@pytest.mark.parametrize(
    "text",
    ["", "garbage", "INVITE sip:x@y\r\n\r\n", "INVITE sip:x@y SIP/2.0\r\nno colon here\r\n\r\n"],
)
def test_unreadable_requests_raise_a_parse_error(text: str) -> None:
    with pytest.raises(SipParseError):
        parse_request(text)


def test_unterminated_name_addr() -> None:
    with pytest.raises(SipParseError):
        parse_name_addr('"x" <sip:a@b')


@given(st.text(max_size=400))
def test_any_text_parses_or_raises_the_parse_error(text: str) -> None:
    with contextlib.suppress(SipParseError):
        parse_request(text)


def test_header_count_is_bounded() -> None:
    text = "INVITE sip:1@h SIP/2.0\r\n" + "X-A: b\r\n" * 500 + "\r\n"
    with pytest.raises(SipParseError, match="too many headers"):
        parse_request(text)


def test_diversion_and_history_info_give_the_forwarded_numbers_original_first() -> None:
    from telephony.sip_message import diverted_from

    request = parse_request(
        "INVITE sip:5000@bridge SIP/2.0\r\n"
        "Diversion: <sip:+33150000000@pbx.acme>;reason=no-answer;counter=1,\r\n"
        " <tel:+33140000000>;reason=unconditional\r\n"
        "History-Info: <sip:+33140000000@pbx.acme?Reason=SIP%3Bcause%3D480>;index=1,"
        " <sip:+33160000000@pbx.acme;cause=302>;index=1.1, <sip:5000@bridge>;index=1.1.1\r\n"
        'Diversion: "Broken <sip:\r\n'
        "\r\n"
    )
    assert diverted_from(request) == ("+33140000000", "+33150000000", "+33160000000")
    assert diverted_from(parse_request("INVITE sip:1@h SIP/2.0\r\nFrom: <sip:a@b>\r\n\r\n")) == ()


@pytest.mark.parametrize(
    ("header", "display", "user"),
    [
        # A '<' inside the quoted name is text: the caller is who the URI says, not the quoted number.
        (
            '"<sip:+33100000000@trusted.example>" <sip:0612@evil.example>;tag=1',
            "<sip:+33100000000@trusted.example>",
            "0612",
        ),
        # RFC 4475 wsinv: an escaped quote and backslash inside the display name.
        ('"J Rosenberg \\\\\\"" <sip:jdrosen@example.com>;tag=1', 'J Rosenberg \\"', "jdrosen"),
        # Controls (NUL, BEL, DEL) never reach the record: PostgreSQL refuses NUL in text.
        ('"Bel\x00\x07\x7fla" <sip:a%00b@example.com>', "Bella", "ab"),
        # RFC 4475 esc01: %-escapes in the user part are decoded.
        ("<sip:sips%3Auser%40example.com@example.net>", None, "sips:user@example.com"),
        ('"a, b" <sip:1001:secret@example.com>', "a, b", "1001"),
    ],
)
def test_display_names_are_quoted_strings_and_users_are_decoded(header: str, display: str | None, user: str) -> None:
    found = parse_name_addr(header)
    assert (found.display, found.user) == (display, user)


def test_a_sip_uri_without_user_has_none_and_bad_quoting_is_refused() -> None:
    assert uri_user("sip:example.com") == ""
    assert uri_user("sips:1001@example.com;transport=tls") == "1001"
    with pytest.raises(SipParseError, match="unterminated quoted"):
        parse_name_addr('"never closed <sip:a@b>')
    with pytest.raises(SipParseError, match="followed by <uri>"):
        parse_name_addr('"name" sip:a@b')


def test_diversion_entries_keep_escaped_quotes_inside_display_names() -> None:
    text = (
        "INVITE sip:1001@bridge SIP/2.0\r\n"
        'Diversion: "say \\"hi, there\\"" <sip:+33111111111@pbx>;reason=unconditional, <sip:+33122222222@pbx>\r\n'
        "\r\n"
    )
    assert diverted_from(parse_request(text)) == ("+33122222222", "+33111111111")
