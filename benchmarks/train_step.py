"""Time the copy-task NTM's training step in every PyTensor mode: compile, first call, steps, memory.

The model is the copy task's (a dense controller of 100 units, one read and one write head with
3 shifts, memory 128 x 20, a sigmoid output layer), built through the public API. One training
step is forward, backward and an Adam update, on a copy sequence of ``length`` bits (so
``2 * length + 1`` time steps). For each mode, in a fresh process, it prints the time to build
the gradient and compile the training function, the first call's time (Numba compiles then,
and caches what it compiled on disk for the next run),
and for each batch size and length the median, min and max of ``--steps`` timed steps and the
peak resident memory above what the process held once the function was compiled::

    python benchmarks/train_step.py                       # all modes, batch 1 and 16, length 20 and 120
    python benchmarks/train_step.py --modes NUMBA --batch-sizes 1 --lengths 20
    python benchmarks/train_step.py --profile CVM --batch-sizes 16 --lengths 20   # time per op
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

MODES = ("FAST_COMPILE", "CVM", "NUMBA", "JAX")


def available_modes():
    """The modes of :data:`MODES` whose backend can be imported here."""
    modes = []
    for mode in MODES:
        try:
            if mode == "NUMBA":
                import numba  # noqa: F401
            if mode == "JAX":
                import jax  # noqa: F401
                import pytensor

                from utils.training import JAX_UNSUPPORTED_PYTENSOR
                if pytensor.__version__ in JAX_UNSUPPORTED_PYTENSOR:
                    continue  # its JAX backend cannot run the model's scan (utils.training)
        except ImportError:
            continue
        modes.append(mode)
    return modes


def build_training_function(mode, profile=False):
    """The copy model's training function ``train(x, y) -> loss`` and the seconds spent on its
    gradient and on compiling it."""
    import pytensor
    import pytensor.tensor as pt

    import ntm.accel
    from ntm.controllers import DenseController
    from ntm.heads import ReadHead, WriteHead
    from ntm.lasagne import layers, nonlinearities, objectives, updates
    from ntm.lasagne.random import set_rng
    from ntm.layers import NTMLayer
    from ntm.memory import Memory

    set_rng(np.random.RandomState(0))
    size, num_units, memory_shape = 8, 100, (128, 20)
    l_input = layers.InputLayer((None, None, size + 1))
    controller = DenseController(l_input, memory_shape, num_units, num_reads=1)
    heads = [WriteHead(controller, 3, memory_shape), ReadHead(controller, 3, memory_shape)]
    l_ntm = NTMLayer(l_input, Memory(memory_shape), controller, heads)
    l_dense = layers.DenseLayer(l_ntm, size, num_leading_axes=2,
                                nonlinearity=nonlinearities.sigmoid)
    target = pt.tensor3("target")
    # As the examples build and compile: with the switch of ntm.accel (the plain model and
    # mode where the backend has no fused ops).
    with ntm.accel.accelerated(mode) as compile_mode:
        prediction = pt.clip(layers.get_output(l_dense), 1e-6, 1 - 1e-6)
        loss = objectives.binary_crossentropy(prediction, target).sum(axis=-1).mean()
        params = layers.get_all_params(l_dense, trainable=True)
        started = time.perf_counter()
        grads = pytensor.grad(loss, params)
        grad_s = time.perf_counter() - started
        started = time.perf_counter()
        train = pytensor.function([l_input.input_var, target], loss,
                                  updates=updates.adam(grads, params), mode=compile_mode,
                                  profile=profile)
    return train, grad_s, time.perf_counter() - started


def _resident_kib(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def _reset_peak_memory():
    """Reset the process's peak resident size (Linux); False where it cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def measure(mode, batch_sizes, lengths, steps):
    """Measure one mode in this process; returns a dict of the results."""
    import pytensor

    from utils.generators import CopyTask

    train, grad_s, compile_s = build_training_function(mode)
    result = {"mode": mode, "grad_s": grad_s, "compile_s": compile_s, "runs": []}
    # The first call compiles what the mode compiles lazily (Numba's kernels); it is timed
    # apart, on the shortest sequence, so that its memory is not counted as a step's.
    x, y = CopyTask(size=8, batch_size=1, seed=0, dtype=pytensor.config.floatX).sample(length=1)
    started = time.perf_counter()
    train(x, y)
    result["first_call_s"] = time.perf_counter() - started
    compiled_kib = _resident_kib("VmRSS")
    # Smallest configuration first, so that buffers kept from a previous one never exceed
    # what the current one needs.
    configurations = sorted(((b, n) for b in batch_sizes for n in lengths),
                            key=lambda c: c[0] * c[1])
    for batch_size, length in configurations:
        task = CopyTask(size=8, batch_size=batch_size, seed=0, dtype=pytensor.config.floatX)
        x, y = task.sample(length=length)
        can_reset = _reset_peak_memory()
        train(x, y)
        times = []
        for _ in range(steps):
            started = time.perf_counter()
            train(x, y)
            times.append(time.perf_counter() - started)
        peak = _resident_kib("VmHWM") if can_reset else None
        times = np.array(times) * 1000
        result["runs"].append({
            "batch_size": batch_size, "length": length, "median_ms": float(np.median(times)),
            "min_ms": float(times.min()), "max_ms": float(times.max()),
            "peak_mib": None if peak is None else max(peak - compiled_kib, 0) / 1024})
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default=",".join(available_modes()),
                        help="comma-separated PyTensor modes (default: those available here)")
    parser.add_argument("--batch-sizes", default="1,16")
    parser.add_argument("--lengths", default="20,120")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per configuration")
    parser.add_argument("--floatX", default="float32", choices=("float32", "float64"),
                        help="PyTensor's floatX for the model (the examples train in float32)")
    parser.add_argument("--profile", default=None, metavar="MODE",
                        help="instead, print PyTensor's per-operation profile of the steps in "
                             "this mode (CVM or FAST_COMPILE)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    lengths = [int(n) for n in args.lengths.split(",")]

    if args.profile:
        import pytensor
        pytensor.config.floatX = args.floatX
        from utils.generators import CopyTask
        train = build_training_function(args.profile, profile=True)[0]
        for batch_size in batch_sizes:
            for length in lengths:
                x, y = CopyTask(size=8, batch_size=batch_size, seed=0,
                                dtype=args.floatX).sample(length=length)
                for _ in range(args.steps + 1):
                    train(x, y)
        train.profile.summary(n_ops_to_print=15, n_apply_to_print=15)
        return
    if args.worker:
        print(json.dumps(measure(args.worker, batch_sizes, lengths, args.steps)))
        return

    threads = os.environ.get("OMP_NUM_THREADS") or len(os.sched_getaffinity(0))
    import pytensor

    from ntm.accel import blas as accel_blas
    blas = (f"blas__ldflags={pytensor.config.blas__ldflags!r}" if pytensor.config.blas__ldflags
            else "SciPy's OpenBLAS (ntm.accel.blas)" if accel_blas.scipy_openblas_ldflags()
            else "none")
    print(f"copy NTM (dense 100, 1 read + 1 write head, memory 128 x 20), {args.floatX}, Adam, "
          f"{args.steps} steps per row; C memory kernels on up to {threads} threads "
          f"(OMP_NUM_THREADS); C backend's BLAS: {blas}", flush=True)
    print("| mode | gradient + compile | first call | batch | length | step median (min-max) "
          "| peak memory |")
    print("|---|---|---|---|---|---|---|", flush=True)
    for mode in args.modes.split(","):
        command = [sys.executable, os.path.abspath(__file__), "--worker", mode,
                   "--batch-sizes", args.batch_sizes, "--lengths", args.lengths,
                   "--steps", str(args.steps)]
        flags = ",".join(f for f in (os.environ.get("PYTENSOR_FLAGS"), f"floatX={args.floatX}")
                         if f)
        finished = subprocess.run(command, capture_output=True, text=True, cwd=ROOT,
                                  env={**os.environ, "PYTENSOR_FLAGS": flags,
                                       # as in the examples (utils/__init__.py)
                                       "OPENBLAS_NUM_THREADS": os.environ.get(
                                           "OPENBLAS_NUM_THREADS", "1")})
        if finished.returncode != 0:
            print(f"| {mode} | failed: {finished.stderr.strip().splitlines()[-1]} |||||",
                  flush=True)
            continue
        result = json.loads(finished.stdout.strip().splitlines()[-1])
        for i, run in enumerate(result["runs"]):
            memory = "n/a" if run["peak_mib"] is None else f"{run['peak_mib']:.0f} MiB"
            head = (f"| {mode} | {result['grad_s']:.1f} + {result['compile_s']:.1f} s | "
                    f"{result['first_call_s']:.1f} s" if i == 0 else "| | |")
            print(f"{head} | {run['batch_size']} | {run['length']} | {run['median_ms']:.1f} ms "
                  f"({run['min_ms']:.1f}-{run['max_ms']:.1f}) | {memory} |", flush=True)


if __name__ == "__main__":
    main()
