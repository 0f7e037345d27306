"""Tenant files: what they build, and the exact text of what is wrong with them."""

from __future__ import annotations

import hashlib
import ipaddress
import re
import wave
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from config.errors import ConfigError
from config.tenant_file import demo_tenant_path, load_tenant, load_tenant_text
from dialplan.pay_rules import Premiums, QualityRule
from dialplan.queues import Absence, Announcements, Fallback, FallbackKind, QueueConfig, ShiftRules, Strategy
from dialplan.schedule import DatedSpan, WeeklySpan
from dialplan.tenant import RecordingPolicy, Tenant

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "tenants"
DOCS = Path(__file__).resolve().parent.parent.parent / "docs" / "tenant-file.md"

# argon2.PasswordHasher().hash("alice-demo")
HASH = "$argon2id$v=19$m=65536,t=3,p=4$evHPEdnDksQN//VzfmSbzw$02ZtIsxcCKJSfkV9gp9xgvL+8mxQnRbJteVAiNE2Fw0"

PARIS = ZoneInfo("Europe/Paris")

# A small valid tenant; tests add to it or replace parts of it.
BASE = f"""\
[tenant]
id = "t"
name = "Test tenant"

[[clients]]
id = "acme"
name = "Acme"
timezone = "Europe/Paris"
greeting = {{ text = "Hello" }}

[[clients]]
id = "globex"
name = "Globex"
timezone = "Europe/London"
greeting = {{ text = "Hi" }}

[[lines]]
id = "acme-main"
client = "acme"
dids = ["1001"]
trunk_sources = ["127.0.0.1/32"]

[[agents]]
login = "alice"
name = "Alice"
password_hash = "{HASH}"
serves = [{{ client = "acme" }}]
"""


def problems(text: str, name: str = "tenants.toml", base_dir: Path | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_tenant_text(text, name, base_dir)
    assert str(caught.value) == "\n".join(caught.value.problems)
    return list(caught.value.problems)


def line_with(extra: str, line_id: str = "extra", dids: str = '["2001"]') -> str:
    return f"""
[[lines]]
id = "{line_id}"
client = "acme"
dids = {dids}
{extra}
"""


def rate_card(tiers: str, currency: str = "EUR", client: str = "acme") -> str:
    return f"""
[[rate_cards]]
client = "{client}"
currency = "{currency}"
tiers = {tiers}
"""


def write_wav(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(b"\0\0" * 8)


# --- valid files ------------------------------------------------------------------------------


def test_base_is_valid() -> None:
    tenant = load_tenant_text(BASE)
    assert tenant.id == "t"
    assert set(tenant.clients) == {"acme", "globex"}
    assert tenant.lines[0].service_window.is_always
    assert tenant.clients["acme"].recording is RecordingPolicy.OFF
    assert tenant.clients["acme"].mask_caller_number is False
    assert tenant.agents["alice"].serves[0].level == 1
    assert tenant.shifts == ()
    assert tenant.rate_cards == {}


def test_full_fixture_builds_every_part() -> None:
    tenant = load_tenant(FIXTURES / "full.toml")
    initech = tenant.clients["initech"]
    assert initech.greeting.text is None
    assert initech.greeting.wav == str(FIXTURES / "greetings" / "initech.wav")
    assert initech.hold_music == str(FIXTURES / "music" / "hold.wav")
    assert initech.knowledge_base_url == "http://kb.initech.example/"
    assert initech.recording is RecordingPolicy.ON_DEMAND
    assert initech.timezone == ZoneInfo("America/New_York")

    pbx, umbrella = tenant.lines
    assert pbx.dids == ("+15550100", "0100")
    assert pbx.trunk_sources == ()
    assert pbx.digest is not None
    assert pbx.digest.realm == "hotline"
    assert pbx.digest.ha1 == hashlib.md5(b"initech-pbx:hotline:s3cret").hexdigest()
    assert tenant.lines_by_digest_user["initech-pbx"] is pbx
    assert umbrella.digest is not None
    assert umbrella.digest.ha1 == "0123456789abcdef0123456789abcdef"
    assert umbrella.trunk_sources == (
        ipaddress.ip_network("192.0.2.0/24"),
        ipaddress.ip_network("2001:db8::/32"),
        ipaddress.ip_network("198.51.100.7/32"),
    )
    assert umbrella.trusts(ipaddress.ip_address("192.0.2.77"))

    calendar = umbrella.service_window.calendar
    assert calendar is not None
    assert calendar.timezone == ZoneInfo("Europe/Berlin")
    assert calendar.weekly == (
        WeeklySpan(0, time(22), 1, time(6)),
        WeeklySpan(1, time(22), 2, time(6)),
        WeeklySpan(2, time(22), 3, time(6)),
        WeeklySpan(3, time(22), 4, time(6)),
        WeeklySpan(5, time(10), 6, time(0)),
        WeeklySpan(4, time(18), 0, time(8)),
    )
    assert calendar.holidays == frozenset({date(2026, 12, 24), date(2026, 12, 31)})

    carol = tenant.agents["carol"]
    assert carol.level_for("initech") == 1
    assert carol.level_for("umbrella") == 3
    first, second = tenant.shifts
    assert first.agent_login == "carol"
    assert first.clients == frozenset({"umbrella"})
    assert first.calendar.timezone == ZoneInfo("Europe/Berlin")
    assert first.calendar.weekly == (WeeklySpan(0, time(9), 0, time(12)),)
    assert first.calendar.dated == (
        DatedSpan(datetime(2026, 11, 23, 7), datetime(2026, 11, 23, 13)),
        DatedSpan(datetime(2026, 11, 24, 7), datetime(2026, 11, 24, 13, 30)),
    )
    assert second.clients == frozenset()
    # 01:00-04:00 New York local on the spring-forward day is two real hours.
    occurrence = second.calendar.occurrence_at(datetime(2026, 3, 8, 7, 30, tzinfo=UTC))
    assert occurrence is not None
    assert occurrence.seconds == 2 * 3600

    assert tenant.supervisors["sue"].clients == frozenset({"initech"})
    assert tenant.client_admins["initech-admin"].client_id == "initech"
    assert set(tenant.admins) == {"root"}
    card = tenant.rate_cards["umbrella"]
    assert card.currency == "EUR"
    assert [(t.min_s, t.max_s, t.rate) for t in card.tiers] == [
        (0, 30, Decimal("0")),
        (30, None, Decimal("0.75")),
    ]


def test_documented_example_is_valid(tmp_path: Path) -> None:
    block = re.search(r"```toml\n(.*?)```", DOCS.read_text(), re.DOTALL)
    assert block is not None
    text = block[1].replace("$argon2id$v=19$m=65536,t=3,p=4$...$...", HASH)
    write_wav(tmp_path / "music" / "acme.wav")
    write_wav(tmp_path / "greetings" / "globex.wav")
    tenant = load_tenant_text(text, "example.toml", tmp_path)
    assert tenant.line_for_did("+33140000000") is not None
    assert tenant.clients["globex"].greeting.wav == str(tmp_path.resolve() / "greetings" / "globex.wav")
    assert tenant.forwarded_lines["+33140000099"].id == "acme-weekend"
    registered = next(line for line in tenant.lines if line.id == "acme-registered")
    assert registered.overflow is not None
    assert registered.overflow.registrar is not None
    assert registered.overflow.registrar.uri == "sip:198.51.100.8:5060"


def test_relative_wav_paths_default_to_the_current_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_wav(tmp_path / "hello.wav")
    monkeypatch.chdir(tmp_path)
    text = BASE.replace('greeting = { text = "Hello" }', 'greeting = { wav = "hello.wav" }')
    tenant = load_tenant_text(text)
    assert tenant.clients["acme"].greeting.wav == str(tmp_path.resolve() / "hello.wav")


def test_weekly_forms_map_to_spans() -> None:
    window = """
[lines.service_window]
kind = "calendar"
weekly = [
    { days = ["sun"], from = "20:00", to = "24:00" },
    { days = ["mon"], from = "22:00", to = "02:00" },
    { days = ["tue"], from = "08:00", to = "08:00" },
    { from = "fri 18:00", to = "mon 08:00" },
    { from = "sat 10:00", to = "sun 24:00" },
    { from = "wed 09:00", to = "wed 09:00" },
]
"""
    tenant = load_tenant_text(BASE + line_with('trunk_sources = ["127.0.0.1/32"]' + window))
    calendar = tenant.lines[1].service_window.calendar
    assert calendar is not None
    assert calendar.timezone == PARIS
    assert calendar.weekly == (
        WeeklySpan(6, time(20), 0, time(0)),
        WeeklySpan(0, time(22), 1, time(2)),
        WeeklySpan(1, time(8), 2, time(8)),
        WeeklySpan(4, time(18), 0, time(8)),
        WeeklySpan(5, time(10), 0, time(0)),
        WeeklySpan(2, time(9), 2, time(9)),
    )
    assert [span.length_days() for span in calendar.weekly] == [1, 1, 1, 3, 2, 7]
    assert calendar.holidays == frozenset()


ZONES = ["UTC", "Europe/Paris", "America/New_York", "America/Santiago", "Australia/Lord_Howe"]


@settings(max_examples=200, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    instant=st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2031, 1, 1), timezones=st.just(UTC)),
)
@example(zone="Europe/Paris", instant=datetime(2026, 3, 29, 1, 0, tzinfo=UTC))
@example(zone="Europe/Paris", instant=datetime(2026, 10, 25, 0, 59, 59, tzinfo=UTC))
@example(zone="America/Santiago", instant=datetime(2026, 9, 6, 4, 0, tzinfo=UTC))
@example(zone="America/Santiago", instant=datetime(2026, 4, 5, 3, 0, tzinfo=UTC))
def test_all_day_every_day_contains_every_instant(zone: str, instant: datetime) -> None:
    shift = f"""
[[shifts]]
agent = "alice"
timezone = "{zone}"
weekly = [{{ days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], from = "00:00", to = "24:00" }}]
"""
    tenant = load_tenant_text(BASE + shift)
    assert tenant.shifts[0].calendar.contains(instant)


