"""What a cold compile is made of: the C modules in a PyTensor compile directory, by op class.

PyTensor writes each module's source (``mod.cpp``) in a directory of its own, then the
compiler writes the shared library next to it: the time between the two files is about the
compiler's time for that module. Compile a function into an empty directory, then read it::

    PYTENSOR_FLAGS=base_compiledir=/tmp/cold python benchmarks/train_step.py --modes CVM \\
        --batch-sizes 16 --lengths 20 --steps 1 --threads auto
    python benchmarks/compile_modules.py /tmp/cold

It prints, per op class (a module that holds several ops counts once, under all their names),
the number of modules and their seconds of compiling, then the modules in all. The seconds
are those of the files' times: other work on the machine is in them.
"""
import argparse
import glob
import os
import re
import sys
from collections import defaultdict

__all__ = ["module_times", "main"]


def module_times(compile_directory):
    """``[(op class names, seconds), ...]`` of the C modules under ``compile_directory`` (a
    ``base_compiledir`` or a ``compiledir``), in the order they were written."""
    directories = glob.glob(os.path.join(compile_directory, "compiledir_*")) or [compile_directory]
    modules = []
    for directory in directories:
        for source in glob.glob(os.path.join(directory, "*", "mod.cpp")):
            libraries = glob.glob(os.path.join(os.path.dirname(source), "*.so"))
            if not libraries:  # not compiled (a failure, or still under way)
                continue
            with open(source, encoding="utf-8", errors="replace") as stream:
                names = sorted(set(re.findall(r"// Op class (\w+)", stream.read())))
            written = os.path.getmtime(source)
            modules.append((written, ",".join(names) or "(none)",
                            os.path.getmtime(libraries[0]) - written))
    return [(names, seconds) for _, names, seconds in sorted(modules)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", help="a PyTensor base_compiledir or compiledir")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.directory):
        parser.error(f"directory: no such directory: {args.directory}")
    modules = module_times(args.directory)
    if not modules:
        parser.error(f"directory: no compiled C module under {args.directory}")
    by_class = defaultdict(lambda: [0, 0.0])
    for names, seconds in modules:
        by_class[names][0] += 1
        by_class[names][1] += seconds
    print("| op class | modules | seconds |")
    print("|---|---|---|")
    for names, (count, seconds) in sorted(by_class.items(), key=lambda item: -item[1][1]):
        print(f"| {names} | {count} | {seconds:.1f} |")
    print(f"| all | {len(modules)} | {sum(seconds for _, seconds in modules):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
