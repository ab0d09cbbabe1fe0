"""Time the copy-task NTM's training step in every PyTensor mode: compile, first call, steps, memory.

The model is the copy task's (a dense controller of 100 units, one read and one write head with
3 shifts, memory 128 x 20, a sigmoid output layer), built through the public API. One training
step is forward, backward and an Adam update, on a copy sequence of ``length`` bits (so
``2 * length + 1`` time steps). For each mode and each setting of the memory kernels' threads
(:mod:`ntm.accel.kernel_threads`: ``chosen``, the setting a ``ThreadChoice`` chooses by timing
its trial's steps, as the examples train; ``auto``, the kernels' own default; explicit
counts), in a fresh process, it prints the time to build the gradient and compile the training function, the first
call's time (Numba compiles then, and caches what it compiled on disk for the next run), and
for each batch size and length the median, min and max of ``--steps`` timed steps, the
arithmetic rate of the median step (:func:`step_flops` / time) and the peak resident memory
above what the process held once the function was compiled. The first line names the
processor, the cores this process may use and the load of the machine, so that a noisy figure
shows as such.

With ``--pytorch PYTHON`` (an interpreter that has PyTorch), the same configurations are then
timed with ``benchmarks/pytorch_ntm.py``'s model, eager and with ``torch.compile`` of its cell,
on one thread and on every core, and the ratios of our default against PyTorch's best setting
are printed: the figures of one run on one machine::

    python benchmarks/train_step.py                       # all modes, batch 1 and 16, length 20 and 120
    python benchmarks/train_step.py --modes CVM --batch-sizes 1,16 --lengths 20 \
        --pytorch /path/to/python-with-torch
    python benchmarks/train_step.py --modes NUMBA --batch-sizes 1 --lengths 20 --threads 1
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

#: The copy model's shapes (as :func:`build_training_function` builds it).
SIZE, NUM_UNITS, MEMORY_SHAPE, NUM_SHIFTS = 8, 100, (128, 20), 3


def step_flops(batch_size, length, size=SIZE, num_units=NUM_UNITS, memory_shape=MEMORY_SHAPE,
               num_shifts=NUM_SHIFTS):
    r"""The arithmetic of one training step of the copy model, counted from its shapes.

    A product of an :math:`a`-vector by an :math:`a \times b` matrix counts :math:`2ab`
    (a multiply and an add each), an elementwise operation or a function (exp, pow, sqrt)
    one per value. Per time step and sequence, the forward pass is: the controller
    :math:`2 (s + 1 + M) U`, the heads' parameters :math:`2 U (3M + 2 + S + 2) + 2 U (M + 3
    + S)`, the output layer :math:`2 U s`; for each head the cosine similarity :math:`4 N M`
    (the key's and each row's dot products) and its addressing :math:`N (6 + 2 S)`; the write
    :math:`4 N M`, the read :math:`2 N M`. The backward pass is counted as twice the forward
    (each product is needed against both its operands), and Adam's update as 10 per
    parameter.

    Parameters
    ----------
    batch_size, length : int
        The batch and the copy sequence's length (``2 * length + 1`` time steps).

    Returns
    -------
    int
        FLOP per training step.
    """
    N, M = memory_shape
    S, U, s = num_shifts, num_units, size
    write_head = 3 * M + 2 + S + 2  # key, erase, add; beta, gate; shift; gamma
    read_head = M + 3 + S
    controller = 2 * (s + 1 + M) * U
    emitted = 2 * U * (write_head + read_head)
    output = 2 * U * s
    memory = 2 * (4 * N * M + N * (6 + 2 * S)) + 4 * N * M + 2 * N * M
    forward = batch_size * (2 * length + 1) * (controller + emitted + output + memory)
    parameters = ((s + 1 + M) * U + 2 * U + (U + 1) * (write_head + read_head)
                  + N * M + (U + 1) * s)
    return 3 * forward + 10 * parameters


def machine():
    """The processor's name (``/proc/cpuinfo``), the cores this process may use and the load
    averages of the last 1, 5 and 15 minutes, in words."""
    name = "unknown processor"
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return f"{name}, {cores} cores, load average {load}"


def cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


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
    size, num_units, memory_shape = SIZE, NUM_UNITS, MEMORY_SHAPE
    l_input = layers.InputLayer((None, None, size + 1))
    controller = DenseController(l_input, memory_shape, num_units, num_reads=1)
    heads = [WriteHead(controller, NUM_SHIFTS, memory_shape),
             ReadHead(controller, NUM_SHIFTS, memory_shape)]
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


def measure(mode, batch_sizes, lengths, steps, threads=None):
    """Measure one mode in this process, the kernels' threads set to ``threads`` (``None``:
    automatic); returns a dict of the results."""
    import pytensor

    from ntm.accel import kernel_threads
    from utils.generators import CopyTask

    chosen = threads == "chosen"  # a ThreadChoice per configuration, as the examples train
    kernel_threads.set_threads(None if chosen else threads)
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
        choice = kernel_threads.ThreadChoice() if chosen else None
        while choice is not None and choice.trying:  # its trial's steps, not timed here
            with choice.step(work=length):
                train(x, y)
        times = []
        for _ in range(steps):
            started = time.perf_counter()
            if choice is None:
                train(x, y)
            else:
                with choice.step(work=length):
                    train(x, y)
            times.append(time.perf_counter() - started)
        peak = _resident_kib("VmHWM") if can_reset else None
        times = np.array(times) * 1000
        result["runs"].append({
            "batch_size": batch_size, "length": length, "median_ms": float(np.median(times)),
            "chosen": None if choice is None else _setting_label(choice.chosen),
            "flops": step_flops(batch_size, length),
            "min_ms": float(times.min()), "max_ms": float(times.max()),
            "peak_mib": None if peak is None else max(peak - compiled_kib, 0) / 1024})
    return result


def _setting_label(setting):
    return "auto" if setting is None else str(setting)


def _threads_list(text):
    """``chosen,auto,1,2`` -> ``["chosen", None, 1, 2]``; ``cores`` stands for the cores this
    process may use, ``chosen`` for the setting a :class:`ThreadChoice` chooses."""
    settings = []
    for item in text.split(","):
        item = item.strip()
        setting = ("chosen" if item == "chosen" else None if item == "auto"
                   else cores() if item == "cores"
                   else int(item) if item.isdigit() and int(item) >= 1 else "bad")
        if setting == "bad":
            raise argparse.ArgumentTypeError(
                f"expected 'chosen', 'auto', 'cores' or counts >= 1 separated by commas, "
                f"got {item!r}")
        if setting not in settings:
            settings.append(setting)
    return settings


def _spread(ms):
    return f"{np.median(ms):.1f} ms ({np.min(ms):.1f}-{np.max(ms):.1f})"


PYTORCH_WORKER = """
import json, sys
import numpy as np
sys.path.insert(0, {root!r})
import torch
from benchmarks import pytorch_ntm
torch.set_num_threads({threads})
result = pytorch_ntm.time_training({batch_size}, {length}, {steps}, compile_cell={compile})
print(json.dumps({{"step_ms": result["step_ms"].tolist(), "version": torch.__version__}}))
"""


def time_pytorch(python, batch_size, length, steps, threads, compile_cell):
    """The steps' times (ms) of ``benchmarks/pytorch_ntm.py``'s model in a fresh process of
    ``python``, and PyTorch's version; ``None`` and the reason where it failed."""
    code = PYTORCH_WORKER.format(root=ROOT, batch_size=batch_size, length=length, steps=steps,
                                 threads=threads, compile=compile_cell)
    finished = subprocess.run([python, "-c", code], capture_output=True, text=True, cwd=ROOT,
                              env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    if finished.returncode != 0:
        lines = finished.stderr.strip().splitlines()
        return None, lines[-1] if lines else f"status {finished.returncode}"
    result = json.loads(finished.stdout.strip().splitlines()[-1])
    return np.array(result["step_ms"]), result["version"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default=",".join(available_modes()),
                        help="comma-separated PyTensor modes (default: those available here)")
    parser.add_argument("--batch-sizes", default="1,16")
    parser.add_argument("--lengths", default="20,120")
    parser.add_argument("--steps", type=int, default=50, help="timed steps per configuration")
    parser.add_argument("--threads", type=_threads_list,
                        default=_threads_list("chosen,auto,1,cores"),
                        help="the memory kernels' thread settings to time, each in its own "
                             "process: 'chosen' (what ntm.accel.kernel_threads.ThreadChoice "
                             "chooses after timing its trial's steps, as the examples train), "
                             "'auto' (the kernels' own setting, the default of a function "
                             "called without a choice), counts, 'cores' (default: "
                             "chosen,auto,1,cores)")
    parser.add_argument("--pytorch", default=None, metavar="PYTHON",
                        help="also time benchmarks/pytorch_ntm.py's model with this Python "
                             "(eager and torch.compile, one thread and every core) and print "
                             "the ratios")
    parser.add_argument("--floatX", default="float32", choices=("float32", "float64"),
                        help="PyTensor's floatX for the model (the examples train in float32)")
    parser.add_argument("--profile", default=None, metavar="MODE",
                        help="instead, print PyTensor's per-operation profile of the steps in "
                             "this mode (CVM or FAST_COMPILE)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--worker-threads", default="auto", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
        lengths = [int(n) for n in args.lengths.split(",")]
    except ValueError:
        parser.error("--batch-sizes and --lengths: expected integers separated by commas")
    if args.steps < 1:
        parser.error(f"--steps: expected at least 1, got {args.steps}")
    if args.pytorch and not os.path.exists(args.pytorch):
        parser.error(f"--pytorch: no such interpreter: {args.pytorch}")

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
        threads = _threads_list(args.worker_threads)[0]
        print(json.dumps(measure(args.worker, batch_sizes, lengths, args.steps, threads)))
        return

    import pytensor

    from ntm.accel import blas as accel_blas
    blas = (f"blas__ldflags={pytensor.config.blas__ldflags!r}" if pytensor.config.blas__ldflags
            else "SciPy's OpenBLAS (ntm.accel.blas)" if accel_blas.scipy_openblas_ldflags()
            else "none")
    omp = os.environ.get("OMP_NUM_THREADS")
    print(f"{machine()}; Python {sys.version.split()[0]}, PyTensor {pytensor.__version__}",
          flush=True)
    print(f"copy NTM (dense 100, 1 read + 1 write head, memory 128 x 20), {args.floatX}, Adam, "
          f"{args.steps} steps per row; memory kernels' threads (ntm.accel.kernel_threads): "
          f"'chosen' is what the examples train with, 'auto' a function's default, "
          f"OMP_NUM_THREADS={omp or 'unset'}; C backend's BLAS: "
          f"{blas}", flush=True)
    print("| mode | kernel threads | gradient + compile | first call | batch | length "
          "| step median (min-max) | GFLOP/s | peak memory |")
    print("|---|---|---|---|---|---|---|---|---|", flush=True)
    ours = {}
    for mode in args.modes.split(","):
        for threads in args.threads:
            label = _setting_label(threads)
            command = [sys.executable, os.path.abspath(__file__), "--worker", mode,
                       "--worker-threads", label, "--batch-sizes", args.batch_sizes,
                       "--lengths", args.lengths, "--steps", str(args.steps)]
            flags = ",".join(f for f in (os.environ.get("PYTENSOR_FLAGS"),
                                         f"floatX={args.floatX}") if f)
            finished = subprocess.run(command, capture_output=True, text=True, cwd=ROOT,
                                      env={**os.environ, "PYTENSOR_FLAGS": flags,
                                           # as in the examples (utils/__init__.py)
                                           "OPENBLAS_NUM_THREADS": os.environ.get(
                                               "OPENBLAS_NUM_THREADS", "1")})
            if finished.returncode != 0:
                print(f"| {mode} | {label} | failed: "
                      f"{finished.stderr.strip().splitlines()[-1]} ||||||", flush=True)
                continue
            result = json.loads(finished.stdout.strip().splitlines()[-1])
            for i, run in enumerate(result["runs"]):
                memory = "n/a" if run["peak_mib"] is None else f"{run['peak_mib']:.0f} MiB"
                shown = label if run.get("chosen") is None else f"chosen: {run['chosen']}"
                head = (f"| {mode} | {shown} | {result['grad_s']:.1f} + "
                        f"{result['compile_s']:.1f} s | {result['first_call_s']:.1f} s"
                        if i == 0 else f"| | {shown} | |")
                rate = run["flops"] / (run["median_ms"] / 1000) / 1e9
                print(f"{head} | {run['batch_size']} | {run['length']} | {run['median_ms']:.1f} "
                      f"ms ({run['min_ms']:.1f}-{run['max_ms']:.1f}) | {rate:.2f} | {memory} |",
                      flush=True)
                ours[mode, shown, run["batch_size"], run["length"]] = run["median_ms"]
    if args.pytorch:
        compare_with_pytorch(args, batch_sizes, lengths, ours)


def compare_with_pytorch(args, batch_sizes, lengths, ours):
    """Time PyTorch's twin (eager, torch.compile; one thread, every core) and print our
    default's ratios against its best setting."""
    settings = [1] + ([cores()] if cores() > 1 else [])
    print(f"\nPyTorch ({args.pytorch}), benchmarks/pytorch_ntm.py's model, {args.steps} steps "
          f"per row after its warm-up; {machine()}", flush=True)
    print("| PyTorch | threads | batch | length | step median (min-max) | GFLOP/s |")
    print("|---|---|---|---|---|---|", flush=True)
    best = {}
    for batch_size in batch_sizes:
        for length in lengths:
            for compile_cell in (False, True):
                kind = "torch.compile" if compile_cell else "eager"
                for threads in settings:
                    ms, version = time_pytorch(args.pytorch, batch_size, length, args.steps,
                                               threads, compile_cell)
                    if ms is None:
                        print(f"| {kind} | {threads} | {batch_size} | {length} | failed: "
                              f"{version} | |", flush=True)
                        continue
                    rate = step_flops(batch_size, length) / (np.median(ms) / 1000) / 1e9
                    print(f"| {kind} {version} | {threads} | {batch_size} | {length} | "
                          f"{_spread(ms)} | {rate:.2f} |", flush=True)
                    key = kind, batch_size, length
                    best[key] = min(best.get(key, np.inf), float(np.median(ms)))
    print("\n| ours: mode, kernel threads | batch | length | step median | vs eager (best "
          "threads) | vs torch.compile (best threads) |")
    print("|---|---|---|---|---|---|")
    for (mode, label, batch_size, length), ms in ours.items():
        ratios = [f"{best[kind, batch_size, length] / ms:.1f}x"
                  if (kind, batch_size, length) in best else "n/a"
                  for kind in ("eager", "torch.compile")]
        print(f"| {mode}, {label} | {batch_size} | {length} | {ms:.1f} ms | {ratios[0]} | "
              f"{ratios[1]} |", flush=True)


if __name__ == "__main__":
    main()
