"""Write the upload test files in this folder (the output is committed).

Run: .venv/bin/python batches/tests/data/make_files.py

Deterministic: fixed seeds, fixed workbook dates and ZIP timestamps, so re-running it
changes nothing unless this script changed.
"""

from __future__ import annotations

import datetime as dt
import io
import random
import re
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape

from openpyxl import Workbook
from openpyxl.styles import PatternFill

HERE = Path(__file__).resolve().parent
FIXED = dt.datetime(2024, 1, 1)


def write(name: str, data: bytes) -> None:
    (HERE / name).write_bytes(data)


def text(name: str, content: str, encoding: str = "utf-8") -> None:
    write(name, content.encode(encoding))


def workbook_bytes(wb: Workbook) -> bytes:
    wb.properties.created = wb.properties.modified = FIXED
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


def repack(data: bytes, edit=None, *, extra: dict[str, bytes] | None = None) -> bytes:
    """Rewrite a ZIP with fixed timestamps; `edit(name, bytes) -> bytes` changes parts."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        parts = {name: source.read(name) for name in source.namelist()}
        parts.update(extra or {})
        for name, content in parts.items():
            if name == "docProps/core.xml":  # openpyxl stamps the save time here
                content = re.sub(
                    rb"(<dcterms:modified[^>]*>)[^<]*", rb"\g<1>2024-01-01T00:00:00Z", content
                )
            if edit is not None:
                content = edit(name, content)
            info = zipfile.ZipInfo(name, date_time=FIXED.timetuple()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(info, content)
    return out.getvalue()


def cache_formula(xml: str, ref: str, value: str, *, is_text: bool) -> str:
    """Write the cached result a spreadsheet app would store (openpyxl cannot compute it)."""
    pattern = re.compile(rf'<c r="{ref}"([^>]*)><f>(.*?)</f><v\s*/>(</c>)')
    kind = ' t="str"' if is_text else ""
    new, count = pattern.subn(
        lambda m: f'<c r="{ref}"{kind}><f>{m.group(2)}</f><v>{escape(value)}</v></c>', xml
    )
    assert count == 1, ref
    return new


def make_csv_files() -> None:
    text(
        "utf8.csv",
        "question,url\n"
        "How do I renew my passport?,https://www.canada.ca/en/passport.html\n"
        "Où puis-je trouver mon numéro d’assurance sociale?,https://www.canada.ca/fr.html\n"
        "Is the 😀 emoji kept?,\n",
    )
    write(
        "utf8_bom.csv",
        b"\xef\xbb\xbf" + b"Question,Department\nWhen is the tax deadline?,CRA\nWhat is EI?,ESDC\n",
    )
    # Excel's "Unicode Text" export: UTF-16 LE with BOM, tab-separated.
    text(
        "utf16_le_bom.csv",
        "question\tnote\nCombien coûte un passeport?\tprix\nWhat is the GST rate?\ttax\n",
        "utf-16",  # Python writes the BOM in native (little-endian) order
    )
    write(
        "utf16_be_bom.csv",
        b"\xfe\xff" + "question,note\nÇa marche en big-endian?,été\n".encode("utf-16-be"),
    )
    text(
        "cp1252_accents.csv",
        "question,note\n"
        "Où est le bureau de Montréal?,“guillemets” – tiret\n"
        "Qu’est-ce que la TPS?,café €5\n",
        "cp1252",
    )
    text(
        "semicolon.csv",
        "Question;URL;Note\n"
        "How do I apply, and when?;https://example.ca/apply;a, b\n"
        "What is the fee;https://example.ca/fee;none\n",
    )
    text("excel_sep_line.csv", "sep=;\nquestion;note\nWhat, exactly?;a\n;b\n")
    text("tab.tsv", "question\turl\nWhat is a SIN, exactly?\thttps://example.ca/sin\n")
    text(
        "quoted_newlines.csv",
        'question,url\r\n"First line\r\nsecond line, with comma",https://example.ca/a\r\n'
        '"He said ""hello""",https://example.ca/b\r\n',
    )
    text(
        "alias_redactedquestion.csv",
        "RedactedQuestion,referringUrl\nWhat is XXX's benefit?,https://example.ca/x\n",
    )
    text(
        "alias_problem_details.csv",
        "Problem Details,Page\nThe form will not submit,https://example.ca/form\n",
    )
    text("alias_prompt.csv", "id,prompt\n1,Summarise the EI rules\n")
    text(
        "alias_question_spaces.csv",
        " QUESTION ,Referring-URL,Chat_ID\nWhat is the CPP?,https://example.ca/cpp,c1\n",
    )
    text(
        "alias_priority.csv",
        "prompt,Redacted_Question,Question\nfrom prompt,from redacted,from question\n",
    )
    text(
        "chatid_grouping.csv",
        "chatId,question\n"
        "a,What is EI?\n"
        "b,How do I file taxes?\n"
        "a,How long does it last?\n"
        ",A lone question\n"
        "a,And how do I apply?\n",
    )
    text(
        "extra_columns.csv",
        "question,name,name,,department,column 5\n"
        "What is EI?,Ann,Bob,unnamed value,ESDC,x\n"
        "Short row?,Cy\n"
        "Long row?,Di,Ed,,CRA,y,beyond the header,,\n",
    )
    text(
        "blank_rows.csv",
        "\n,,\nquestion,url,note\n,,\nFirst?,,\n\n   ,  ,\nSecond?,https://example.ca,\n,,\n",
    )
    text(
        "one_column.csv",
        "question\nWhat is X, and why?\nA second; with semicolon\n",
    )
    text(
        "headerless.csv",
        "How do I renew my passport?,https://example.ca\nWhat is EI?,https://example.ca\n",
    )
    text("empty.csv", "")
    text("whitespace_only.csv", "  \r\n\r\n")
    text("header_only.csv", "question,url\n\n,\n")
    text("no_question_column.csv", "query,url\nWhat is EI?,https://example.ca\n")
    text(
        "empty_question.csv",
        "question,url\nFirst?,https://a.ca\n  ,https://b.ca\nThird?,\n,https://d.ca\n",
    )
    text("many_rows.csv", "question\n" + "".join(f"Question {i}?\n" for i in range(30)))
    text(
        "large.csv",
        "question\n"
        + "".join(f"Question number {i} about a fairly long topic?\n" for i in range(120)),
    )
    # Neither UTF-8 (0x81 is a continuation byte) nor Windows-1252 (0x81 is undefined).
    write("bad_encoding.csv", b"question\nCaf\xe9 \x81 au lait?\n")
    text(
        "unclosed_quote.csv",
        'question,url\n"Unclosed question,https://example.ca\n'
        + "".join(f"Question {i} that follows,https://example.ca/{i}\n" for i in range(1200)),
    )
    write("utf16_no_bom.csv", "question\nWhat is EI?\n".encode("utf-16-le"))
    text(
        "html_table.xls",
        "<!DOCTYPE html>\n<html><body><table><tr><td>question</td></tr></table></body></html>\n",
    )


