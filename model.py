"""The tutorial's drawing classifier as a tf.estimator model_fn (TF 2.15, graph mode).

ink [batch, time, 3] (with --positions, each point's place in the drawing's box beside it) ->
conv1d stack (its last layer strided along time with --time_stride)
-> bidirectional recurrent stack (recurrent.py) -> sum over each drawing's valid time steps ->
dense -> logits over the classes. `params` is an hparams.HParams.

Padding never changes a drawing's logits: every conv input is zeroed past the drawing's end
(so the conv sees what it would see on the unpadded drawing), and the recurrent layers only
ever run over right-padded sequences (the tutorial's cudnn_lstm reversed the padded batch, so
its backward direction read the padding first).
"""

import functools
import math
import typing

import tensorflow as tf

import confusion
import recurrent

TOP_K = 5  # the classes a prediction names, best first


def _conv_stack(ink, mask, params, training):
    x = ink
    for i, (filters, width) in enumerate(zip(params.num_conv, params.conv_len)):
        if params.batch_norm:
            x = _batch_norm(x, mask, training, f"batch_norm_{i}")
        if i > 0 and params.dropout > 0 and training:
            x = x * recurrent.dropout_mask(tf.shape(x), params.dropout)
        with tf.compat.v1.variable_scope(f"conv1d_{i}"):
            kernel = tf.compat.v1.get_variable("kernel", [width, x.shape[-1], filters])
            bias = tf.compat.v1.get_variable("bias", [filters],
                                             initializer=tf.compat.v1.zeros_initializer())
            # Zeroed past each drawing's end right before the conv (after batch norm, which
            # shifts zeros), so 'same' padding sees what it would on the unpadded drawing.
            # Linear, as in the tutorial.
            x = x * mask
            stride = params.time_stride if i == len(params.num_conv) - 1 else 1
            if stride > 1:
                # Padded by hand: 'SAME' with a stride puts the extra zero on the left or not
                # as the padded batch's length is even or odd, which would shift a drawing's
                # outputs with the batch it is in.
                left = (width - 1) // 2
                x = tf.pad(x, [[0, 0], [left, width - 1 - left], [0, 0]])
            x = tf.nn.conv1d(x, kernel, stride=stride,
                             padding="VALID" if stride > 1 else "SAME") + bias
    return x


def _batch_norm(x, mask, training, name, momentum=0.99, epsilon=1e-3):
    """Batch normalization whose statistics count each drawing's valid steps only: with
    tf.layers' a drawing's output would depend on how much padding its batch holds. The
    variables, momentum and epsilon are tf.compat.v1.layers.batch_normalization's; the moving
    statistics update with each training step (UPDATE_OPS)."""
    with tf.compat.v1.variable_scope(name):
        def variable(variable_name, initializer, trainable=True):
            statistic = {} if trainable else {
                "synchronization": tf.VariableSynchronization.ON_READ,
                "aggregation": tf.VariableAggregation.MEAN}
            return tf.compat.v1.get_variable(variable_name, [x.shape[-1]], initializer=initializer,
                                              trainable=trainable, **statistic)
        gamma = variable("gamma", tf.compat.v1.ones_initializer())
        beta = variable("beta", tf.compat.v1.zeros_initializer())
        moving_mean = variable("moving_mean", tf.compat.v1.zeros_initializer(), False)
        moving_variance = variable("moving_variance", tf.compat.v1.ones_initializer(), False)
    if training:
        count = tf.maximum(tf.reduce_sum(mask), 1.0)
        mean = tf.reduce_sum(x * mask, axis=[0, 1]) / count
        variance = tf.reduce_sum(tf.square(x - mean) * mask, axis=[0, 1]) / count
        for statistic, value in ((moving_mean, mean), (moving_variance, variance)):
            tf.compat.v1.add_to_collection(tf.compat.v1.GraphKeys.UPDATE_OPS,
                                           statistic.assign_sub((statistic - value)
                                                                * (1 - momentum)))
    else:
        mean, variance = moving_mean, moving_variance
    return tf.nn.batch_normalization(x, mean, variance, beta, gamma, epsilon)


def positions(ink, mask):
    """Each point's x and y in its drawing's bounding box, [batch, time, 2], zero past the end.

    The ink holds offsets from the previous point, starting at the second point: their running
    sum is each point's position relative to the first, and the box's corner is the least of
    those (the first point's 0 included). The offsets are masked to zero past the end, so the
    running sum repeats the last point's position there and the least over all steps is the
    least over the valid ones."""
    relative = tf.cumsum(ink[:, :, :2] * mask, axis=1)
    corner = tf.minimum(tf.reduce_min(relative, axis=1, keepdims=True), 0.0)
    return (relative - corner) * mask


