"""The numbers the README quotes come from the JSON in benchmarks/measured/, and nowhere else.

The README's measured block is generated (benchmarks/results_readme.py); these tests hold it equal to what
the JSON gives, check that every decimal and percentage in it can be read off its own JSON by rounding,
keep the measured configs tied to the presets, read acceptance from validation only, and run the
benchmark that writes the JSON end to end on a tiny setting.
"""
import json
import math
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from benchmarks import accuracy_vs_minutes as avm
from benchmarks import results_readme
from byol_core.config import to_dict
from byol_core.lab.comparison import METHOD_ORDER, NOT_COMPARED, PRIMARY
from byol_core.presets import get_preset

ROOT = Path(__file__).resolve().parents[1]
MEASURED = ROOT / "benchmarks" / "measured"
# What decides what is learned; seed, runtime and eval cadence may differ between a run and the preset.
LEARNING_SECTIONS = ("data", "augment", "model", "byol", "supervised")
# The file that stands for each preset as it is now: the newest procedure first.
CURRENT = {"fmnist-30min": ("fmnist-30min-v2.json", "fmnist-30min.json"),
           "cpu-quick": ("cpu-quick-v2.json", "cpu-quick.json")}
TARGET_600 = 0.84  # the target for fmnist-30min's probe with 600 labels, every seed, read on validation


# --------------------------------------------------------------------------- every number traceable
_NUMBER = re.compile(r"(<\s?)?([-+−]?\d+(?:,\d{3})*(?:\.\d+)?(?:e[+-]?\d+)?)(%?)")


def _numbers_in_text(text: str) -> list[float]:
    return [float(m.group(2).replace(",", "").replace("−", "-")) for m in _NUMBER.finditer(text)]


def _json_numbers(node: Any) -> list[float]:
    """Every number a JSON holds: its numeric values and the numbers written inside its strings."""
    if isinstance(node, bool) or node is None:
        return []
    if isinstance(node, (int, float)):
        return [float(node)]
    if isinstance(node, str):
        return _numbers_in_text(node)
    values = node.values() if isinstance(node, dict) else node
    return [x for item in values for x in _json_numbers(item)]


def _shown_numbers(text: str) -> list[tuple[str, float, int]]:
    """The decimals and percentages a reader sees: (token, value, decimals shown). Comments and code spans
    (file names, config keys) are not measurements; a number after '<' is a bound, not a value."""
    text = re.sub(r"<!--.*?-->", "", text)
    text = re.sub(r"`[^`]*`", "", text)
    found = []
    for match in _NUMBER.finditer(text):
        bound, token, percent = match.groups()
        if bound or not ("." in token or percent):
            continue
        mantissa = token.split("e")[0]
        decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
        found.append((match.group(0), float(token.replace(",", "").replace("−", "-")), decimals))
    return found


def _derivable(value: float, decimals: int, candidates: np.ndarray) -> bool:
    """Whether some JSON number, as it is or in percent, rounds to ``value`` at the decimals shown."""
    tolerance = 0.5 * 10.0 ** -decimals * (1 + 1e-9) + 1e-12
    if value != 0 and math.log10(abs(value)) < -decimals + 1:  # scientific notation: compare relatively
        tolerance = max(tolerance, abs(value) * 0.01)
    return bool(np.any(np.abs(candidates - value) <= tolerance) or np.any(np.abs(candidates * 100 - value) <= tolerance))


def untraceable(block: str, measured: Path) -> list[str]:
    """Numbers in the generated block that no value of their own JSON file rounds to (the file is named by the
    ``measured:source`` comment opening its part; text before the first part may hold no numbers at all)."""
    parts = re.split(r"<!-- measured:source (\S+) -->", block)
    problems = [f"(no file) {token}" for token, _v, _d in _shown_numbers(parts[0])]
    for name, text in zip(parts[1::2], parts[2::2], strict=True):
        candidates = np.asarray(_json_numbers(json.loads((measured / name).read_text())))
        problems += [f"{name}: {token}" for token, value, decimals in _shown_numbers(text)
                     if not _derivable(value, decimals, candidates)]
    return problems


def _block(readme: Path) -> str:
    return results_readme.split_readme(readme.read_text())[1]


def test_readme_block_is_what_the_json_gives():
    diff = results_readme.check(ROOT / "README.md", MEASURED)
    assert not diff, "README's measured results differ from benchmarks/measured/*.json; run " \
                     "`python3 benchmarks/results_readme.py`:\n" + "\n".join(diff)


def test_every_number_in_the_block_comes_from_its_json():
    assert untraceable(_block(ROOT / "README.md"), MEASURED) == []


