"""`bench_pages.py --load USERS`: the pages under load (issue 28, item 5).

Starts the fake OpenAI-compatible provider (bench/fake_provider.py) and the production
server (`bin/serve`: gunicorn 2 x 16 threads and the background worker) on a throwaway
PostgreSQL database, then runs a batch of ROWS rows at concurrency C twice: alone, and with
USERS signed-in users watching it as the batch page does (static/js/app.js): the page's one
poll every 2 s, backing off to 10 s while it answers 204 (nothing changed), and the list
page and the batch page opened again every 10 to 30 s. Prints p50 / p95 per page (the
users' first visits, all within 2 s of the start, apart: "arrival"), errors, and the
batch's rows per second with and without the users.

The users are staff accounts (staff may read every batch), signed in through sessions made
in this process: it shares the server's database and secret key.
"""

from __future__ import annotations

import asyncio
import html
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECRET_KEY = "bench-only-secret-key-bench-only-secret-key-0123456789"
POLL_MIN, POLL_MAX = 2.0, 10.0  # as static/js/app.js
PAGES_EVERY = (10.0, 30.0)  # a user opens the list and the batch page again this often
POLL_RE = re.compile(r'<section id="batch-progress"[^>]*hx-get="([^"]+)"')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_fake_provider(latency: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "fake_provider.py"), "--latency", str(latency)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    return proc, proc.stdout.readline().strip()


def server_env(*, database_url: str, provider: str, concurrency: int, static_root: str) -> dict:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": SECRET_KEY,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,testserver",
        "DJANGO_SECURE_COOKIES": "0",
        "DJANGO_STATIC_ROOT": static_root,
        "COMPATIBLE_BASE_URL": provider + "/v1",
        "COMPATIBLE_MODELS": "local-model",
        "BATCH_CONCURRENCY": str(concurrency),
        "CELERY_BROKER_URL": "",
        "LOG_LEVEL": "WARNING",
    }


def start_server(env: dict, port: int, log: Path) -> subprocess.Popen:
    """bin/serve in its own process group (stopped with SIGTERM, as systemd would)."""
    proc = subprocess.Popen(
        [str(ROOT / "bin" / "serve")],
        cwd=ROOT,
        env={**env, "BIND": f"127.0.0.1:{port}"},
        stdout=subprocess.DEVNULL,  # gunicorn's access log
        stderr=open(log, "w"),  # noqa: SIM115 - kept open for the server's life
        start_new_session=True,
    )
    import httpx

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"bin/serve stopped (exit {proc.returncode}); see {log}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"bin/serve did not answer /healthz; see {log}")