def logits_fn(ink, lengths, params, training, kernel=None):
    """The network: ink [batch, time, 3] and lengths [batch] -> logits [batch, classes].

    kernel: what runs the recurrent layers (default: params.rnn_kernel, resolved)."""
    mask = tf.sequence_mask(lengths, tf.shape(ink)[1], dtype=tf.float32)[:, :, None]
    if params.positions:
        ink = tf.concat([ink, positions(ink, mask)], axis=-1)
    x = _conv_stack(ink, mask, params, training)
    if params.time_stride > 1:  # output step j of the strided conv is centred on step j * stride
        lengths = (lengths + params.time_stride - 1) // params.time_stride
        mask = tf.sequence_mask(lengths, tf.shape(x)[1], dtype=tf.float32)[:, :, None]
    x = recurrent.bidirectional_stack(
        x, lengths, params.cell, params.num_nodes, params.num_layers,
        params.dropout if training else 0.0,
        kernel or recurrent.resolve_kernel(params.cell, params.rnn_kernel))
    summed = tf.reduce_sum(x * mask, axis=1)  # over each drawing's valid steps only
    with tf.compat.v1.variable_scope("dense"):
        kernel = tf.compat.v1.get_variable("kernel", [summed.shape[-1], params.num_classes])
        bias = tf.compat.v1.get_variable("bias", [params.num_classes],
                                         initializer=tf.compat.v1.zeros_initializer())
    return tf.add(tf.matmul(summed, kernel), bias, name="logits")


def eval_metrics(labels, logits, classes):
    """accuracy, top_3_accuracy, map_at_3 (the Kaggle Quick, Draw! metric: 1, 1/2 or 1/3 when
    the true class is 1st, 2nd or 3rd, else 0), mean_per_class_accuracy, eval_drawings (how
    many drawings the evaluation saw) and confusion_matrix (an image)."""
    predicted = tf.argmax(logits, axis=1)
    k = min(3, len(classes))
    top = tf.math.top_k(logits, k=k).indices
    hits = tf.cast(tf.equal(tf.cast(top, tf.int64), labels[:, None]), tf.float32)
    every = tf.ones_like(labels, dtype=tf.bool)
    return {
        "accuracy": tf.compat.v1.metrics.accuracy(labels, predicted),
        "top_3_accuracy": tf.compat.v1.metrics.mean(tf.reduce_sum(hits, axis=1)),
        "map_at_3": tf.compat.v1.metrics.mean(
            tf.reduce_sum(hits / tf.range(1.0, k + 1.0), axis=1)),
        "mean_per_class_accuracy": tf.compat.v1.metrics.mean_per_class_accuracy(
            labels, predicted, len(classes)),
        "eval_drawings": tf.compat.v1.metrics.true_positives(every, every),
        "confusion_matrix": confusion.metric(labels, predicted, classes),
    }


class Horizon(typing.NamedTuple):
    """Where a training run ends, for the learning-rate schedule: the global step it trains
    to and, with a time budget of `seconds`, the time.time() at which it stops."""
    steps: int
    deadline: float = 0.0
    seconds: float = 0.0


def learning_rate(params, horizon):
    """The step's learning rate: params.learning_rate, raised from 0 over the warm-up steps
    and, on the cosine schedule, decayed to 0 at the horizon's step or deadline, whichever
    the run reaches first."""
    rate = tf.constant(params.learning_rate)
    if params.learning_rate_schedule == "constant" and not params.warmup_steps:
        return rate  # the tutorial's
    step = tf.cast(tf.compat.v1.train.get_global_step(), tf.float32)
    if params.warmup_steps:
        rate *= tf.minimum(1.0, (step + 1) / params.warmup_steps)
    if params.learning_rate_schedule == "cosine":
        if horizon is None:
            raise ValueError("the cosine schedule needs the training run's Horizon")
        progress = step / horizon.steps
        if horizon.seconds:
            elapsed = 1 - (horizon.deadline - tf.timestamp()) / horizon.seconds
            progress = tf.maximum(progress, tf.cast(elapsed, tf.float32))
        progress = tf.clip_by_value(progress, 0.0, 1.0)
        rate *= 0.5 * (1 + tf.cos(math.pi * progress))
    return rate