# --- the demo tenant --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo() -> Tenant:
    return load_tenant(demo_tenant_path())


def test_demo_path_is_the_packaged_file() -> None:
    path = demo_tenant_path()
    assert path.name == "demo.toml"
    assert path.parent.name == "config"
    assert path.is_file()


def test_demo_loads(demo: Tenant) -> None:
    assert demo.id == "demo"
    assert set(demo.clients) == {"acme", "globex"}
    assert demo.clients["acme"].name == "Acme Furniture"
    assert demo.clients["acme"].timezone == PARIS
    assert demo.clients["acme"].knowledge_base_url == "https://kb.example.com/acme"
    assert demo.clients["acme"].greeting.text
    globex = demo.clients["globex"]
    assert globex.name == "Globex Insurance"
    assert globex.timezone == ZoneInfo("Europe/London")
    assert globex.mask_caller_number is True
    assert globex.recording is RecordingPolicy.ALWAYS
    assert globex.greeting.text
    assert set(demo.agents) == {"alice", "bob"}
    assert demo.agents["alice"].level_for("acme") == 1
    assert demo.agents["alice"].level_for("globex") == 2
    assert demo.agents["bob"].level_for("globex") == 1
    assert demo.agents["bob"].level_for("acme") == 2
    assert demo.supervisors["sam"].clients == frozenset({"acme", "globex"})
    assert demo.client_admins["acme-admin"].client_id == "acme"
    assert set(demo.admins) == {"admin"}
    assert demo.rate_cards["acme"].currency == "EUR"
    assert demo.rate_cards["globex"].currency == "GBP"
    assert all(len(card.tiers) == 3 for card in demo.rate_cards.values())


def test_demo_dids(demo: Tenant) -> None:
    acme, globex = demo.line_for_did("1001"), demo.line_for_did("1002")
    assert acme is not None
    assert (acme.id, acme.client_id) == ("acme-main", "acme")
    assert globex is not None
    assert (globex.id, globex.client_id) == ("globex-main", "globex")
    for line in demo.lines:
        assert line.trusts(ipaddress.ip_address("127.0.0.1"))
        assert line.trusts(ipaddress.ip_address("::1"))
        assert not line.trusts(ipaddress.ip_address("192.0.2.1"))
    assert acme.service_window.is_always
    assert globex.service_window.is_always


DEMO_PASSWORDS = {
    "alice": "alice-demo",
    "bob": "bob-demo",
    "sam": "sam-demo",
    "acme-admin": "acme-demo",
    "admin": "admin-demo",
}


def test_demo_passwords_match_the_documented_ones(demo: Tenant) -> None:
    import argon2

    hasher = argon2.PasswordHasher()
    hashes = {
        person.login: person.password_hash
        for people in (demo.agents, demo.supervisors, demo.client_admins, demo.admins)
        for person in people.values()
    }
    assert set(hashes) == set(DEMO_PASSWORDS)
    header = demo_tenant_path().read_text()
    for login, password in DEMO_PASSWORDS.items():
        assert hasher.verify(hashes[login], password)
        assert re.search(rf"^#\s+{re.escape(login)}\s+/ {re.escape(password)}\b", header, re.MULTILINE)


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)))
@example(datetime(2026, 3, 29, 1, 0, tzinfo=UTC))  # Paris and London spring forward
@example(datetime(2026, 3, 29, 0, 59, 59, 999999, tzinfo=UTC))
@example(datetime(2026, 10, 25, 1, 0, tzinfo=UTC))  # and fall back
@example(datetime(2026, 10, 25, 0, 30, tzinfo=UTC))
@example(datetime(2028, 2, 29, 23, 59, 59, tzinfo=UTC))
@example(datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC))
def test_demo_agents_are_always_on_shift(instant: datetime) -> None:
    tenant = load_tenant(demo_tenant_path())
    for login in ("alice", "bob"):
        shifts = [shift for shift in tenant.shifts if shift.agent_login == login]
        assert shifts
        assert any(shift.calendar.contains(instant) for shift in shifts), (login, instant)