def make_binary_files() -> None:
    write("old_excel.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(range(256)) * 4)
    write(
        "document.pdf",
        b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n",
    )
    write(
        "image.png",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06"
        b"\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\nIDATx\x9cc\x00\x01\x00\x00\x05\x00"
        b"\x01\r\n-\xb4\x00\x00\x00\x00IEND\xaeB`\x82",
    )
    rng = random.Random(42)
    write("junk.bin", b"\x13\x37" + rng.randbytes(2048))
    # Control characters but no NUL byte: valid ASCII, still not text.
    write("junk_no_nul.bin", bytes(rng.randrange(1, 32) for _ in range(2048)))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(zipfile.ZipInfo("questions.csv", FIXED.timetuple()[:6]), "question\nHi\n")
    write("not_xlsx.zip", out.getvalue())
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        info = zipfile.ZipInfo("mimetype", FIXED.timetuple()[:6])
        archive.writestr(info, "application/vnd.oasis.opendocument.spreadsheet")
        archive.writestr(zipfile.ZipInfo("content.xml", FIXED.timetuple()[:6]), "<x/>")
    write("spreadsheet.ods", out.getvalue())


def make_xlsx_files() -> None:
    wb = Workbook()
    ws = wb.active
    ws.title = "Questions"
    ws.append(["Question", "URL", "count", "ratio", "when", "at", "flag", "", "chat id"])
    ws.append(
        [
            "  How do I renew my passport?  ",
            "https://example.ca/p",
            3.0,
            0.25,
            dt.date(2024, 3, 1),
            dt.datetime(2024, 3, 1, 14, 30),
            True,
            None,
            "k1",
        ]
    )
    ws.append([])  # blank row 3: skipped
    ws.append(["What is EI?", None, 12, 1e-7, None, None, False, None, "k1"])
    # A filled-in but empty cell far to the right: spreadsheet padding, dropped.
    ws.cell(row=2, column=12).fill = PatternFill("solid", fgColor="FFFF00")
    notes = wb.create_sheet("Notes")
    notes.append(["question"])
    notes.append(["From the second sheet: must not be read"])
    wb.active = 1  # the first worksheet is read, not the active one
    write("good.xlsx", repack(workbook_bytes(wb)))

    wb = Workbook()
    ws = wb.active
    ws.append(["topic", "question", "double"])
    ws.append(["tax", '=CONCAT("What is the deadline for ", A2, "?")', "=LEN(A2)*2"])
    ws.append(["EI", '=CONCAT("Who qualifies for ", A3, "?")', "=LEN(A3)*2"])
    plain = workbook_bytes(wb)
    # As saved by a script: no formula was ever calculated, so no value is cached.
    write("question_formula_uncached.xlsx", repack(plain))

    def add_cache(name: str, content: bytes) -> bytes:
        if name != "xl/worksheets/sheet1.xml":
            return content
        xml = content.decode()
        xml = cache_formula(xml, "B2", "What is the deadline for tax?", is_text=True)
        xml = cache_formula(xml, "C2", "6", is_text=False)
        xml = cache_formula(xml, "B3", "Who qualifies for EI?", is_text=True)
        xml = cache_formula(xml, "C3", "4", is_text=False)
        return xml.encode()

    # As saved by a spreadsheet app: each formula's last result is stored beside it.
    write("formulas_cached.xlsx", repack(plain, add_cache))

    wb = Workbook()
    ws = wb.active
    ws.append(["question", "double"])
    ws.append(["What is the deadline?", "=LEN(A2)*2"])
    write("formulas_uncached.xlsx", repack(workbook_bytes(wb)))

    wb = Workbook()
    ws = wb.active
    ws.append(["question", "note"])
    ws.append(["First?", "a"])
    ws.append([None, "no question here"])
    write("xlsx_empty_question.xlsx", repack(workbook_bytes(wb)))

    good = (HERE / "good.xlsx").read_bytes()
    write("damaged_truncated.xlsx", good[: len(good) // 2])

    def break_xml(name: str, content: bytes) -> bytes:
        if name == "xl/worksheets/sheet1.xml":
            return content[: len(content) // 2]  # cut mid-element
        return content

    write("damaged_xml.xlsx", repack(good, break_xml))

    def bogus_dimension(name: str, content: bytes) -> bytes:
        if name == "xl/worksheets/sheet1.xml":
            return re.sub(rb'<dimension ref="[^"]*"', b'<dimension ref="A1:XFD1048576"', content)
        return content

    # Some writers state the maximum sheet size; reading must follow the real cells.
    write("bogus_dimension.xlsx", repack(good, bogus_dimension))
    # Tiny file, huge when unpacked: refused before openpyxl inflates it.
    write("inflated.xlsx", repack(good, extra={"xl/media/padding.bin": bytes(5_000_000)}))


if __name__ == "__main__":
    make_csv_files()
    make_binary_files()
    make_xlsx_files()
    print(f"wrote {len([p for p in HERE.iterdir() if p.suffix != '.py'])} files in {HERE}")
