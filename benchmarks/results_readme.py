"""The README's measured results, generated from the JSON in benchmarks/measured/ and nothing else.

    python benchmarks/results_readme.py            # rewrite the block between the markers in README.md
    python benchmarks/results_readme.py --check    # exit 1 when README.md's block differs from the JSON

Every number between ``<!-- measured:begin -->`` and ``<!-- measured:end -->`` comes from a file in
benchmarks/measured/ (``accuracy_vs_minutes.py report`` writes them; a person copies the ones worth
keeping there). Files written by the current report (they hold ``procedure``) get an interval over seeds,
labelled subsets and test images and a verdict for each declared comparison. Older files (labelled subset
fixed, per-seed values only) are shown with their intervals over training seeds, marked as such and
never judged. Standard library only, so ``--check`` takes well under a second.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MEASURED = ROOT / "benchmarks" / "measured"
BEGIN, END = "<!-- measured:begin -->", "<!-- measured:end -->"
SOURCE_MARK = "<!-- measured:source {} -->"  # opens each file's part, so a check can tie a number to its file
COMMAND = "python3 benchmarks/results_readme.py"
OLD_PROCEDURE = ("old procedure: labelled subset fixed, interval over training seeds only "
                 "(test-set noise not included)")
NOT_JUDGED = "not judged (old procedure)"
# byol_core.lab.comparison.METHOD_ORDER, kept here so this script imports nothing heavy (tests hold them equal).
METHOD_ORDER = ("BYOL fine-tuned", "BYOL linear probe", "BYOL kNN", "supervised from scratch", "random-init kNN",
                "raw-pixel logistic regression", "raw-pixel kNN")
DATASET_NAMES = {"fashion-mnist": "Fashion-MNIST", "digits": "Digits", "cifar10": "CIFAR-10", "stl10": "STL10"}


@dataclass(frozen=True)
class Source:
    """One file's place in the README: its name in benchmarks/measured/ and what it is, in words."""

    stem: str
    about: str = ""


# The order the files are shown in; files not listed follow in name order, files listed but absent are skipped.
SOURCES = (
    Source("cpu-quick-v2"),
    Source("fmnist-30min-v2"),
    Source("cpu-quick"),
    Source("fmnist-30min"),
    Source("fmnist-30min-crop0.4", "the run the preset's crop was chosen against, on the validation probe"),
)


# --------------------------------------------------------------------------- numbers as text
def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def _pts(value: float) -> str:
    return f"{100 * value:+.1f}"


def _interval(ci: Sequence[float] | None, signed: bool = False) -> str:
    if not ci:
        return "none"
    if ci[0] == ci[1]:
        return "none (every seed gave this value)"
    text = _pts if signed else _pct
    return f"{text(ci[0])} to {text(ci[1])}"


def _p(value: float | None) -> str:
    if value is None:
        return "—"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def _minutes(values: Sequence[float]) -> str:
    low, high = min(values), max(values)
    return f"{low:.1f}" if f"{low:.1f}" == f"{high:.1f}" else f"{low:.1f}–{high:.1f}"


def _machine(text: str) -> str:
    """``x86_64 2 threads, <processor>`` (as the report writes it) as ``x86_64, 2 threads``."""
    match = re.fullmatch(r"(\S+) (\d+) threads,\s*(.*)", text.strip())
    if match is None:
        return text.strip()
    arch, threads, processor = match.groups()
    return ", ".join(p for p in (arch, processor, f"{threads} thread{'' if threads == '1' else 's'}") if p)


def _setting(data: dict[str, Any]) -> str:
    """What was trained, in words, from the recorded config."""
    cfg = data["config"]
    view, model, optim = cfg["augment"]["view1"], cfg["model"], cfg["byol"]["optim"]
    crops = f"crops of {100 * view['crop_scale_min']:.0f}–{100 * view['crop_scale_max']:.0f}% of the image"
    return (f"a {model['backbone']} of width {model['width']}, {optim['epochs']:g} epochs of BYOL pretraining "
            f"with {crops}")


