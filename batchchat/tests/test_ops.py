"""/healthz and /metrics: no login, no secrets; metrics behind METRICS_TOKEN."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from batches.models import WorkerHeartbeat
from batches.tests.factories import BatchFactory, BatchItemFactory
from chats.tests.factories import InteractionFactory

pytestmark = pytest.mark.django_db


def test_healthz_answers_without_login_and_says_no_worker_is_alive(client, settings):
    settings.CELERY_BROKER_URL = ""
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "no-cache" in response["Cache-Control"]
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["database"] == {"ok": True}
    assert body["checks"]["broker"] == {"ok": True, "configured": False}
    assert body["checks"]["worker"] == {"ok": False, "mode": "worker", "alive": 0}


def test_healthz_is_ok_with_a_live_worker(client):
    WorkerHeartbeat.objects.create(name="w1", hostname="h", pid=1)
    body = client.get("/healthz").json()

    assert body["status"] == "ok"
    assert body["checks"]["worker"]["alive"] == 1
    assert body["checks"]["worker"]["lastHeartbeatSecondsAgo"] >= 0


def test_healthz_is_503_when_the_database_fails(client, monkeypatch):
    from batchchat import ops

    def broken():
        raise ops.WorkerHeartbeat.DoesNotExist("connection refused to db.internal:5432 pw=x")

    monkeypatch.setattr(ops.WorkerHeartbeat.objects, "exists", broken)
    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["status"] == "error"
    assert "db.internal" not in response.content.decode()  # nothing about the set-up


def test_healthz_reports_an_unreachable_broker_without_its_address(client, settings):
    settings.CELERY_BROKER_URL = "redis://:s3cret@127.0.0.1:9/0"  # port 9: nothing listens
    response = client.get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["broker"] == {
        "ok": False,
        "configured": True,
        "error": "the broker does not answer",
    }
    assert body["checks"]["worker"]["mode"] == "celery"
    assert "s3cret" not in response.content.decode()


@pytest.mark.redis
def test_healthz_reaches_a_configured_broker(client, settings):
    from conftest import REDIS_URL

    settings.CELERY_BROKER_URL = REDIS_URL
    body = client.get("/healthz").json()

    assert body["checks"]["broker"] == {"ok": True, "configured": True}


def test_metrics_are_off_without_a_token(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404


def test_metrics_need_the_token(client, settings):
    settings.METRICS_TOKEN = "metrics-secret"
    assert client.get("/metrics").status_code == 401
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope")
    assert wrong.status_code == 401
    assert wrong["WWW-Authenticate"] == 'Bearer realm="metrics"'


def scrape(client) -> dict[str, dict]:
    """The samples of a scrape in the Prometheus text format, by name and labels."""
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer metrics-secret")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples: dict[str, dict] = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            key = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[key] = sample.value
    return samples


def test_metrics_count_rows_latency_rate_limits_and_workers(client, settings, owner):
    settings.METRICS_TOKEN = "metrics-secret"
    batch = BatchFactory(
        uploader=owner, ai_provider="openai", status="processing", throttle={"limit": 2}
    )
    for position, status in enumerate(["done", "done", "failed", "pending", "pending", "running"]):
        BatchItemFactory(batch=batch, position=position, status=status)
    # One row rests after a 429 until its retry time.
    batch.items.filter(position=3).update(resting_until=timezone.now() + timedelta(minutes=1))
    done = batch.items.filter(status="done").select_related("chat")
    for item, latency in zip(done, (300, 4000), strict=True):
        InteractionFactory(chat=item.chat, latency_ms=latency)
    WorkerHeartbeat.objects.create(name="w1", hostname="h", pid=1, slices=3, rows_done=7)
    # A batch paused by an outage (its provider's circuit breaker open).
    BatchFactory(
        uploader=owner,
        ai_provider="anthropic",
        status="processing",
        throttle={"outage": {"since": 1.0, "reason": "timeout", "last_success": None}},
    )

    samples = scrape(client)

    rows = samples["batchchat_batch_rows"]
    assert rows[(("provider", "openai"), ("status", "done"))] == 2
    assert rows[(("provider", "openai"), ("status", "failed"))] == 1
    assert samples["batchchat_rows_waiting"][(("provider", "openai"),)] == 3
    assert samples["batchchat_rows_rate_limited"][(("provider", "openai"),)] == 1
    assert samples["batchchat_batches"][(("status", "processing"),)] == 2
    assert samples["batchchat_batches_provider_down"] == {(("provider", "anthropic"),): 1}
    assert samples["batchchat_batches_throttled"] == {(("provider", "openai"),): 1}
    buckets = samples["batchchat_provider_latency_seconds_bucket"]
    assert buckets[(("le", "0.5"), ("provider", "openai"))] == 1
    assert buckets[(("le", "5.0"), ("provider", "openai"))] == 2
    assert buckets[(("le", "+Inf"), ("provider", "openai"))] == 2
    assert samples["batchchat_provider_latency_seconds_gsum"][(("provider", "openai"),)] == 4.3
    assert samples["batchchat_workers_alive"][()] == 1
    assert samples["batchchat_worker_rows_total"][(("outcome", "done"), ("worker", "w1"))] == 7
    assert samples["batchchat_worker_slices_total"][(("worker", "w1"),)] == 3
    assert (("worker", "w1"),) in samples["batchchat_worker_last_heartbeat_timestamp_seconds"]


def test_metrics_cost_a_fixed_number_of_queries(
    client, settings, owner, django_assert_max_num_queries
):
    settings.METRICS_TOKEN = "metrics-secret"
    for provider in ("openai", "anthropic", "extractive"):
        BatchItemFactory(batch=BatchFactory(uploader=owner, ai_provider=provider))
    # rows, open rows, batches, throttled, provider down, latency, live workers, all
    # heartbeats
    with django_assert_max_num_queries(8):
        scrape(client)


def test_metrics_speak_openmetrics_when_asked(client, settings):
    settings.METRICS_TOKEN = "metrics-secret"
    response = client.get(
        "/metrics",
        HTTP_AUTHORIZATION="Bearer metrics-secret",
        HTTP_ACCEPT="application/openmetrics-text; version=1.0.0",
    )
    assert response["Content-Type"].startswith("application/openmetrics-text")
    text = response.content.decode()
    assert "# TYPE batchchat_provider_latency_seconds gaugehistogram" in text
    assert text.rstrip().endswith("# EOF")


def test_metrics_token_guesses_count_with_the_api_token_throttle(client, settings):
    settings.METRICS_TOKEN = "metrics-secret"
    settings.API_TOKEN_FAILURE_LIMIT = 3
    for guess in range(3):
        assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer g{guess}").status_code == 401
    refused = client.get("/metrics", HTTP_AUTHORIZATION="Bearer metrics-secret")
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 0
