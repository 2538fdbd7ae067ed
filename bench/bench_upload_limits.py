"""Benchmark: hostile and largest-allowed uploads, parsed the way an upload is.

Run: .venv/bin/python bench/bench_upload_limits.py [--only NAME ...] [--stored]

Each file is built here (in memory, from streams: no bomb is ever unpacked by this script),
written to a temporary folder, then parsed by `parse_upload` in a fresh child process, so
that the CPU time and the peak resident memory (VmHWM, read in the child) belong to that
parse alone (the child's Django alone is about 70 MB). Prints one line per file: its size, CPU seconds, wall seconds, peak RSS,
and what the parser said. No figure is asserted; docs/benchmarks.md quotes them.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOOD = ROOT / "batches" / "tests" / "data" / "good.xlsx"
NS = b'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
SHEET = "xl/worksheets/sheet1.xml"
STRINGS = "xl/sharedStrings.xml"


def workbook(parts: dict[str, tuple[bytes, bytes, int, bytes]]) -> bytes:
    """good.xlsx with parts replaced by head + repeated * times + tail, written as streams;
    the shared-string table is declared, so that openpyxl reads it."""
    source = zipfile.ZipFile(GOOD)
    out = io.BytesIO()
    declared = (
        b'<Override PartName="/xl/sharedStrings.xml" ContentType="application/'
        b'vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>'
    )
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for name in source.namelist():
            content = source.read(name)
            if name == "[Content_Types].xml" and STRINGS in parts:
                content = content.replace(b"</Types>", declared)
            if name not in parts:
                target.writestr(name, content)
        for name, (head, repeated, times, tail) in parts.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            with target.open(info, "w", force_zip64=True) as stream:
                stream.write(head)
                per_block = max(1, (1 << 20) // len(repeated))  # about 1 MB at a time
                block = repeated * per_block
                for _ in range(times // per_block):
                    stream.write(block)
                stream.write(repeated * (times % per_block))
                stream.write(tail)
    return out.getvalue()


def sheet(rows: int, row_xml: bytes) -> tuple[bytes, bytes, int, bytes]:
    head = b"<worksheet " + NS + b'><sheetData><row><c t="inlineStr"><is><t>question</t></is></c>'
    head += b"".join(b'<c t="inlineStr"><is><t>c%d</t></is></c>' % n for n in range(19))
    return head + b"</row>", row_xml, rows, b"</sheetData></worksheet>"


def strings(count: int, text: bytes = b"a") -> tuple[bytes, bytes, int, bytes]:
    return b"<sst " + NS + b">", b"<si><t>" + text + b"</t></si>", count, b"</sst>"


LONG_CELL = b'<c t="inlineStr"><is><t>' + b"y" * 3000 + b"</t></is></c>"


def cells_row(columns: int) -> bytes:
    first = b'<c t="inlineStr"><is><t>What is the question here?</t></is></c>'
    return b"<row>" + first + b'<c t="inlineStr"><is><t>x</t></is></c>' * (columns - 1) + b"</row>"


FILES = {
    # The adversarial pass: 25 million tiny strings (425 MB unpacked) ...
    "shared-strings-bomb": lambda: workbook({STRINGS: strings(25_000_000)}),
    # ... and a 520 MB sheet.
    "sheet-bomb": lambda: workbook(
        {SHEET: sheet(4_000_000, b"<row><c><v>1</v></c>" * 3 + b"</row>")}
    ),
    # The most a workbook may hold: 9,999 rows of 20 cells (199,980 cells) ...
    # One empty cell at column XFD per row (issue 29): openpyxl padded each to 16,384.
    "padded-rows-xfd": lambda: workbook({SHEET: sheet(199_990, b'<row><c r="XFD1"/></row>')}),
    "padded-rows-col-400": lambda: workbook(
        {SHEET: sheet(2_000, b'<row><c r="A1"><v>1</v></c><c r="OJ1"><v>1</v></c></row>')}
    ),
    "max-cells": lambda: workbook({SHEET: sheet(9_999, cells_row(20))}),
    # ... 100,000 shared strings, the limit ...
    "max-shared-strings": lambda: workbook({STRINGS: strings(100_000, b"a shared text")}),
    # ... and a 60 MB sheet of long texts (10 columns of 3,000 characters).
    "long-texts-60mb": lambda: workbook(
        {
            SHEET: sheet(
                2_000,
                b"<row>" + LONG_CELL * 10 + b"</row>",
            )
        }
    ),
    # CSVs: 9.5 million one-letter questions, and 19 million blank lines, both 19 MB.
    "csv-9.5m-rows": lambda: b"question\n" + b"q\n" * 9_500_000,
    "csv-19m-blank-lines": lambda: b"question\n" + b"\n" * 19_000_000,
}


def _peak_rss_mb() -> float:
    """This process's peak resident memory: VmHWM, which starts anew at exec (ru_maxrss
    can carry the parent's peak over on Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(path: str) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "batchchat.settings")
    import django

    django.setup()
    from batches.errors import UploadError
    from batches.uploads import parse_upload

    data = Path(path).read_bytes()
    cpu, wall = time.process_time(), time.perf_counter()
    try:
        said = f"accepted, {len(parse_upload(data=data, filename='x').rows):,} rows"
    except UploadError as exc:
        said = f"{exc.code}: {exc.message[:90]}"
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    peak = _peak_rss_mb()
    print(f"{cpu:.2f}\t{wall:.2f}\t{peak:.0f}\t{said}")


