"""bin/run as a user runs it: the web server and the worker, no browser. A batch started
through the API completes with no further call; a worker killed with SIGKILL mid-run is
started again (by bin/run, after BATCHCHAT_WORKER_RESTART_DELAY) and the batch completes
with no row answered twice; Ctrl-C stops everything."""

from __future__ import annotations

import json
import os
import signal
import sqlite3

import pytest

from batchchat.tests.live import (
    api_token,
    app_env,
    children,
    cmdline,
    free_port,
    health,
    http,
    once_per_suite,
    running,
    start,
    stop_group,
)
from batchchat.tests.waiting import wait_until
from chats.tests.fake_servers import FakeAIServer

pytestmark = [pytest.mark.slow, once_per_suite]

ROWS = 60


def test_a_batch_started_through_the_api_completes_with_no_page_open(tmp_path):
    with FakeAIServer(latency=0.25) as fake_ai:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        # Long enough to see the status say "waiting for a worker" before the restart.
        env = app_env(tmp_path, fake_ai, port, BATCHCHAT_WORKER_RESTART_DELAY=20)
        app = start(["bin/run"], env, tmp_path / "bin-run.log")
        started = [app.pid]
        try:
            _run(app, env, base, tmp_path, started, fake_ai)
        finally:
            for pid in started:
                stop_group(pid)
            app.wait(timeout=30)


def _run(app, env, base, tmp_path, started, fake_ai) -> None:
    log = tmp_path / "bin-run.log"
    # 1. bin/run migrates, then starts the server and the worker: both answer.
    wait_until(
        lambda: (h := health(base)) and h["checks"]["worker"]["alive"] == 1,
        timeout=180,
        message=lambda: f"bin/run did not come up with a live worker:\n{log.read_text()}",
    )
    kids = children(app.pid)
    worker = next(pid for pid in kids if "run_worker" in cmdline(pid))
    server = next(pid for pid in kids if "runserver" in cmdline(pid))
    started.extend([worker, server])

    # 2. Create and start a batch through the API, then only watch.
    auth = {"Authorization": f"Bearer {api_token(env)}"}
    rows = [{"question": f"Question {n}?"} for n in range(ROWS)]
    status, _h, body = http(
        "POST",
        f"{base}/api/batch/create",
        data={
            "name": "No page open",
            "aiProvider": "compatible",
            "model": "local-model",
            "searchProvider": "none",
            "rows": rows,
        },
        headers=auth,
    )
    assert status == 201, body
    batch_id = json.loads(body)["batchId"]
    status, _h, body = http(
        "POST", f"{base}/api/batch/start", data={"batchId": batch_id}, headers=auth
    )
    assert status == 200, body
    assert json.loads(body)["runner"] == "worker"

    def batch() -> dict:
        code, _headers, payload = http(
            "GET", f"{base}/api/batch/status?batchId={batch_id}", headers=auth
        )
        assert code == 200, payload
        return json.loads(payload)

    wait_until(
        lambda: batch()["processedItems"] >= 8,
        timeout=120,
        message=lambda: f"the worker did not process the batch:\n{log.read_text()}",
    )
    assert batch()["activity"] == "processing"

    # 3. SIGKILL the worker mid-run: its rows stay leased, nothing moves the batch.
    os.kill(worker, signal.SIGKILL)
    wait_until(lambda: not running(worker), timeout=30, message="the worker survived SIGKILL")
    killed_at = batch()
    assert killed_at["status"] == "processing" and killed_at["processedItems"] < ROWS
    waiting = wait_until(
        lambda: (b := batch())["activity"] == "waiting_for_worker" and b,
        timeout=60,
        message="the status never said the batch waits for a worker",
    )
    assert waiting["status"] == "processing"
    assert health(base)["checks"]["worker"] == {"ok": False, "mode": "worker", "alive": 0}

    # 4. bin/run starts the worker again: it takes over the dead worker's rows.
    again = wait_until(
        lambda: [pid for pid in children(app.pid) if "run_worker" in cmdline(pid)],
        timeout=60,
        message=lambda: f"bin/run did not start the worker again:\n{log.read_text()}",
    )[0]
    started.append(again)
    done = wait_until(
        lambda: (b := batch())["status"] == "completed" and b,
        timeout=180,
        message=lambda: f"the batch did not complete:\n{log.read_text()}",
    )
    assert (done["processedItems"], done["failedItems"], done["totalItems"]) == (ROWS, 0, ROWS)
    assert done["activity"] is None

    # 5. No row answered twice: one interaction per row, each row linked to its own.
    db = sqlite3.connect(tmp_path / "db.sqlite3")
    try:
        (interactions,) = db.execute("SELECT COUNT(*) FROM chats_interaction").fetchone()
        per_chat = db.execute(
            "SELECT MAX(n) FROM (SELECT COUNT(*) AS n FROM chats_interaction GROUP BY chat_id)"
        ).fetchone()[0]
        linked = db.execute(
            "SELECT COUNT(DISTINCT interaction_id) FROM batches_batchitem "
            "WHERE batch_id = ? AND status = 'done'",
            (batch_id,),
        ).fetchone()[0]
    finally:
        db.close()
    assert (interactions, per_chat, linked) == (ROWS, 1, ROWS)
    # The killed worker's calls in flight were made again; every row was answered.
    assert len(fake_ai.requests) >= ROWS

    # 6. Ctrl-C on bin/run stops the server and the worker (which stops cleanly).
    app.send_signal(signal.SIGINT)
    assert app.wait(timeout=60) == 130
    assert not running(server) and not running(again)
    assert health(base) is None
    assert "stopped after" in log.read_text()
