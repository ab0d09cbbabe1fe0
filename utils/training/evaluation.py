"""Scoring a model: the cost and errors of its predictions, on the validation set and on the
``--eval-lengths`` table."""
import numpy as np

from ..metrics import bit_errors, bits_per_sequence
from .building import PROBABILITY_CLIP

__all__ = ["score", "evaluate", "validation_set", "evaluation_table"]


def score(prediction, target, mask, output="bits"):
    """Per-sequence cross-entropy in bits and errors, in NumPy.

    Parameters
    ----------
    prediction, target : ndarray of shape ``(batch, time, channels)``
    mask : ndarray of shape ``(batch, time)``
    output : {"bits", "categorical"}
        For bits, the errors are the wrong bits once thresholded at 0.5
        (:func:`utils.metrics.bit_errors`); for categorical outputs, the scored steps whose most
        likely channel is not the target's.

    Returns
    -------
    bits, errors : ndarray of shape ``(batch,)``
    """
    if output == "bits":
        return (bits_per_sequence(prediction, target, mask, eps=PROBABILITY_CLIP, reduce="none"),
                bit_errors(prediction, target, mask, reduce="none"))
    probability = np.clip(prediction, PROBABILITY_CLIP, 1 - PROBABILITY_CLIP)
    per_step = -(target * np.log2(probability)).sum(axis=-1)
    wrong = np.argmax(prediction, axis=-1) != np.argmax(target, axis=-1)
    return (per_step * mask).sum(axis=-1), (wrong * (mask > 0)).sum(axis=-1).astype(np.float64)


def evaluate(predict, batches, output):
    """The mean bits and errors per sequence of ``predict`` on ``batches`` of ``(x, y, mask)``,
    the fraction of perfect sequences and their number.

    Returns
    -------
    dict
        ``bits_per_seq``, ``errors_per_seq``, ``perfect``, ``sequences``.
    """
    bits, errors = [], []
    for x, y, mask in batches:
        sequence_bits, sequence_errors = score(predict(x), y, mask, output)
        bits.append(sequence_bits)
        errors.append(sequence_errors)
    bits, errors = np.concatenate(bits), np.concatenate(errors)
    return {"bits_per_seq": float(bits.mean()), "errors_per_seq": float(errors.mean()),
            "perfect": float(np.mean(errors == 0)), "sequences": int(bits.size)}


def validation_set(script, config):
    """The run's fixed validation batches, from their own generator: validating never draws
    from the training task, so it cannot change the training data of a resumed run.

    Parameters
    ----------
    script : utils.training.tasks.Script
    config : namespace

    Returns
    -------
    list of tuple
        ``--validation-batches`` batches ``(x, y, mask)``.
    """
    # A task may validate on other data than it trains on (e.g. stories held out of a file).
    task = script.make(config, config.batch_size, [config.seed, 1], validation=True)
    return [task.sample_with_mask() for _ in range(config.validation_batches)]


def evaluation_table(config, trainer, script):
    """Score the model at each ``--eval-lengths`` value and print the table.

    Each value's batches come from a generator seeded by the run's seed and the value, so the
    table does not depend on the order of the values.

    Returns
    -------
    list of dict
        One row per value: ``value``, ``bits_per_seq``, ``errors_per_seq``, ``perfect``,
        ``sequences`` (and ``reference_bits_per_seq`` where the script has a reference).
    """
    rows = []
    for value in config.eval_lengths:
        task = script.make(config, config.batch_size, [config.seed, 2, value])
        params = script.episode_params(config, task, value)
        batches = [task.sample_with_mask(**params) for _ in range(config.eval_batches)]
        row = {"value": value, **evaluate(trainer.predict, batches, config.output)}
        if script.reference is not None:
            row["reference_bits_per_seq"] = float(np.mean(np.concatenate(
                [np.atleast_1d(script.reference(task, x, y, mask)) for x, y, mask in batches])))
        rows.append(row)
    errors = "bit errors/seq" if config.output == "bits" else "wrong answers/seq"
    header = f"{config.eval_param:>12} | {'bits/seq':>10} | {errors:>17} | {'perfect':>7}"
    if script.reference is not None:
        header += f" | {'reference bits/seq':>18}"
    lines = [f"evaluation on {rows[0]['sequences']} sequences per value:", header,
             "-" * len(header)]
    for row in rows:
        line = (f"{row['value']:>12} | {row['bits_per_seq']:>10.3f} | "
                f"{row['errors_per_seq']:>17.3f} | {row['perfect']:>7.3f}")
        if script.reference is not None:
            line += f" | {row['reference_bits_per_seq']:>18.3f}"
        lines.append(line)
    print("\n".join(lines), flush=True)
    return rows
