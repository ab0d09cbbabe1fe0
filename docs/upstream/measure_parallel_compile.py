"""Compile time of the NTM's training function with and without ``parallel-compile.patch``.

Each measure is a process of its own with a compile directory of its own: a cold compile
(empty directory: every C module compiled) and then a warm one (the same directory: every
module found in the cache). The unpatched and the patched PyTensor take turns, one after the
other, never at the same time. Run from the project's root::

    python docs/upstream/measure_parallel_compile.py --patched-pytensor /tmp/pt --repeat 2

where ``/tmp/pt`` holds the patched copy of ``pytensor/`` (see ``docs/upstream/README.md``).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

__all__ = ["main"]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _child():
    """Build the training function once, print its compile seconds and one loss."""
    sys.path[:0] = [ROOT, os.path.join(ROOT, "benchmarks")]
    import numpy as np
    import pytensor

    import train_step

    train, _, compile_s = train_step.build_training_function("CVM")
    rng = np.random.RandomState(0)
    x = rng.binomial(1, .5, (2, 11, 9)).astype(pytensor.config.floatX)
    y = rng.binomial(1, .5, (2, 11, 8)).astype(pytensor.config.floatX)
    print(json.dumps({"compile_s": compile_s, "loss": float(train(x, y)),
                      "pytensor": os.path.dirname(pytensor.__file__)}))


def _measure(pythonpath, compiledir, threads):
    env = dict(os.environ, PYTHONPATH=pythonpath, OMP_NUM_THREADS="1",
               PYTENSOR_FLAGS=f"base_compiledir={compiledir}")
    if threads is not None:
        env["PYTENSOR_FLAGS"] += f",compile__threads={threads}"
    started = time.perf_counter()
    child = subprocess.run([sys.executable, os.path.abspath(__file__), "--child"], env=env,
                           capture_output=True, text=True)
    if child.returncode:
        sys.exit(f"the measure failed:\n{child.stderr}")
    out = child.stdout
    result = json.loads(out.strip().splitlines()[-1])
    result["process_s"] = time.perf_counter() - started
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patched-pytensor", metavar="DIR",
                        help="directory that holds the patched copy of pytensor/")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of both variants")
    parser.add_argument("--threads", type=int, default=None,
                        help="compile__threads of the patched runs (default: its default)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child()
    if args.patched_pytensor is None:
        parser.error("--patched-pytensor: expected the directory that holds pytensor/")
    patched = os.path.abspath(args.patched_pytensor)
    if not os.path.isfile(os.path.join(patched, "pytensor", "link", "vm.py")):
        parser.error(f"--patched-pytensor: expected a directory holding pytensor/, got {patched}")
    if args.repeat < 1:
        parser.error(f"--repeat: expected a positive count, got {args.repeat}")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads: expected a positive count, got {args.threads}")
    variants = [("unpatched", ROOT, None),
                ("patched", os.pathsep.join([patched, ROOT]), args.threads)]
    print(f"{'round':>5} {'variant':>9} {'cold s':>7} {'warm s':>7} {'loss':>9}  load (1, 5, 15 min)")
    for round_ in range(1, args.repeat + 1):
        for name, pythonpath, threads in variants:
            load = os.getloadavg()
            compiledir = tempfile.mkdtemp(prefix="compiledir-")
            try:
                cold = _measure(pythonpath, compiledir, threads)
                warm = _measure(pythonpath, compiledir, threads)
            finally:
                shutil.rmtree(compiledir, ignore_errors=True)
            print(f"{round_:>5} {name:>9} {cold['compile_s']:7.1f} {warm['compile_s']:7.1f} "
                  f"{cold['loss']:9.6f}  {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)


if __name__ == "__main__":
    main()