def test_demo_office_line_keeps_business_hours(demo: Tenant) -> None:
    office = demo.line_for_did("1003")
    assert office is not None
    assert (office.id, office.client_id) == ("acme-office", "acme")
    window = office.service_window
    assert window.calendar is not None
    assert window.calendar.timezone == PARIS
    tuesday = datetime(2026, 11, 24, 10, 0, tzinfo=PARIS)
    assert tuesday.weekday() == 1
    assert window.is_open(tuesday)
    saturday = datetime(2026, 11, 28, 10, 0, tzinfo=PARIS)
    assert saturday.weekday() == 5
    assert not window.is_open(saturday)
    assert window.next_opening(saturday) == datetime(2026, 11, 30, 8, 0, tzinfo=PARIS)
    christmas = datetime(2026, 12, 25, 10, 0, tzinfo=PARIS)
    assert christmas.weekday() == 4
    assert not window.is_open(christmas)
    assert not window.is_open(datetime(2027, 1, 1, 10, 0, tzinfo=PARIS))
    assert window.is_open(datetime(2026, 12, 24, 17, 59, tzinfo=PARIS))
    assert not window.is_open(datetime(2026, 12, 24, 18, 0, tzinfo=PARIS))
    assert not window.is_open(datetime(2026, 11, 24, 7, 59, tzinfo=PARIS))


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2029, 12, 31), timezones=st.just(UTC)))
@example(datetime(2026, 3, 30, 6, 0, tzinfo=UTC))  # Monday 08:00 Paris, just after spring forward
@example(datetime(2026, 10, 26, 7, 0, tzinfo=UTC))  # Monday 08:00 Paris, just after fall back
def test_demo_office_line_is_open_exactly_in_paris_business_hours(instant: datetime) -> None:
    office = load_tenant(demo_tenant_path()).line_for_did("1003")
    assert office is not None
    local = instant.astimezone(PARIS)
    holidays = {date(2026, 12, 25), date(2027, 1, 1)}
    expected = local.weekday() < 5 and time(8) <= local.time() < time(18) and local.date() not in holidays
    assert office.service_window.is_open(instant) == expected


# --- reading files ----------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_tenant(tmp_path / "tenants.toml")
    assert caught.value.problems == ("tenants.toml: cannot read file: No such file or directory",)


def test_a_directory_is_not_a_file(tmp_path: Path) -> None:
    (tmp_path / "tenants.toml").mkdir()
    with pytest.raises(ConfigError) as caught:
        load_tenant(tmp_path / "tenants.toml")
    assert caught.value.problems == ("tenants.toml: cannot read file: Is a directory",)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "tenants.toml"
    path.write_bytes(b'[tenant]\nid = "caf\xe9"\n')
    with pytest.raises(ConfigError) as caught:
        load_tenant(path)
    assert caught.value.problems == ("tenants.toml: line 2, column 10: not UTF-8 text",)


def test_toml_syntax_error() -> None:
    text = '[tenant]\nid = "t"\nname = \n'
    assert problems(text) == ["tenants.toml: line 3, column 8: Invalid value"]


def test_toml_syntax_error_in_a_table_header() -> None:
    assert problems("[tenant]\nid = 1\n[[clients]\n") == [
        "tenants.toml: line 3, column 10: Expected ']]' at the end of an array declaration"
    ]


def test_toml_syntax_error_at_end_of_file() -> None:
    assert problems('[tenant]\nname = "unterminated') == ["tenants.toml: line 2, column 21: Unterminated string"]


def test_empty_file() -> None:
    assert problems("") == [
        "tenants.toml: tenant: missing; expected a [tenant] table with id and name",
        "tenants.toml: clients: missing; expected one or more [[clients]] tables",
        "tenants.toml: lines: missing; expected one or more [[lines]] tables",
    ]


def test_broken_fixture_reports_every_problem() -> None:
    with pytest.raises(ConfigError) as caught:
        load_tenant(FIXTURES / "tenants.toml")
    missing = FIXTURES / "greetings" / "missing.wav"
    assert caught.value.problems == (
        "tenants.toml: clients[1].timezone: unknown time zone 'Europe/Pariss'",
        f"tenants.toml: clients[1].greeting.wav: no such file: {missing}",
        "tenants.toml: lines[1].dids[0]: DID '1001' is already used by line 'acme-main'",
        "tenants.toml: lines[1].trunk_sources[0]: '10.0.0.1/8' has host bits set; did you mean '10.0.0.0/8'?",
        "tenants.toml: lines[2].client: unknown client 'acmee'",
        "tenants.toml: shifts[0].clients[0]: agent 'alice' does not serve client 'globex'",
        "tenants.toml: shifts[1].agent: unknown agent 'bob'",
        "tenants.toml: rate_cards[0].tiers[0].rate: expected a decimal string such as '0.50' or a whole "
        "number, got float 0.4 (floating-point money is inexact: quote it, '0.4')",
        "tenants.toml: rate_cards[0].tiers[1].min_s: gap after tiers[0]: it ends at 60 s, "
        "this tier starts at 90 s; expected min_s = 60",
    )


# --- values -----------------------------------------------------------------------------------


def test_unknown_time_zone() -> None:
    text = BASE.replace('timezone = "Europe/London"', 'timezone = "Europe/Pariss"')
    assert problems(text) == ["tenants.toml: clients[1].timezone: unknown time zone 'Europe/Pariss'"]


@pytest.mark.parametrize("zone", ["Europe", "", "../etc/passwd", "/etc/localtime", "UTC "])
def test_odd_time_zones(zone: str) -> None:
    text = BASE.replace('timezone = "Europe/London"', f'timezone = "{zone}"')
    assert problems(text) == [f"tenants.toml: clients[1].timezone: unknown time zone {zone!r}"]


def test_unknown_key_lists_the_expected_ones() -> None:
    text = BASE.replace('timezone = "Europe/Paris"', 'timezon = "Europe/Paris"')
    assert problems(text, "demo.toml") == [
        "demo.toml: clients[0].timezone: missing; expected an IANA time zone such as 'Europe/Paris'",
        "demo.toml: clients[0].timezon: unknown key; expected one of: agent_sees_supervisor, busy_delay_s, "
        "greeting, hold_music, id, knowledge_base_url, live_listening, mask_caller_number, max_concurrent_calls, "
        "max_no_answer, name, no_answer_delay_s, recording, recording_retention_days, recordings_for_client_admin, "
        "reject_delay_s, timezone, wrap_up_s",
    ]


def test_unknown_top_level_and_tenant_keys() -> None:
    text = BASE.replace('name = "Test tenant"', 'name = "Test tenant"\nowner = "me"') + '\n[[client]]\nid = "x"\n'
    assert problems(text) == [
        "tenants.toml: tenant.owner: unknown key; expected one of: id, name",
        "tenants.toml: client: unknown key; expected one of: admins, agents, client_admins, clients, lines, "
        "queues, rate_cards, shift_rules, shifts, supervisors, tenant",
    ]


