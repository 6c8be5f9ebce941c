"""The tf.data input_fn: TFRecords of create_dataset.py -> (features, labels) batches.

features: {"ink": float32 [batch, time, 3], zero past each drawing's end, "lengths": int64
[batch]}; labels: int64 [batch], the class index.

Records are parsed a few hundred at a time (one parse op for many records). With bucketing,
drawings of similar lengths are batched together, so a batch is padded to little more than
its drawings' own lengths: this changes which drawings share a batch, nothing else. Every
drawing is still read once an epoch, and evaluation still sees every drawing exactly once.
"""

import math
import typing

import tensorflow as tf

import data_format

_PARSE_BATCH = 256


def _boundaries(first, last, ratio, width):
    """Bucket boundaries from `first` to `last` or beyond, each `ratio` times the one before,
    at least `width` points apart."""
    boundaries = [first]
    while boundaries[-1] < last:
        boundaries.append(max(boundaries[-1] + width, round(boundaries[-1] * ratio)))
    return boundaries


# Drawings have 50 points on average, 100 at the 95th percentile, over 700 at most. Buckets
# 5% apart (and 3 points, as the shortest drawings hold few of the points): a batch of 64 is
# padded by 2% of its points on the 17 large classes, against 9% with the 19 boundaries 10-60%
# apart before. What it costs: drawings wait in 77 buckets (at most a batch less one each)
# until theirs fills, rare lengths longer than common ones.
BUCKET_BOUNDARIES = _boundaries(8, 1000, 1.05, 3)


def _parse(serialized, max_points):
    """A batch of serialized Examples -> (ragged ink [batch, None, 3], lengths, labels),
    each drawing cropped to max_points if not 0."""
    ink, lengths, labels = data_format.parse_examples(serialized)
    if max_points:
        ink = ink[:, :max_points]
        lengths = tf.minimum(lengths, max_points)
    return ink, lengths, labels


def _features(ink, lengths, labels):
    return {"ink": ink, "lengths": lengths}, labels


def _padded_features(ink, lengths, labels):
    return _features(ink.to_tensor(), lengths, labels)


def _dense_row(ink, length, label):
    # Unbatching a RaggedTensor yields rows typed as ragged of ragged_rank 0, which
    # padded_batch refuses; passed through a map they come out as the dense tensors they are.
    return tf.identity(ink), length, label


def _bucketed(records, batch_size, max_points):
    drawings = (records.batch(_PARSE_BATCH)
                .map(lambda s: _parse(s, max_points), num_parallel_calls=tf.data.AUTOTUNE)
                .unbatch()
                .map(_dense_row))
    batches = drawings.bucket_by_sequence_length(
        element_length_func=lambda ink, length, label: tf.cast(length, tf.int32),
        bucket_boundaries=BUCKET_BOUNDARIES,
        bucket_batch_sizes=[batch_size] * (len(BUCKET_BOUNDARIES) + 1))
    return batches.map(_features)


class Augmentation(typing.NamedTuple):
    """What each training drawing goes through (hparams.py's augment_* options; all 0:
    nothing)."""
    stretch: float = 0.0
    rotation: float = 0.0
    dropped_points: float = 0.0
    dropped_strokes: float = 0.0
    jitter: float = 0.0
    reversed_strokes: float = 0.0
    shuffled_strokes: float = 0.0

    @classmethod
    def of(cls, hparams):
        return cls(**{field: getattr(hparams, "augment_" + field) for field in cls._fields})


