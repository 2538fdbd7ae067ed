"""The local index's documents served at /docs/, where their citations point."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.template import Context, Template

from chats.documents import index_info, served_url, shipped_sample
from chats.search.indexer import DEFAULT_BASE_URL, build_index

pytestmark = pytest.mark.django_db

SAMPLE_DOCS = Path(django_settings.BASE_DIR) / "sample" / "docs"


@pytest.fixture
def sample_index(settings, tmp_path):
    index = tmp_path / "index.sqlite3"
    build_index(docs_dir=SAMPLE_DOCS, index_path=index)
    settings.LOCAL_SEARCH_INDEX = str(index)
    return index


def test_a_cited_sample_document_is_served(owner_client, sample_index):
    response = owner_client.get("/docs/batches/cancel-resume")
    assert response.status_code == 200
    assert "<h1>" in response.text and "cancel" in response.text.lower()
    assert f"{DEFAULT_BASE_URL}batches/cancel-resume" in response.text
    assert owner_client.get("/docs/").status_code == 200  # index.md, the folder's URL


def test_unknown_documents_are_404(owner_client, sample_index):
    assert owner_client.get("/docs/nothing/here").status_code == 404


def test_documents_need_a_login(client, sample_index):
    response = client.get("/docs/batches/cancel-resume")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_index_is_built_on_first_use(owner_client, settings, tmp_path):
    settings.LOCAL_SEARCH_INDEX = str(tmp_path / "missing.sqlite3")
    assert owner_client.get("/docs/batches/cancel-resume").status_code == 200


def test_placeholder_citations_link_to_the_app_and_others_stay(sample_index):
    assert served_url(f"{DEFAULT_BASE_URL}batches/cancel-resume") == "/docs/batches/cancel-resume"
    assert served_url(DEFAULT_BASE_URL) == "/docs/"
    assert served_url("https://www.canada.ca/en.html") == "https://www.canada.ca/en.html"
    html = Template("{% load chat_links %}{% external_link url 'Cancel' %}").render(
        Context({"url": f"{DEFAULT_BASE_URL}batches/cancel-resume"})
    )
    assert 'href="/docs/batches/cancel-resume"' in html and "target" not in html


def test_index_info_says_what_the_index_holds(sample_index):
    info = index_info()
    assert info.documents and info.documents > 10
    assert shipped_sample(info)
