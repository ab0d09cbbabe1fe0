"""``benchmarks/convergence.py``: a task trained over several seeds, and its table."""
import os

import numpy as np
import pytest

from benchmarks import convergence, error_analysis
from utils import training
from utils.generators import CopyTask

TINY = ["--mode", "FAST_COMPILE", "--memory-shape", "8", "4", "--num-units", "8",
        "--batch-size", "2", "--validation-batches", "1", "--eval-batches", "1"]


def table_rows(out):
    """The rows of the printed table, as lists of cells."""
    lines = [line for line in out.splitlines() if line.startswith("| ") and "---" not in line]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def test_copy_over_two_seeds_reports_convergence_evaluation_and_the_idle_heads(tmp_path, capsys):
    out_dir = str(tmp_path / "runs")
    # A threshold every validation passes: each seed stops at its first one (iteration 2).
    code = convergence.main(["copy", "--seeds", "0,1", "--iterations", "6", "--threshold", "1000",
                             "--validate-every", "2", "--eval-lengths", "3,6", "--out", out_dir,
                             "--"] + TINY + ["--size", "3", "--max-length", "3"])
    assert code == 0
    header, *rows = table_rows(capsys.readouterr().out)
    assert header == ["seed", "sequences to < 1000 bits", "training time", "3: bits / errors",
                      "6: bits / errors", "idle heads' focus: read / write"]
    assert [row[0] for row in rows] == ["0", "1"]
    for seed, row in zip((0, 1), rows):
        assert row[1] == "4"  # 2 iterations of 2 sequences
        for name in (f"seed{seed}.npz", f"seed{seed}.json", f"seed{seed}.csv"):
            assert os.path.exists(os.path.join(out_dir, name))
        # The focus column is the analysis of the saved model on the longest training length.
        task = CopyTask(size=3, batch_size=32, seed=0)
        model, info = training.load_model(os.path.join(out_dir, f"seed{seed}.npz"), task)
        assert info["iteration"] == 2
        focus = error_analysis.idle_head_focus(model, task, 3, convergence.FOCUS_BATCHES,
                                               mode="FAST_COMPILE")
        read, write = (float(value) for value in row[5].split(" / "))
        assert read == pytest.approx(focus["read"].mean(), abs=0.005)
        assert write == pytest.approx(focus["write"].mean(), abs=0.005)
        assert 1 / 8 <= min(read, write) and max(read, write) <= 1
        bits, errors = (float(value) for value in row[3].split(" / "))
        assert bits > 0 and 0 <= errors <= 3 * 3


def test_a_seed_that_does_not_converge_fails_the_sweep_and_other_tasks_have_no_focus(tmp_path,
                                                                                    capsys):
    code = convergence.main(["reversed_copy", "--seeds", "3", "--iterations", "2",
                             "--validate-every", "2", "--threshold", "1e-9",
                             "--out", str(tmp_path), "--"] + TINY
                            + ["--size", "3", "--max-length", "3"])
    assert code == 1
    out = capsys.readouterr().out
    header, row = table_rows(out)
    assert header == ["seed", "sequences to < 1e-09 bits", "training time"]
    assert row[:2] == ["3", "not converged"]
    assert "0 of 1 seeds converged" in out and "focus" not in out
    assert np.isfinite(float(out.split("not converged (")[1].split(" bits")[0]))


def test_a_seed_that_converges_and_falls_back_is_marked_and_fails_the_sweep(tmp_path,
                                                                             monkeypatch, capsys):
    def run_seed(module, seed, args, extra):  # seed 1 got under 0.1 bits, then fell back
        return {"seed": seed, "exit_code": 0, "message": None, "sequences": 800 * (seed + 1),
                "final_bits": [0.05, 80.5][seed], "train_s": 1.0, "total_s": 2.0,
                "evaluation": [], "focus": None}

    monkeypatch.setattr(convergence, "run_seed", run_seed)
    code = convergence.main(["reversed_copy", "--seeds", "0,1", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    _, first, second = table_rows(out)
    assert first[1] == "800" and second[1] == "1600 (last validation 80.5 bits)"
    assert "2 of 2 seeds converged (1 of them above 0.1 bits again at the last validation)" in out
    assert code == 1
