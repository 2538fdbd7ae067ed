"""Never HTML under /api/: unknown paths, wrong methods, unexpected exceptions and
Django-level errors answer with a JSON error."""

from __future__ import annotations

import pytest
from django.test import RequestFactory

from batchchat import api as project_api
from batchchat import urls as root_urls
from batches import api as api_module
from batches.tests.api_helpers import error_of
from batches.tests.factories import BatchFactory


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path", ["/api/", "/api/nope", "/api/batch/", "/api/batch/list/", "/api/batch/nope/deeper"]
)
def test_unknown_api_paths_are_json_404(api, path):
    response = api.client.get(path, headers=api.headers)
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("get", "/api/batch/create", "POST"),
        ("post", "/api/batch/list", "GET"),
        ("delete", "/api/batch/delete", "POST"),
        ("put", "/api/batch/status", "GET"),
    ],
)
def test_wrong_method_is_json_405(api, method, path, allowed):
    response = getattr(api.client, method)(path, headers=api.headers)
    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"
    assert response["Allow"] == allowed


@pytest.mark.django_db
def test_an_unexpected_exception_is_a_json_500_and_logged(api, owner, monkeypatch, caplog):
    # A fault injected where the export is called: any bug in a view ends the same way.
    def broken_export(batch, fmt):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(api_module, "export_response", broken_export)
    batch = BatchFactory(uploader=owner)
    response = api.get("batch/results", {"batchId": batch.pk})
    assert response.status_code == 500
    error = error_of(response)
    assert error["code"] == "server_error"
    assert "disk on fire" not in response.content.decode()
    assert "Traceback" not in response.content.decode()
    assert "disk on fire" in caplog.text


def test_django_level_error_handlers_answer_json_under_api_only():
    assert root_urls.handler500 == "batchchat.api.server_error_handler"
    assert root_urls.handler400 == "batchchat.api.bad_request_handler"
    factory = RequestFactory()

    api_500 = project_api.server_error_handler(factory.get("/api/batch/list"))
    assert api_500.status_code == 500
    assert error_of(api_500)["code"] == "server_error"
    page_500 = project_api.server_error_handler(factory.get("/batches/"))
    assert page_500.status_code == 500
    assert page_500["Content-Type"].startswith("text/html")  # pages keep Django's (or 500.html)

    api_400 = project_api.bad_request_handler(factory.get("/api/x"), ValueError("bad"))
    assert api_400.status_code == 400
    assert error_of(api_400)["code"] == "bad_request"


@pytest.mark.django_db
def test_a_disallowed_host_under_api_is_json(api, settings):
    settings.DEBUG = False
    response = api.client.get("/api/batch/list", headers=api.headers, HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert error_of(response)["code"] == "bad_request"
