"""Serving: SavedModels that take drawings as drawn, and the exporters that write them.

The serving signature takes `points` (float32 [batch, time, 3]: x, y, 1.0 at the last point of
each stroke, as `drawing.to_points` makes them; any coordinate range) and `lengths` (int
[batch], points per drawing), applies the converter's preprocessing in the graph, and returns
`top_k_classes` (names), `top_k_probabilities`, `probabilities` (over all classes, in the
order of the model's classes file), `class_index` and `usable`. No input fails the call: a
drawing of fewer than 2 points or with a non-finite coordinate comes back with usable False,
probabilities 0, class_index -1 and empty class names; a length above the padded width
counts as the width.
"""

import os

import tensorflow as tf

CLASSES_ASSET = "classes.txt"


def points_to_ink(points, lengths):
    """drawing.points_to_ink in the graph, on a padded batch.

    points [batch, time, 3] -> (ink [batch, time - 1, 3], zero past each drawing's end,
    ink lengths = lengths - 1). The same float32 operations in the same order as the numpy
    version, so the two agree to the last bit or nearly.
    """
    lengths = tf.cast(lengths, tf.int32)
    valid = tf.sequence_mask(lengths, tf.shape(points)[1])[:, :, None]
    xy = points[:, :, :2]
    lower = tf.reduce_min(tf.where(valid, xy, float("inf")), axis=1, keepdims=True)
    upper = tf.reduce_max(tf.where(valid, xy, float("-inf")), axis=1, keepdims=True)
    scale = upper - lower
    scale = tf.where(tf.equal(scale, 0), tf.ones_like(scale), scale)
    xy = (xy - lower) / scale
    ink = tf.concat([xy[:, 1:] - xy[:, :-1], points[:, 1:, 2:]], axis=2)
    ink_lengths = lengths - 1
    ink_valid = tf.sequence_mask(ink_lengths, tf.shape(ink)[1])[:, :, None]
    # tf.where, not a product: whatever the client padded with (even NaN) becomes 0.
    return tf.where(ink_valid, ink, 0.0), ink_lengths


def usable_features(points, lengths):
    """What a client sent -> the model's features, whatever it sent.

    A drawing is usable with at least 2 points (lengths above the padded width count as the
    width) and finite coordinates in them. The others are replaced by a 2-point stand-in, so
    that the batch still runs, and flagged `usable` False (model_fn blanks their outputs).
    The batch is cut to its longest drawing: a client that pads pays for the drawings'
    length, not for the padding.
    """
    width = tf.shape(points)[1]
    lengths = tf.clip_by_value(tf.cast(lengths, tf.int32), 0, width)
    inside = tf.sequence_mask(lengths, width)[:, :, None]
    finite = tf.reduce_all(tf.math.is_finite(points) | ~inside, axis=[1, 2])
    usable = (lengths >= 2) & finite
    # An empty batch runs one stand-in (convolutions refuse a batch of 0); model_fn returns
    # as many rows as `usable` has.
    extra = tf.maximum(0, 1 - tf.size(usable))
    runs = tf.pad(usable, [[0, extra]])
    lengths = tf.where(runs, tf.pad(lengths, [[0, extra]]), 2)
    longest = tf.reduce_max(lengths)
    points = tf.pad(points, [[0, extra], [0, tf.maximum(0, longest - width)], [0, 0]])
    points = tf.where(runs[:, None, None], points[:, :longest], 0.0)
    ink, ink_lengths = points_to_ink(points, lengths)
    return {"ink": ink, "lengths": ink_lengths, "usable": usable}


def serving_input_receiver_fn():
    points = tf.compat.v1.placeholder(tf.float32, [None, None, 3], name="points")
    lengths = tf.compat.v1.placeholder(tf.int32, [None], name="lengths")
    return tf.estimator.export.ServingInputReceiver(
        usable_features(points, lengths), {"points": points, "lengths": lengths})


def _higher_accuracy(best_eval_result, current_eval_result):
    return current_eval_result["accuracy"] > best_eval_result["accuracy"]


def exporters(classes_file, keep_latest=3):
    """Exports at each evaluation: the latest few, and the best by eval accuracy.

    Each SavedModel carries the class names as assets.extra/classes.txt.
    """
    assets = {CLASSES_ASSET: classes_file}
    return [
        tf.estimator.LatestExporter("latest", serving_input_receiver_fn,
                                    assets_extra=assets, exports_to_keep=keep_latest),
        tf.estimator.BestExporter("best", serving_input_receiver_fn, assets_extra=assets,
                                  compare_fn=_higher_accuracy, exports_to_keep=1),
    ]


def export_dirs(model_dir, kind="best"):
    """The SavedModel folders under model_dir/export/<kind>, oldest first."""
    base = os.path.join(model_dir, "export", kind)
    if not tf.io.gfile.isdir(base):
        return []
    return [os.path.join(base, d) for d in sorted(tf.io.gfile.listdir(base))
            if d.strip("/").isdigit()]

