"""Text a person wrote (run names, notes, folder and class names) made safe to show where it ends up.

Shown raw, such text can act: escape sequences retitle or clear a terminal, Markdown fetches an image
from any address, a cell starting with ``=`` runs as a spreadsheet formula. Each function here turns
it into text that only reads as what it says, for one destination: :func:`printable` for a terminal,
:func:`markdown_text` for Markdown (the dashboard), :func:`csv_cell` for a CSV cell.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

# Control (Cc), format (Cf: bidirectional overrides, zero-width), separator (Zl, Zp) and unassigned characters.
_UNSHOWN = ("Cc", "Cf", "Zl", "Zp", "Cn", "Co", "Cs")
_MARKUP = re.compile(r"([\\`*_{}\[\]()<>#.!|~$:&])")  # what starts markup anywhere in a line
# OWASP's list of what makes a spreadsheet read a cell as a formula.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def printable(text: Any) -> str:
    """``text`` with every character a terminal would act on written as an escape (``\\x1b``, ``\\u202e``)."""
    out = []
    for ch in str(text):
        if unicodedata.category(ch) not in _UNSHOWN:
            out.append(ch)
        elif ord(ch) <= 0xFF:
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(ch, f"\\x{ord(ch):02x}"))
        else:
            out.append(f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}")
    return "".join(out)


def markdown_text(text: Any) -> str:
    """``text`` for a Markdown body or label: one line, its markup characters backslash-escaped.

    CommonMark reads an escaped mark as itself, so no image, link, autolink, HTML, emphasis, code,
    heading, list or quote starts in it, nor Streamlit's ``:red[...]``, ``:material/icon:`` and
    ``$maths$``. Marks that only act at the start of a line (``-``, ``+``, ``=``) are escaped there;
    inside, "self-supervised" stays as it is written.
    """
    line = _MARKUP.sub(r"\\\1", printable(" ".join(str(text).split())))
    return "\\" + line if line[:1] in ("-", "+", "=") else line


def clipped(value: Any, limit: int = 60) -> str:
    """``value`` as a message shows it: its repr, cut short, so one bad value keeps the message one line."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def csv_cell(value: Any) -> Any:
    """A CSV cell that a spreadsheet shows as text: one starting with = + - @, a tab or CR gets a leading ``'``.

    Numbers and empty values are kept as they are.
    """
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def json_nesting(text: str) -> int:
    """How deep the arrays and objects of JSON ``text`` nest, counted without parsing it."""
    depth = deepest = 0
    for ch in re.findall(r"[\[\]{}]", _JSON_STRING.sub("", text)):  # brackets inside strings are text
        depth = depth + 1 if ch in "[{" else max(depth - 1, 0)
        deepest = max(deepest, depth)
    return deepest


def parse_json(text: str, what: str, *, max_bytes: int, max_depth: int, size: int | None = None,
               error: type[Exception] = ValueError) -> Any:
    """JSON ``text`` parsed, or ``error`` naming ``what`` when it is not JSON, or larger than ``max_bytes``
    (``size``, when the text was not read for being too large) or nested deeper than ``max_depth``.

    Size and depth are checked before parsing: deep enough JSON breaks the parser (a RecursionError).
    """
    size = len(text) if size is None else size
    if size > max_bytes:
        raise error(f"{what} is too large ({size / 2**20:.1f} MB; at most {max_bytes / 2**20:g} MB is read).")
    if json_nesting(text) > max_depth:
        raise error(f"{what} is nested more than {max_depth} levels deep; that is not the JSON asked for.")
    try:
        return json.loads(text)
    except ValueError as exc:  # JSONDecodeError, and numbers with more digits than Python converts
        raise error(f"{what} is not valid JSON: {exc}") from exc


def size_text(n: float) -> str:
    """A byte count for people: ``512 bytes``, ``4.0 KB``, ``2.7 GB`` (GB is the largest unit)."""
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"  # not reached
