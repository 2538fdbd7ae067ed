"""Endpoints for operators: `/healthz` (load balancers, systemd, uptime checks) and
`/metrics` (Prometheus). Neither needs a login; neither says anything secret."""

from __future__ import annotations

import hmac
import logging

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from accounts.throttle import TooManyBadTokens, check_token_throttle, record_bad_token
from batches.metrics import render_metrics
from batches.models import WorkerHeartbeat
from batches.selectors import live_workers

logger = logging.getLogger(__name__)

BROKER_TIMEOUT_SECONDS = 2.0


def _check_database() -> dict:
    try:
        WorkerHeartbeat.objects.exists()  # also proves the migrations ran
    except Exception as exc:
        logger.warning("healthz: the database does not answer: %s", type(exc).__name__)
        return {"ok": False, "error": "the database does not answer"}
    return {"ok": True}


def _check_broker() -> dict:
    if not settings.CELERY_BROKER_URL:
        return {"ok": True, "configured": False}
    from batchchat.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_SECONDS)
    except Exception as exc:
        logger.warning("healthz: the broker does not answer: %s", type(exc).__name__)
        return {"ok": False, "configured": True, "error": "the broker does not answer"}
    return {"ok": True, "configured": True}


def _check_worker(database_ok: bool) -> dict:
    mode = "celery" if settings.CELERY_BROKER_URL else "worker"
    if not database_ok:
        return {"ok": False, "mode": mode, "alive": 0}
    workers = list(live_workers().order_by("-last_seen"))
    info = {"ok": bool(workers) or mode == "celery", "mode": mode, "alive": len(workers)}
    if workers:
        age = (timezone.now() - workers[0].last_seen).total_seconds()
        info["lastHeartbeatSecondsAgo"] = round(max(age, 0.0), 1)
    return info


@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """200 while the database (and the broker, when configured) answer; 503 otherwise.

    A missing `run_worker` makes the status `degraded` but still 200: the web server can
    serve (pages drive batches themselves meanwhile), so a load balancer must not take it
    out of rotation for that; alert on `checks.worker.ok` or on the metrics instead.
    With Celery, its workers write no heartbeat: `mode` says so.
    """
    database = _check_database()
    broker = _check_broker()
    worker = _check_worker(database["ok"])
    if not (database["ok"] and broker["ok"]):
        status, code = "error", 503
    elif not worker["ok"]:
        status, code = "degraded", 200
    else:
        status, code = "ok", 200
    body = {"status": status, "checks": {"database": database, "broker": broker, "worker": worker}}
    return JsonResponse(body, status=code)


@require_GET
@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus metrics (see batches.metrics), for `Authorization: Bearer METRICS_TOKEN`.
    Without METRICS_TOKEN the endpoint does not exist (404)."""
    token = settings.METRICS_TOKEN
    if not token:
        raise Http404
    sent_text = request.headers.get("Authorization", "")
    # Guesses count with the API tokens' throttle (per address and per token prefix).
    try:
        check_token_throttle(request, sent_text)
    except TooManyBadTokens as exc:
        response = HttpResponse(f"{exc}\n", status=429)
        response["Retry-After"] = str(exc.retry_after)
        return response
    sent = sent_text.encode()
    if not hmac.compare_digest(sent, f"Bearer {token}".encode()):
        record_bad_token(request, sent_text)
        response = HttpResponse("Send Authorization: Bearer <METRICS_TOKEN>.\n", status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    body, content_type = render_metrics(request.headers.get("Accept", ""))
    return HttpResponse(body, content_type=content_type)
