"""Scores for the outputs of the tasks in :mod:`utils.generators` (NumPy only).

Both metrics take arrays of shape ``(batch, time, features)``: ``prediction`` holds
probabilities (the sigmoid outputs of a model), ``target`` the 0/1 targets of a task, and the
optional ``mask`` of shape ``(batch, time)`` marks the time steps that are scored (1) or ignored
(0), as returned by ``Task.sample_with_mask``.
"""
import numpy as np

__all__ = ["bits_per_sequence", "bit_errors"]

_REDUCTIONS = ("mean", "sum", "none")


def _check_scored_arrays(prediction, target, mask, reduce):
    """Convert the arguments to float64 arrays and check that their shapes agree."""
    prediction = np.asarray(prediction, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if prediction.ndim != 3:
        raise ValueError(
            f"prediction must have shape (batch, time, features), got shape {prediction.shape}")
    if target.shape != prediction.shape:
        raise ValueError(
            f"target must have the shape of prediction {prediction.shape}, got {target.shape}")
    if mask is None:
        mask = np.ones(prediction.shape[:2])
    else:
        mask = np.asarray(mask, dtype=np.float64)
        if mask.shape != prediction.shape[:2]:
            raise ValueError(
                f"mask must have shape (batch, time) = {prediction.shape[:2]}, got {mask.shape}")
    if reduce not in _REDUCTIONS:
        raise ValueError(f"reduce must be one of {_REDUCTIONS}, got {reduce!r}")
    return prediction, target, mask


def _reduce(per_sequence, reduce):
    if reduce == "mean":
        return float(per_sequence.mean())
    if reduce == "sum":
        return float(per_sequence.sum())
    return per_sequence


def bits_per_sequence(prediction, target, mask=None, eps=1e-7, reduce="mean"):
    r"""Binary cross-entropy in bits, summed over each sequence's scored outputs.

    This is the cost the NTM paper plots ("cost per sequence (bits)"):

    .. math::
        -\sum_{t \,:\, m_t = 1} \sum_j \left[ y_{tj} \log_2 p_{tj}
        + (1 - y_{tj}) \log_2 (1 - p_{tj}) \right]

    Parameters
    ----------
    prediction : array_like of shape ``(batch, time, features)``
        Predicted probabilities that each target bit is 1.
    target : array_like of shape ``(batch, time, features)``
        The targets, 0 or 1 (values in between are read as soft targets).
    mask : array_like of shape ``(batch, time)``, optional
        1 where the step is scored, 0 where it is ignored. Default: every step is scored.
    eps : float
        Predictions are clipped to ``[eps, 1 - eps]`` so that a confident mistake costs a large
        but finite number of bits instead of infinity.
    reduce : {"mean", "sum", "none"}
        ``"mean"`` (default) averages the per-sequence costs over the batch, as the paper
        reports; ``"sum"`` adds them; ``"none"`` returns the array of shape ``(batch,)``.

    Returns
    -------
    float or ndarray
        Bits per sequence.
    """
    prediction, target, mask = _check_scored_arrays(prediction, target, mask, reduce)
    if not 0.0 < eps < 0.5:
        raise ValueError(f"eps must lie in (0, 0.5), got {eps}")
    probability = np.clip(prediction, eps, 1.0 - eps)
    bits = -(target * np.log2(probability) + (1.0 - target) * np.log2(1.0 - probability))
    per_sequence = (bits.sum(axis=-1) * mask).sum(axis=-1)
    return _reduce(per_sequence, reduce)


def bit_errors(prediction, target, mask=None, reduce="mean"):
    """Number of wrong bits once the predictions are thresholded at 0.5.

    A prediction strictly above 0.5 is read as 1, anything else as 0; a target is 1 when it is
    above 0.5. The mistakes are counted over every feature of every scored step of a sequence.

    Parameters
    ----------
    prediction : array_like of shape ``(batch, time, features)``
        Predicted probabilities (or any scores where > 0.5 means 1).
    target : array_like of shape ``(batch, time, features)``
        The 0/1 targets.
    mask : array_like of shape ``(batch, time)``, optional
        1 where the step is scored, 0 where it is ignored. Default: every step is scored.
    reduce : {"mean", "sum", "none"}
        ``"mean"`` (default): wrong bits per sequence averaged over the batch; ``"sum"``: total
        wrong bits in the batch; ``"none"``: the array of per-sequence counts, shape ``(batch,)``.

    Returns
    -------
    float or ndarray
        Bit errors per sequence (or their total).
    """
    prediction, target, mask = _check_scored_arrays(prediction, target, mask, reduce)
    wrong = (prediction > 0.5) != (target > 0.5)
    per_sequence = (wrong.sum(axis=-1) * mask).sum(axis=-1)
    return _reduce(per_sequence, reduce)
