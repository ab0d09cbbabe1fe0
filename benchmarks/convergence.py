"""Train one task over several seeds: sequences to convergence, wall time, generalisation.

Each seed runs the task's example script (``examples/<task>_task.py``) in this process with the
options given after ``--``, stops at the first validation below ``--threshold`` bits per
sequence (or at ``--iterations``; with ``--train-on`` it always trains all ``--iterations``,
and a seed above the threshold again at its last validation is marked so), and evaluates at
``--eval-lengths``. The table printed at the
end has, per seed, the sequences seen when it converged, the training wall time and the
evaluation (bits and bit errors per sequence) at every value; for the copy task also how
focused the heads are where they have nothing to do, on sequences of the longest training
length (:func:`benchmarks.error_analysis.idle_head_focus`: the read heads during the input,
the write heads during the output; runs with both at 0.9 or more are those that copy far
longer sequences than they were trained on, docs/tasks/copy.md)::

    python benchmarks/convergence.py copy --seeds 0,1,2,3,4 --iterations 15000 \\
        --eval-lengths 20,40,80,120 --out runs/copy
    python benchmarks/convergence.py copy --train-on --iterations 6000 --eval-lengths 40,120
    python benchmarks/convergence.py repeat_copy --seeds 0,1 -- --batch-size 4

Checkpoints and logs go to ``--out`` (``seed<k>.npz``, ``.json``, ``.csv``).
"""
import argparse
import importlib
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.error_analysis import idle_head_focus  # noqa: E402
from utils.generators import CopyTask  # noqa: E402

__all__ = ["TASKS", "FOCUS_TASKS", "run_seed", "idle_focus", "main"]

TASKS = ("copy", "repeat_copy", "associative_recall", "dynamic_ngrams", "priority_sort",
         "reversed_copy", "upside_down_copy", "sort", "dyck_words", "babi")
#: Tasks whose sweep also reports the idle heads' focus.
FOCUS_TASKS = ("copy",)
#: Batches of 32 sequences the focus is measured on.
FOCUS_BATCHES = 4


def _seeds(text):
    try:
        return [int(s) for s in text.split(",") if s]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")


def run_seed(module, seed, args, extra):
    """Train one seed; returns a dict of its results."""
    prefix = os.path.join(args.out, f"seed{seed}")
    argv = list(extra) + ["--seed", str(seed), "--iterations", str(args.iterations),
                          "--validate-every", str(args.validate_every),
                          "--save", prefix + ".npz", "--overwrite",  # a run again replaces its seeds
                          "--log", prefix + ".csv", "--quiet"]
    if args.eval_lengths:
        argv += ["--eval-lengths", args.eval_lengths]
    if not args.train_on:
        argv += ["--stop-below", str(args.threshold)]
    started = time.perf_counter()
    result = module.main(argv)
    total_s = time.perf_counter() - started
    batch_size = result.config.batch_size
    converged = next((row["iteration"] for row in result.history
                      if row["val_bits_per_seq"] is not None
                      and row["val_bits_per_seq"] < args.threshold), None)
    last = [row for row in result.history if row["val_bits_per_seq"] is not None][-1:]
    return {"seed": seed, "exit_code": result.exit_code, "message": result.message,
            "sequences": None if converged is None else converged * batch_size,
            "final_bits": last[0]["val_bits_per_seq"] if last else None,
            "train_s": last[0]["elapsed_s"] if last else 0.0, "total_s": total_s,
            "evaluation": result.evaluation,
            "focus": idle_focus(result) if args.task in FOCUS_TASKS else None}


def idle_focus(result):
    """``(read, write)``: the trained copy model's idle heads' mean largest weight."""
    config = result.config
    task = CopyTask(size=config.size, batch_size=32, seed=0)
    focus = idle_head_focus(result.model, task, config.max_length, FOCUS_BATCHES,
                            mode=config.mode)
    return focus["read"].mean(), focus["write"].mean()


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    own = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Options after -- go to the example script.")
    parser.add_argument("task", choices=TASKS)
    parser.add_argument("--seeds", type=_seeds, default=[0, 1, 2, 3, 4])
    parser.add_argument("--iterations", type=int, default=15000,
                        help="most iterations per seed")
    parser.add_argument("--threshold", type=float, default=0.1,
                        help="converged: validation bits per sequence below this")
    parser.add_argument("--train-on", action="store_true",
                        help="train all --iterations instead of stopping at convergence (the "
                             "evaluation then measures the fully trained model)")
    parser.add_argument("--validate-every", type=int, default=250)
    parser.add_argument("--eval-lengths", default=None,
                        help="values of the task's evaluation parameter, e.g. 20,40,80,120")
    parser.add_argument("--out", default=None, help="directory of checkpoints and logs "
                        "(default: runs/<task>)")
    args = parser.parse_args(own)
    args.out = args.out or os.path.join("runs", args.task)
    os.makedirs(args.out, exist_ok=True)
    module = importlib.import_module(f"examples.{args.task}_task")

    results = []
    for seed in args.seeds:
        result = run_seed(module, seed, args, extra)
        results.append(result)
        state = (f"converged after {result['sequences']} sequences" if result["sequences"]
                 else f"not converged ({result['final_bits']:.3g} bits per sequence)")
        focus = (f", idle heads' focus {result['focus'][0]:.2f} / {result['focus'][1]:.2f}"
                 if result["focus"] else "")
        print(f"seed {seed}: {state}, training {result['train_s']:.0f} s, "
              f"{result['total_s']:.0f} s in all{focus}"
              + (f"; {result['message']}" if result["message"] else ""), flush=True)

    values = [row["value"] for row in results[0]["evaluation"]] if results else []
    with_focus = args.task in FOCUS_TASKS
    header = "| seed | sequences to < {:g} bits | training time |".format(args.threshold)
    header += "".join(f" {v}: bits / errors |" for v in values)
    header += " idle heads' focus: read / write |" if with_focus else ""
    print()
    print(header)
    print("|---" * (3 + len(values) + with_focus) + "|")
    for result in results:
        reached = result["sequences"] or "not converged"
        if result["sequences"] and _fell_back(result, args.threshold):
            reached = f"{reached} (last validation {result['final_bits']:.3g} bits)"
        line = f"| {result['seed']} | {reached} | {result['train_s']:.0f} s |"
        for row in result["evaluation"]:
            line += f" {row['bits_per_seq']:.3g} / {row['errors_per_seq']:.3g} |"
        if with_focus:
            line += f" {result['focus'][0]:.2f} / {result['focus'][1]:.2f} |"
        print(line)
    converged = [r for r in results if r["sequences"]]
    fell_back = [r for r in converged if _fell_back(r, args.threshold)]
    print(f"\n{len(converged)} of {len(results)} seeds converged"
          + (f" ({len(fell_back)} of them above {args.threshold:g} bits again at the last "
             f"validation)" if fell_back else "")
          + (f"; median {sorted(r['sequences'] for r in converged)[len(converged) // 2]} "
             f"sequences" if converged else ""))
    return 0 if len(converged) == len(results) and not fell_back else 1


def _fell_back(result, threshold):
    """Whether a seed that got under the threshold was above it at its last validation (a
    run trained on with ``--train-on`` can fall back)."""
    return result["final_bits"] is not None and not result["final_bits"] < threshold


if __name__ == "__main__":
    sys.exit(main())
