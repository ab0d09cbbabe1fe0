"""Loss functions and metrics for training and evaluation, as in ``lasagne.objectives``.

Each loss returns an element-wise (or per-example) expression; :func:`aggregate` reduces it
to the scalar that is minimised, optionally weighting the elements::

    loss = aggregate(binary_crossentropy(predictions, targets), mode="mean")
"""
import pytensor.tensor as pt

__all__ = [
    "binary_crossentropy",
    "categorical_crossentropy",
    "squared_error",
    "huber_loss",
    "aggregate",
    "binary_hinge_loss",
    "multiclass_hinge_loss",
    "binary_accuracy",
    "categorical_accuracy",
]


def _align_targets(predictions, targets):
    """Make a vector of targets a column when the predictions are a single column.

    A network with one sigmoid output produces an ``(N, 1)`` matrix, while binary targets
    usually come as a vector of length ``N``; without this, broadcasting would silently build
    an ``(N, N)`` loss.
    """
    predictions = pt.as_tensor_variable(predictions)
    targets = pt.as_tensor_variable(targets)
    if (predictions.ndim == 2 and targets.ndim == 1
            and predictions.type.shape[1] == 1):
        targets = targets.dimshuffle(0, "x")
    return predictions, targets


def binary_crossentropy(predictions, targets):
    """Element-wise cross-entropy between predicted probabilities and binary targets.

    .. math:: L = -t \\log(p) - (1 - t) \\log(1 - p)

    Parameters
    ----------
    predictions : symbolic tensor
        Predicted probabilities :math:`p` in (0, 1), e.g. sigmoid outputs.
    targets : symbolic tensor
        Targets :math:`t` in [0, 1], of the same shape (a vector is accepted for an
        ``(N, 1)`` column of predictions).

    Returns
    -------
    symbolic tensor
        The element-wise loss.
    """
    predictions, targets = _align_targets(predictions, targets)
    return -(targets * pt.log(predictions) + (1 - targets) * pt.log(1 - predictions))


def categorical_crossentropy(predictions, targets):
    """Cross-entropy between predicted class distributions and targets.

    .. math:: L_i = -\\sum_j t_{ij} \\log(p_{ij})

    Parameters
    ----------
    predictions : symbolic tensor
        Predicted class probabilities, classes along the last axis (rows of a matrix that sum
        to one, e.g. softmax outputs).
    targets : symbolic tensor
        Either integer class indices with one dimension fewer than ``predictions``, or a
        one-hot / probability tensor of the same shape as ``predictions``.

    Returns
    -------
    symbolic tensor
        The loss of each example (the class axis reduced).

    Raises
    ------
    TypeError
        If ``targets`` has neither as many dimensions as ``predictions`` nor one fewer, or if
        targets with one dimension fewer are not integers.
    """
    predictions = pt.as_tensor_variable(predictions)
    targets = pt.as_tensor_variable(targets)
    if targets.ndim == predictions.ndim:
        return -pt.sum(targets * pt.log(predictions), axis=-1)
    if targets.ndim == predictions.ndim - 1:
        if not targets.dtype.startswith(("int", "uint")):
            raise TypeError("categorical_crossentropy: targets with one dimension fewer than "
                            f"predictions must be integer class indices, got {targets.dtype}")
        # pick the predicted probability of each example's target class
        picked = pt.take_along_axis(predictions, targets[..., None], axis=-1)[..., 0]
        return -pt.log(picked)
    raise TypeError(f"categorical_crossentropy: targets must have {predictions.ndim} "
                    f"dimensions (one-hot or probabilities) or {predictions.ndim - 1} "
                    f"(class indices), got {targets.ndim} (rank mismatch between predictions "
                    "and targets)")


def squared_error(a, b):
    """Element-wise squared difference.

    .. math:: L = (a - b)^2

    Parameters
    ----------
    a, b : symbolic tensor
        Predictions and targets (broadcastable against each other; a vector of targets is
        aligned with an ``(N, 1)`` column of predictions, not broadcast to ``(N, N)``).

    Returns
    -------
    symbolic tensor
        The element-wise squared error.
    """
    a, b = _align_targets(a, b)
    return pt.sqr(a - b)


