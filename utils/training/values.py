"""The values of the options: reading them from the command line's text, and checking them.

The readers take the text of an option and return its value, raising
:class:`~utils.training.errors.ConfigError` for text they cannot read; the checks take a value
and the configuration and return what is wrong with it (a message without the option's name),
or None. :mod:`utils.training.config` declares which option uses which.
"""
import math
import numbers
import os

import numpy as np

from .errors import ConfigError

__all__ = ["MAX_SEED", "PLOT_FORMATS", "option_name", "format_value", "listed",
           "parse_positive_ints", "parse_iterations_or_none", "parse_schedule",
           "format_schedule", "parse_key_values", "learning_rate_problem", "at_least",
           "above_zero", "one_of", "has_suffix", "check_learning_rate", "check_schedule",
           "check_average_after", "check_heads", "check_memory_shape", "check_shifts",
           "check_seed", "needs_heads", "checkpoint_exists", "not_both_checkpoints",
           "directory_exists"]

#: numpy.random.RandomState takes seeds from 0 to 2**32 - 1.
MAX_SEED = 2 ** 32 - 1

#: The file types ``--plot`` can write.
PLOT_FORMATS = (".png", ".pdf", ".svg")


def option_name(dest):
    """The command line's spelling of an option: ``num_units`` -> ``--num-units``."""
    return "--" + dest.replace("_", "-")


def format_value(value):
    """A value as the command line spells it (a list as its items separated by spaces)."""
    return " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def listed(value):
    """A sequence as a list (as JSON holds it); anything else as it is."""
    return list(value) if isinstance(value, (list, tuple)) else value


# --------------------------------------------------------------------------------------------
# Values given as text
# --------------------------------------------------------------------------------------------

def parse_positive_ints(text):
    """``"20,40,80"`` as ``[20, 40, 80]`` (positive integers)."""
    try:
        values = [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise ConfigError(f"expected comma-separated integers such as 20,40,80, "
                          f"got {text!r}") from None
    if not values or any(value < 1 for value in values):
        raise ConfigError(f"expected comma-separated positive integers such as 20,40,80, "
                          f"got {text!r}")
    return values


def parse_iterations_or_none(text):
    """An iteration count, or ``none`` (a script's default turned off) as None."""
    if text.strip().lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"expected a number of iterations or 'none', got {text!r}") from None


def parse_kernel_threads(text):
    """``auto`` as None (the choice timed by :class:`ntm.accel.kernel_threads.ThreadChoice`),
    or a number of threads (an int >= 1)."""
    if text.strip().lower() == "auto":
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"expected 'auto' or a number of threads >= 1, got {text!r}")
    return value


def parse_schedule(text):
    """``ITERATIONS:RATE,...`` as ``[[iterations, rate], ...]`` (iterations increasing);
    ``none`` (or nothing) as ``[]``."""
    example = "such as 24000:2e-4,30000:1e-4"
    schedule = []
    if text.strip().lower() == "none":
        return schedule
    for item in text.split(","):
        if not item.strip():
            continue
        after, sep, rate = item.partition(":")
        try:
            after, rate = int(after), float(rate)
        except ValueError:
            after = rate = None
        if not sep or after is None:
            raise ConfigError(f"expected ITERATIONS:RATE pairs separated by commas {example}, "
                              f"got {text!r}")
        if after < 1 or not (math.isfinite(rate) and rate > 0):
            raise ConfigError(f"expected iterations >= 1 and rates > 0 {example}, "
                              f"got {item.strip()!r}")
        if schedule and after <= schedule[-1][0]:
            raise ConfigError(f"the iterations must increase {example}, got {text!r}")
        schedule.append([after, rate])
    return schedule


def format_schedule(schedule):
    """A learning-rate schedule as ``--learning-rate-schedule`` spells it."""
    return ",".join(f"{after}:{rate:g}" for after, rate in schedule)


def _parse_scalar(text):
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def parse_key_values(text):
    """``"length=40,repeats=2"`` as ``{"length": 40, "repeats": 2}``."""
    pairs = {}
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ConfigError(f"expected NAME=VALUE pairs separated by commas such as "
                              f"length=40, got {text!r}")
        pairs[key.strip()] = _parse_scalar(value.strip())
    return pairs


# --------------------------------------------------------------------------------------------
# Checks: each takes the value and the configuration and returns what is wrong, or None
# --------------------------------------------------------------------------------------------

