"""The OpenAPI description: complete (every route is in it) and true (schemathesis sends
generated requests to the live server and checks the answers against it)."""

from __future__ import annotations

import json

import pytest
import schemathesis
from django.core.serializers.json import DjangoJSONEncoder
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from batchchat.api import api
from batches.models import Batch, BatchItem
from batches.tests.api_helpers import ApiClient, api_routes
from batches.tests.factories import BatchFactory, BatchItemFactory

# As served: through JSON, so response codes are strings ("401"), as clients see them.
SCHEMA = json.loads(json.dumps(api.get_openapi_schema(path_prefix="/api/"), cls=DjangoJSONEncoder))
OPERATIONS = [
    (method.upper(), path) for path, methods in SCHEMA["paths"].items() for method in methods
]


@pytest.mark.django_db
def test_schema_and_docs_are_for_signed_in_users_only(client, owner):
    for path in ("/api/schema", "/api/docs"):
        refused = client.get(path)
        assert refused.status_code == 401, path
        assert refused.json()["error"]["code"] == "not_authenticated"
    client.force_login(owner)
    assert client.get("/api/docs").status_code == 200


@pytest.mark.django_db
def test_schema_is_served_as_openapi_json(client, owner):
    client.force_login(owner)
    response = client.get("/api/schema")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.")
    assert document["info"]["title"] == "BatchChat API"
    assert set(document["components"]["securitySchemes"]) == {"TokenAuth", "SessionCsrfAuth"}


def test_every_api_route_is_in_the_schema_and_nothing_else():
    assert set(SCHEMA["paths"]) == api_routes()


def test_every_operation_requires_auth_and_documents_json_errors():
    for method, path in OPERATIONS:
        operation = SCHEMA["paths"][path][method.lower()]
        assert operation["security"] == [{"TokenAuth": []}, {"SessionCsrfAuth": []}], path
        assert "401" in operation["responses"], path
        error = operation["responses"]["401"]["content"]["application/json"]["schema"]
        assert error == {"$ref": "#/components/schemas/ErrorOut"}


def test_create_documents_both_upload_forms():
    body = SCHEMA["paths"]["/api/batch/create"]["post"]["requestBody"]["content"]
    assert set(body) == {"multipart/form-data", "application/json"}
    assert body["multipart/form-data"]["schema"]["properties"]["file"]["format"] == "binary"
    # `rows` (JSON) or `file` (multipart) is required unless `uploadId` names a previewed file.
    assert "rows" in body["application/json"]["schema"]["properties"]
    assert "uploadId" in body["application/json"]["schema"]["properties"]
    assert "columns" in body["multipart/form-data"]["schema"]["properties"]


@pytest.mark.django_db
def test_docs_page_uses_no_cdn(client, owner):
    client.force_login(owner)
    html = client.get("/api/docs").content.decode()
    assert "/static/ninja/swagger-ui-bundle.js" in html
    assert "cdn." not in html


# --- Schemathesis against the live server ---------------------------------------------------

MAX_EXAMPLES = 15
NEGATIVE_EXAMPLES = 6
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def fuzz_setup(settings, live_server, owner):
    """A token and a real batch of its owner, so that generated requests reach the happy
    paths too (generated ids alone would nearly always be 404)."""
    # Offline providers; tiny slices so that a generated `seconds` never stalls the run.
    settings.DEFAULT_AI_PROVIDER = "extractive"
    settings.DEFAULT_SEARCH_PROVIDER = "none"
    settings.BATCH_SLICE_SECONDS = 0.5
    settings.MAX_BATCH_ITEMS = 50
    batch = BatchFactory(
        uploader=owner, search_provider="none", status=Batch.Status.COMPLETED, total_items=2
    )
    BatchItemFactory(batch=batch, position=0, status=BatchItem.Status.DONE)
    BatchItemFactory(batch=batch, position=1, status=BatchItem.Status.FAILED, error="boom")
    return live_server.url, {"Authorization": f"Bearer {ApiClient(owner).token}"}, batch.pk


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_generated_requests_get_documented_answers_and_no_5xx(fuzz_setup, method, path):
    base_url, headers, batch_id = fuzz_setup
    schema = schemathesis.openapi.from_dict(SCHEMA)
    strategy = schema[path][method].as_strategy()

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy, real_batch=st.booleans())
    def check(case, real_batch: bool) -> None:
        if real_batch:
            for container in (case.body, case.query):
                if isinstance(container, dict) and "batchId" in container:
                    container["batchId"] = batch_id
        response = case.call(base_url=base_url, headers=headers, timeout=30)
        case.validate_response(response, checks=CHECKS)

    check()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_malformed_requests_are_refused_with_json_4xx(fuzz_setup, method, path):
    """Requests that break the schema (wrong types, missing fields, bad bodies)."""
    base_url, headers, _batch_id = fuzz_setup
    schema = schemathesis.openapi.from_dict(SCHEMA)
    strategy = schema[path][method].as_strategy(generation_mode=GenerationMode.NEGATIVE)

    @settings(
        max_examples=NEGATIVE_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def check(case) -> None:
        response = case.call(base_url=base_url, headers=headers, timeout=30)
        case.validate_response(response, checks=[not_a_server_error])
        if response.status_code >= 400:
            # schemathesis keeps headers lowercased, as lists of values
            assert response.headers["content-type"] == ["application/json"], response.content
            assert set(response.json()) == {"error"}

    check()