def huber_loss(predictions, targets, delta=1):
    r"""Element-wise Huber loss: quadratic for small errors, linear for large ones.

    .. math:: L = \begin{cases} \frac{1}{2} (p - t)^2 & |p - t| \le \delta \\
              \delta (|p - t| - \frac{1}{2} \delta) & \text{otherwise} \end{cases}

    Parameters
    ----------
    predictions, targets : symbolic tensor
        Of the same shape (a vector of targets is accepted for an ``(N, 1)`` column).
    delta : float
        Where the loss turns from quadratic to linear.

    Returns
    -------
    symbolic tensor
        The element-wise loss.
    """
    predictions, targets = _align_targets(predictions, targets)
    abs_diff = pt.abs(targets - predictions)
    quadratic = 0.5 * pt.sqr(abs_diff)
    linear = delta * (abs_diff - 0.5 * delta)
    return pt.switch(abs_diff <= delta, quadratic, linear)


def aggregate(loss, weights=None, mode="mean"):
    """Reduce an element-wise loss to a scalar, optionally weighting its elements.

    With :math:`w` the weights (all ones if not given):

    - ``'mean'``: :math:`\\frac{1}{n} \\sum_i w_i L_i`
    - ``'sum'``: :math:`\\sum_i w_i L_i`
    - ``'normalized_sum'``: :math:`\\sum_i w_i L_i / \\sum_i w_i`

    Parameters
    ----------
    loss : symbolic tensor
        The element-wise loss.
    weights : symbolic tensor, optional
        Weights broadcastable against ``loss``, e.g. a mask of valid time steps.
    mode : {'mean', 'sum', 'normalized_sum'}
        How to reduce; ``'normalized_sum'`` requires ``weights``.

    Returns
    -------
    symbolic scalar
        The aggregated loss.

    Raises
    ------
    ValueError
        If ``mode`` is unknown, or is ``'normalized_sum'`` without ``weights``.
    """
    if mode not in ("mean", "sum", "normalized_sum"):
        raise ValueError("aggregate: mode must be 'mean', 'sum' or 'normalized_sum', "
                         f"got {mode!r}")
    if mode == "normalized_sum" and weights is None:
        raise ValueError("aggregate: mode='normalized_sum' requires weights (require weights for mode='normalized_sum')")
    loss = pt.as_tensor_variable(loss)
    if weights is not None:
        weights = pt.as_tensor_variable(weights)
        loss = loss * weights
    if mode == "mean":
        return loss.mean()
    if mode == "sum":
        return loss.sum()
    return loss.sum() / weights.sum()


def binary_hinge_loss(predictions, targets, delta=1, log_odds=None, binary=True):
    """Element-wise hinge loss for binary classification.

    With predictions :math:`p` as log-odds and targets :math:`t` in {-1, 1}:

    .. math:: L = \\max(0, \\delta - t \\, p)

    Parameters
    ----------
    predictions : symbolic tensor
        Real-valued scores (log-odds), or probabilities in (0, 1) if ``log_odds`` is
        ``False``, which are then converted with :math:`\\log(p / (1 - p))`.
    targets : symbolic tensor
        Targets in {0, 1} (``binary=True``) or in {-1, 1} (``binary=False``).
    delta : float
        The margin :math:`\\delta`.
    log_odds : bool, optional
        Whether ``predictions`` are log-odds; ``None`` (the default) means ``True``.
    binary : bool
        Whether ``targets`` are in {0, 1} (mapped to {-1, 1}) rather than in {-1, 1}.

    Returns
    -------
    symbolic tensor
        The element-wise loss.
    """
    predictions = pt.as_tensor_variable(predictions)
    targets = pt.as_tensor_variable(targets)
    if log_odds is None:
        log_odds = True
    if not log_odds:
        predictions = pt.log(predictions / (1 - predictions))
    if binary:
        targets = 2 * targets - 1
    predictions, targets = _align_targets(predictions, targets)
    return pt.maximum(0, delta - predictions * targets)


