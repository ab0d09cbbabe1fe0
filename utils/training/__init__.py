"""The training shared by the example scripts: command line, model, training, checkpoints.

Every script in ``examples/`` describes its task (the task's options, how to build it, which
episode parameter ``--eval-lengths`` varies) and hands over to :func:`run`, which

1. parses the shared command line made by :func:`make_parser` and checks it, naming the option
   at fault (:mod:`~utils.training.cli`, from the declarations of
   :mod:`~utils.training.config`);
2. builds the network with :func:`build_model`: an NTM (or, with ``--model lstm``, an LSTM
   baseline of about as many parameters) followed by a dense output layer, sigmoid for bit
   outputs, softmax for categorical ones (:mod:`~utils.training.building`);
3. compiles, once, a training function whose updates are guarded against non-finite steps and
   whose learning rate is a variable of the step, a prediction function and the NTM's details
   function (:class:`Trainer`), and keeps them on disk so that the next run of the same model
   loads them (:mod:`utils.function_cache`);
4. trains with a progress bar, periodic validation on a fixed set of sequences drawn by a
   separate task instance, a CSV or JSON-lines log and atomic checkpoints that hold the
   parameters, the optimizer state and everything needed to resume where the run stopped
   (:mod:`~utils.training.loop`, :mod:`~utils.training.state`,
   :mod:`~utils.training.checkpoints`; earlier versions' checkpoints and logs are read through
   :mod:`~utils.training.migrations`);
5. evaluates at the values of ``--eval-lengths`` and draws the heat maps of an episode and the
   learning curve (:mod:`~utils.training.evaluation`, :mod:`~utils.training.reports`).

A script is a few lines::

    from utils import training

    parser = training.make_parser(__doc__, [training.TaskOption("size", int, 8, "bits per vector",
                                                                affects_model=True)])
    result = training.run(parser, lambda options, **kwargs: CopyTask(size=options.size, **kwargs))
    sys.exit(result.exit_code)
"""
import warnings

# Without a BLAS library to link, the C backend computes its matrix products with NumPy's (which
# has one); the warning PyTensor prints about it in every run says nothing actionable here.
warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS installation")

from .building import (PROBABILITY_CLIP, Model, build_lstm_baseline, build_model,  # noqa: E402
                       build_ntm, load_model, lstm_units_for, masked_loss,
                       parameters_for_memory_shape)
from .checkpoints import (average_checkpoint_path, best_checkpoint_path,  # noqa: E402
                          checkpoint_paths, load_best_parameters, load_checkpoint,
                          save_checkpoint)
from .cli import make_parser, parse_config, run  # noqa: E402
from .config import (CONTROLLERS, DEFAULT_MODE, JAX_UNSUPPORTED_PYTENSOR,  # noqa: E402
                     LEARNING_RATES, LOG_COLUMNS, OUTPUT_KINDS, SPIKE_AVERAGE_DECAY, TaskOption)
from .errors import CheckpointError, ConfigError, TrainingStopped  # noqa: E402
from .evaluation import score  # noqa: E402
from .reports import curve_path  # noqa: E402
from .runs import RunResult  # noqa: E402
from .trainer import StepResult, Trainer, reuse_compiled_models  # noqa: E402

__all__ = [
    "DEFAULT_MODE",
    "LEARNING_RATES",
    "CONTROLLERS",
    "OUTPUT_KINDS",
    "SPIKE_AVERAGE_DECAY",
    "JAX_UNSUPPORTED_PYTENSOR",
    "LOG_COLUMNS",
    "PROBABILITY_CLIP",
    "TaskOption",
    "Model",
    "StepResult",
    "Trainer",
    "RunResult",
    "ConfigError",
    "CheckpointError",
    "TrainingStopped",
    "make_parser",
    "parse_config",
    "build_model",
    "build_ntm",
    "build_lstm_baseline",
    "lstm_units_for",
    "masked_loss",
    "score",
    "save_checkpoint",
    "load_checkpoint",
    "load_best_parameters",
    "load_model",
    "parameters_for_memory_shape",
    "checkpoint_paths",
    "curve_path",
    "best_checkpoint_path",
    "average_checkpoint_path",
    "run",
    "reuse_compiled_models",
]
