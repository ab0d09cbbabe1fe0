#!/usr/bin/env python
"""The adding problem (Hochreiter & Schmidhuber, 1997) learned by an LSTM with ntm.lasagne.

Each step of a sequence carries two numbers: a value drawn uniformly from [0, 1] and a
marker. Exactly two steps are marked (marker 1, the others 0), one in the first half of the
sequence and one in the second; the target is the sum of the two marked values. The network
has to remember a value over many steps while ignoring the rest, which is what the LSTM's
gated cell is for.

Sequences have lengths between ``--min-length`` and ``--max-length``; shorter ones are padded
with zeros and a mask tells the LSTM where each ends (past the end its state is carried over
unchanged, so the last step holds the state at the sequence's true end). The network: an LSTM
with gradient clipping, its last step (``SliceLayer``), and a linear dense unit, trained on the
squared error with Adam. Each epoch reports the training cost and the cost on a fixed
validation set; always predicting the mean target (1) costs 1/6 (the variance of a sum of two
uniform values)::

    python examples/recurrent.py
    python examples/recurrent.py --epochs 20 --min-length 50 --max-length 55
"""
import argparse
import os
import sys
import time

import numpy as np
import pytensor
import pytensor.tensor as pt

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ntm import lasagne  # noqa: E402


def gen_data(num_sequences, min_length=50, max_length=55, rng=np.random):
    """Sequences of the adding problem.

    Returns
    -------
    X : array, shape ``(num_sequences, max_length, 2)``
        The values (feature 0) and markers (feature 1); zero past each sequence's end.
    y : array, shape ``(num_sequences,)``
        The sum of the two marked values.
    mask : array, shape ``(num_sequences, max_length)``
        1 for the steps of each sequence, 0 for its padding.
    """
    floatX = pytensor.config.floatX
    X = np.zeros((num_sequences, max_length, 2), dtype=floatX)
    mask = np.zeros((num_sequences, max_length), dtype=floatX)
    y = np.zeros(num_sequences, dtype=floatX)
    lengths = rng.randint(min_length, max_length + 1, size=num_sequences)
    for n, length in enumerate(lengths):
        half = length // 2
        X[n, :length, 0] = rng.uniform(0, 1, size=length)
        # one marker in [0, half), the other in [half, length)
        marked = (rng.randint(0, half), rng.randint(half, length))
        X[n, marked, 1] = 1
        mask[n, :length] = 1
        y[n] = X[n, marked, 0].sum()
    return X, y, mask


def build_network(max_length, num_units=100, grad_clip=100.0):
    """LSTM over ``(batch, max_length, 2)`` with a ``(batch, max_length)`` mask, its last
    step, and one linear output unit. Returns ``(l_in, l_mask, l_out)``."""
    l_in = lasagne.layers.InputLayer(shape=(None, max_length, 2))
    l_mask = lasagne.layers.InputLayer(shape=(None, max_length))
    l_lstm = lasagne.layers.LSTMLayer(l_in, num_units, mask_input=l_mask,
                                      grad_clipping=grad_clip,
                                      nonlinearity=lasagne.nonlinearities.tanh)
    # the mask carries the state over the padding, so the last step is each sequence's end
    l_last = lasagne.layers.SliceLayer(l_lstm, -1, axis=1)
    l_out = lasagne.layers.DenseLayer(l_last, num_units=1,
                                      nonlinearity=lasagne.nonlinearities.linear)
    return l_in, l_mask, l_out