def _augmented(features, labels, seed, augment):
    """Each drawing of the batch stretched along x and y by random factors in [1 - stretch,
    1 + stretch], rotated by a random angle within `rotation` degrees, then (if any of the
    others is not 0) resampled by _resampled."""
    stretch, rotation = augment.stretch, augment.rotation
    ink = features["ink"]
    batch = tf.shape(ink)[0]
    stretch_seed, angle_seed, resample_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, 3))
    factors = tf.random.stateless_uniform([batch, 1, 2], stretch_seed, 1 - stretch,
                                          1 + stretch)
    angle = tf.random.stateless_uniform([batch, 1], angle_seed, -rotation,
                                        rotation) * (math.pi / 180)
    # Both are linear in the points, so they apply to the deltas as they are, and padding
    # stays zero.
    x, y = tf.unstack(ink[:, :, :2] * factors, axis=2)
    cos, sin = tf.cos(angle), tf.sin(angle)
    xy = tf.stack([cos * x - sin * y, sin * x + cos * y], axis=2)
    ink = tf.concat([xy, ink[:, :, 2:]], axis=2)
    lengths = features["lengths"]
    if any(augment._replace(stretch=0.0, rotation=0.0)):  # any of _resampled's
        ink, lengths = _resampled(ink, lengths, resample_seed, augment)
    return dict(features, ink=ink, lengths=lengths), labels


def _resampled(ink, lengths, seed, augment):
    """Reverses the order of the points of each stroke but the first with probability
    reversed_strokes (the stroke drawn from its other end); with probability
    shuffled_strokes, draws a drawing's strokes but the first in a random order; drops each
    point that does not end a stroke with probability dropped_points, and each stroke but the
    first with probability dropped_strokes; moves every point by a normal offset of standard
    deviation `jitter` (in the drawing's [0, 1] box), all of `augment`. Kept points stay where
    they were (but for the jitter): the deltas are recomputed from positions."""
    dropped_points, dropped_strokes = augment.dropped_points, augment.dropped_strokes
    jitter, reversed_strokes = augment.jitter, augment.reversed_strokes
    points_seed, strokes_seed, jitter_seed, reversed_seed, shuffled_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, 5))
    shape = tf.shape(ink)[:2]
    valid = tf.sequence_mask(lengths, shape[1])
    keep = valid
    ends = ink[:, :, 2] > 0.5
    stroke = tf.cumsum(tf.cast(ends, tf.int32), axis=1, exclusive=True)  # each row's stroke
    # A row's delta leads to its point, so each row stands for the point it reaches.
    if dropped_points:
        last = tf.equal(tf.range(shape[1], dtype=lengths.dtype)[None], lengths[:, None] - 1)
        keep &= ends | last | (tf.random.stateless_uniform(shape, points_seed) >= dropped_points)
    if dropped_strokes:
        stroke_kept = tf.gather(tf.random.stateless_uniform(shape, strokes_seed), stroke,
                                batch_dims=1) >= dropped_strokes
        keep &= stroke_kept | tf.equal(stroke, 0)
    positions = tf.cumsum(ink[:, :, :2], axis=1)
    if reversed_strokes:
        positions = _reversed_strokes(positions, stroke, valid, reversed_seed, reversed_strokes)
    if jitter:
        positions += tf.random.stateless_normal(tf.shape(positions), jitter_seed, stddev=jitter)
    points = tf.concat([positions, ink[:, :, 2:]], axis=2)
    if augment.shuffled_strokes:
        order = _shuffled_strokes(stroke, valid, shuffled_seed, augment.shuffled_strokes)
        points, keep = (tf.gather(t, order, batch_dims=1) for t in (points, keep))
    kept = tf.ragged.boolean_mask(points, keep)
    lengths = tf.cast(kept.row_lengths(), lengths.dtype)
    kept = kept.to_tensor()
    previous = tf.pad(kept[:, :-1, :2], [[0, 0], [1, 0], [0, 0]])
    mask = tf.sequence_mask(lengths, tf.shape(kept)[1], dtype=ink.dtype)[:, :, None]
    return tf.concat([kept[:, :, :2] - previous, kept[:, :, 2:]], axis=2) * mask, lengths


