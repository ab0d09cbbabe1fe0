"""How long a sequence a trained copy model copies, against the size of its memory.

The copy model writes input vector ``t`` at location ``t + 1`` (its write head starts on
location 0 and moves one place forward at each step) while its read head waits on location 0;
after the delimiter the read head moves forward from location 1. With ``N`` locations the
write head wraps after ``N - 1`` vectors, and the ``N``-th vector overwrites location 0, where
the read head waits: it loses its place and the copy is at chance. The capacity is ``N - 1``.
The memory's size is not a dimension of the model's parameters when its initial memory and
weightings are constants (:func:`utils.training.parameters_for_memory_shape`), so the same
model runs with a larger memory, and copies longer sequences, without retraining.

For each memory size, the model is evaluated at each length on fresh random sequences (those
of :func:`utils.training.run`'s evaluation, seeded by the length), and the bit errors per
sequence are printed, written to ``--json`` and drawn against the length to ``--plot``.

Example::

    python benchmarks/copy_memory_size.py models/copy.npz --memory-sizes 128,256,1040 \\
        --plot docs/images/copy-memory-size.png --json copy-memory-size.json
"""
import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from utils import training  # noqa: E402
from utils.visualization import save_figure  # noqa: E402

__all__ = ["DEFAULT_LENGTHS", "bit_errors_by_length", "plot_bit_errors", "main"]

#: Lengths evaluated: the training range, the neighbourhood of each capacity N - 1 of the
#: memory sizes drawn in the docs (128, 256, 1040), and far beyond.
DEFAULT_LENGTHS = (20, 60, 120, 127, 128, 150, 200, 255, 256, 300, 500, 750, 1000, 1039, 1040,
                   1100)


def bit_errors_by_length(path, memory_size, lengths, batches=1, batch_size=16):
    """The copy model's evaluation at each length with a memory of ``memory_size`` locations.

    Parameters
    ----------
    path : str
        ``PATH.npz`` of a copy checkpoint.
    memory_size : int
        N, the number of memory locations (the location size is the checkpoint's).
    lengths : sequence of int
    batches, batch_size : int
        Batches of sequences per length.

    Returns
    -------
    list of dict
        The rows of the evaluation table: ``value`` (the length), ``bits_per_seq``,
        ``errors_per_seq``, ``perfect``, ``sequences``.
    """
    from examples import copy_task

    info = training.load_checkpoint(path)[2]
    location_size = info["config"]["memory_shape"][1]
    result = copy_task.main(["--load", path, "--iterations", "0", "--memory-shape",
                             str(memory_size), str(location_size), "--eval-lengths",
                             ",".join(map(str, lengths)), "--eval-batches", str(batches),
                             "--batch-size", str(batch_size), "--quiet"])
    if result.exit_code:
        raise RuntimeError(f"{path}: evaluation with N={memory_size} failed: {result.message}")
    return result.evaluation


def plot_bit_errors(results, path, title=None, bits_per_vector=8):
    """Draw the bit errors per sequence against the length, one curve per memory size.

    Parameters
    ----------
    results : dict
        ``{N: rows}`` as returned by :func:`bit_errors_by_length`.
    path : str
        The figure's file (``.png``, ``.pdf`` or ``.svg``).
    title : str, optional
    bits_per_vector : int
        Bits of each vector: chance makes half of the ``bits_per_vector * L`` wrong, drawn as
        a dashed line.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 4.5))
    for memory_size, rows in sorted(results.items()):
        lengths = [row["value"] for row in rows]
        # Zero errors drawn at 0.01 on the logarithmic axis, marked hollow.
        errors = [max(row["errors_per_seq"], 0.01) for row in rows]
        line, = axis.plot(lengths, errors, "-", label=f"N = {memory_size} "
                                                      f"(capacity {memory_size - 1})")
        axis.plot([n for n, row in zip(lengths, rows) if row["errors_per_seq"] == 0],
                  [0.01] * sum(row["errors_per_seq"] == 0 for row in rows), "o",
                  mfc="none", color=line.get_color())
        axis.plot([n for n, row in zip(lengths, rows) if row["errors_per_seq"] > 0],
                  [row["errors_per_seq"] for row in rows if row["errors_per_seq"] > 0], "o",
                  color=line.get_color())
        axis.axvline(memory_size - 1, color=line.get_color(), linestyle=":", linewidth=1)
    every_length = sorted({row["value"] for rows in results.values() for row in rows})
    axis.plot(every_length, [bits_per_vector * length / 2 for length in every_length], "--",
              color="grey", linewidth=1, label="chance (half the bits)")
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("sequence length (trained on 1-20)")
    axis.set_ylabel("bit errors per sequence (0 drawn at 0.01)")
    axis.set_title(title or "copy: bit errors against length, by memory size N")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(loc="upper left")
    save_figure(figure, path)
    plt.close(figure)


def main(argv=None):
    """Run the command line; returns ``{N: rows}``."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", metavar="MODEL.npz", help="a copy checkpoint")
    parser.add_argument("--memory-sizes", default="128,256,1040", metavar="N1,N2,...",
                        help="numbers of memory locations (default: %(default)s)")
    parser.add_argument("--lengths", default=",".join(map(str, DEFAULT_LENGTHS)),
                        metavar="L1,L2,...", help="sequence lengths (default: %(default)s)")
    parser.add_argument("--batches", type=int, default=1,
                        help="batches of 16 sequences per length (default: %(default)s)")
    parser.add_argument("--plot", metavar="FILE.png", help="draw the curves here")
    parser.add_argument("--json", metavar="FILE.json", help="write the rows here")
    args = parser.parse_args(argv)
    try:
        sizes = [int(size) for size in args.memory_sizes.split(",")]
        lengths = sorted(int(length) for length in args.lengths.split(","))
    except ValueError:
        parser.error("--memory-sizes and --lengths: comma-separated integers expected")
    if min(sizes) < 3 or min(lengths) < 1 or args.batches < 1:
        parser.error("--memory-sizes must be >= 3, --lengths and --batches >= 1")
    if not os.path.isfile(args.model):
        parser.error(f"MODEL.npz: no file {args.model}")
    results = {}
    for memory_size in sizes:
        results[memory_size] = bit_errors_by_length(args.model, memory_size, lengths,
                                                    args.batches)
        for row in results[memory_size]:
            print(f"N={memory_size:5d} length={row['value']:5d} bit errors/seq="
                  f"{row['errors_per_seq']:8.3f} perfect={row['perfect']:.3f}", flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as stream:
            json.dump({str(size): rows for size, rows in results.items()}, stream, indent=1)
    if args.plot:
        size = training.load_checkpoint(args.model)[2]["task"]["output_size"]
        plot_bit_errors(results, args.plot, bits_per_vector=size)
    return results


if __name__ == "__main__":
    main()
