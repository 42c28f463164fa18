import json
import subprocess
import sys
from pathlib import Path

from byol_core.cli import main
from byol_core.lab.run_store import RunStore

ROOT = Path(__file__).resolve().parents[1]


def test_experiment_prints_the_table_and_writes_json(tmp_path, capsys):
    out_json = tmp_path / "exp.json"
    code = main(["experiment", "--preset", "tiny", "--runs-dir", str(tmp_path / "runs"), "--no-progress",
                 "--json", str(out_json), "--set", "data.label_fraction=0.5"])
    assert code == 0
    printed = capsys.readouterr().out
    data = json.loads(out_json.read_text())
    methods = {r["method"] for r in data["rows"]}
    assert methods == {"supervised from scratch", "BYOL fine-tuned", "BYOL linear probe", "BYOL kNN",
                       "random-init kNN", "raw-pixel kNN", "raw-pixel logistic regression"}
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in data["rows"])
    assert data["label_fraction"] == 0.5 and data["labelled_images"] < 256
    for method in methods:
        assert method in printed
    runs = RunStore(tmp_path / "runs").list()
    assert len(runs) == 6  # experiment, byol, linear, finetune, scratch, evaluate
    assert all(r.read_status()["state"] == "finished" for r in runs)


def test_pretrain_then_evaluate_and_finetune_from_the_run(tmp_path, capsys):
    runs = str(tmp_path / "runs")
    assert main(["pretrain", "--preset", "tiny", "--runs-dir", runs, "--no-progress"]) == 0
    byol = json.loads(capsys.readouterr().out)
    assert byol["state"] == "finished" and "knn_accuracy" in byol
    assert main(["evaluate", "--preset", "tiny", "--runs-dir", runs, "--from", byol["run"]]) == 0
    assert json.loads(capsys.readouterr().out)["knn_accuracy"] == byol["knn_accuracy"]
    assert main(["supervised", "--preset", "tiny", "--runs-dir", runs, "--mode", "finetune",
                 "--from", byol["run"], "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["from_run"] == byol["run"]
    assert main(["runs", "--runs-dir", runs]) == 0
    assert "finished" in capsys.readouterr().out


def test_bad_input_gives_a_one_line_error_and_exit_code_2(tmp_path, capsys):
    runs = str(tmp_path / "runs")
    assert main(["pretrain", "--preset", "tiny", "--runs-dir", runs, "--set", "byol.optim.lr=-3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --set byol.optim.lr=-3") and "allowed range" in err
    assert main(["supervised", "--preset", "tiny", "--runs-dir", runs, "--mode", "finetune",
                 "--from", "missing-run"]) == 2
    assert "no run 'missing-run'" in capsys.readouterr().err
    assert main(["config", "--config", str(tmp_path / "nope.json")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_config_command_applies_overrides(capsys):
    assert main(["config", "--preset", "seed-stl10", "--set", "byol.optim.epochs=3"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["byol"]["optim"]["epochs"] == 3.0 and cfg["data"]["name"] == "stl10"


def test_module_entry_point_runs(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "byol_core", "config", "--preset", "tiny"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["name"] == "tiny"