def at_least(bound, off=False):
    """A check that the value (unless None) is >= ``bound``; ``off``: 0 turns it off."""
    def check(value, config):
        if value is not None and not value >= bound:
            return f"must be >= {bound}{' (0: off)' if off else ''}, got {value}"
    return check


def above_zero(value, config):
    """The value, unless None, is > 0."""
    if value is not None and not value > 0:
        return f"must be > 0, got {value}"


def _representable(value, floatX):
    """Whether ``value`` stays a finite number > 0 in the float type ``floatX``."""
    with np.errstate(over="ignore", under="ignore"):
        cast = np.asarray(value, dtype=floatX)
    return bool(np.isfinite(cast) and cast > 0)


def _float_range(floatX):
    info = np.finfo(floatX)
    return f"{float(info.smallest_normal):.3g} to {float(info.max):.3g}"


def learning_rate_problem(value, floatX):
    """What is wrong with a learning rate in the float type ``floatX`` (None: nothing): it must
    be a number that stays finite and > 0 in that type."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return f"must be a number > 0, got {value!r}"
    if not value > 0:
        return f"must be > 0, got {value}"
    if not _representable(value, floatX):
        return (f"{value:g} is not a finite number > 0 in {floatX} (--floatX), whose range is "
                f"{_float_range(floatX)}")
    return None


def check_learning_rate(value, config):
    """The learning rate, unless None, stays a finite number > 0 in ``--floatX``."""
    return None if value is None else learning_rate_problem(value, config.floatX)


def check_schedule(schedule, config):
    """Every rate of the schedule stays a finite number > 0 in ``--floatX``."""
    for _, rate in schedule:
        problem = learning_rate_problem(rate, config.floatX)
        if problem:
            return problem


def check_average_after(value, config):
    """``--average-after`` and ``--keep-best`` are not both given."""
    if value is not None and config.keep_best:
        return ("give --keep-best or --average-after, not both (each picks the parameters the "
                "run ends with)")


def check_heads(value, config):
    """The NTM has at least one head."""
    if config.num_reads + config.num_writes < 1:
        return "the NTM needs at least one head (--num-reads + --num-writes >= 1)"


def check_memory_shape(shape, config):
    """The memory shape is two positive integers ``N M``."""
    shape = list(shape)
    if not (len(shape) == 2 and all(size >= 1 for size in shape)):
        return f"N and M must be positive integers, got {' '.join(map(str, shape))}"


def check_shifts(shifts, config):
    """The number of shifts is odd, positive and no more than the memory locations."""
    if not (shifts >= 1 and shifts % 2 == 1):
        return f"must be a positive odd integer, got {shifts}"
    locations = list(config.memory_shape)[:1]
    if locations and locations[0] >= 1 and shifts > locations[0]:
        return f"{shifts} shifts exceed the {locations[0]} memory locations"


def one_of(names):
    """A check that the value is one of ``names``."""
    def check(value, config):
        if value not in names:
            return f"must be one of {', '.join(names)}, got {value!r}"
    return check


def check_seed(seed, config):
    """The seed is one that :class:`numpy.random.RandomState` takes."""
    if not 0 <= seed <= MAX_SEED:
        return f"must be an integer from 0 to {MAX_SEED}, got {seed}"


def needs_heads(penalty, config):
    """A focus penalty needs the NTM's heads (not the LSTM baseline)."""
    if penalty and config.model == "lstm":
        return "needs the NTM's heads (not --model lstm)"


def checkpoint_exists(path, config):
    """The checkpoint named, if any, is there."""
    if path:
        npz = (path[:-4] if path.endswith(".npz") else path) + ".npz"
        if not os.path.isfile(npz):
            return f"no checkpoint at {path} (expected {npz})"


def not_both_checkpoints(path, config):
    """Not both ``--load`` and ``--resume``."""
    if path and config.resume:
        return "give --load or --resume, not both"


def has_suffix(*suffixes, lower=False, what=None):
    """A check that a path, if given, ends with one of ``suffixes``."""
    def check(path, config):
        if path and not (path.lower() if lower else path).endswith(suffixes):
            return f"must name a {what or ' or '.join(suffixes)} file, got {path}"
    return check


def directory_exists(path, config):
    """The directory of a path, if given, exists."""
    if path:
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            return f"the directory {directory} does not exist"