def main(num_epochs=10, epoch_size=100, batch_size=100, min_length=50, max_length=55,
         num_units=100, learning_rate=0.01, grad_clip=100.0, val_size=1000, seed=0):
    """Train on ``epoch_size`` fresh batches per epoch and report the costs.

    Returns
    -------
    dict
        ``train_costs`` and ``val_costs`` (one per epoch) and ``val_baseline``, the validation
        cost of always predicting the mean target.
    """
    rng = np.random.RandomState(seed)
    lasagne.random.set_rng(np.random.RandomState(seed + 1))  # the initial weights
    X_val, y_val, mask_val = gen_data(val_size, min_length, max_length, rng)
    val_baseline = float(np.mean((y_val - 1.0) ** 2))

    print("Building network and compiling functions...")
    l_in, l_mask, l_out = build_network(max_length, num_units, grad_clip)
    target_values = pt.vector("target_output")
    prediction = lasagne.layers.get_output(l_out)  # (batch, 1), aligned with the targets
    cost = lasagne.objectives.squared_error(prediction, target_values).mean()
    params = lasagne.layers.get_all_params(l_out, trainable=True)
    updates = lasagne.updates.adam(cost, params, learning_rate=learning_rate)
    inputs = [l_in.input_var, target_values, l_mask.input_var]
    train = pytensor.function(inputs, cost, updates=updates)
    compute_cost = pytensor.function(inputs, cost)

    print("Training...")
    train_costs, val_costs = [], []
    for epoch in range(num_epochs):
        start_time = time.time()
        total = 0.0
        for _ in range(epoch_size):
            X, y, mask = gen_data(batch_size, min_length, max_length, rng)
            total += float(train(X, y, mask))
        if not np.isfinite(total):
            raise FloatingPointError(f"the training cost is {total} at epoch {epoch + 1}")
        train_costs.append(total / epoch_size)
        val_costs.append(float(compute_cost(X_val, y_val, mask_val)))
        print(f"Epoch {epoch + 1} of {num_epochs} took {time.time() - start_time:.3f}s: "
              f"training cost {train_costs[-1]:.6f}, validation cost {val_costs[-1]:.6f}")
    print(f"(predicting the mean costs {val_baseline:.6f} on the validation set)")
    return {"train_costs": train_costs, "val_costs": val_costs, "val_baseline": val_baseline}


def build_parser():
    parser = argparse.ArgumentParser(
        description="Trains an LSTM on the adding problem using ntm.lasagne.")
    add = parser.add_argument
    add("--epochs", type=int, default=10, help="training epochs (default: 10)")
    add("--epoch-size", type=int, default=100, help="mini-batches per epoch (default: 100)")
    add("--batch-size", type=int, default=100, help="sequences per mini-batch (default: 100)")
    add("--min-length", type=int, default=50, help="shortest sequence (default: 50)")
    add("--max-length", type=int, default=55, help="longest sequence (default: 55)")
    add("--num-units", type=int, default=100, help="LSTM units (default: 100)")
    add("--learning-rate", type=float, default=0.01, help="Adam's step size (default: 0.01)")
    add("--grad-clip", type=float, default=100.0,
        help="clip the LSTM's gate gradients to [-x, x]; 0 for none (default: 100)")
    add("--val-size", type=int, default=1000, help="validation sequences (default: 1000)")
    add("--seed", type=int, default=0, help="seed of the data and the weights (default: 0)")
    return parser


def cli(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("epochs", "epoch_size", "batch_size", "num_units", "val_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive int, "
                         f"got {getattr(args, name)}")
    if args.min_length < 2:
        parser.error(f"--min-length must be at least 2 (a step for each marker), "
                     f"got {args.min_length}")
    if args.max_length < args.min_length:
        parser.error(f"--max-length must be at least --min-length ({args.min_length}), "
                     f"got {args.max_length}")
    if not args.learning_rate > 0:
        parser.error(f"--learning-rate must be positive, got {args.learning_rate}")
    if not args.grad_clip >= 0:
        parser.error(f"--grad-clip must be 0 or positive, got {args.grad_clip}")
    return main(args.epochs, args.epoch_size, args.batch_size, args.min_length,
                args.max_length, args.num_units, args.learning_rate, args.grad_clip,
                args.val_size, args.seed)


if __name__ == "__main__":
    cli()
