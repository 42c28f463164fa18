"""Text people wrote (run names, notes, folder names) shown as text: in a terminal, in Markdown, in a CSV cell."""

from __future__ import annotations

import csv
import io
import re

import pytest

from byol_core.text import csv_cell, markdown_text, printable

NASTY = "\x1b]0;title\x07\x1b[2J\x9b31m\u202egnp.exe\r\nnext\x00"


def test_printable_escapes_every_control_character_and_keeps_the_rest():
    out = printable(NASTY)
    assert out == "\\x1b]0;title\\x07\\x1b[2J\\x9b31m\\u202egnp.exe\\r\\nnext\\x00"
    assert out.isprintable()
    assert printable("BYOL · digits · 92.8% — café 猫") == "BYOL · digits · 92.8% — café 猫"


UNSAFE_MARKDOWN = ["![x](http://example.com/x.png)", "[click](javascript:alert(1))", "<img src=x onerror=alert(1)>",
                   "**bold** _it_ `code` ~~s~~", ":red[red] :material/home: $x^2$", "# head", "- item", "1. item",
                   "> quote", "a | b", "<http://example.com>", "line\nbreak", "\\![x](http://e.com)"]


@pytest.mark.parametrize("text", UNSAFE_MARKDOWN)
def test_markdown_text_leaves_no_markup_live(text):
    out = markdown_text(text)
    assert "\n" not in out
    # Every mark that starts markup is backslash-escaped, so CommonMark (and Streamlit's extensions) read none of it.
    assert not re.search(r"(?<!\\)[!\[\]()<>*_`~:$#|.&]", out.replace("\\\\", "")), out
    assert out[0] not in "-+=>#"  # nothing a line may start with to become a list, quote or heading
    assert re.sub(r"\\(.)", r"\1", out) == " ".join(text.split())  # nothing but the escapes was added


def test_markdown_text_keeps_plain_names_readable():
    assert markdown_text("byol digits 92") == "byol digits 92"
    assert markdown_text("Label-efficiency sweep, 10% labels?") == "Label-efficiency sweep, 10% labels?"
    assert markdown_text("café · 猫") == "café · 猫"


@pytest.mark.parametrize("text", ["=HYPERLINK(\"http://e.com\",\"x\")", "+1+2", "-2+3", "@SUM(A1)", "\t=1", "\r=1"])
def test_csv_cells_that_a_spreadsheet_would_run_start_with_a_quote(text):
    assert csv_cell(text) == "'" + text
    buf = io.StringIO()
    csv.writer(buf).writerow([csv_cell(text)])
    assert next(csv.reader(io.StringIO(buf.getvalue())))[0].startswith("'")


def test_csv_cells_that_are_safe_or_numbers_are_kept():
    assert csv_cell("byol run") == "byol run" and csv_cell("") == ""
    assert csv_cell(-0.5) == -0.5 and csv_cell(3) == 3 and csv_cell(None) is None
