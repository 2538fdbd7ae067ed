"""Benchmark: JSON create bodies read the way the API reads them (batches.uploads.json_body).

Run: .venv/bin/python bench/bench_json_body.py [--only NAME ...]

Each body is built here and written to a temporary file; a fresh child process loads it
and reads it with `read_json_body` and its rows' reader, and prints the CPU seconds of
the reading and how far its peak resident memory (VmHWM) rose above what it held before
(Django and the body's bytes). No figure is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def body(name: str) -> bytes:
    if name == "rows-10k-18mb":  # the largest accepted body: 10,000 long rows of 12 keys
        rows = [
            {"question": f"Q{n}? " + "w" * 1500, **{f"k{i}": "v" * 20 for i in range(10)}}
            for n in range(10_000)
        ]
        return json.dumps({"name": "x", "rows": rows}).encode()
    if name == "rows-1m-past-the-limit":  # refused after 10,001 entries
        return b'{"rows": [' + b",".join([b'{"question": "Q?"}'] * 1_000_000) + b"]}"
    if name == "blank-entries-20mb":  # 6.9 million `{}`: every entry read, none kept
        return b'{"rows": [' + b",".join([b"{}"] * 6_900_000) + b"]}"
    if name == "wide-row-100k-keys":  # refused at the row's end, 500 values kept at most
        record = {"question": "Wide?", **{f"k{n}": n for n in range(100_000)}}
        return json.dumps({"rows": [record]}).encode()
    if name == "lone-surrogate-18mb":  # read by ijson's pure-Python backend
        return body("rows-10k-18mb").replace(b'"x"', b'"\\ud800"', 1)
    raise ValueError(name)


NAMES = (
    "rows-10k-18mb",
    "rows-1m-past-the-limit",
    "blank-entries-20mb",
    "wide-row-100k-keys",
    "lone-surrogate-18mb",
)


def memory(field: str) -> int:
    """A figure of /proc/self/status, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) // 1024
    return 0


def child(name: str, path: str) -> None:
    import time

    import django

    django.setup()
    from batches.errors import JsonBodyError, UploadError
    from batches.uploads import ColumnChoice, read_json_body

    data = Path(path).read_bytes()
    before = memory("VmRSS")
    start = time.process_time()
    try:
        _fields, reader = read_json_body(data)
        outcome = f"{len(reader(ColumnChoice())):,} rows" if reader else "no rows"
    except (UploadError, JsonBodyError) as exc:
        outcome = f"refused: {str(exc)[:70]}"
    cpu = time.process_time() - start
    rise = memory("VmHWM") - before
    print(f"{name:24} {len(data) / 1e6:5.1f} MB  {cpu:5.2f} s CPU  +{rise:4} MB peak  {outcome}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=NAMES)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "batchchat.settings"}
    env.pop("DATABASE_URL", None)
    for name in args.only or NAMES:
        with tempfile.NamedTemporaryFile(suffix=".json") as file:
            file.write(body(name))
            file.flush()
            command = [sys.executable, __file__, "--child", name, file.name]
            subprocess.run(command, cwd=ROOT, env=env, check=True)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