def estimator_spec(features, labels, mode, params, horizon=None):
    """The model_fn, with the training run's Horizon (the cosine schedule needs it): an
    Estimator takes functools.partial(estimator_spec, horizon=...), or model_fn.

    features: {"ink": float32 [batch, time, 3], "lengths": int [batch]}; labels: [batch].

    The batch size comes from the data: the last eval batch may be smaller.
    """
    training = mode == tf.estimator.ModeKeys.TRAIN
    lengths = tf.cast(features["lengths"], tf.int32)
    # A prediction graph is what exports save: it runs the kernel every device has.
    logits = logits_fn(features["ink"], lengths, params, training,
                       recurrent.portable(params.cell) if mode == tf.estimator.ModeKeys.PREDICT
                       else None)
    probabilities = tf.nn.softmax(logits)
    top = tf.math.top_k(probabilities, k=min(TOP_K, params.num_classes))
    predictions = {
        "logits": logits,
        "class_index": tf.argmax(logits, axis=1),
        "probabilities": probabilities,
        "top_k_classes": tf.gather(tf.constant(params.classes), top.indices),
        "top_k_probabilities": top.values,
    }
    if mode == tf.estimator.ModeKeys.PREDICT:
        if "usable" in features:  # serving.usable_features: blank what could not be read
            usable = features["usable"]
            rows = tf.size(usable)
            runs = tf.pad(usable, [[0, tf.shape(logits)[0] - rows]])  # and drop stand-ins
            predictions = {k: tf.where(tf.reshape(runs, [-1] + [1] * (v.shape.rank - 1)),
                                       v, _blank(v))[:rows]
                           for k, v in predictions.items()}
            predictions["usable"] = usable
        served = {k: v for k, v in predictions.items() if k != "logits"}
        return tf.estimator.EstimatorSpec(mode, predictions=predictions, export_outputs={
            "serving_default": tf.estimator.export.PredictOutput(served)})

    labels = tf.cast(tf.reshape(labels, [-1]), tf.int64)
    smoothing = params.label_smoothing if training else 0.0  # evaluation: the plain loss
    targets = (tf.one_hot(labels, params.num_classes) * (1 - smoothing)
               + smoothing / params.num_classes)
    loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=targets, logits=logits))
    tf.compat.v1.add_to_collection(tf.compat.v1.GraphKeys.LOSSES, loss)  # for progress lines
    if mode == tf.estimator.ModeKeys.EVAL:
        return tf.estimator.EstimatorSpec(
            mode, loss=loss, eval_metric_ops=eval_metrics(labels, logits, params.classes))

    # What the tutorial's optimize_loss did: Adam, gradients clipped by global norm, and
    # summaries of the learning rate, the gradient norms and each variable's gradients.
    rate = learning_rate(params, horizon)
    optimizer = tf.compat.v1.train.AdamOptimizer(rate)
    variables = tf.compat.v1.trainable_variables()
    gradients, shares, norm = clipped_update(loss, variables, params.gradient_clipping_norm)
    tf.compat.v1.summary.scalar("learning_rate", rate)
    tf.compat.v1.summary.scalar("global_norm/gradient_norm", norm)
    tf.compat.v1.summary.scalar("global_norm/clipped_gradient_norm",
                                tf.linalg.global_norm(shares) * _replicas())
    for gradient, variable in zip(gradients, variables):
        tf.compat.v1.summary.histogram("gradients/" + variable.op.name, gradient)
    # Batch norm's moving averages update with each training step.
    with tf.control_dependencies(tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS)):
        train_op = optimizer.apply_gradients(zip(shares, variables),
                                             global_step=tf.compat.v1.train.get_global_step())
    if params.weight_decay:
        with tf.control_dependencies([train_op]):
            train_op = decay_weights(variables, rate * params.weight_decay)
    return tf.estimator.EstimatorSpec(mode, loss=loss, train_op=train_op)


model_fn = functools.partial(estimator_spec, horizon=None)


def decay_weights(variables, factor):
    """Shrinks each weight matrix of `variables` (rank 2 and up: kernels, not biases or batch
    norm's scales) by `factor` of itself, once per step however many replicas run it. Apart
    from Adam's update, so that the decay does not get divided by Adam's gradient scale."""
    def update(strategy, factor):
        return tf.group([strategy.extended.update(v, lambda w, f: w.assign_sub(w * f),
                                                  args=(factor,))
                         for v in variables if v.shape.rank > 1])
    return tf.distribute.get_replica_context().merge_call(update, args=(factor,))


def _blank(tensor):
    if tensor.dtype == tf.string:
        return tf.fill(tf.shape(tensor), "")
    if tensor.dtype.is_integer:
        return tf.fill(tf.shape(tensor), tf.constant(-1, tensor.dtype))
    return tf.zeros_like(tensor)


def _replicas():
    return tf.distribute.get_replica_context().num_replicas_in_sync


def clipped_update(loss, variables, clip_norm):
    """(gradients, shares, norm): the gradients of the step's update (with mirrored replicas,
    the mean of theirs: each loss is its own batch's mean), their global norm, and this
    replica's share of the update clipped to clip_norm, for an optimizer that sums the
    replicas' shares. Clipping each replica's gradients on its own would let N replicas
    apply up to N times clip_norm."""
    gradients = tf.gradients(loss, variables)
    replicas = _replicas()
    if replicas > 1:
        gradients = tf.distribute.get_replica_context().all_reduce(
            tf.distribute.ReduceOp.MEAN, gradients)
    clipped, norm = tf.clip_by_global_norm(gradients, clip_norm)
    if replicas > 1:
        clipped = [g / replicas for g in clipped]
    return gradients, clipped, norm