def amplifying_csv() -> bytes:
    """Issue 29 item 2: a question column plus 499 random 2,000-character headers, 200 rows."""
    import random

    rng = random.Random(29)
    letters = "abcdefghijklmnopqrstuvwxyz"
    headers = ["question"] + ["".join(rng.choices(letters, k=2_000)) for _ in range(499)]
    lines = [",".join(headers)]
    lines += [f"Question {n}?," + ",".join(["v"] * 499) for n in range(200)]
    return ("\n".join(lines) + "\n").encode()


def long_headers_workbook(length: int) -> bytes:
    """Issue 29 item 3: 500 headers of `length` characters, one row below them."""
    row = b"<row>" + b"".join(
        b'<c t="inlineStr"><is><t>%d' % n + b"h" * (length - 4) + b"</t></is></c>"
        for n in range(500)
    )
    head = b"<worksheet " + NS + b"><sheetData>" + row + b"</row>"
    body = b'<row><c t="inlineStr"><is><t>What?</t></is></c></row>'
    return workbook({SHEET: (head, body, 1, b"</sheetData></worksheet>")})


def stored_and_pages() -> None:
    """What a batch stores of the amplifying CSV (the JSON of every BatchItem.row plus
    Batch.input_columns once, as create_batch_run writes them), and the column chooser's
    size (its htmx partial, rendered as the page renders it) for long headers."""
    import json

    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "batchchat.settings")
    import django

    django.setup()
    from django.template.loader import render_to_string

    from batches.errors import UploadError
    from batches.forms import ColumnsForm
    from batches.models import BatchItem, UploadDraft
    from batches.services import draft_preview
    from batches.uploads import parse_upload

    data = amplifying_csv()
    parsed = parse_upload(data=data, filename="amplifying.csv")
    headers = parsed.columns
    stored = len(json.dumps(headers)) + sum(
        len(json.dumps(BatchItem.stored_row(row.columns, headers))) for row in parsed.rows
    )
    before = sum(len(json.dumps(row.columns)) for row in parsed.rows)
    print(
        f"amplifying CSV {len(data) / 1e6:.2f} MB: stores {stored / 1e6:.2f} MB "
        f"({stored / len(data):.1f}x; a dict per row stored {before / 1e6:.0f} MB)"
    )
    for length in (32_000, 2_048):
        data = long_headers_workbook(length)
        try:
            parse_upload(data=data, filename="x.xlsx", preview=5)
        except UploadError as exc:
            print(f"500 x {length:,}-char headers ({len(data) / 1e3:.0f} KB): refused, {exc.code}")
            continue
        draft = UploadDraft(pk=1, filename="x.xlsx", data=data)
        draft.preview = draft_preview(data=data, filename="x.xlsx")
        form = ColumnsForm(owner=None, draft=draft)
        page = render_to_string(
            "batches/columns.html#chooser", {"form": form, "csrf_token": "bench"}
        )
        print(
            f"500 x {length:,}-char headers ({len(data) / 1e3:.0f} KB): chooser "
            f"{len(page.encode()) / 1e6:.2f} MB"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=sorted(FILES), help="files to run")
    parser.add_argument(
        "--stored", action="store_true", help="only the stored bytes and chooser sizes"
    )
    args = parser.parse_args()
    if args.stored:
        stored_and_pages()
        return
    print(f"{'file':<22} {'size':>8} {'CPU s':>6} {'wall s':>6} {'peak RSS':>9}  parser")
    with tempfile.TemporaryDirectory() as folder:
        for name in args.only or FILES:
            data = FILES[name]()
            path = Path(folder) / name
            path.write_bytes(data)
            del data
            result = subprocess.run(
                [sys.executable, __file__, "--child", str(path)],
                capture_output=True,
                text=True,
                check=True,
            )
            cpu, wall, peak, said = result.stdout.strip().splitlines()[-1].split("\t")
            size = path.stat().st_size / 1e6
            print(f"{name:<22} {size:>6.1f}MB {cpu:>6} {wall:>6} {peak:>6} MB  {said}")
    if not args.only:
        stored_and_pages()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(sys.argv[2])
    else:
        main()