def test_wrong_types() -> None:
    text = (
        BASE.replace('name = "Acme"', "name = 5")
        .replace('dids = ["1001"]', "dids = [1001]")
        .replace('greeting = { text = "Hi" }', 'greeting = "Hi"\nmask_caller_number = "yes"')
        .replace('serves = [{ client = "acme" }]', 'serves = [{ client = "acme", level = true }]')
    )
    assert problems(text) == [
        "tenants.toml: clients[0].name: expected a string, got integer 5",
        'tenants.toml: clients[1].greeting: expected a table such as { text = "Thank you for calling." } '
        "or { wav = \"greetings/acme.wav\" }, got 'Hi'",
        "tenants.toml: clients[1].mask_caller_number: expected true or false, got 'yes'",
        "tenants.toml: lines[0].dids[0]: expected a DID as a string of digits such as '1001', "
        "optionally after a '+', got integer 1001",
        "tenants.toml: agents[0].serves[0].level: expected a whole number, 1 or more, got boolean true",
    ]


def test_bad_strings() -> None:
    text = (
        BASE.replace('id = "t"', 'id = "Test"')
        .replace('name = "Acme"', 'name = "  "')
        .replace('greeting = { text = "Hello" }', 'greeting = { text = "Hello" }\nrecording = "sometimes"')
        .replace('id = "globex"', 'id = "globex"\nknowledge_base_url = "ftp://kb.example.com"')
        .replace('dids = ["1001"]', 'dids = ["1001", "+33 1 40", "1001"]')
    )
    assert problems(text) == [
        "tenants.toml: tenant.id: expected an id of 1-32 characters a-z, 0-9, '_' or '-', starting with a "
        "letter or digit, such as 'acme', got 'Test'",
        "tenants.toml: clients[0].name: expected a non-empty string, got '  '",
        "tenants.toml: clients[0].recording: expected one of: off, always, on_demand, got 'sometimes'",
        "tenants.toml: clients[1].knowledge_base_url: expected an http(s) URL such as "
        "'https://kb.example.com/acme', got 'ftp://kb.example.com'",
        "tenants.toml: lines[0].dids[1]: expected a DID as a string of digits such as '1001', "
        "optionally after a '+', got '+33 1 40'",
        "tenants.toml: lines[0].dids[2]: '1001' is listed twice",
    ]


def test_missing_required_keys() -> None:
    text = """
[tenant]
id = "t"

[[clients]]
id = "acme"

[[lines]]
id = "l"
client = "acme"
"""
    assert problems(text) == [
        "tenants.toml: tenant.name: missing; expected a string",
        "tenants.toml: clients[0].name: missing; expected a string",
        "tenants.toml: clients[0].timezone: missing; expected an IANA time zone such as 'Europe/Paris'",
        "tenants.toml: clients[0].greeting: missing; expected a table such as "
        '{ text = "Thank you for calling." } or { wav = "greetings/acme.wav" }',
        "tenants.toml: lines[0].dids: missing; expected a non-empty list of DIDs such as ['1001']",
        "tenants.toml: lines[0]: expected trunk_sources and/or digest: without either no call can reach this line",
    ]


def test_sections_must_be_arrays_of_tables() -> None:
    text = BASE.replace("[[agents]]", "[agents]")
    assert problems(text) == ["tenants.toml: agents: expected [[agents]] tables, got a table"]
    assert problems("admins = [1]\n" + BASE) == ["tenants.toml: admins[0]: expected a table, got integer 1"]
    assert problems(BASE.replace('dids = ["1001"]', "dids = []")) == [
        "tenants.toml: lines[0].dids: expected a non-empty list of DIDs such as ['1001'], got an empty array"
    ]


# --- greetings and WAV files ------------------------------------------------------------------


def test_greeting_wav_that_does_not_exist(tmp_path: Path) -> None:
    text = BASE.replace('greeting = { text = "Hello" }', 'greeting = { wav = "greetings/acme.wav" }')
    assert problems(text, base_dir=tmp_path) == [
        f"tenants.toml: clients[0].greeting.wav: no such file: {tmp_path.resolve() / 'greetings' / 'acme.wav'}"
    ]


def test_greeting_wav_that_is_not_a_wav() -> None:
    text = BASE.replace('greeting = { text = "Hello" }', 'greeting = { wav = "greetings/not-a-wav.wav" }')
    path = FIXTURES / "greetings" / "not-a-wav.wav"
    assert problems(text, base_dir=FIXTURES) == [
        f"tenants.toml: clients[0].greeting.wav: not a WAV file (no RIFF/WAVE header): {path}"
    ]


def test_hold_music_that_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "music").mkdir()
    text = BASE.replace('greeting = { text = "Hello" }', 'greeting = { text = "Hello" }\nhold_music = "music"')
    assert problems(text, base_dir=tmp_path) == [
        f"tenants.toml: clients[0].hold_music: cannot read {tmp_path.resolve() / 'music'}: Is a directory"
    ]


def test_greeting_needs_exactly_one_of_text_or_wav() -> None:
    both = BASE.replace('greeting = { text = "Hello" }', 'greeting = { text = "Hello", wav = "greetings/initech.wav" }')
    neither = BASE.replace('greeting = { text = "Hello" }', 'greeting = { txt = "Hello" }')
    assert problems(both, base_dir=FIXTURES) == [
        "tenants.toml: clients[0].greeting: expected exactly one of text or wav"
    ]
    assert problems(neither) == [
        "tenants.toml: clients[0].greeting: expected exactly one of text or wav",
        "tenants.toml: clients[0].greeting.txt: unknown key; expected one of: text, wav",
    ]


# --- lines ------------------------------------------------------------------------------------


def test_duplicate_ids() -> None:
    text = BASE + (
        '\n[[clients]]\nid = "acme"\nname = "Acme again"\ntimezone = "UTC"\ngreeting = { text = "x" }\n'
        + line_with('trunk_sources = ["127.0.0.1/32"]', line_id="acme-main")
    )
    assert problems(text) == [
        "tenants.toml: clients[2].id: id 'acme' is already used by clients[0]",
        "tenants.toml: lines[1].id: id 'acme-main' is already used by lines[0]",
    ]


def test_the_same_did_on_two_lines() -> None:
    text = BASE + line_with('trunk_sources = ["127.0.0.1/32"]', dids='["2001", "1001"]')
    assert problems(text) == ["tenants.toml: lines[1].dids[1]: DID '1001' is already used by line 'acme-main'"]


def test_line_for_an_unknown_client() -> None:
    text = BASE.replace('client = "acme"\ndids', 'client = "acmee"\ndids')
    assert problems(text) == ["tenants.toml: lines[0].client: unknown client 'acmee'"]


def test_a_bad_client_id_is_not_reported_again_where_it_is_used() -> None:
    text = BASE.replace('id = "acme"', 'id = "Acme"').replace('client = "acme"', 'client = "Acme"')
    assert problems(text) == [
        "tenants.toml: clients[0].id: expected an id of 1-32 characters a-z, 0-9, '_' or '-', starting with "
        "a letter or digit, such as 'acme', got 'Acme'",
    ]


def test_trunk_sources() -> None:
    text = BASE.replace(
        'trunk_sources = ["127.0.0.1/32"]',
        'trunk_sources = ["10.0.0.1/8", "2001:db8::1/32", "example.com", "10.0.0.0/33", "::1", "::1/128"]',
    )
    assert problems(text) == [
        "tenants.toml: lines[0].trunk_sources[0]: '10.0.0.1/8' has host bits set; did you mean '10.0.0.0/8'?",
        "tenants.toml: lines[0].trunk_sources[1]: '2001:db8::1/32' has host bits set; did you mean '2001:db8::/32'?",
        "tenants.toml: lines[0].trunk_sources[2]: expected an IP address or network such as '192.0.2.0/24', "
        "got 'example.com'",
        "tenants.toml: lines[0].trunk_sources[3]: expected an IP address or network such as '192.0.2.0/24', "
        "got '10.0.0.0/33'",
        "tenants.toml: lines[0].trunk_sources[5]: '::1/128' is listed twice",
    ]


