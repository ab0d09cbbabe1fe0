"""What an example script says about its task, and the checks that need a task.

A :class:`Script` holds what a script hands to :func:`utils.training.cli.run`: how to build its
task from the configuration, its options, the markers of its heat maps, which episode
parameters ``--eval-lengths`` sets and the reference predictor of its evaluation table.
"""
import re
from typing import Callable, NamedTuple, Optional

import numpy as np
import pytensor

from .. import resources
from .errors import ConfigError

__all__ = ["Script", "check_episode_params", "check_memory"]


class Script(NamedTuple):
    """An example script's task.

    Attributes
    ----------
    make_task : callable
        ``make_task(config, batch_size=..., seed=..., dtype=...)`` returns a task of
        :mod:`utils.generators`; its attribute ``make_validation_task``, if it has one, builds
        the task the validation batches are drawn from.
    task_options : tuple of TaskOption
        The task's options.
    markers : callable or None
        ``markers(task)``: the markers of the heat maps.
    eval_params : callable or None
        ``eval_params(value, task)``: the episode parameters of one ``--eval-lengths`` value
        (default: ``{config.eval_param: value}``).
    reference : callable or None
        ``reference(task, x, y, mask)``: a reference predictor's bits per sequence.
    """

    make_task: Callable
    task_options: tuple = ()
    markers: Optional[Callable] = None
    eval_params: Optional[Callable] = None
    reference: Optional[Callable] = None

    def make(self, config, batch_size, seed, validation=False):
        """The task the configuration describes, drawing batches of ``batch_size`` from the
        generator seeded by ``seed``; ``validation``: the task validation draws from.

        Raises
        ------
        ConfigError
            When the task refuses its options (named as the command line spells them).
        """
        make_task = getattr(self.make_task, "make_validation_task", self.make_task) \
            if validation else self.make_task
        try:
            return make_task(config, batch_size=batch_size, seed=seed,
                             dtype=pytensor.config.floatX)
        except ValueError as error:
            raise ConfigError(self._with_option_names(str(error))) from None

    def _with_option_names(self, message):
        """The task's argument names in a message, as the command line spells them."""
        for option in self.task_options:
            message = re.sub(rf"\b{option.dest}\b", f"--{option.name}", message)
        return message

    def episode_params(self, config, task, value):
        """The episode parameters of the ``--eval-lengths`` value ``value``."""
        if self.eval_params:
            return self.eval_params(value, task)
        return {config.eval_param: value}


def check_episode_params(script, config):
    """Check ``--plot-params`` and ``--eval-lengths`` on a throwaway task, before anything is
    compiled.

    Raises
    ------
    ConfigError
        Naming the option and the parameter at fault.
    """
    probe = script.make(config, 1, 0)
    unknown = sorted(set(config.plot_params) - set(probe.param_names))
    if unknown:
        raise ConfigError(f"--plot-params: unknown parameter(s) {unknown}; this task has "
                          f"{list(probe.param_names)}")
    checks = [("--plot-params", config.plot_params)]
    checks += [("--eval-lengths", script.episode_params(config, probe, value))
               for value in (config.eval_lengths or ())]
    for option, params in checks:
        try:
            probe.sample_params(**params)
        except ValueError as error:
            raise ConfigError(f"{option}: {error}") from None


def check_memory(script, config):
    """Refuse, before anything is built, an NTM whose memory's states over a training step
    cannot fit in the memory available (:func:`utils.resources.scan_memory_bytes`).

    Raises
    ------
    ConfigError
        Naming ``--memory-shape`` and the sizes behind the estimate.
    """
    available = resources.available_memory_bytes()
    if config.model != "ntm" or available is None:
        return
    probe = script.make(config, 1, 0)
    # The longest of a few episodes: the lengths are drawn, the bound needs only their scale.
    steps = max(probe.sample_with_mask()[0].shape[1] for _ in range(16))
    itemsize = np.dtype(config.floatX).itemsize
    needed = resources.scan_memory_bytes(config.memory_shape, config.batch_size, steps,
                                         itemsize)
    if needed > available:
        N, M = config.memory_shape
        raise ConfigError(
            f"--memory-shape {N} {M}: a training step needs at least "
            f"{resources.format_bytes(needed)} for the memory's states (2 x {N} x {M} x "
            f"{config.batch_size} sequences (--batch-size) x {steps} steps x {itemsize} "
            f"bytes: the scan's and its gradient's), more than the "
            f"{resources.format_bytes(available)} available; choose a smaller "
            f"--memory-shape or --batch-size, or shorter sequences")
