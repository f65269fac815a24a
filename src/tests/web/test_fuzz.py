"""The HTTP API fuzzed from its own OpenAPI document (schemathesis, on hypothesis) against the web
process as served, on the real PostgreSQL, Redis and ClickHouse.

Every answer must be one the document describes (status, headers, content type, body schema) and
never a 5xx; a request the document forbids must be refused, and one it allows must be taken, but
for the rules only the document's words can state (WORDED_RULES); a refused request writes nothing.
`make test` runs the examples of the "suite" profile, the same ones each run (tests/conftest.py);
`make fuzz` runs the "fuzz" profile: many more, new ones each run.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from eventlog.access.api_keys import create_api_key
from eventlog.models import OutboxEvent
from eventlog.web.openapi import document
from tests.served import ServedWeb, serving

pytestmark = pytest.mark.django_db(transaction=True)  # the web process reads what a test commits

schema = schemathesis.openapi.from_dict(document())
# The key is the test's (sent with every request); schemathesis's ignored_auth check sends each
# request without it too, and must get the document's 401.
schema.config.generation.update(with_security_parameters=False)

# What a request the schema allows may still be refused for (eventlog/web/openapi.py says each in
# words): the start of the 400's error, or of one of its problems.
WORDED_RULES = (
    "from must be earlier than to",
    "more than 1000",  # counts: buckets in the range
    "tz must be an IANA time zone",
    "cursor is not one this server gave",
    "cursor belongs to other filters",
    "from must be between 1900-01-01 and 2299-12-31 (UTC)",  # a time at a range's edge with an offset
    "to must be between 1900-01-01 and 2299-12-31 (UTC)",
    "must be between 1900-01-01 and 2299-12-31 (UTC)",
)


@pytest.fixture(scope="module")
def fuzzed_web(
    tmp_path_factory: pytest.TempPathFactory, django_db_setup: None, clickhouse_server: object
) -> Iterator[ServedWeb]:
    """A web process of the module's own, without the read rate limit (a 429 is no finding)."""
    directory = tmp_path_factory.mktemp("fuzzed")
    with serving(directory, READ_RATE_LIMIT_PER_MINUTE="0", LOG_LEVEL="ERROR") as web:
        yield web


@pytest.fixture
def key() -> str:
    return create_api_key("fuzz", scopes=("ingest", "read"))[1]


def worded_rule(response: Any) -> bool:
    """The 400 names a rule of WORDED_RULES."""
    if response.status_code != 400:
        return False
    body = response.json()
    messages = [body.get("error", "")] + [problem["message"] for problem in body.get("problems", [])]
    return any(message.startswith(WORDED_RULES) for message in messages)


@schemathesis.check
def allowed_requests_are_taken(ctx: Any, response: Any, case: schemathesis.Case) -> bool | None:
    """schemathesis's positive_data_acceptance, but for WORDED_RULES."""
    if worded_rule(response):
        return None
    return positive_data_acceptance(ctx, response, case)


@schema.parametrize()
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # one key for all examples
def test_every_answer_is_one_the_document_gives_and_refusals_write_nothing(
    case: schemathesis.Case, key: str, fuzzed_web: ServedWeb
) -> None:
    before = OutboxEvent.objects.count()
    response = case.call_and_validate(
        base_url=f"http://127.0.0.1:{fuzzed_web.port}",
        headers={"Authorization": f"Bearer {key}"},
        excluded_checks=[positive_data_acceptance],
        additional_checks=[allowed_requests_are_taken],
    )
    if response.status_code >= 400:
        assert OutboxEvent.objects.count() == before, response.text
