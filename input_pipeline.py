"""The tf.data input_fn: TFRecords of create_dataset.py -> (features, labels) batches.

features: {"ink": float32 [batch, time, 3], zero past each drawing's end, "lengths": int64
[batch]}; labels: int64 [batch], the class index.

Records are parsed a few hundred at a time (one parse op for many records). With bucketing,
drawings of similar lengths are batched together, so a batch is padded to little more than
its drawings' own lengths: this changes which drawings share a batch, nothing else. Every
drawing is still read once an epoch, and evaluation still sees every drawing exactly once.
"""

import math

import tensorflow as tf

import data_format

_PARSE_BATCH = 256
# Drawings have 50 points on average, 100 at the 95th percentile, over 700 at most.
BUCKET_BOUNDARIES = [12, 16, 20, 24, 28, 32, 36, 40, 46, 52, 60, 70, 80, 95, 115, 140, 180,
                     250, 400]


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


def _augmented(features, labels, seed, stretch, rotation):
    """Each drawing of the batch stretched along x and y by random factors in [1 - stretch,
    1 + stretch], then rotated by a random angle within `rotation` degrees. Both are linear
    in the points, so they apply to the deltas as they are, and padding stays zero."""
    ink = features["ink"]
    batch = tf.shape(ink)[0]
    stretch_seed, angle_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    factors = tf.random.stateless_uniform([batch, 1, 2], stretch_seed, 1 - stretch,
                                          1 + stretch)
    angle = tf.random.stateless_uniform([batch, 1], angle_seed, -rotation,
                                        rotation) * (math.pi / 180)
    x, y = tf.unstack(ink[:, :, :2] * factors, axis=2)
    cos, sin = tf.cos(angle), tf.sin(angle)
    xy = tf.stack([cos * x - sin * y, sin * x + cos * y], axis=2)
    return dict(features, ink=tf.concat([xy, ink[:, :, 2:]], axis=2)), labels


def input_fn(pattern, training, batch_size, seed=None, bucket=True, max_points=0,
             shuffle_buffer=10000, shard=(0, 1), limit=0, augment_stretch=0.0,
             augment_rotation=0.0):
    """Training: shuffled files and records, repeated forever, drawings cropped to
    `max_points` if not 0 and augmented (see _augmented) if augment_stretch or
    augment_rotation is not 0; shard = (index, count): this task's part of the data, every
    count-th file from the index-th (every count-th record when there are fewer files than
    tasks). Eval: every record once (or the first `limit`, if not 0), in file order, never
    cropped, the last batches partial. bucket: batch drawings of similar lengths together;
    else pad each batch of records as read.
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
    if training and (augment_stretch or augment_rotation):
        # Stateless draws, seeded from a seeded stream: the same seed, the same drawings.
        seeds = tf.data.Dataset.random(seed=seed).batch(2)
        batches = tf.data.Dataset.zip((batches, seeds)).map(
            lambda batch, batch_seed: _augmented(*batch, batch_seed, augment_stretch,
                                                 augment_rotation),
            num_parallel_calls=tf.data.AUTOTUNE)
    return batches.prefetch(tf.data.AUTOTUNE)