def test_a_line_needs_trunk_sources_or_digest() -> None:
    text = BASE.replace('trunk_sources = ["127.0.0.1/32"]', "trunk_sources = []")
    assert problems(text) == [
        "tenants.toml: lines[0]: expected trunk_sources and/or digest: without either no call can reach this line"
    ]


def test_digest_problems() -> None:
    text = (
        BASE
        + line_with('digest = { username = "pbx", password = "pw1" }', line_id="a", dids='["2001"]')
        + line_with('digest = { username = "pbx", realm = "other", password = "pw2" }', line_id="b", dids='["2002"]')
        + line_with('digest = { username = "pbx3", password = "pw3", ha1 = "00" }', line_id="c", dids='["2003"]')
        + line_with('digest = { username = "pbx4" }', line_id="d", dids='["2004"]')
        + line_with('digest = { username = "pb:x", ha1 = "secret-ha1" }', line_id="e", dids='["2005"]')
    )
    assert problems(text) == [
        "tenants.toml: lines[2].digest.username: digest user 'pbx' is already used by line 'a'",
        "tenants.toml: lines[2].digest.realm: expected 'hotline', the realm of line 'a': a challenge carries "
        "one realm for the whole tenant, got 'other'",
        "tenants.toml: lines[3].digest.ha1: expected 32 hexadecimal digits: MD5(username:realm:password), "
        "got a string (not shown)",
        "tenants.toml: lines[3].digest: expected exactly one of password or ha1",
        "tenants.toml: lines[4].digest: expected exactly one of password or ha1",
        "tenants.toml: lines[5].digest.username: expected a non-empty string without ':' or '\"', got 'pb:x'",
        "tenants.toml: lines[5].digest.ha1: expected 32 hexadecimal digits: MD5(username:realm:password), "
        "got a string (not shown)",
    ]


def test_digest_ha1_from_password_with_custom_realm() -> None:
    text = BASE.replace(
        'trunk_sources = ["127.0.0.1/32"]',
        'digest = { username = "acme-pbx", realm = "acme.example", password = "pw" }',
    )
    digest = load_tenant_text(text).lines[0].digest
    assert digest is not None
    assert digest.realm == "acme.example"
    assert digest.ha1 == hashlib.md5(b"acme-pbx:acme.example:pw").hexdigest()


# --- service windows --------------------------------------------------------------------------


def test_service_window_problems() -> None:
    text = (
        BASE
        + line_with(
            'trunk_sources = ["127.0.0.1/32"]\nservice_window = { kind = "always", weekly = [] }',
            line_id="a",
            dids='["2001"]',
        )
        + line_with(
            'trunk_sources = ["127.0.0.1/32"]\nservice_window = { kind = "sometimes" }',
            line_id="b",
            dids='["2002"]',
        )
        + line_with(
            'trunk_sources = ["127.0.0.1/32"]\nservice_window = { kind = "calendar" }',
            line_id="c",
            dids='["2003"]',
        )
        + line_with(
            'trunk_sources = ["127.0.0.1/32"]\n'
            'service_window = { kind = "calendar", holidays = ["2026-02-30", "25/12/2026"], weekly = [\n'
            '  { days = ["Mon", "mon", "mon"], from = "8:00", to = "24:01" },\n'
            '  { from = "18:00", to = "mon 24:00", day = "fri" },\n'
            '  { days = ["tue"], from = "fri 08:00", to = "24:00" },\n'
            '  { from = "fri 24:00", to = "sat 07:60" },\n'
            "] }",
            line_id="d",
            dids='["2004"]',
        )
    )
    assert problems(text) == [
        'tenants.toml: lines[1].service_window.weekly: only allowed with kind = "calendar"',
        "tenants.toml: lines[2].service_window.kind: expected always or calendar, got 'sometimes'",
        "tenants.toml: lines[3].service_window.weekly: missing; expected a list of tables such as "
        '[{ days = ["mon", "fri"], from = "08:00", to = "18:00" }] or [{ from = "fri 18:00", to = "mon 08:00" }]',
        "tenants.toml: lines[4].service_window.weekly[0].days[0]: expected a day: mon, tue, wed, thu, fri, sat "
        "or sun, got 'Mon'",
        "tenants.toml: lines[4].service_window.weekly[0].days[2]: 'mon' is listed twice",
        "tenants.toml: lines[4].service_window.weekly[0].from: expected a time such as '08:00' "
        "(with days, from and to are plain times), got '8:00'",
        "tenants.toml: lines[4].service_window.weekly[0].to: expected a time such as '18:00', or '24:00' for "
        "the end of the day, got '24:01'",
        "tenants.toml: lines[4].service_window.weekly[1].from: expected a day and time such as 'fri 18:00' "
        "(or give days and plain times), got '18:00'",
        "tenants.toml: lines[4].service_window.weekly[1].day: unknown key; expected one of: days, from, to",
        "tenants.toml: lines[4].service_window.weekly[2].from: expected a time such as '08:00' "
        "(with days, from and to are plain times), got 'fri 08:00'",
        "tenants.toml: lines[4].service_window.weekly[3].from: expected a day and time such as 'fri 18:00' "
        "(or give days and plain times), got 'fri 24:00'",
        "tenants.toml: lines[4].service_window.weekly[3].to: expected a day and time such as 'mon 08:00' "
        "(or give days and plain times), got 'sat 07:60'",
        "tenants.toml: lines[4].service_window.holidays[0]: expected a date such as '2026-12-25', got '2026-02-30'",
        "tenants.toml: lines[4].service_window.holidays[1]: expected a date such as '2026-12-25', got '25/12/2026'",
    ]


# --- people and shifts ------------------------------------------------------------------------


def test_logins_share_one_namespace() -> None:
    text = (
        BASE
        + f"""
[[supervisors]]
login = "alice"
name = "Alice again"
password_hash = "{HASH}"
clients = ["acme"]

[[client_admins]]
login = "boss"
name = "Boss"
password_hash = "{HASH}"
client = "acme"

[[admins]]
login = "boss"
name = "Boss again"
password_hash = "{HASH}"
"""
    )
    assert problems(text) == [
        "tenants.toml: supervisors[0].login: login 'alice' is already used by agents[0]",
        "tenants.toml: admins[0].login: login 'boss' is already used by client_admins[0]",
    ]


def test_people_referring_to_unknown_clients() -> None:
    text = (
        BASE.replace(
            'serves = [{ client = "acme" }]', 'serves = [{ client = "acme" }, { client = "globx", level = 0 }]'
        )
        + f"""
[[supervisors]]
login = "sam"
name = "Sam"
password_hash = "{HASH}"
clients = ["acme", "initech"]

[[client_admins]]
login = "boss"
name = "Boss"
password_hash = "{HASH}"
client = "umbrella"
"""
    )
    assert problems(text) == [
        "tenants.toml: agents[0].serves[1].client: unknown client 'globx'",
        "tenants.toml: agents[0].serves[1].level: expected a whole number, 1 or more, got integer 0",
        "tenants.toml: supervisors[0].clients[1]: unknown client 'initech'",
        "tenants.toml: client_admins[0].client: unknown client 'umbrella'",
    ]


