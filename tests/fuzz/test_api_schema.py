"""The API fuzzed from its own OpenAPI schema (schemathesis), as an agent and as a manager.

Every operation, through the real WSGI application: never a 5xx, and every status code,
content type, header and body as the schema documents it. Path parameters are real ids half
the time, so retrieve/update/reply reach real rows and not only 404s.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from config.wsgi import application

from .conftest import DEEP, Desk, fuzz_settings

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
EXAMPLES = 12

# The coverage phase (every boundary of every field) makes ~10x the requests: deep runs only.
CONFIG = SchemathesisConfig.from_dict({"phases": {"coverage": {"enabled": DEEP}}})
schema = schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", application, config=CONFIG)
_known: dict[str, list[Any]] = {}


@schema.hook
def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any]) -> Any:
    """Half the time, a generated id is swapped for a real one of the collection in the path."""
    path = context.operation.path
    real = next((ids for name, ids in _known.items() if f"/{name}/{{" in path), [])
    if not real or not path_parameters:
        return st.just(path_parameters)
    key = next(iter(path_parameters))
    return st.sampled_from([path_parameters, {**path_parameters, key: real[0]}])


@pytest.fixture
def known_ids(wsgi_desk: Desk) -> Any:
    _known.clear()
    _known.update(wsgi_desk.ids)
    yield
    _known.clear()


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["agent", "manager"])
@schema.parametrize()
@fuzz_settings(EXAMPLES)
def test_every_operation_answers_as_documented(case: Any, role: str, wsgi_desk: Desk, known_ids: None) -> None:
    case.call_and_validate(headers={"Authorization": f"Token {wsgi_desk.tokens[role]}"}, checks=CHECKS)
