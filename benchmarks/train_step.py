"""Time the copy-task NTM's training function: compile, first call and steps.

Builds the model of ``examples/copy_task.py`` (dense controller of 100 units, one read and one
write head, memory 128 x 20) and, for one PyTensor mode, prints the compile time, the first
call's time and the median, min and max time of a training step (forward, backward and Adam
update) at the given batch size and sequence length::

    python benchmarks/train_step.py --mode NUMBA --batch-size 1 --length 20
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pytensor  # noqa: E402
import pytensor.tensor as pt  # noqa: E402

from examples.copy_task import build_model  # noqa: E402
from ntm.lasagne import layers, objectives, updates  # noqa: E402
from ntm.lasagne.random import set_rng  # noqa: E402
from utils.generators import CopyTask  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", default=pytensor.config.mode)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--length", type=int, default=20)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args(argv)

    set_rng(np.random.RandomState(0))
    l_input, _, l_output = build_model(8, 100, (128, 20))
    target = pt.tensor3("target")
    loss = objectives.binary_crossentropy(
        pt.clip(layers.get_output(l_output), 1e-6, 1 - 1e-6), target).mean()
    params = layers.get_all_params(l_output, trainable=True)

    started = time.perf_counter()
    train = pytensor.function([l_input.input_var, target], loss,
                              updates=updates.adam(loss, params), mode=args.mode)
    compile_s = time.perf_counter() - started

    task = CopyTask(size=8, batch_size=args.batch_size, seed=0, dtype=pytensor.config.floatX)
    x, y = task.sample(length=args.length)
    started = time.perf_counter()
    train(x, y)
    first_s = time.perf_counter() - started
    times = []
    for _ in range(args.steps):
        started = time.perf_counter()
        train(x, y)
        times.append(time.perf_counter() - started)
    times = np.array(times) * 1000
    print(f"mode {args.mode}  batch {args.batch_size}  length {args.length} "
          f"({2 * args.length + 1} steps)  compile {compile_s:.1f} s  first call {first_s:.1f} s  "
          f"step median {np.median(times):.1f} ms  min {times.min():.1f}  max {times.max():.1f}",
          flush=True)


if __name__ == "__main__":
    main()