def test_agent_serving_a_client_twice() -> None:
    text = BASE.replace(
        'serves = [{ client = "acme" }]', 'serves = [{ client = "acme" }, { client = "acme", level = 2 }]'
    )
    assert problems(text) == [
        "tenants.toml: agents[0].serves[1].client: client 'acme' is already listed by agents[0].serves[0]"
    ]


def test_password_hashes_are_checked_and_never_shown() -> None:
    text = BASE.replace(f'password_hash = "{HASH}"', 'password_hash = "hunter2"') + (
        '\n[[admins]]\nlogin = "root"\nname = "Root"\npassword_hash = 123456\n'
    )
    found = problems(text)
    expected = (
        "expected an argon2 hash such as '$argon2id$v=19$m=65536,t=3,p=4$...' "
        "(argon2.PasswordHasher().hash(password) makes one)"
    )
    assert found == [
        f"tenants.toml: agents[0].password_hash: {expected}, got a string (not shown)",
        f"tenants.toml: admins[0].password_hash: {expected}, got a value of type integer (not shown)",
    ]
    assert "hunter2" not in "\n".join(found)
    assert "123456" not in "\n".join(found)


def test_truncated_password_hash() -> None:
    text = BASE.replace(f'password_hash = "{HASH}"', f'password_hash = "{HASH[:40]}"')
    assert problems(text) == [
        "tenants.toml: agents[0].password_hash: expected an argon2 hash such as "
        "'$argon2id$v=19$m=65536,t=3,p=4$...' (argon2.PasswordHasher().hash(password) makes one), "
        "got a string (not shown)"
    ]


def test_shift_problems() -> None:
    text = (
        BASE
        + """
[[shifts]]
agent = "bob"
timezone = "Europe/Paris"
weekly = [{ days = ["mon"], from = "08:00", to = "12:00" }]

[[shifts]]
agent = "alice"
timezone = "Mars/Olympus"
clients = ["globex", "initech"]
weekly = []

[[shifts]]
agent = "alice"
timezone = "UTC"

[[shifts]]
agent = "alice"
timezone = "UTC"
clients = []
dated = [
    { start = "2026-11-23T13:00", end = "2026-11-23T07:00" },
    { start = "2026-11-23T07:00+01:00", end = 2026-11-23T13:00:00Z },
    { start = "2026-11-23", end = "2026-11-23 13:00" },
    { start = 2026-11-23T07:00:00, end = 2026-11-23T07:00:00 },
]
"""
    )
    dt = "expected a local date-time such as '2026-11-23T07:00', without offset (it is read in the shift's timezone)"
    assert problems(text) == [
        "tenants.toml: shifts[0].agent: unknown agent 'bob'",
        "tenants.toml: shifts[1].timezone: unknown time zone 'Mars/Olympus'",
        "tenants.toml: shifts[1].clients[0]: agent 'alice' does not serve client 'globex'",
        "tenants.toml: shifts[1].clients[1]: unknown client 'initech'",
        "tenants.toml: shifts[1].weekly: expected a list of tables such as "
        '[{ days = ["mon", "fri"], from = "08:00", to = "18:00" }] or [{ from = "fri 18:00", to = "mon 08:00" }]'
        ", got an empty array",
        "tenants.toml: shifts[2]: missing; expected weekly and/or dated slots",
        "tenants.toml: shifts[3].clients: expected a non-empty list of client ids such as ['acme'] "
        "(leave it out for all), got an empty array",
        "tenants.toml: shifts[3].dated[0].end: expected a date-time after start (2026-11-23T13:00), "
        "got 2026-11-23T07:00",
        f"tenants.toml: shifts[3].dated[1].start: {dt}, got '2026-11-23T07:00+01:00'",
        f"tenants.toml: shifts[3].dated[1].end: {dt}, got date-time 2026-11-23T13:00:00+00:00",
        f"tenants.toml: shifts[3].dated[2].start: {dt}, got '2026-11-23'",
        f"tenants.toml: shifts[3].dated[2].end: {dt}, got '2026-11-23 13:00'",
        "tenants.toml: shifts[3].dated[3].end: expected a date-time after start (2026-11-23T07:00), "
        "got 2026-11-23T07:00",
    ]


# --- rate cards -------------------------------------------------------------------------------


def test_valid_rate_card() -> None:
    tiers = (
        '[{ min_s = 0, max_s = 60, rate = "0.40" }, { min_s = 60, max_s = 300, rate = 1 }, { min_s = 300, rate = "2" }]'
    )
    card = load_tenant_text(BASE + rate_card(tiers)).rate_cards["acme"]
    assert card.client_id == "acme"
    assert [t.rate for t in card.tiers] == [Decimal("0.40"), Decimal(1), Decimal(2)]
    assert card.tier_for(59.9) == card.tiers[0]
    assert card.tier_for(60) == card.tiers[1]
    assert card.tier_for(86_400) == card.tiers[2]
    closed = load_tenant_text(BASE + rate_card('[{ min_s = 0, max_s = 60, rate = "1" }]')).rate_cards["acme"]
    assert closed.tier_for(60) is None


def test_overlapping_tiers() -> None:
    tiers = '[{ min_s = 0, max_s = 60, rate = "0.40" }, { min_s = 30, rate = "1.10" }]'
    assert problems(BASE + rate_card(tiers)) == [
        "tenants.toml: rate_cards[0].tiers[1].min_s: overlaps tiers[0]: it ends at 60 s, this tier starts at "
        "30 s; expected min_s = 60"
    ]


def test_gapped_tiers() -> None:
    tiers = '[{ min_s = 0, max_s = 60, rate = "0.40" }, { min_s = 90, max_s = 120, rate = "1.10" }, { min_s = 120, rate = "2" }]'
    assert problems(BASE + rate_card(tiers)) == [
        "tenants.toml: rate_cards[0].tiers[1].min_s: gap after tiers[0]: it ends at 60 s, this tier starts at "
        "90 s; expected min_s = 60"
    ]


def test_tier_bounds() -> None:
    tiers = (
        '[{ min_s = 5, max_s = 60, rate = "0.40" }, { min_s = 60, rate = "1" }, '
        '{ min_s = 90, max_s = 90, rate = "2" }, { max_s = 100, rate = "3" }]'
    )
    assert problems(BASE + rate_card(tiers)) == [
        "tenants.toml: rate_cards[0].tiers[0].min_s: expected 0: the first tier starts at 0 s, got 5",
        "tenants.toml: rate_cards[0].tiers[1].max_s: missing; only the last tier may be open-ended",
        "tenants.toml: rate_cards[0].tiers[2].max_s: expected more than min_s (90), got 90",
        "tenants.toml: rate_cards[0].tiers[3].min_s: missing; expected a whole number of seconds, 0 or more",
    ]