def _reversed_strokes(positions, stroke, valid, seed, rate):
    """positions [batch, time, 2] with the points of each stroke but the first in reverse
    order, each with probability `rate`; stroke [batch, time]: each row's stroke index. The
    first is left as it is: the ink leaves out a drawing's first point, so that stroke's
    other end is not in it. A stroke keeps its rows, so its last row still ends it."""
    batch, steps = tf.unstack(tf.shape(stroke))
    # Each row's stroke as a segment of the whole batch; padding rows in one of their own.
    padding = batch * (steps + 1)
    segment = tf.where(valid, stroke + tf.range(batch)[:, None] * (steps + 1), padding)
    rows = tf.broadcast_to(tf.range(steps), [batch, steps])
    first, last = (tf.gather(reduce(rows, segment, padding + 1), segment)
                   for reduce in (tf.math.unsorted_segment_min, tf.math.unsorted_segment_max))
    drawn = tf.random.stateless_uniform([batch, steps], seed) < rate  # one draw per stroke
    flipped = tf.gather(drawn, stroke, batch_dims=1) & (stroke > 0) & valid
    return tf.gather(positions, tf.where(flipped, first + last - rows, rows), batch_dims=1)


def _shuffled_strokes(stroke, valid, seed, rate):
    """[batch, time]: the order of the rows that draws the strokes of a drawing but its first
    in a random order, for each drawing with probability `rate`; stroke [batch, time]: each
    row's stroke index. A stroke keeps its rows in order, so its last row still ends it, and
    padding stays last. The first stroke stays first, as the ink leaves out the drawing's
    first point, from which only that stroke starts."""
    drawing_seed, stroke_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    shape = tf.shape(stroke)
    shuffled = tf.random.stateless_uniform([shape[0], 1], drawing_seed) < rate
    drawn = tf.random.stateless_uniform(shape, stroke_seed)  # a key for each stroke index
    key = tf.where(shuffled, tf.gather(drawn, stroke, batch_dims=1), tf.cast(stroke, tf.float32))
    key = tf.where(tf.equal(stroke, 0), -1.0, key)
    key = tf.where(valid, key, tf.cast(shape[1] + 1, tf.float32))
    return tf.argsort(key, axis=1, stable=True)


def input_fn(pattern, training, batch_size, seed=None, bucket=True, max_points=0,
             shuffle_buffer=10000, shard=(0, 1), limit=0, augment=Augmentation()):
    """Training: shuffled files and records, repeated forever, drawings cropped to
    `max_points` if not 0 and augmented (see _augmented) if any of `augment` is not 0;
    shard = (index, count): this task's part of the data, every count-th file from the
    index-th (every count-th record when there are fewer files than tasks). Eval: every
    record once (or the first `limit`, if not 0), in file order, never cropped, the last
    batches partial. bucket: batch drawings of similar lengths together; else pad each batch
    of records as read.
    """
    files = sorted(tf.io.gfile.glob(pattern))
    if training:
        index, count = shard
        by_file = len(files) >= count
        if by_file:
            files = files[index::count]
        files = tf.data.Dataset.from_tensor_slices(files)
        if by_file:
            files = files.shuffle(files.cardinality(), seed=seed)
        records = files.interleave(tf.data.TFRecordDataset, cycle_length=4,
                                   num_parallel_calls=tf.data.AUTOTUNE)
        if not by_file:  # the same record order in every task, then every count-th record
            records = records.shard(count, index)
        records = records.shuffle(shuffle_buffer, seed=seed).repeat()
    else:
        records = tf.data.Dataset.from_tensor_slices(files).flat_map(tf.data.TFRecordDataset)
        if limit:
            records = records.take(limit)
        max_points = 0
    if bucket:
        batches = _bucketed(records, batch_size, max_points)
    else:
        # Each batch of records as read, padded to its longest drawing.
        batches = records.batch(batch_size).map(
            lambda s: _padded_features(*_parse(s, max_points)),
            num_parallel_calls=tf.data.AUTOTUNE)
    if training and any(augment):
        # Stateless draws, seeded from a seeded stream: the same seed, the same drawings.
        seeds = tf.data.Dataset.random(seed=seed).batch(2)
        batches = tf.data.Dataset.zip((batches, seeds)).map(
            lambda batch, batch_seed: _augmented(*batch, batch_seed, augment),
            num_parallel_calls=tf.data.AUTOTUNE)
    return batches.prefetch(tf.data.AUTOTUNE)