def multiclass_hinge_loss(predictions, targets, delta=1):
    """Hinge loss for multi-class classification (Crammer & Singer).

    With :math:`c` the target class of example :math:`i`:

    .. math:: L_i = \\max\\left(0, \\max_{j \\ne c} p_{ij} - p_{ic} + \\delta\\right)

    Parameters
    ----------
    predictions : symbolic matrix
        Class scores, one row per example.
    targets : symbolic vector or matrix
        Integer class indices, or a one-hot matrix of the same shape as ``predictions``.
    delta : float
        The margin :math:`\\delta`.

    Returns
    -------
    symbolic vector
        The loss of each example.

    Raises
    ------
    TypeError
        If ``targets`` is neither a vector nor a matrix matching ``predictions``.
    """
    predictions = pt.as_tensor_variable(predictions)
    targets = pt.as_tensor_variable(targets)
    num_classes = predictions.shape[-1]
    if targets.ndim == predictions.ndim - 1:
        targets = pt.eq(targets[..., None], pt.arange(num_classes))
    elif targets.ndim != predictions.ndim:
        raise TypeError(f"multiclass_hinge_loss: targets must have {predictions.ndim} "
                        f"dimensions (one-hot) or {predictions.ndim - 1} (class indices), "
                        f"got {targets.ndim} (rank mismatch between predictions and targets)")
    is_target = pt.neq(targets, 0)
    correct = pt.sum(pt.switch(is_target, predictions, 0), axis=-1)
    # best score among the wrong classes: mask the target class out
    rest = pt.max(pt.switch(is_target, -pt.inf, predictions), axis=-1)
    return pt.maximum(0, rest - correct + delta)


def binary_accuracy(predictions, targets, threshold=0.5):
    """Element-wise correctness of thresholded binary predictions.

    .. math:: A = [\\,[p \\ge \\theta] = t\\,]

    Parameters
    ----------
    predictions : symbolic tensor
        Predicted probabilities (or scores, with a matching ``threshold``).
    targets : symbolic tensor
        Targets in {0, 1}.
    threshold : float
        Predictions at or above :math:`\\theta` count as class 1.

    Returns
    -------
    symbolic tensor
        1 where the prediction is correct, 0 elsewhere; its mean is the accuracy.
    """
    predictions, targets = _align_targets(predictions, targets)
    return pt.eq(pt.ge(predictions, threshold), targets)


def categorical_accuracy(predictions, targets, top_k=1):
    """Per-example correctness of class predictions, optionally top-k.

    An example counts as correct if its target class is among the ``top_k`` classes with the
    highest predicted scores.

    Parameters
    ----------
    predictions : symbolic tensor
        Class scores or probabilities, classes along the last axis.
    targets : symbolic tensor
        Integer class indices with one dimension fewer than ``predictions``, or a one-hot /
        probability tensor of the same shape (its argmax is the target class).
    top_k : int
        How many of the best-scored classes count as a hit.

    Returns
    -------
    symbolic tensor
        1 where the prediction is correct, 0 elsewhere; its mean is the accuracy.

    Raises
    ------
    ValueError
        If ``top_k`` is not a positive integer.
    TypeError
        If ``targets`` has neither as many dimensions as ``predictions`` nor one fewer.
    """
    if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
        raise ValueError(f"categorical_accuracy: top_k must be a positive integer, "
                         f"got {top_k!r}")
    predictions = pt.as_tensor_variable(predictions)
    targets = pt.as_tensor_variable(targets)
    if targets.ndim == predictions.ndim:
        targets = pt.argmax(targets, axis=-1)
    elif targets.ndim != predictions.ndim - 1:
        raise TypeError(f"categorical_accuracy: targets must have {predictions.ndim} "
                        f"dimensions (one-hot) or {predictions.ndim - 1} (class indices), "
                        f"got {targets.ndim} (rank mismatch between predictions and targets)")
    if top_k == 1:
        return pt.eq(pt.argmax(predictions, axis=-1), targets)
    top = pt.argsort(predictions, axis=-1)[..., -top_k:]
    return pt.any(pt.eq(top, targets[..., None]), axis=-1)