def test_a_number_edited_in_the_readme_fails_both_checks(tmp_path: Path):
    readme = tmp_path / "README.md"
    text = (ROOT / "README.md").read_text()
    before, block, after = results_readme.split_readme(text)
    first = re.search(r"\| (\d+\.\d)% \|", block)
    assert first, "the block shows no accuracy to edit"
    edited = block.replace(first.group(0), "| 12.3% |", 1)  # no JSON here holds 12.3%
    readme.write_text(before + edited + after)
    assert results_readme.check(readme, MEASURED)
    assert results_readme.main(["--check", "--readme", str(readme)]) == 1
    assert any("12.3%" in p for p in untraceable(edited, MEASURED))
    readme.write_text(text)
    assert results_readme.main(["--check", "--readme", str(readme)]) == 0
    results_readme.main(["--readme", str(readme)])  # rewriting an up-to-date README changes nothing
    assert readme.read_text() == text


def test_quoted_numbers_without_json_are_gone():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Measured results"):readme.index("## How to read an interval")]
    for stale in ("73.1%", "78.7%", "83.8%", "+4.2 ± 1.4", "~22 minutes", "86.8%"):
        assert stale not in section, stale


def test_old_procedure_files_are_marked_and_never_judged():
    block = results_readme.render(MEASURED)
    parts = re.split(r"<!-- measured:source (\S+) -->", block)
    old = [text for name, text in zip(parts[1::2], parts[2::2], strict=True)
           if "procedure" not in json.loads((MEASURED / name).read_text())]
    assert old, "the earlier measurements are shown"
    for text in old:
        assert results_readme.OLD_PROCEDURE in text
        assert "better" not in text and "excludes 0" not in text
        assert "± 0.0" not in text and "| 0.0 |" not in text  # a half-width that rounds to zero is not zero


def test_the_script_keeps_the_method_order_of_the_library():
    assert results_readme.METHOD_ORDER == METHOD_ORDER


def test_markers_are_required(tmp_path: Path):
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    with pytest.raises(ValueError, match="measured:begin"):
        results_readme.check(readme, MEASURED)


# --------------------------------------------------------------------------- configs and acceptance
def _current(preset: str) -> dict[str, Any]:
    name = next(n for n in CURRENT[preset] if (MEASURED / n).is_file())
    return json.loads((MEASURED / name).read_text())


@pytest.mark.parametrize("preset", sorted(CURRENT))
def test_measured_config_is_the_preset_as_it_stands(preset: str):
    data = _current(preset)
    recorded, now = data["config"], to_dict(get_preset(preset))
    for section in LEARNING_SECTIONS:
        changed = {k for k in now[section] if now[section][k] != recorded[section].get(k)}
        if section == "data":
            # The label share is the report's to set, the subset seed follows the seed; fields an old file
            # pre-dates (how the labelled subset is drawn) are what its "old procedure" mark says.
            allowed = {"label_fraction", "subset_seed"}
            allowed |= {f.removeprefix("data.") for f in NOT_COMPARED if f.startswith("data.")}  # no number moves
            if "procedure" not in data:
                allowed |= {k for k in now[section] if k not in recorded[section]}
            changed -= allowed
        assert not changed, (f"{preset}'s {section} changed since it was measured ({sorted(changed)}): re-run "
                             "benchmarks/accuracy_vs_minutes.py and `python3 benchmarks/results_readme.py`")


def validation_probe(data: dict[str, Any], labelled: int) -> dict[int, float]:
    """Each seed's validation probe with ``labelled`` labels at its last kept epoch: what acceptance reads."""
    rows = [r for r in data["per_seed"] if r["labelled"] == labelled]
    last = {}
    for row in sorted(rows, key=lambda r: r["epoch"]):
        last[row["seed"]] = row["val_probe"]
    return last


def accepted(data: dict[str, Any], labelled: int = 600, target: float = TARGET_600) -> bool:
    values = validation_probe(data, labelled)
    return bool(values) and all(v >= target for v in values.values())


def test_acceptance_reads_validation_never_test():
    data = _current("fmnist-30min")
    assert accepted(data), validation_probe(data, 600)
    # The same file with every test number moved far away is judged the same; with validation moved it is not.
    worse_test = json.loads(json.dumps(data))
    for row in worse_test["per_seed"]:
        row.update({k: 0.0 for k in row if k.startswith("test_")})
    assert accepted(worse_test)
    worse_val = json.loads(json.dumps(data))
    for row in worse_val["per_seed"]:
        row["val_probe"] -= 0.1
    assert not accepted(worse_val)


# --------------------------------------------------------------------------- the report's numbers
def _correct(rng: np.random.Generator, accuracy: float, seeds: int = 3, images: int = 2000) -> dict[int, np.ndarray]:
    return {s: rng.random(images) < accuracy for s in range(seeds)}


