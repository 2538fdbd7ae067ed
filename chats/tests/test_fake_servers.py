"""The fake provider server itself: standalone process, concurrency, faults, SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

from chats.tests.fake_servers import FakeAIServer

ROOT = Path(__file__).resolve().parents[2]
BODY = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()


def _post(url: str) -> int:
    request = urllib.request.Request(
        f"{url}/v1/chat/completions", data=BODY, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            json.load(response)
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_standalone_process_prints_its_url_serves_hundreds_at_once_and_stops_on_sigterm():
    process = subprocess.Popen(
        [sys.executable, "-m", "chats.tests.fake_servers", "--port", "0", "--latency", "0.3"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        statuses: list[int] = []
        lock = threading.Lock()

        def call() -> None:
            status = _post(url)
            with lock:
                statuses.append(status)

        threads = [threading.Thread(target=call) for _ in range(200)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert statuses == [200] * 200
        # Concurrent: requests overlapped inside the server (each waits 0.3 s there).
        with urllib.request.urlopen(f"{url}/stats", timeout=30) as response:
            stats = json.load(response)
        assert stats["max_in_flight"] > 1
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_fault_rate_is_reproducible_with_a_seed():
    def statuses(seed: int) -> list[int]:
        with FakeAIServer(fault_rate=0.5, seed=seed, retry_after=0.01) as server:
            return [_post(server.url) for _ in range(20)]

    first = statuses(7)
    assert first == statuses(7)
    assert set(first) == {200, 429, 500}


def test_requests_are_recorded_and_queued_faults_served_in_order():
    with FakeAIServer() as server:
        server.fail_next(1, "503", retry_after=0.5)
        server.fail_next(1, "400")
        assert [_post(server.url) for _ in range(3)] == [503, 400, 200]
        assert [r.path for r in server.requests] == ["/v1/chat/completions"] * 3
        assert server.requests[0].body["model"] == "m"
        assert server.faults_served == 2
