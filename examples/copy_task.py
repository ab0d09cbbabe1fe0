"""Train an NTM on the copy task and draw where its heads read and write.

The model is NTM-Lasagne's copy model: the sequence goes through an :class:`NTMLayer`
(a dense controller, one write and one read head), and a sigmoid dense layer maps each
controller output to the predicted bits.

Example::

    python examples/copy_task.py --iterations 2000 --plot copy.png
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pytensor  # noqa: E402
import pytensor.tensor as pt  # noqa: E402

from ntm.controllers import DenseController  # noqa: E402
from ntm.heads import ReadHead, WriteHead  # noqa: E402
from ntm.lasagne import layers, nonlinearities, objectives, updates  # noqa: E402
from ntm.lasagne.random import set_rng  # noqa: E402
from ntm.layers import NTMLayer  # noqa: E402
from ntm.memory import Memory  # noqa: E402
from ntm.updates import graves_rmsprop  # noqa: E402
from utils.generators import CopyTask  # noqa: E402
from utils.metrics import bit_errors, bits_per_sequence  # noqa: E402


def build_model(size, num_units, memory_shape, num_shifts=3):
    """The copy model; returns ``(l_input, l_ntm, l_output)``."""
    l_input = layers.InputLayer((None, None, size + 1))
    memory = Memory(memory_shape, name="memory")
    controller = DenseController(l_input, memory_shape, num_units, num_reads=1,
                                 name="controller")
    heads = [WriteHead(controller, num_shifts, memory_shape, name="write"),
             ReadHead(controller, num_shifts, memory_shape, name="read")]
    l_ntm = NTMLayer(l_input, memory, controller, heads, name="ntm")
    l_flat = layers.ReshapeLayer(l_ntm, (-1, num_units))
    l_dense = layers.DenseLayer(l_flat, size, nonlinearity=nonlinearities.sigmoid, name="out")
    l_output = layers.ReshapeLayer(l_dense, (l_input.input_var.shape[0], -1, size))
    return l_input, l_ntm, l_output


def save_params(path, l_output):
    """Write the parameter values to ``path`` atomically (temporary file, then rename)."""
    values = layers.get_all_param_values(l_output)
    directory = os.path.dirname(os.path.abspath(path))
    with tempfile.NamedTemporaryFile(dir=directory, suffix=".npz", delete=False) as handle:
        np.savez(handle, *values)
    os.replace(handle.name, path)


def load_params(path, l_output):
    with np.load(path) as data:
        layers.set_all_param_values(l_output, [data[f"arr_{i}"] for i in range(len(data.files))])


def plot_episode(path, x, y, prediction, write_weights, read_weights):
    """Heat maps of one episode: input, target, prediction and the head weightings."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    delimiter = int(np.argmax(x[:, -1]))
    panels = [("input", x.T), ("target", y.T), ("prediction", prediction.T),
              ("write weighting", write_weights.T), ("read weighting", read_weights.T)]
    figure, axes = plt.subplots(len(panels), 1, figsize=(8, 11), sharex=True)
    for index, (axis, (title, image)) in enumerate(zip(axes, panels)):
        # Bits and predictions on a fixed 0-1 scale; weightings scaled to their own maximum.
        axis.imshow(image, aspect="auto", interpolation="nearest", cmap="bone", vmin=0,
                    vmax=1 if index < 3 else None)
        axis.axvline(delimiter, color="tab:red", linewidth=1)
        axis.set_title(title, fontsize=10)
    axes[-1].set_xlabel("time step (red: delimiter)")
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--size", type=int, default=8)
    parser.add_argument("--min-length", type=int, default=1)
    parser.add_argument("--max-length", type=int, default=20)
    parser.add_argument("--num-units", type=int, default=100)
    parser.add_argument("--memory-shape", type=int, nargs=2, default=(128, 20))
    parser.add_argument("--optimizer", choices=("graves_rmsprop", "adam"), default="adam")
    parser.add_argument("--learning-rate", type=float, default=None)
    parser.add_argument("--max-norm", type=float, default=10.0,
                        help="clip the total gradient norm to this value")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mode", default=None,
                        help="PyTensor mode: FAST_COMPILE (compiles fastest), CVM, NUMBA "
                             "(PyTensor's default, fastest steps) or JAX")
    parser.add_argument("--save", default=None, help="write the parameters here (.npz)")
    parser.add_argument("--load", default=None, help="start from these parameters (.npz)")
    parser.add_argument("--plot", default=None, help="write heat maps of an episode (.png)")
    parser.add_argument("--plot-length", type=int, default=None)
    parser.add_argument("--log-every", type=int, default=100)
    args = parser.parse_args(argv)

    set_rng(np.random.RandomState(args.seed))
    task = CopyTask(size=args.size, min_length=args.min_length, max_length=args.max_length,
                    batch_size=args.batch_size, seed=args.seed,
                    dtype=pytensor.config.floatX)
    l_input, l_ntm, l_output = build_model(args.size, args.num_units,
                                           tuple(args.memory_shape))
    if args.load:
        load_params(args.load, l_output)

    target = pt.tensor3("target")
    mask = pt.matrix("mask")
    prediction = layers.get_output(l_output)
    clipped = pt.clip(prediction, 1e-6, 1 - 1e-6)
    cross_entropy = objectives.binary_crossentropy(clipped, target).sum(axis=-1)
    loss = (cross_entropy * mask).sum() / pt.maximum(mask.sum(), 1)
    params = layers.get_all_params(l_output, trainable=True)
    grads = updates.total_norm_constraint(pytensor.grad(loss, params), args.max_norm)
    if args.optimizer == "adam":
        step_updates = updates.adam(grads, params, args.learning_rate or 1e-3)
    else:
        step_updates = graves_rmsprop(grads, params, args.learning_rate or 1e-4)

    print(f"compiling ({args.mode or pytensor.config.mode} mode)...", flush=True)
    started = time.time()
    train = pytensor.function([l_input.input_var, target, mask], loss, updates=step_updates,
                              mode=args.mode)
    predict = pytensor.function([l_input.input_var],
                                [prediction] + layers.get_output(l_ntm, get_details=True)[3:],
                                mode=args.mode)
    print(f"compiled in {time.time() - started:.1f} s", flush=True)

    started, recent = time.time(), []
    for i in range(args.iterations):
        x, y, m = task.sample_with_mask()
        value = float(train(x, y, m))
        if not np.isfinite(value):
            raise SystemExit(f"stopped at iteration {i}: the loss is {value}; the parameters "
                             "of the last finite step are in --save's file if one was written")
        recent.append(value)
        if (i + 1) % args.log_every == 0 or i + 1 == args.iterations:
            x, y, m = task.sample_with_mask()
            p = predict(x)[0]
            rate = (i + 1) * args.batch_size / (time.time() - started)
            print(f"iter {i + 1:6d}  loss {np.mean(recent):.4f}  "
                  f"bits/seq {bits_per_sequence(p, y, m):7.3f}  "
                  f"bit errors {bit_errors(p, y, m):6.2f}  {rate:.1f} seq/s", flush=True)
            recent = []
            if args.save:
                save_params(args.save, l_output)
    if args.save:
        save_params(args.save, l_output)
    if args.plot:
        length = args.plot_length or args.max_length
        x, y, m = task.sample_with_mask(length=length)
        p, write_weights, read_weights = predict(x[:1])
        plot_episode(args.plot, x[0], y[0], p[0], write_weights[0, :, 0], read_weights[0, :, 0])
        print(f"heat maps written to {args.plot}")


if __name__ == "__main__":
    main()
