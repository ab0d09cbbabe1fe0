"""examples/recurrent.py (the adding problem learned by an LSTM): its data generator, a short
training that beats predicting the mean, and its command line rejecting bad input."""
import os
import subprocess
import sys

import numpy as np

from examples import recurrent

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_gen_data_follows_the_adding_problem():
    rng = np.random.RandomState(3)
    X, y, mask = recurrent.gen_data(500, min_length=4, max_length=9, rng=rng)
    assert X.shape == (500, 9, 2) and y.shape == (500,) and mask.shape == (500, 9)
    lengths = mask.sum(axis=1).astype(int)
    assert lengths.min() == 4 and lengths.max() == 9  # both bounds drawn in 500 sequences
    for values, target, row, length in zip(X, y, mask, lengths):
        # the mask is a run of ones from the first step, zeros after the end
        np.testing.assert_array_equal(row, (np.arange(9) < length).astype(row.dtype))
        assert not values[length:].any()  # padding is zero
        assert np.all((values[:length, 0] >= 0) & (values[:length, 0] <= 1))
        marked = np.flatnonzero(values[:, 1])
        assert set(values[:, 1]) <= {0, 1} and len(marked) == 2
        # one marker in each half of the sequence's own length
        assert marked[0] < length // 2 <= marked[1] < length
        np.testing.assert_allclose(target, values[marked, 0].sum(), rtol=1e-6)
    # the values are spread over [0, 1], not constant
    assert X[:, :, 0][mask == 1].std() > 0.25


def mean_prediction_cost(rng):
    """The squared error of always predicting the mean target, from the generator."""
    _, y, _ = recurrent.gen_data(20000, 5, 10, rng)
    return float(np.mean((y - y.mean()) ** 2))


def test_short_training_beats_predicting_the_mean(capsys):
    """10 epochs of 50 batches of 20 sequences (lengths 5 to 10), an LSTM of 20 units."""
    baseline = mean_prediction_cost(np.random.RandomState(7))
    assert abs(baseline - 1 / 6) < 0.01  # the variance of a sum of two uniform values
    result = recurrent.main(num_epochs=10, epoch_size=50, batch_size=20, min_length=5,
                            max_length=10, num_units=20, learning_rate=0.01, val_size=200,
                            seed=0)
    out = capsys.readouterr().out
    assert "Epoch 10 of 10 took" in out and "validation cost" in out
    assert len(result["train_costs"]) == len(result["val_costs"]) == 10
    val_costs = result["val_costs"]
    print("validation costs:", np.round(val_costs, 4), "baseline", round(baseline, 4))
    assert all(np.isfinite(val_costs))
    assert val_costs[-1] < val_costs[0]
    # well below predicting the mean: the network finds and adds the marked values
    assert val_costs[-1] < 0.2 * baseline, val_costs
    assert result["train_costs"][-1] < 0.2 * baseline, result["train_costs"]


def test_command_line_errors():
    script = os.path.join(ROOT, "examples", "recurrent.py")

    def run(*args):
        return subprocess.run([sys.executable, script, *args], capture_output=True, text=True,
                              cwd=ROOT, timeout=120)
    for args, message in [(("--min-length", "1"), "--min-length must be at least 2"),
                          (("--min-length", "8", "--max-length", "6"),
                           "--max-length must be at least --min-length (8), got 6"),
                          (("--epochs", "0"), "--epochs must be a positive int, got 0")]:
        bad = run(*args)
        assert bad.returncode == 2, (args, bad.stderr)
        assert "Traceback" not in bad.stderr
        lines = bad.stderr.strip().splitlines()
        assert lines[-1].startswith(f"recurrent.py: error: {message}"), lines