def test_fraction_result_judges_the_declared_comparisons():
    rng = np.random.default_rng(0)
    probe, scratch = PRIMARY
    correct = {probe: _correct(rng, 0.9), scratch: _correct(rng, 0.8), "BYOL fine-tuned": _correct(rng, 0.81),
               "BYOL kNN": _correct(rng, 0.85), "raw-pixel kNN": _correct(rng, 0.85)}
    result = avm.fraction_result(0.01, 600, correct, {probe: {0: 0.9, 1: 0.91, 2: 0.89}})
    assert [m["method"] for m in result["methods"]] == [m for m in METHOD_ORDER if m in correct]
    first = result["comparisons"][0]
    assert first["primary"] and (first["a"], first["b"]) == PRIMARY
    assert first["significant"] and first["ci"][0] > 0 and first["p"] < 0.05 and first["adjusted_p"] is None
    secondary = result["comparisons"][1:]
    assert secondary and all(not c["primary"] and c["adjusted_p"] is not None for c in secondary)
    assert all(c["adjusted_p"] >= c["p"] for c in secondary)  # Holm never makes a p smaller
    knn = next(c for c in secondary if c["b"] == "raw-pixel kNN")
    assert not knn["significant"] and "better" not in knn["verdict"]
    row = result["methods"][[m["method"] for m in result["methods"]].index(probe)]
    assert row["n"] == 3 and row["images"] == 2000 and row["val_values"] == [0.9, 0.91, 0.89]
    assert row["interval_method"] == "seeds and test images"
    assert row["ci_clipped"][0] >= row["ci"][0] and row["ci_clipped"][1] <= 1.0


def test_prediction_cache_reads_back_and_moves_with_the_config(tmp_path: Path):
    cfg = get_preset("tiny")
    cache = avm.PredictionCache(tmp_path, cfg, "epoch002.pt")
    cache.put(knn=np.array([1, 2, 3]), val_probe=0.5)
    again = avm.PredictionCache(tmp_path, cfg, "epoch002.pt")
    assert "knn" in again and list(again.get("knn")) == [1, 2, 3] and float(again.get("val_probe")) == 0.5
    other_seed = avm.with_overrides(cfg, {"seed": 1})
    assert "knn" not in avm.PredictionCache(tmp_path, other_seed, "epoch002.pt")
    threads = avm.with_overrides(cfg, {"runtime.num_threads": 1})  # how it ran is not what it measured
    assert "knn" in avm.PredictionCache(tmp_path, threads, "epoch002.pt")


