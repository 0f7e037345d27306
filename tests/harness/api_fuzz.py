"""Schemathesis against the bridge's OpenAPI document, as a process of its own.

    python -m harness.api_fuzz BASE_URL KNOWN_JSON   (with tests/ on sys.path)

prints one JSON report. It runs apart from the server's process on purpose:
hypothesis and schemathesis hold the GIL for long stretches, which in the
same process would stall the server's event loop and fail the tests' loop
guard for something the bridge did not do.

Every operation is run in positive mode (what the document allows: the
answer's status, content type, headers and body are checked against it) and
negative mode (what it forbids: the answer must be a 4xx), with generated
ids and again with ids that exist, so that cases reach past "no such thing"
into the handlers' checks. Generation is derandomized: a run is repeatable.
"""

from __future__ import annotations

import collections
import json
import sys
from dataclasses import dataclass, field
from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from agent_client.web_openapi import DOCUMENT
from harness.full_web import basic

EXAMPLES = {schemathesis.GenerationMode.POSITIVE: 30, schemathesis.GenerationMode.NEGATIVE: 15}
RESPONSE_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@dataclass
class Report:
    version: str = schemathesis.__version__
    operations: int = 0
    requests: int = 0
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    by_operation: dict[str, collections.Counter[int]] = field(
        default_factory=lambda: collections.defaultdict(collections.Counter)
    )
    failures: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Known:
    """Things that exist in harness.full_web's app."""

    closed_call: str
    live_call: str
    line: str
    session_id: str

    def path_parameters(self, path: str) -> dict[str, str]:
        if path.startswith("/api/supervisor/calls/{call_id}") and not path.endswith("/score"):
            return {"call_id": self.live_call}
        values = {"call_id": self.closed_call, "line": self.line, "session_id": self.session_id}
        return {name: value for name, value in values.items() if f"{{{name}}}" in path}


def credentials(path: str) -> dict[str, str]:
    # The tenant admin may use every operation but the supervisors' own: those go as a supervisor of both clients.
    return basic("sam") if path.startswith("/api/supervisor/") else basic("admin")


def run(
    operation: Any,
    mode: schemathesis.GenerationMode,
    fixed: dict[str, Any],
    base_url: str,
    http: requests.Session,
    report: Report,
) -> None:
    checks = RESPONSE_CHECKS + ([negative_data_rejection] if mode.is_negative else [])
    headers = credentials(operation.path)
    label = f"{operation.label} {mode.value}{' known' if fixed else ''}"

    @settings(
        max_examples=EXAMPLES[mode],
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    # Credentials fixed, so that negative cases break the request itself, not its Authorization header.
    @given(case=operation.as_strategy(generation_mode=mode, headers=headers, **fixed))
    def one(case: schemathesis.Case) -> None:
        # Basic credentials only: a generated session cookie would make every change a browser's (CSRF-checked),
        # and no cookie is carried from a lucky sign-in to later cases.
        case.cookies.clear()
        http.cookies.clear()
        response = case.call(base_url=base_url, session=http, headers=headers)
        report.requests += 1
        report.statuses[response.status_code] += 1
        report.by_operation[label][response.status_code] += 1
        try:
            case.validate_response(response, checks=checks, headers=headers)
        except FailureGroup as failed:
            report.failures.append(f"[{label}] {failed}")

    try:
        one()
    except Unsatisfiable:
        # Nothing of this operation can be made invalid (no parameters, no body).
        assert mode.is_negative, operation.label


def fuzz(base_url: str, known: Known) -> Report:
    """Every operation, each mode, generated and known ids; failures are collected, not stopping the run."""
    schema = schemathesis.openapi.from_dict(DOCUMENT)
    report = Report()
    with requests.Session() as http:
        # First sign-ins from here, before the fuzzed logins' failures make this address suspect.
        for login in ("admin", "sam"):
            assert http.get(f"{base_url}/api/overflow/audit", headers=basic(login)).status_code in (200, 403)
        for result in schema.get_all_operations():
            operation = result.ok()
            report.operations += 1
            variants: list[dict[str, Any]] = [{}]
            if parameters := known.path_parameters(operation.path):
                variants.append({"path_parameters": parameters})
            if operation.path == "/api/pay/statement":
                variants.append({"query": {"agent": "alice"}})
            for fixed in variants:
                for mode in EXAMPLES:
                    run(operation, mode, fixed, base_url, http, report)
    return report


if __name__ == "__main__":
    found = fuzz(sys.argv[1], Known(**json.loads(sys.argv[2])))
    json.dump(found.__dict__, sys.stdout)