def test_float_rate() -> None:
    tiers = '[{ min_s = 0, max_s = 60, rate = "0.40" }, { min_s = 60, rate = 1.1 }]'
    assert problems(BASE + rate_card(tiers)) == [
        "tenants.toml: rate_cards[0].tiers[1].rate: expected a decimal string such as '0.50' or a whole number, "
        "got float 1.1 (floating-point money is inexact: quote it, '1.1')"
    ]


def test_bad_rates_and_currency() -> None:
    tiers = (
        '[{ min_s = 0, max_s = 10, rate = "-0.40" }, { min_s = 10, max_s = 20, rate = "1e3" }, '
        '{ min_s = 20, max_s = 30, rate = -1 }, { min_s = 30, max_s = 40, rate = "NaN" }, '
        '{ min_s = 40, rate = ".5", min = 0 }]'
    )
    expected = "expected a decimal string such as '0.50' or a whole number"
    assert problems(BASE + rate_card(tiers, currency="eur")) == [
        "tenants.toml: rate_cards[0].currency: expected a 3-letter ISO 4217 code in capitals such as 'EUR', got 'eur'",
        f"tenants.toml: rate_cards[0].tiers[0].rate: {expected}, got '-0.40'",
        f"tenants.toml: rate_cards[0].tiers[1].rate: {expected}, got '1e3'",
        f"tenants.toml: rate_cards[0].tiers[2].rate: {expected}, got integer -1",
        f"tenants.toml: rate_cards[0].tiers[3].rate: {expected}, got 'NaN'",
        f"tenants.toml: rate_cards[0].tiers[4].rate: {expected}, got '.5'",
        "tenants.toml: rate_cards[0].tiers[4].min: unknown key; expected one of: max_s, min_s, rate",
    ]


def test_rate_card_references() -> None:
    tiers = '[{ min_s = 0, rate = "1" }]'
    text = BASE + rate_card(tiers) + rate_card(tiers, currency="GBP") + rate_card(tiers, client="initech")
    assert problems(text) == [
        "tenants.toml: rate_cards[1].client: client 'acme' already has a rate card: rate_cards[0]",
        "tenants.toml: rate_cards[2].client: unknown client 'initech'",
    ]
    assert problems(BASE + rate_card("[]")) == [
        "tenants.toml: rate_cards[0].tiers: expected a non-empty list of tables such as "
        '[{ min_s = 0, max_s = 60, rate = "0.40" }, { min_s = 60, rate = "1.10" }], got an empty array'
    ]


def test_several_problems_are_reported_together() -> None:
    text = BASE.replace('timezone = "Europe/London"', 'timezone = "Europe/Pariss"').replace(
        'client = "acme"\ndids', 'client = "acmee"\ndids'
    ).replace('serves = [{ client = "acme" }]', 'serves = [{ client = "acme" }]\nemail = "a@example.com"') + rate_card(
        '[{ min_s = 0, max_s = 60, rate = 0.5 }, { min_s = 50, rate = "1" }]', currency="EURO"
    )
    assert problems(text, "tenants.toml") == [
        "tenants.toml: clients[1].timezone: unknown time zone 'Europe/Pariss'",
        "tenants.toml: lines[0].client: unknown client 'acmee'",
        "tenants.toml: agents[0].email: unknown key; expected one of: login, name, password_hash, serves",
        "tenants.toml: rate_cards[0].currency: expected a 3-letter ISO 4217 code in capitals such as 'EUR', got 'EURO'",
        "tenants.toml: rate_cards[0].tiers[0].rate: expected a decimal string such as '0.50' or a whole number, "
        "got float 0.5 (floating-point money is inexact: quote it, '0.5')",
        "tenants.toml: rate_cards[0].tiers[1].min_s: overlaps tiers[0]: it ends at 60 s, this tier starts at "
        "50 s; expected min_s = 60",
    ]


def test_problems_use_the_given_file_name(tmp_path: Path) -> None:
    path = tmp_path / "acme-tenant.toml"
    path.write_text(BASE.replace('timezone = "Europe/London"', 'timezone = "Nowhere"'))
    with pytest.raises(ConfigError) as caught:
        load_tenant(path)
    assert caught.value.problems == ("acme-tenant.toml: clients[1].timezone: unknown time zone 'Nowhere'",)


def test_shift_calendar_respects_dst_in_its_zone() -> None:
    text = (
        BASE
        + """
[[shifts]]
agent = "alice"
timezone = "Europe/Paris"
weekly = [{ days = ["sun"], from = "01:00", to = "04:00" }]
"""
    )
    calendar = load_tenant_text(text).shifts[0].calendar
    # 2026-03-29, spring forward in Paris: 01:00-04:00 local is two real hours.
    occurrence = calendar.occurrence_at(datetime(2026, 3, 29, 0, 30, tzinfo=UTC))
    assert occurrence is not None
    assert occurrence.end - occurrence.start == timedelta(hours=2)


def test_calendar_window_of_dated_openings_only() -> None:
    window_toml = (
        'trunk_sources = ["127.0.0.1/32"]\n'
        'service_window = { kind = "calendar", dated = [{ start = "2026-12-24T09:00", end = "2026-12-24T12:00" }] }'
    )
    tenant = load_tenant_text(BASE + line_with(window_toml))
    window = tenant.lines[1].service_window
    assert window.is_open(datetime(2026, 12, 24, 8, 30, tzinfo=UTC))  # 09:30 in Paris
    assert not window.is_open(datetime(2026, 12, 24, 11, 30, tzinfo=UTC))
    assert window.next_opening(datetime(2026, 12, 1, tzinfo=UTC)) == datetime(2026, 12, 24, 8, tzinfo=UTC)


def test_dated_needs_a_calendar() -> None:
    window_toml = (
        'trunk_sources = ["127.0.0.1/32"]\n'
        'service_window = { kind = "always", dated = [{ start = "2026-12-24T09:00", end = "2026-12-24T12:00" }] }'
    )
    assert problems(BASE + line_with(window_toml)) == [
        'tenants.toml: lines[1].service_window.dated: only allowed with kind = "calendar"'
    ]


# ---- queues ---------------------------------------------------------------------------------

QUEUES = """
[[queues]]
id = "acme-vip"
client = "acme"
strategy = "fair_earnings"
weight = 2.5
max_length = 10
max_wait_s = 300
fallback = { kind = "queue", target = "acme-overflow" }
join_unless = ["off_shift", "unavailable"]
leave_when = ["unavailable"]
tier_delay_s = 20
ring_timeout_s = 12
announcements = { position_every_s = 45, periodic_message = "Thanks for waiting", periodic_every_s = 60, agent_whisper = "Acme VIP" }
agent_order = ["alice"]

[[queues]]
id = "acme-overflow"
client = "acme"
fallback = { kind = "hangup", message = "Please call again later." }
"""