@pytest.mark.slow
def test_report_end_to_end_on_tiny(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    runs = tmp_path / "runs"
    common = ["--preset", "tiny", "--dir", str(runs), "--set", "runtime.num_threads=1"]
    for seed in (0, 1):
        avm.main(["pretrain", *common, "--seed", str(seed), "--every", "1"])
    (runs / "seed7").mkdir()  # a seed still pretraining: left out, never scored with a half-trained encoder
    shutil.copy(runs / "seed0" / "config.json", runs / "seed7" / "config.json")
    out = tmp_path / "tiny-v2.json"
    report = ["report", *common, "--fractions", "0.5,1", "--out", str(out)]
    avm.main(report)
    printed = capsys.readouterr().out
    assert "labelled subset 'per seed' (subset seed 0)" in printed
    assert "labelled subset 'per seed' (subset seed 1)" in printed
    assert "seed 7: no finished pretraining" in printed
    data = json.loads(out.read_text())
    assert data["procedure"]["name"] == avm.PROCEDURE["name"] and data["seeds"] == [0, 1]
    assert data["labelled_subset"] == "per seed" and len(data["minutes_per_seed"]) == 2
    assert data["minutes_range"] == [min(data["minutes_per_seed"]), max(data["minutes_per_seed"])]
    half = data["fractions"][0]
    names = [m["method"] for m in half["methods"]]
    assert names == [m for m in METHOD_ORDER if m in names] and set(PRIMARY) <= set(names)
    assert half["comparisons"][0]["primary"] and all(m["n"] == 2 and m["note"] for m in half["methods"])
    assert {e["epoch"] for e in data["curve"]} == {1, 2}  # every kept encoder on validation
    # Per-image scores are cached beside the encoders; the cached correctness gives the JSON's accuracies.
    caches = sorted((runs / "seed1").glob("scores-epoch002-*.npz"))
    assert len(caches) == 2
    seed1 = {c.name: dict(np.load(c)) for c in caches}
    half_cache = next(c for c in seed1.values() if int(c["labelled"]) == half["labelled"])
    probe = next(m for m in half["methods"] if m["method"] == PRIMARY[0])
    assert probe["values"][1] == pytest.approx(float(np.mean(half_cache["probe"] == half_cache["labels"])))
    # The two seeds drew different labelled subsets, so at least one method differs between them.
    assert any(len(set(m["values"])) > 1 for m in half["methods"])
    # A rerun reads the cache: same numbers, the cache files untouched.
    stamps = {c: c.stat().st_mtime_ns for c in caches}
    avm.main(report)
    again = json.loads(out.read_text())
    assert again["fractions"] == data["fractions"]
    assert {c: c.stat().st_mtime_ns for c in caches} == stamps
    # The README generator renders it, and every number it shows is in the file.
    measured = tmp_path / "measured"
    measured.mkdir()
    shutil.copy(out, measured / out.name)
    block = results_readme.render(measured)
    assert "**primary**: BYOL linear probe − supervised from scratch" in block and "† fewer than 3 seeds" in block
    assert untraceable(block, measured) == []
    # Encoders pretrained with other settings are refused, naming the field.
    with pytest.raises(SystemExit, match="model.width"):
        avm.main([*report, "--set", "model.width=16"])
    # Seeds kept as scores alone (no encoders) report the same numbers, from a folder of their own.
    kept = tmp_path / "kept"
    avm.main(["keep", "--dir", str(runs), "--to", str(kept)])
    assert not list(kept.glob("seed*/*.pt")) and (kept / "seed1" / avm.KEPT).is_file()
    assert not (kept / "seed7").exists()  # unscored: nothing to keep
    from_scores = tmp_path / "from-scores.json"
    avm.main(["report", "--preset", "tiny", "--dir", str(kept), "--set", "runtime.num_threads=1",
              "--fractions", "0.5,1", "--out", str(from_scores), "--timing-note", "seed 1 on other cores"])
    again = json.loads(from_scores.read_text())
    assert again["fractions"] == data["fractions"] and again["curve"] == data["curve"]
    assert again["timing_note"] == "seed 1 on other cores" and "timing_note" not in data
    shutil.copy(from_scores, measured / out.name)  # the README says how the minutes were taken
    assert "(seed 1 on other cores)." in results_readme.render(measured)
    with pytest.raises(SystemExit, match="seed 0 is in both"):
        avm.main([*report, "--dir", str(kept)])
    # Scores it does not hold cannot be made without the encoder: said, not a traceback.
    with pytest.raises(SystemExit, match="keeps the scores of epoch001.pt but not the encoder"):
        avm.main(["report", "--preset", "tiny", "--dir", str(kept), "--fractions", "0.25",
                  "--out", str(tmp_path / "x.json")])


def test_a_killed_seed_resumes_where_it_stopped_with_the_same_encoder(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch):
    """fmnist-30min takes over an hour a seed on 2 AVX2 cores: a seed stopped part-way (a session's end, a kill)
    continues from its last epoch and ends with the encoder an unbroken run gives."""
    common = ["pretrain", "--preset", "tiny", "--seed", "3", "--every", "1", "--set", "runtime.num_threads=1",
              "--set", "byol.optim.epochs=2"]
    avm.main([*common, "--dir", str(tmp_path / "whole")])
    whole = torch.load(tmp_path / "whole" / "seed3" / "epoch002.pt", weights_only=True)
    assert not (tmp_path / "whole" / "seed3" / avm.RESUME).exists()  # finished: nothing left to resume

    real_save, killed = avm.atomic_torch_save, []

    def save_then_die(path: Path, data: dict) -> None:
        real_save(path, data)
        if Path(path).name == avm.RESUME and not killed:
            killed.append(data["step"])
            raise KeyboardInterrupt("killed after the first epoch's checkpoint")

    monkeypatch.setattr(avm, "atomic_torch_save", save_then_die)
    broken = tmp_path / "broken"
    with pytest.raises(KeyboardInterrupt):
        avm.main([*common, "--dir", str(broken)])
    assert (broken / "seed3" / avm.RESUME).is_file() and not (broken / "seed3" / "epoch002.pt").exists()
    with pytest.raises(SystemExit, match="model.width"):  # other settings never continue this seed
        avm.main([*common, "--dir", str(broken), "--set", "model.width=16"])
    avm.main([*common, "--dir", str(broken)])  # same threads as the whole run: the same bits
    resumed = torch.load(broken / "seed3" / "epoch002.pt", weights_only=True)
    assert resumed["step"] == whole["step"] and killed and killed[0] < whole["step"]
    assert all(torch.equal(resumed["encoder"][k], v) for k, v in whole["encoder"].items())
    assert resumed["train_seconds"] > 0
