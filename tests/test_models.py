"""The trained models shipped in ``models/`` do what the README says."""
import os

import pytest

from examples import copy_task

MODELS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models")


def test_the_shipped_copy_model_copies_length_120_without_a_bit_error(capsys):
    path = os.path.join(MODELS, "copy.npz")
    result = copy_task.main(["--load", path, "--iterations", "0", "--eval-lengths", "20,120",
                             "--eval-batches", "16", "--mode", "FAST_COMPILE", "--quiet"])
    assert result.exit_code == 0
    by_length = {row["value"]: row for row in result.evaluation}
    assert by_length[120]["sequences"] == 16
    # Trained on lengths 1-20 only, it generalises to 120 (the memory has 128 locations).
    for length in (20, 120):
        assert by_length[length]["errors_per_seq"] == 0
        assert by_length[length]["perfect"] == pytest.approx(1.0)
    assert by_length[20]["bits_per_seq"] < 0.1
    assert "120" in capsys.readouterr().out


def test_the_shipped_associative_recall_model_recalls_among_12_items_without_error():
    from examples import associative_recall_task

    path = os.path.join(MODELS, "associative_recall.npz")
    result = associative_recall_task.main(["--load", path, "--iterations", "0",
                                           "--eval-lengths", "6,12", "--eval-batches", "16",
                                           "--mode", "FAST_COMPILE", "--quiet"])
    assert result.exit_code == 0
    # Trained on 2 to 6 items; 12 is twice the longest list it saw.
    for row in result.evaluation:
        assert row["sequences"] == 16
        assert row["errors_per_seq"] == 0 and row["bits_per_seq"] < 0.5


@pytest.mark.parametrize("name, values, perfect_at", [
    ("reversed_copy", "20", [20]),         # trained on lengths 1-20
    ("upside_down_copy", "20", [20]),
    ("dyck_words", "10,40", [10, 40]),     # trained on 1-10 bracket pairs
])
def test_the_other_shipped_models_make_no_error_in_their_training_range(name, values,
                                                                         perfect_at):
    import importlib

    script = importlib.import_module(f"examples.{name}_task")
    result = script.main(["--load", os.path.join(MODELS, f"{name}.npz"), "--iterations", "0",
                          "--eval-lengths", values, "--eval-batches", "16",
                          "--mode", "FAST_COMPILE", "--quiet"])
    assert result.exit_code == 0
    by_value = {row["value"]: row for row in result.evaluation}
    for value in perfect_at:
        assert by_value[value]["sequences"] == 16
        assert by_value[value]["errors_per_seq"] == 0
        assert by_value[value]["perfect"] == pytest.approx(1.0)
