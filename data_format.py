"""The dataset on disk, as create_dataset.py writes it and training reads it. Nothing else
spells out these names and keys.

  OUT/training.tfrecord-0000i-of-0000n   training Examples, classes mixed in shuffled order
  OUT/eval.tfrecord-0000i-of-0000n       eval Examples, likewise
  OUT/training.tfrecord.classes          one class name a line; its line number is its index

Each record is a tf.train.Example with
  ink          float list: the drawing's [n, 3] ink (drawing.py), row by row
  shape        int64 list: [n, 3]
  class_index  int64 list: [class index]

Examples are encoded here by hand (the converter's worker processes never import TensorFlow)
and parsed with tf.io.parse_example. TensorFlow is imported inside the functions that need it.
"""

import functools
import os

import numpy as np

from cli import UserError

TRAINING = "training.tfrecord"
EVAL = "eval.tfrecord"
CLASSES = "training.tfrecord.classes"


def shard_name(prefix, shard, shards):
    """shard_name(TRAINING, 0, 10) -> 'training.tfrecord-00000-of-00010'."""
    return f"{prefix}-{shard:05d}-of-{shards:05d}"


def shard_pattern(folder, prefix):
    """The glob of a split's shards in folder, whatever their count."""
    return os.path.join(folder, f"{prefix}-?????-of-?????")


def classes_beside(pattern):
    """The classes file create_dataset.py wrote beside the shards matching pattern."""
    return os.path.join(os.path.dirname(pattern), CLASSES)


def read_classes(path, flag=None):
    """The class names of a classes file, in order. `flag` names the flag that gave the path,
    for the error message."""
    import tensorflow as tf
    what = f"--{flag} {path}" if flag else f"the classes file {path}"
    try:
        with tf.io.gfile.GFile(path) as f:
            classes = [line.strip() for line in f if line.strip()]
    except tf.errors.OpError as e:
        raise UserError(f"cannot read {what}: {e.message}") from None
    if not classes:
        raise UserError(f"{what} names no class")
    if len(set(classes)) != len(classes):
        raise UserError(f"{what} names a class twice")
    return classes


def write_classes(path, classes):
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(name + "\n" for name in classes)


# tf.train.Example encoded by hand: the converter writes millions of them, and building the
# protobuf message costs more than the rest of the conversion. The bytes equal
# tf.train.Example.SerializeToString(deterministic=True) (tests/test_data_format.py checks it):
#   Example{1: Features{1: map entry{1: key, 2: Feature{2: FloatList | 3: Int64List}}}}
# with map entries sorted by key and repeated numbers packed.

def _varint(value):
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number, payload):
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _map_entry(key, kind, payload):
    return _field(1, _field(1, key) + _field(2, _field(kind, _field(1, payload))))


_FLOAT_LIST, _INT64_LIST = 2, 3


@functools.lru_cache(maxsize=4096)
def _ink_entry_prefix(rows):
    # The float data ends the `ink` map entry, so everything before it depends only on `rows`.
    return _map_entry(b"ink", _FLOAT_LIST, bytes(12 * rows))[:-12 * rows]


@functools.lru_cache(maxsize=4096)
def _shape_entry(rows):
    return _map_entry(b"shape", _INT64_LIST, _varint(rows) + _varint(3))


@functools.lru_cache(maxsize=4096)
def _class_entry(class_index):
    return _map_entry(b"class_index", _INT64_LIST, _varint(class_index))


def encode_ink_features(ink, ink_lengths):
    """The `ink` and `shape` map entries of each drawing's Example, from a ragged batch."""
    data = np.ascontiguousarray(ink, dtype="<f4").tobytes()
    features, offset = [], 0
    for rows in np.asarray(ink_lengths).tolist():
        end = offset + 12 * rows
        features.append(_ink_entry_prefix(rows) + data[offset:end] + _shape_entry(rows))
        offset = end
    return features


def encode_example(ink_features, class_index):
    """A serialized tf.train.Example from one `encode_ink_features` item and a class index.

    The class index is added last because the converter only knows it once every class has
    been read (a class with no usable drawing gets no index).
    """
    return _field(1, _class_entry(class_index) + ink_features)


def parse_examples(serialized):
    """A batch of serialized Examples -> (ink, a RaggedTensor [batch, None, 3]; lengths, int64
    [batch], ink rows per drawing; class_index, int64 [batch])."""
    import tensorflow as tf
    parsed = tf.io.parse_example(serialized, {
        "ink": tf.io.VarLenFeature(tf.float32),
        "shape": tf.io.FixedLenFeature([2], tf.int64),
        "class_index": tf.io.FixedLenFeature([1], tf.int64),
    })
    lengths = parsed["shape"][:, 0]
    ink = tf.RaggedTensor.from_row_lengths(tf.reshape(parsed["ink"].values, [-1, 3]), lengths)
    return ink, lengths, parsed["class_index"][:, 0]


def read_examples(pattern):
    """[(class_index, ink [n, 3] float32)] of every Example in the files matching pattern, in
    sorted file order: for tests, benchmarks and a look at the data."""
    import tensorflow as tf
    files = sorted(tf.io.gfile.glob(str(pattern)))
    out = []
    for batch in tf.data.TFRecordDataset(files).batch(512):
        ink, lengths, class_index = parse_examples(batch)
        inks = np.split(ink.flat_values.numpy(), np.cumsum(lengths.numpy())[:-1])
        out += list(zip(class_index.numpy().tolist(), inks))
    return out
