"""Train one task over several seeds: sequences to convergence, wall time, generalisation.

Each seed runs the task's example script (``examples/<task>_task.py``) in this process with the
options given after ``--``, stops at the first validation below ``--threshold`` bits per
sequence (or at ``--iterations``; with ``--train-on`` it always trains all ``--iterations``),
and evaluates at ``--eval-lengths``. The table printed at the
end has, per seed, the sequences seen when it converged, the training wall time and the
evaluation (bits and bit errors per sequence) at every value::

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

TASKS = ("copy", "repeat_copy", "associative_recall", "dynamic_ngrams", "priority_sort",
         "reversed_copy", "upside_down_copy", "sort", "dyck_words", "babi")


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
                          "--save", prefix + ".npz", "--log", prefix + ".csv", "--quiet"]
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
            "evaluation": result.evaluation}


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
        print(f"seed {seed}: {state}, training {result['train_s']:.0f} s, "
              f"{result['total_s']:.0f} s in all"
              + (f"; {result['message']}" if result["message"] else ""), flush=True)

    values = [row["value"] for row in results[0]["evaluation"]] if results else []
    header = "| seed | sequences to < {:g} bits | training time |".format(args.threshold)
    header += "".join(f" {v}: bits / errors |" for v in values)
    print()
    print(header)
    print("|---" * (3 + len(values)) + "|")
    for result in results:
        line = (f"| {result['seed']} | {result['sequences'] or 'not converged'} | "
                f"{result['train_s']:.0f} s |")
        for row in result["evaluation"]:
            line += f" {row['bits_per_seq']:.3g} / {row['errors_per_seq']:.3g} |"
        print(line)
    converged = [r for r in results if r["sequences"]]
    print(f"\n{len(converged)} of {len(results)} seeds converged"
          + (f"; median {sorted(r['sequences'] for r in converged)[len(converged) // 2]} "
             f"sequences" if converged else ""))
    return 0 if len(converged) == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
