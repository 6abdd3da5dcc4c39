"""schemathesis against central's own OpenAPI schema, over real HTTP: no request may get a 5xx.

Every operation is fuzzed with schema-valid (positive) and schema-violating (negative) inputs, as an
admin (so handlers run, not just the guard). Failures are collected and reported together.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from central.auth.repository import create_key_sync
from central.settings import CentralSettings
from devtools.services.central import serve

EXAMPLES_PER_OPERATION = 25
FEATURE_OFF = "vector_search_off"  # the documented 503 of search and clusters without pgvector


def server_error(response: Any) -> bool:
    """A 5xx other than the documented answer of a feature this database cannot offer."""
    if response.status_code < 500:
        return False
    if response.status_code != 503:
        return True
    try:
        body = response.json()
    except ValueError:
        return True
    return not (isinstance(body, dict) and body.get("code") == FEATURE_OFF)


@pytest.fixture
def served(central_settings: CentralSettings) -> Iterator[tuple[str, dict[str, str]]]:
    import psycopg

    with serve(central_settings) as url:
        with psycopg.connect(central_settings.database_url) as conn:
            conn.execute("INSERT INTO sites (id, name) VALUES ('fuzz-site', 'Fuzz')")
            key = create_key_sync(conn, "fuzz", "admin").display
        yield url, {"Authorization": f"Bearer {key}"}


def _fuzz(
    operation: Any, mode: GenerationMode, url: str, headers: dict[str, str], failures: list[str]
) -> int:
    calls = 0

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        derandomize=True,  # the same inputs on every run: a failure in CI reproduces here
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        nonlocal calls
        calls += 1
        response = case.call(base_url=url, headers=headers, timeout=30)
        if server_error(response):
            failures.append(
                f"{case.method} {case.formatted_path} ({mode.value}) -> {response.status_code}: "
                f"{response.text[:300]} | query={case.query} body={str(case.body)[:200]}"
            )

    try:
        run()
    except Unsatisfiable:
        if mode is GenerationMode.POSITIVE:
            raise
        # nothing in this operation can violate its schema (no parameters, no body)
    return calls


def test_fuzz_api_never_answers_5xx(served: tuple[str, dict[str, str]]) -> None:
    url, headers = served
    spec = httpx.get(f"{url}/schema/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(spec)
    failures: list[str] = []
    operations = calls = 0
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an invalid schema fails the test here
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            calls += _fuzz(operation, mode, url, headers, failures)
    print(f"fuzzed {operations} operations with {calls} requests")
    assert operations >= 5
    assert calls >= operations * 3  # the fuzzer really ran
    assert not failures, "\n".join(failures[:20])