def stop_server(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def make_batch(owner, rows: int):
    """A batch of `rows` questions for the fake provider, uploaded (not started)."""
    from batches.services import create_batch_run
    from batches.uploads import ParsedRow

    batch = create_batch_run(
        uploader=owner,
        name=f"load {time.strftime('%H:%M:%S')}",
        rows=[
            ParsedRow(question=f"Question {i}?", columns={"question": f"Question {i}?"})
            for i in range(rows)
        ],
        ai_provider="compatible",
        model="local-model",
        search_provider="none",
    )
    return batch


def start(batch):
    from batches.services import start_batch

    return start_batch(batch=batch)


def warm_up(base: str, cookies: list[str], batch_url: str) -> None:
    """The pages are opened before anything is timed, many at once so that both gunicorn
    workers take some: a worker's first page imports what the pages use (seconds)."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    def visit(cookie: str) -> None:
        with httpx.Client(base_url=base, cookies={"sessionid": cookie}, timeout=300) as client:
            for url in ("/batches/", batch_url, "/batches/", batch_url):
                client.get(url).raise_for_status()

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(visit, (cookies * 8)[: max(len(cookies), 16)]))


def rows_per_second(batch) -> float:
    from django.db.models import Max, Min

    span = batch.items.aggregate(first=Min("finished_at"), last=Max("finished_at"))
    claimed = batch.started_at or span["first"]
    return batch.total_items / max((span["last"] - claimed).total_seconds(), 1e-3)


def wait_finished(batch, *, timeout: float = 1800) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch.refresh_from_db()
        if not batch.is_active:
            return
        time.sleep(0.5)
    raise SystemExit(f"batch {batch.pk} did not finish in {timeout:.0f} s")


class Recorder:
    def __init__(self) -> None:
        self.times: dict[str, list[float]] = {}
        self.errors: dict[str, list[str]] = {}
        self.retried = 0  # requests asked again after a closed keep-alive connection

    def add(self, label: str, ms: float | None, error: str | None = None) -> None:
        if ms is not None:
            self.times.setdefault(label, []).append(ms)
        if error:
            self.errors.setdefault(label, []).append(error)


async def watch(client, batch_url: str, finished: asyncio.Event, record: Recorder) -> None:
    """One user on the batch page, as static/js/app.js polls it."""

    async def get(url: str, label: str, **headers):
        import httpx

        started = time.perf_counter()
        for attempt in (1, 2):
            try:
                response = await client.get(url, headers=headers)
                break
            except (httpx.RemoteProtocolError, httpx.ReadError) as error:
                # A kept-alive connection that gunicorn closed (its keep-alive is 2 s, the
                # poll's pace) as the request went out: asked again once, as browsers do.
                if attempt == 1:
                    record.retried += 1
                    continue
                record.add(label, None, f"{type(error).__name__}: {error}")
                return None
            except Exception as error:  # noqa: BLE001 - every failure is counted
                record.add(label, None, f"{type(error).__name__}: {error}")
                return None
        ms = (time.perf_counter() - started) * 1000
        if label == "batch poll":
            label = "batch poll, 204" if response.status_code == 204 else "batch poll, changed"
        ok = response.status_code in (200, 204, 286)
        record.add(label, ms, None if ok else f"HTTP {response.status_code}")
        return response

    await asyncio.sleep(random.uniform(0, POLL_MIN))  # users do not arrive in step
    poll, delay, pages_at = None, POLL_MIN, 0.0
    while not finished.is_set():
        if time.monotonic() >= pages_at:
            # The first visit of each user is apart: the 20 arrive within 2 s, as the batch
            # starts, on pages nothing is kept for yet (docs/pages.md, "Polling").
            first = ", arrival" if pages_at == 0.0 else ""
            await get("/batches/", "list page" + first)
            page = await get(batch_url, "batch page" + first)
            found = POLL_RE.search(page.text) if page is not None else None
            poll = html.unescape(found.group(1)) if found else None
            delay, pages_at = POLL_MIN, time.monotonic() + random.uniform(*PAGES_EVERY)
        try:
            await asyncio.wait_for(finished.wait(), delay)
            return
        except TimeoutError:
            pass
        if poll is None:
            continue
        response = await get(poll, "batch poll", **{"HX-Request": "true"})
        if response is None or response.status_code >= 400 or response.status_code == 204:
            delay = min(delay * 2, POLL_MAX)
        elif response.status_code == 286:
            poll = None
        else:
            found = POLL_RE.search(response.text)
            poll = html.unescape(found.group(1)) if found else None
            delay = POLL_MIN


async def run_users(base: str, cookies: list[str], batch, record: Recorder) -> None:
    import httpx
    from asgiref.sync import sync_to_async

    finished = asyncio.Event()
    limits = httpx.Limits(max_connections=4)
    clients = [
        httpx.AsyncClient(base_url=base, cookies={"sessionid": cookie}, timeout=60, limits=limits)
        for cookie in cookies
    ]
    tasks = [
        asyncio.create_task(watch(client, batch.get_absolute_url(), finished, record))
        for client in clients
    ]
    await sync_to_async(wait_finished, thread_sensitive=False)(batch)
    finished.set()
    await asyncio.gather(*tasks)
    for client in clients:
        await client.aclose()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def main_load(args, setup_django) -> None:
    """Alone, then with `args.load` users: the batch's speed and the pages' times."""
    import tempfile

    if not args.database_url.startswith("postgres"):
        raise SystemExit("--load needs --database-url postgres://... (a throwaway database)")
    tmp = tempfile.mkdtemp(prefix="bench-pages-load-")
    fake, provider = start_fake_provider(args.latency)
    env = server_env(
        database_url=args.database_url,
        provider=provider,
        concurrency=args.concurrency,
        static_root=f"{tmp}/static",
    )
    os.environ.update({k: v for k, v in env.items() if k != "DJANGO_ALLOWED_HOSTS"})
    setup_django(tmp, args.database_url)
    from django.contrib.auth import get_user_model
    from django.test import Client

    port = free_port()
    server = start_server(env, port, Path(tmp) / "serve.log")
    try:
        users = get_user_model().objects
        stamp = time.time_ns()
        owner = users.create_user(f"load-owner-{stamp}", password="x")
        cookies = []
        for n in range(args.load):
            viewer = users.create_user(f"load-viewer-{stamp}-{n}", password="x", is_staff=True)
            client = Client()
            client.force_login(viewer)
            cookies.append(client.cookies["sessionid"].value)
        base = f"http://127.0.0.1:{port}"
        alone = make_batch(owner, args.load_rows)
        watched = make_batch(owner, args.load_rows)
        warm_up(base, cookies, watched.get_absolute_url())
        load_before = os.getloadavg()[0]
        start(alone)
        wait_finished(alone)
        alone_rate = rows_per_second(alone)
        record = Recorder()
        start(watched)
        asyncio.run(run_users(base, cookies, watched, record))
        watched.refresh_from_db()
        watched_rate = rows_per_second(watched)
        load_after = os.getloadavg()[0]
    finally:
        stop_server(server)
        fake.terminate()
        fake.wait(10)

    print(
        f"bin/serve (gunicorn 2 x 16 threads + worker), PostgreSQL; a {args.load_rows:,}-row "
        f"batch at C {args.concurrency}, provider latency {args.latency:g} s; "
        f"{args.load} users; load average {load_before:.2f} before, {load_after:.2f} after"
    )
    print(f"{'page':<22} {'requests':>9} {'p50 ms':>8} {'p95 ms':>8} {'errors':>7}")
    labels = ("list page", "batch page", "batch poll, changed", "batch poll, 204")
    labels += ("list page, arrival", "batch page, arrival")
    for label in labels:
        times = record.times.get(label, [])
        errors = len(record.errors.get(label, []))
        if not times and not errors:
            continue
        p50 = statistics.median(times) if times else float("nan")
        p95 = percentile(times, 0.95) if times else float("nan")
        print(f"{label:<22} {len(times):>9} {p50:>8.0f} {p95:>8.0f} {errors:>7}")
    for label, errors in record.errors.items():
        print(f"  {label}: {len(errors)} errors, {errors[:3]}")
    print(f"asked again after a closed keep-alive connection: {record.retried}")
    print(
        f"batch: {alone_rate:.1f} rows/s alone, {watched_rate:.1f} rows/s watched "
        f"({watched_rate / alone_rate:.2f} of its speed; "
        f"{watched.processed_items:,} done, {watched.failed_items:,} failed)"
    )
