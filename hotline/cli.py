"""The `hotline` command."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from config.errors import ConfigError
from config.settings import Settings, load_settings
from config.tenant_file import demo_tenant_path, load_tenant
from dialplan.queues import Strategy
from dialplan.tenant import Tenant
from hotline.logs import configure_logging

EXIT_CONFIG = 2
EXIT_STARTUP = 3


def _settings_or_exit() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"hotline: {problem}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None


def _tenant_or_none(path: Path) -> Tenant | None:
    """The tenant file, or None after printing every problem in it."""
    try:
        return load_tenant(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return None


def _cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings_or_exit()
    if args.workers is not None:
        settings = replace(settings, workers=args.workers)
    tenant_path = Path(args.tenant) if args.tenant else settings.tenant_file or demo_tenant_path()
    configure_logging(settings.log_format, settings.log_level)
    tenant = _tenant_or_none(tenant_path)
    if tenant is None:
        return EXIT_CONFIG
    from hotline.control import Control, StartupError

    try:
        return asyncio.run(Control(settings, tenant).run())
    except StartupError as exc:
        print(f"hotline: cannot start: {exc}", file=sys.stderr)
        return EXIT_STARTUP


def _cmd_worker(args: argparse.Namespace) -> int:
    settings = _settings_or_exit()
    configure_logging(settings.log_format, settings.log_level)
    from telephony.worker import run_worker

    return run_worker(args.config, args.ipc_fd)


def _cmd_check_config(args: argparse.Namespace) -> int:
    try:
        tenant = load_tenant(Path(args.file))
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_CONFIG
    print(
        f"{args.file}: ok: tenant {tenant.id!r}, {len(tenant.clients)} clients, {len(tenant.lines)} lines, "
        f"{len(tenant.agents)} agents, {len(tenant.shifts)} shifts"
    )
    return 0


def _parse_since(raw: str) -> datetime:
    """An ISO date-time (UTC if no zone), or a span back from now: 90s, 15m, 2h, 7d."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if raw[-1:] in units and raw[:-1].isdigit():
        return datetime.now(UTC) - timedelta(seconds=int(raw[:-1]) * units[raw[-1]])
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an ISO date-time or a span like 2h, got {raw!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _cmd_calls(args: argparse.Namespace) -> int:
    settings = _settings_or_exit()
    from hotline.calls_report import print_calls

    return asyncio.run(
        print_calls(settings, since=args.since, client=args.client, limit=args.limit, as_json=args.json, out=sys.stdout)
    )


def _day(raw: str) -> date:
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date such as 2026-11-23, got {raw!r}") from None


def _cmd_pay(args: argparse.Namespace) -> int:
    settings = _settings_or_exit()
    tenant_path = Path(args.tenant) if args.tenant else settings.tenant_file or demo_tenant_path()
    tenant = _tenant_or_none(tenant_path)
    if tenant is None:
        return EXIT_CONFIG
    if args.agent not in tenant.agents:
        print(f"hotline pay: no agent {args.agent!r} in {tenant_path}", file=sys.stderr)
        return EXIT_CONFIG
    if args.to < args.from_:
        print("hotline pay: --to is before --from", file=sys.stderr)
        return EXIT_CONFIG
    from hotline.pay_report import print_pay

    since = datetime.combine(args.from_, time(), UTC)
    until = datetime.combine(args.to + timedelta(days=1), time(), UTC)
    return asyncio.run(
        print_pay(settings, tenant, agent=args.agent, since=since, until=until, as_csv=args.csv, out=sys.stdout)
    )


def _cmd_simulate(args: argparse.Namespace) -> int:
    from hotline import simulate

    options = simulate.Options(
        config=Path(args.config),
        day=args.day,
        arrivals=Path(args.arrivals) if args.arrivals else None,
        rate=args.rate,
        handle_s=args.handle,
        patience_s=args.patience,
        answer_after_s=args.answer_after,
        strategy=Strategy(args.strategy) if args.strategy else None,
        compare=Strategy(args.compare) if args.compare else None,
        seed=args.seed,
        as_json=args.json,
    )
    try:
        simulate.run(options, sys.stdout)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_CONFIG
    return 0


def _simulate_arg(name: str) -> Callable[[str], object]:
    """An argument type from hotline.simulate, imported only when `simulate` runs.

    Every `hotline` process parses its arguments, media workers included: they
    need not load the simulator and the router to start.
    """

    def parse(raw: str) -> object:
        from hotline import simulate

        convert: Callable[[str], object] = getattr(simulate, name)
        return convert(raw)

    parse.__name__ = name
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hotline", description="hotline-bridge: SIP hotlines answered from a browser")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the bridge (control process and media workers)")
    serve.add_argument(
        "--workers",
        type=int,
        help="media workers (default HOTLINE_WORKERS or 1); Kamailio fronts them as HOTLINE_SIP_FRONT says",
    )
    serve.add_argument("--tenant", help="tenant TOML file (default HOTLINE_TENANT_FILE or the demo tenant)")
    serve.set_defaults(func=_cmd_serve)

    worker = sub.add_parser("worker", help="a media worker (started by `hotline serve`)")
    worker.add_argument("--ipc-fd", type=int, required=True)
    worker.add_argument("--config", required=True)
    worker.set_defaults(func=_cmd_worker)

    check = sub.add_parser("check-config", help="validate a tenant file; exit 0 if valid, 2 if not")
    check.add_argument("file")
    check.set_defaults(func=_cmd_check_config)

    calls = sub.add_parser("calls", help="print call records")
    calls.add_argument("--json", action="store_true", help="one JSON array of records")
    calls.add_argument("--since", type=_parse_since, help="ISO date-time, or a span back from now (2h, 7d)")
    calls.add_argument("--client", help="only this client's calls")
    calls.add_argument("--limit", type=int, default=50)
    calls.set_defaults(func=_cmd_calls)

    pay = sub.add_parser("pay", help="an agent's pay statement for a period, from the call records")
    pay.add_argument("--agent", required=True, help="the agent's login")
    pay.add_argument("--from", dest="from_", type=_day, required=True, metavar="YYYY-MM-DD", help="first day (UTC)")
    pay.add_argument("--to", type=_day, required=True, metavar="YYYY-MM-DD", help="last day, included (UTC)")
    pay.add_argument("--csv", action="store_true", help="CSV: one row per call, then the totals")
    pay.add_argument("--tenant", help="tenant TOML file (default HOTLINE_TENANT_FILE or the demo tenant)")
    pay.set_defaults(func=_cmd_pay)

    strategies = [s.value for s in Strategy]
    sim = sub.add_parser(
        "simulate", help="run a day of calls through the queue engine on a virtual clock; exit 2 on bad input"
    )
    sim.add_argument("--config", required=True, metavar="TENANT.toml", help="tenant file")
    sim.add_argument(
        "--day",
        type=_simulate_arg("day_arg"),
        required=True,
        metavar="YYYY-MM-DD",
        help="the day simulated",
    )
    arrivals = sim.add_mutually_exclusive_group(required=True)
    arrivals.add_argument(
        "--arrivals", metavar="CSV", help="CSV: time,client[,handle_s][,patience_s]; time HH:MM:SS UTC or ISO"
    )
    arrivals.add_argument(
        "--rate", metavar="SPEC", help="Poisson arrivals: acme=120/h,globex=2/min@09:00-12:00 (client's local time)"
    )
    sim.add_argument(
        "--handle",
        type=_simulate_arg("positive_duration_arg"),
        default=180.0,
        metavar="DURATION",
        help="mean talk time (default 180s)",
    )
    sim.add_argument(
        "--patience",
        type=_simulate_arg("patience_arg"),
        default=120.0,
        metavar="DURATION|none",
        help="mean time before a caller hangs up, or none (default 120s)",
    )
    sim.add_argument(
        "--answer-after",
        type=_simulate_arg("duration_arg"),
        default=3.0,
        metavar="DURATION",
        help="agents answer offers after this (default 3s)",
    )
    sim.add_argument(
        "--strategy", choices=strategies, metavar="NAME", help=f"every queue's strategy: {', '.join(strategies)}"
    )
    sim.add_argument("--compare", choices=strategies, metavar="NAME", help="run the same calls under this strategy too")
    sim.add_argument("--seed", type=int, default=0, help="for the arrivals, talk times and patience (default 0)")
    sim.add_argument("--json", action="store_true", help="the figures as one JSON object")
    sim.set_defaults(func=_cmd_simulate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code
