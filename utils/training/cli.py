"""The command line of the example scripts: the only module that talks to argparse.

:func:`make_parser` builds the parser from the declarations of :mod:`utils.training.config`
and a script's :class:`~utils.training.config.TaskOption` s; :func:`parse_config` parses a
command line and tells which options it gave; :func:`run` parses, hands the configuration to
:func:`utils.training.runs.run_config` and turns every
:class:`~utils.training.errors.ConfigError` raised on the way into argparse's usage error: one
line naming the option or file, exit status 2, no traceback.
"""
import argparse
import shlex
import sys

from . import config as options
from .errors import ConfigError
from .runs import Script, run_config

__all__ = ["make_parser", "parse_config", "run"]


class _HelpFormatter(argparse.RawDescriptionHelpFormatter,
                     argparse.ArgumentDefaultsHelpFormatter):
    """Keep the script's docstring as written and show the options' defaults."""

    def _get_help_string(self, action):
        # "(default: None)" says nothing, and some help texts describe their default already.
        empty = action.default is None or action.default is False or action.default in ({}, [])
        if empty:
            return action.help
        if "default" in (action.help or ""):
            if "%(default)" in action.help:
                return action.help
            if action.dest == "learning_rate_schedule":
                return (action.help.replace("%", "%%") + f" (this script's default: "
                        f"{options.format_schedule(action.default)})")
            # A general default described (the optimizer's rate) that the script replaced.
            return action.help + " (this script's default: %(default)s)"
        return super()._get_help_string(action)


def _argument_type(parse):
    """``parse`` as an argparse type: its :class:`ConfigError` becomes argparse's message."""
    if parse in (int, float, str):
        return parse

    def convert(text):
        try:
            return parse(text)
        except ConfigError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    convert.__name__ = getattr(parse, "__name__", "value")
    return convert


def _add(group, option, name, help):
    """Add the option ``--name`` declared as ``option`` (an Option or a TaskOption)."""
    if option.type is bool:
        action = argparse.BooleanOptionalAction if getattr(option, "negatable", True) \
            else "store_true"
        group.add_argument(f"--{name}", action=action, default=option.default, help=help)
        return
    keywords = {}
    for key in ("choices", "metavar", "nargs"):
        if getattr(option, key, None) is not None:
            keywords[key] = getattr(option, key)
    default = list(option.default) if isinstance(option.default, list) else option.default
    group.add_argument(f"--{name}", type=_argument_type(option.type), default=default,
                       help=help, **keywords)


def make_parser(description, task_options, eval_param="length", output="bits"):
    """The command line shared by the example scripts.

    Parameters
    ----------
    description : str
        The script's docstring (shown as written by ``--help``).
    task_options : sequence of TaskOption
        The task's own options.
    eval_param : str
        The episode parameter that ``--eval-lengths`` sets (``"length"`` for the copy task,
        ``"repeats"`` for repeat copy, ...).
    output : {"bits", "categorical"}
        The kind of output layer and loss (see :data:`utils.training.config.OUTPUT_KINDS`).

    Returns
    -------
    argparse.ArgumentParser
        Scripts change its defaults (model sizes, iterations, optimizer) with
        ``parser.set_defaults``. ``output`` and ``eval_param`` are stored as defaults too, so
        they travel with the configuration; the task options are in ``parser.task_options``.
    """
    if output not in options.OUTPUT_KINDS:
        raise ValueError(f"output must be one of {options.OUTPUT_KINDS}, got {output!r}")
    parser = argparse.ArgumentParser(description=description, formatter_class=_HelpFormatter)
    parser.task_options = tuple(task_options)
    task = parser.add_argument_group("task")
    for task_option in parser.task_options:
        _add(task, task_option, task_option.name, task_option.help)
    groups = {}
    for declared in options.OPTIONS:
        if not declared.on_command_line:
            continue
        if declared.group not in groups:
            groups[declared.group] = parser.add_argument_group(declared.group)
        _add(groups[declared.group], declared, declared.name,
             declared.help.replace("{eval_param}", eval_param))
    parser.set_defaults(output=output, eval_param=eval_param)
    return parser


class _Unset:
    """Marks the options that the command line did not give."""

    def __repr__(self):
        return "<unset>"


_UNSET = _Unset()


def parse_config(parser, argv=None):
    """Parse a command line and tell which options it gave explicitly.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        From :func:`make_parser`.
    argv : list of str, optional
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    config : argparse.Namespace
        Every option, defaults filled in.
    explicit : set of str
        Attribute names of the options given on the command line.
    """
    actions = [action for action in parser._actions if action.dest != "help"]
    namespace = argparse.Namespace(**{action.dest: _UNSET for action in actions})
    parsed = parser.parse_args(argv, namespace=namespace)
    explicit = {action.dest for action in actions if getattr(parsed, action.dest) is not _UNSET}
    for action in actions:
        if getattr(parsed, action.dest) is _UNSET:
            default = parser.get_default(action.dest)
            # argparse converts string defaults with the option's type; so must we here.
            if isinstance(default, str) and action.type is not None:
                try:
                    default = action.type(default)
                except argparse.ArgumentTypeError as error:
                    parser.error(f"{options.option_name(action.dest)}: {error}")
            setattr(parsed, action.dest, default)
    return parsed, explicit


def run(parser, make_task, argv=None, markers=None, eval_params=None, reference=None):
    """Parse the command line and train, evaluate, plot and checkpoint as it says.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        From :func:`make_parser`, with the script's defaults.
    make_task : callable
        ``make_task(config, batch_size=..., seed=..., dtype=...)`` returns a task of
        :mod:`utils.generators` built from the task options in ``config``. Its attribute
        ``make_validation_task``, if it has one, is called the same way to build the task the
        validation batches are drawn from (by default ``make_task`` itself).
    argv : list of str, optional
        The arguments (default: ``sys.argv[1:]``).
    markers : callable, optional
        ``markers(task)`` returns the markers of the heat maps (see
        :class:`utils.visualization.Dashboard`), e.g. ``[delimiter_marker()]``.
    eval_params : callable, optional
        ``eval_params(value, task)`` returns the episode parameters for one ``--eval-lengths``
        value; by default ``{config.eval_param: value}``.
    reference : callable, optional
        ``reference(task, x, y, mask)`` returns the bits per sequence of a reference predictor
        (e.g. the Bayes-optimal one of dynamic n-grams), shown in the evaluation table.

    Returns
    -------
    utils.training.runs.RunResult

    Raises
    ------
    SystemExit
        With status 2 for bad options (the message names the option), as argparse does, and
        for a --save whose checkpoint another run holds (its lock) or that would replace
        another run's without --overwrite; with 128 + the signal's number for Ctrl-C, SIGTERM
        or SIGHUP before or after training (in training, the run saves and returns).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    config, explicit = parse_config(parser, argv)
    script = Script(make_task, parser.task_options, markers, eval_params, reference)
    try:
        return run_config(config, explicit, script, shlex.join([parser.prog] + argv))
    except ConfigError as error:
        parser.error(str(error))