def test_queues_are_read_with_every_setting() -> None:
    text = BASE.replace('trunk_sources = ["127.0.0.1/32"]', 'trunk_sources = ["127.0.0.1/32"]\nqueue = "acme-vip"')
    tenant = load_tenant_text(text + QUEUES)
    vip = tenant.queues["acme-vip"]
    assert (vip.client_id, vip.strategy, vip.weight, vip.max_length, vip.max_wait_s) == (
        "acme",
        Strategy.FAIR_EARNINGS,
        2.5,
        10,
        300.0,
    )
    assert vip.fallback == Fallback(FallbackKind.QUEUE, "acme-overflow")
    assert vip.join_unless == {Absence.OFF_SHIFT, Absence.UNAVAILABLE}
    assert vip.leave_when == {Absence.UNAVAILABLE}
    assert (vip.tier_delay_s, vip.ring_timeout_s, vip.agent_order) == (20.0, 12.0, ("alice",))
    assert vip.announcements == Announcements(True, 45.0, "Thanks for waiting", 60.0, "Acme VIP")
    assert tenant.queues["acme-overflow"].fallback == Fallback(FallbackKind.HANGUP, None, "Please call again later.")
    assert tenant.queue_for_line(tenant.lines[0]).id == "acme-vip"
    # globex has no queue of its own: it gets a default one named after it.
    assert sorted(tenant.all_queues) == ["acme-overflow", "acme-vip", "globex"]
    assert tenant.all_queues["globex"] == QueueConfig("globex", "globex")


def test_a_line_without_a_queue_waits_in_its_client_s_queue() -> None:
    tenant = load_tenant_text(BASE)
    assert tenant.queue_for_line(tenant.lines[0]) == QueueConfig("acme", "acme")


def test_client_agent_timers() -> None:
    text = BASE.replace(
        'greeting = {{ text = "Hello" }}'.replace("{{", "{").replace("}}", "}"),
        'greeting = { text = "Hello" }\nmax_no_answer = 0\nreject_delay_s = 5\nno_answer_delay_s = 30\nbusy_delay_s = 2',
    )
    timers = load_tenant_text(text).clients["acme"].timers
    assert (timers.max_no_answer, timers.reject_delay_s, timers.no_answer_delay_s, timers.busy_delay_s) == (
        0,
        5.0,
        30.0,
        2.0,
    )
    assert timers.wrap_up_s == 10.0


def test_queue_problems_are_reported_exactly() -> None:
    bad = """
[[queues]]
id = "q1"
client = "acmee"
strategy = "longest"
weight = 0
fallback = { kind = "queue", target = "nowhere" }
join_unless = ["asleep"]
ring_timeout_s = 0
announcements = { periodic_message = "hi", position_every_s = 0 }
agent_order = ["zed"]

[[queues]]
id = "q2"
client = "globex"
fallback = { kind = "number" }

[[queues]]
id = "q3"
client = "acme"
fallback = { kind = "queue", target = "q3" }
"""
    text = BASE.replace('trunk_sources = ["127.0.0.1/32"]', 'trunk_sources = ["127.0.0.1/32"]\nqueue = "q2"')
    assert problems(text + bad) == [
        "tenants.toml: queues[0].client: unknown client 'acmee'",
        "tenants.toml: queues[0].strategy: expected one of: longest_idle, fewest_calls, least_talk_time, "
        "round_robin, ring_all, top_down, random, fair_earnings, got 'longest'",
        "tenants.toml: queues[0].weight: expected a number above 0 such as 1 or 2.5, got integer 0",
        "tenants.toml: queues[0].join_unless[0]: expected one of: off_shift, unavailable, paused, wrap_up, "
        "in_use, got 'asleep'",
        "tenants.toml: queues[0].ring_timeout_s: expected 1 or more seconds: an agent needs time to answer",
        "tenants.toml: queues[0].announcements: periodic_message and periodic_every_s go together",
        "tenants.toml: queues[0].announcements.position_every_s: expected 1 or more seconds; leave it out for never",
        "tenants.toml: queues[0].agent_order[0]: unknown agent 'zed'",
        "tenants.toml: queues[1].fallback.target: missing; a number fallback needs a target",
        "tenants.toml: queues[2].fallback.target: a queue can't fall back to itself",
        "tenants.toml: queues[0].fallback.target: unknown queue 'nowhere'",
        "tenants.toml: lines[0].queue: queue 'q2' is client 'globex''s, not 'acme''s",
    ]


def test_shift_rules_are_optional_and_checked() -> None:
    assert load_tenant_text(BASE).shift_rules == ShiftRules()
    tenant = load_tenant_text(BASE + "\n[shift_rules]\nlast_offer_before_end_s = 30\nno_show_after_s = 300\n")
    assert tenant.shift_rules == ShiftRules(last_offer_before_end_s=30.0, no_show_after_s=300.0)
    assert problems(BASE + "\n[shift_rules]\nlast_offer_before_end = 30\nno_show_after_s = -1\n") == [
        "tenants.toml: shift_rules.no_show_after_s: expected a whole number of seconds, 0 or more, got integer -1",
        "tenants.toml: shift_rules.last_offer_before_end: unknown key; expected one of: last_offer_before_end_s, "
        "no_show_after_s",
    ]


def test_overflow_problems_are_reported_exactly() -> None:
    bad = """
[[lines]]
id = "fwd"
client = "acme"
dids = ["5001"]
trunk_sources = ["127.0.0.2/32"]
overflow = { takeover = "forwarded", end_policy = "later" }

[[lines]]
id = "reg"
client = "acme"
dids = ["5002"]
trunk_sources = ["127.0.0.3/32"]
overflow = { takeover = "register", registrar = { host = "127.0.0.3", port = 70000, username = "x", password = "p", expires_s = 30 } }
"""
    assert problems(BASE + bad) == [
        "tenants.toml: lines[1].overflow.end_policy: expected one of: serve, return, got 'later'",
        "tenants.toml: lines[1].overflow: forwarded calls are recognised by the client's own numbers: "
        "list them in numbers",
        "tenants.toml: lines[2].overflow.takeover: expected one of: registration, forwarded, got 'register'",
        "tenants.toml: lines[2].overflow.registrar.port: expected a port number, 1-65535, got 70000",
        "tenants.toml: lines[2].overflow.registrar.expires_s: expected 60 seconds or more: "
        "registrars refuse shorter registrations",
    ]


def test_rate_cards_may_carry_premiums_and_a_quality_rule() -> None:
    card = """
[[rate_cards]]
client = "acme"
currency = "EUR"
tiers = [{ min_s = 0, rate = "0.50" }]
premiums = { overflow = "1.25", night = "1.5", night_from = "21:00", night_to = "07:00" }
quality = { share = "0.10", floor_score = 3 }
"""
    (rate_card,) = load_tenant_text(BASE + card).rate_cards.values()
    assert rate_card.premiums == Premiums(Decimal("1.25"), Decimal("1.5"), time(21), time(7))
    assert rate_card.quality == QualityRule(Decimal("0.10"), Decimal(3))
    bad = card.replace('overflow = "1.25"', "overflow = 1.25").replace('share = "0.10"', 'share = "2"')
    bad = bad.replace("floor_score = 3", "floor_score = 5")
    assert problems(BASE + bad) == [
        "tenants.toml: rate_cards[0].premiums.overflow: expected a decimal string of 1 or more such as '1.25', "
        "got float 1.25 (quote it, '1.25': floats are inexact)",
        "tenants.toml: rate_cards[0].quality.share: expected a decimal string from 0 to 1 such as '0.10', got '2'",
        "tenants.toml: rate_cards[0].quality.floor_score: expected a whole score from 1 to 4, got integer 5",
    ]