# --------------------------------------------------------------------------- one file
def _curve_text(data: dict[str, Any], labelled: dict[float, int]) -> str:
    """The validation probe from the first kept epoch to the last: what choices were read from."""
    curve = data.get("curve") or []
    if not curve:
        return ""
    first, last = curve[0], curve[-1]
    parts = []
    for key in sorted(k for k in last if k.startswith("val_probe_")):
        fraction = float(key[len("val_probe_"):])
        count = f"{labelled[fraction]:,} labels" if fraction in labelled else f"label share {fraction:g}"
        n = last[key]["n"]
        if first is last or key not in first:
            parts.append(f"{count}: {_pct(last[key]['mean'])}% at epoch {last['epoch']} ({n} seeds)")
        else:
            parts.append(f"{count}: {_pct(first[key]['mean'])}% at epoch {first['epoch']} ({first['minutes']:.1f} "
                         f"min) → {_pct(last[key]['mean'])}% at epoch {last['epoch']} ({last['minutes']:.1f} min), "
                         f"mean of {n} seeds")
    return "Validation linear probe (choices are read from this split, never from test): " + "; ".join(parts) + "."


def _new_lines(data: dict[str, Any]) -> list[str]:
    fractions = data["fractions"]
    lines = [(f"{len(data['seeds'])} seeds, each with its own labelled subset "
             f"(`data.labelled_subset = \"{data['labelled_subset']}\"`); {data['test_images']:,} test images; "
             f"{_minutes(data['minutes_range'])} minutes of pretraining per seed on {_machine(data['machine'])}"
             + (f" ({data['timing_note']})." if data.get("timing_note") else ".")), ""]
    lines += ["| method | labelled images | n | mean | 95% interval |", "|---|---:|---:|---:|---|"]
    few = False
    for fraction in fractions:
        for row in fraction["methods"]:
            mark = " †" if row["n"] < 3 else ""
            few = few or bool(mark)
            lines.append(f"| {row['method']} | {fraction['labelled']:,} | {row['n']} | {_pct(row['mean'])}% | "
                         f"{_interval(row['ci_clipped'])}{mark} |")
    lines += ["", ("| declared comparison | labelled images | difference (points) | 95% interval | p | "
                  "Holm-adjusted p | verdict |"), "|---|---:|---:|---|---:|---:|---|"]
    for fraction in fractions:
        for row in fraction["comparisons"]:
            role = "**primary**" if row["primary"] else "secondary"
            verdict = f"**{row['verdict']}**" if row["primary"] else row["verdict"]
            lines.append(f"| {role}: {row['a']} − {row['b']} | {fraction['labelled']:,} | {_pts(row['mean'])} | "
                         f"{_interval(row['ci_clipped'], signed=True)} | {_p(row['p'])} | {_p(row['adjusted_p'])} | "
                         f"{verdict} |")
    if few:
        lines += ["", "† fewer than 3 seeds: too wide to read."]
    labelled = {f["label_fraction"]: f["labelled"] for f in fractions}
    curve = _curve_text(data, labelled)
    return lines + (["", curve] if curve else [])


_OLD_DIFFERENCE = re.compile(r"^(?P<a>.+?) - (?P<b>.+?): (?P<mean>[+-]\d+\.\d) ± (?P<half>\d+\.\d) points "
                             r"\(95% CI, n=(?P<n>\d+)\)")


def _old_lines(data: dict[str, Any]) -> list[str]:
    final = sorted(data["final"], key=lambda r: (r["labelled"], METHOD_ORDER.index(r["method"])
                                                 if r["method"] in METHOD_ORDER else len(METHOD_ORDER)))
    labelled = {r["label_fraction"]: r["labelled"] for r in final}
    seeds = sorted({r["seed"] for r in data["per_seed"]})
    last = {r["seed"]: r["minutes"] for r in data["per_seed"] if "test_probe" in r}
    lines = [(f"**{OLD_PROCEDURE}.** {len(seeds)} seeds on one labelled subset; {_minutes(list(last.values()))} "
             f"minutes of pretraining per seed on {_machine(data['machine'])}."), ""]
    lines += ["| method | labelled images | n | mean | 95% interval over seeds |", "|---|---:|---:|---:|---|"]
    for row in final:
        lines.append(f"| {row['method']} | {row['labelled']:,} | {row['n']} | {_pct(row['mean'])}% | "
                     f"{_interval(row['ci95'])} |")
    lines += ["", "| comparison | labelled images | difference (points) | ± over seeds | verdict |",
              "|---|---:|---:|---:|---|"]
    for row in data.get("differences", []):
        match = _OLD_DIFFERENCE.match(row["text"])
        if match is None:
            continue
        # A half-width that rounds to 0.0 is not zero: say how small it is instead of a false "± 0.0".
        half = match["half"] if float(match["half"]) > 0 else "<0.05"
        lines.append(f"| {match['a']} − {match['b']} | {labelled[row['label_fraction']]:,} | {match['mean']} | "
                     f"{half} | {NOT_JUDGED} |")
    curve = _curve_text(data, labelled)
    return lines + (["", curve] if curve else [])


