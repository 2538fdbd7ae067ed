"""Prometheus metrics, computed from the database at scrape time.

Rows are answered in worker processes (run_worker, Celery) while /metrics is served by
the web server's processes, possibly on other machines: counters kept in one process's
memory would show only that process. The database sees every runner, so each scrape
reads it (a handful of grouped queries, whatever the number of rows):

- `batchchat_batch_rows{provider,status}`: rows per AI provider and status (done and
  failed are the answered and failed rows);
- `batchchat_rows_waiting{provider}`: pending and running rows of active batches;
- `batchchat_rows_rate_limited{provider}`: rows resting after the provider kept answering
  429/5xx, until their retry time;
- `batchchat_batches{status}`, and `batchchat_batches_throttled{provider}`: active
  batches the provider's rate limit holds back (as the engine publishes on the batch);
- `batchchat_batches_provider_down{provider}`: active batches paused because their
  provider does not answer (its circuit breaker open, as the engine publishes);
- `batchchat_provider_latency_seconds{provider}`: a gauge histogram of the answers of the
  last METRICS_LATENCY_WINDOW_SECONDS (search + generation, as stored on each turn);
- `batchchat_workers_alive`, and per worker (`run_worker`) its last heartbeat, slices and
  rows done/failed since it started (counters: they restart with the worker).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Q, Sum
from django.utils import timezone
from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from batches.models import Batch, BatchItem, WorkerHeartbeat
from batches.selectors import live_workers
from chats.models import Interaction

# Upper bounds of the latency buckets, in seconds.
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class BatchChatCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        yield from self._rows(now)
        yield self._batches()
        yield self._throttled()
        yield self._provider_down()
        yield self._latency(now)
        yield from self._workers()

    def _rows(self, now) -> Iterator[Metric]:
        rows = GaugeMetricFamily(
            "batchchat_batch_rows",
            "Batch rows by AI provider and status.",
            labels=["provider", "status"],
        )
        per_status = (
            BatchItem.objects.order_by()
            .values_list("batch__ai_provider", "status")
            .annotate(n=Count("id"))
        )
        for provider, status, n in per_status:
            rows.add_metric([provider, status], n)
        yield rows

        waiting = GaugeMetricFamily(
            "batchchat_rows_waiting",
            "Pending and running rows of active batches, by AI provider.",
            labels=["provider"],
        )
        limited = GaugeMetricFamily(
            "batchchat_rows_rate_limited",
            "Rows resting after a rate limit (429) or overload (5xx) until their retry time.",
            labels=["provider"],
        )
        open_rows = (
            BatchItem.objects.order_by()
            .unfinished()
            .filter(batch__status__in=Batch.ACTIVE_STATUSES)
            .values_list("batch__ai_provider")
            .annotate(n=Count("id"), resting=Count("id", filter=BatchItem.objects.resting_q(now)))
        )
        for provider, n, resting in open_rows:
            waiting.add_metric([provider], n)
            limited.add_metric([provider], resting)
        yield waiting
        yield limited

    def _provider_down(self) -> Metric:
        family = GaugeMetricFamily(
            "batchchat_batches_provider_down",
            "Active batches paused because their AI provider does not answer (connection "
            "refused, timeouts, 5xx: its circuit breaker is open), by AI provider.",
            labels=["provider"],
        )
        return _per_provider(family, Batch.objects.filter(throttle__has_key="outage"))

    def _throttled(self) -> Metric:
        family = GaugeMetricFamily(
            "batchchat_batches_throttled",
            "Active batches that the provider's rate limit holds back (a pause after a 429, "
            "or fewer calls in flight), by AI provider.",
            labels=["provider"],
        )
        # Paused by an outage is batchchat_batches_provider_down, not a rate limit.
        limited = Batch.objects.exclude(throttle={}).exclude(throttle__has_key="outage")
        return _per_provider(family, limited)

    def _batches(self) -> Metric:
        family = GaugeMetricFamily("batchchat_batches", "Batches by status.", labels=["status"])
        counts = dict(
            Batch.objects.order_by()
            .values_list("status")
            .annotate(n=Count("id"))
            .values_list("status", "n")
        )
        for status in Batch.Status.values:
            family.add_metric([status], counts.get(status, 0))
        return family

    def _latency(self, now) -> Metric:
        family = GaugeHistogramMetricFamily(
            "batchchat_provider_latency_seconds",
            f"Answer latency (search + generation) of the last "
            f"{settings.METRICS_LATENCY_WINDOW_SECONDS} s, by AI provider.",
            labels=["provider"],
        )
        cutoff = now - timedelta(seconds=settings.METRICS_LATENCY_WINDOW_SECONDS)
        buckets = {
            f"le_{index}": Count("id", filter=Q(latency_ms__lte=int(bound * 1000)))
            for index, bound in enumerate(LATENCY_BUCKETS)
        }
        per_provider = (
            Interaction.objects.order_by()
            .filter(created_at__gte=cutoff, latency_ms__isnull=False)
            .values("chat__ai_provider")
            .annotate(total=Count("id"), sum_ms=Sum("latency_ms"), **buckets)
        )
        for row in per_provider:
            counts = [
                (repr(bound), row[f"le_{index}"]) for index, bound in enumerate(LATENCY_BUCKETS)
            ]
            counts.append(("+Inf", row["total"]))
            family.add_metric(
                [row["chat__ai_provider"]], counts, gsum_value=(row["sum_ms"] or 0) / 1000
            )
        return family

    def _workers(self) -> Iterator[Metric]:
        alive = list(live_workers())
        yield GaugeMetricFamily(
            "batchchat_workers_alive",
            "run_worker processes whose heartbeat is recent.",
            value=len(alive),
        )
        heartbeat = GaugeMetricFamily(
            "batchchat_worker_last_heartbeat_timestamp_seconds",
            "When each run_worker process was last heard from (dead ones too, for a day).",
            labels=["worker"],
        )
        for worker in WorkerHeartbeat.objects.all():
            heartbeat.add_metric([worker.name], worker.last_seen.timestamp())
        yield heartbeat
        slices = CounterMetricFamily(
            "batchchat_worker_slices", "Slices run by each live worker.", labels=["worker"]
        )
        rows = CounterMetricFamily(
            "batchchat_worker_rows",
            "Rows finished by each live worker since it started.",
            labels=["worker", "outcome"],
        )
        for worker in alive:
            slices.add_metric([worker.name], worker.slices)
            rows.add_metric([worker.name, "done"], worker.rows_done)
            rows.add_metric([worker.name, "failed"], worker.rows_failed)
        yield slices
        yield rows


def render_metrics(accept: str = "") -> tuple[bytes, str]:
    """BatchChat's metrics in the format the scraper asks for (`Accept`: OpenMetrics or
    the Prometheus text format), with its content type."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BatchChatCollector())
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type


def _per_provider(family: GaugeMetricFamily, batches) -> GaugeMetricFamily:
    """`family` with the count of the active ones of `batches` per AI provider."""
    per_provider = batches.order_by().active().values_list("ai_provider").annotate(n=Count("id"))
    for provider, n in per_provider:
        family.add_metric([provider], n)
    return family