def _title(data: dict[str, Any]) -> str:
    name = data["config"]["data"]["name"]
    return f"{DATASET_NAMES.get(name, name)}, `{data.get('preset', data['config']['name'])}`"


def render_source(path: Path, about: str = "") -> str:
    """One file's part of the block: a heading line, its tables and its validation curve."""
    data = json.loads(path.read_text())
    new = "procedure" in data
    where = f"`benchmarks/measured/{path.name}`"
    head = f"**{_title(data)}**{f', {about}' if about else ''} ({where}): {_setting(data)}."
    body = _new_lines(data) if new else _old_lines(data)
    return "\n".join([SOURCE_MARK.format(path.name), head, "", *body])


def ordered_sources(measured: Path = MEASURED) -> list[tuple[Path, str]]:
    """The files to show, in SOURCES' order and then by name; new-procedure files before old ones."""
    listed = {s.stem: s for s in SOURCES}
    files = {p.stem: p for p in measured.glob("*.json")}
    names = [s.stem for s in SOURCES if s.stem in files] + sorted(set(files) - set(listed))
    new = [n for n in names if "procedure" in json.loads(files[n].read_text())]
    return [(files[n], listed[n].about if n in listed else "") for n in new + [n for n in names if n not in new]]


def render(measured: Path = MEASURED) -> str:
    """The whole block between the markers (markers excluded), from the JSON files alone."""
    parts = [(f"Generated from `benchmarks/measured/*.json` by `{COMMAND}`; do not edit by hand. "
             "How to read the intervals: [How to read an interval](#how-to-read-an-interval).")]
    sources = ordered_sources(measured)
    new = [(p, a) for p, a in sources if "procedure" in json.loads(p.read_text())]
    old = [(p, a) for p, a in sources if (p, a) not in new]
    parts += [render_source(p, a) for p, a in new]
    if old:
        parts.append("Earlier measurements, each marked with its procedure: their intervals leave out the "
                     "labelled-subset draw and the test images, so their differences are shown without a verdict.")
        parts += [render_source(p, a) for p, a in old]
    return "\n\n".join(parts)


# --------------------------------------------------------------------------- the README
def split_readme(text: str) -> tuple[str, str, str]:
    """``(before, block, after)`` around the markers; a clear error when they are missing or out of order."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start or text.count(BEGIN) != 1 or text.count(END) != 1:
        raise ValueError(f"README needs exactly one {BEGIN} followed by one {END}")
    return text[:start + len(BEGIN)], text[start + len(BEGIN):end], text[end:]


def updated(text: str, measured: Path = MEASURED) -> str:
    before, _block, after = split_readme(text)
    return f"{before}\n{render(measured)}\n{after}"


def check(readme: Path = README, measured: Path = MEASURED) -> list[str]:
    """The differing lines (a unified diff) between the README and what the JSON gives; empty when equal."""
    text = readme.read_text()
    want = updated(text, measured)
    return [] if want == text else list(difflib.unified_diff(text.splitlines(), want.splitlines(), str(readme),
                                                             "generated", lineterm="", n=0))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when README.md differs from the JSON")
    parser.add_argument("--readme", type=Path, default=README)
    parser.add_argument("--measured", type=Path, default=MEASURED)
    args = parser.parse_args(argv)
    if args.check:
        diff = check(args.readme, args.measured)
        if diff:
            print(f"{args.readme}'s measured results differ from {args.measured}; run `{COMMAND}`:", file=sys.stderr)
            print("\n".join(diff), file=sys.stderr)
            return 1
        print(f"{args.readme}'s measured results match {args.measured}")
        return 0
    args.readme.write_text(updated(args.readme.read_text(), args.measured))
    print(f"rewrote the measured results in {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
