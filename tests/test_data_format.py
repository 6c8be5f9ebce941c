"""data_format.py: the hand-encoded Example, its parsing, file names, the classes file."""

import glob
import os

import numpy as np
import pytest
import tensorflow as tf

import data_format
import drawing
from cli import UserError
from conftest import QUICKDRAW


def some_inks(step=1000):
    lines = []
    for path in sorted(glob.glob(os.path.join(QUICKDRAW, "*.ndjson"))):
        with open(path, "rb") as f:
            lines += f.readlines()
    parsed = drawing.parse_lines(lines[::step])
    return drawing.points_to_ink(parsed.points, parsed.lengths)


def test_encoded_example_equals_tensorflows_serialization():
    ink, ink_lengths = some_inks()
    encoded = data_format.encode_ink_features(ink, ink_lengths)
    for class_index, features, one_ink in zip([0, 1, 127, 128, 300, 70000] * 10, encoded,
                                              drawing.split_ink(ink, ink_lengths)):
        example = tf.train.Example(features=tf.train.Features(feature={
            "class_index": tf.train.Feature(int64_list=tf.train.Int64List(value=[class_index])),
            "ink": tf.train.Feature(float_list=tf.train.FloatList(value=one_ink.flatten())),
            "shape": tf.train.Feature(int64_list=tf.train.Int64List(value=one_ink.shape)),
        }))
        assert data_format.encode_example(features, class_index) == \
            example.SerializeToString(deterministic=True)


def test_written_examples_read_back_as_written(tmp_path):
    ink, ink_lengths = some_inks(step=700)
    inks = drawing.split_ink(ink, ink_lengths)
    labels = [i % 7 for i in range(len(inks))]
    path = tmp_path / data_format.shard_name(data_format.TRAINING, 0, 1)
    assert path.name == "training.tfrecord-00000-of-00001"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for features, label in zip(data_format.encode_ink_features(ink, ink_lengths), labels):
            writer.write(data_format.encode_example(features, label))
    pattern = data_format.shard_pattern(str(tmp_path), data_format.TRAINING)
    read = data_format.read_examples(pattern)
    assert [c for c, _ in read] == labels
    for (_, got), want in zip(read, inks):
        assert got.shape == want.shape and got.dtype == np.float32
        np.testing.assert_array_equal(got, want)
    parsed_ink, lengths, class_index = data_format.parse_examples(
        list(tf.data.TFRecordDataset(str(path)).take(3)))
    np.testing.assert_array_equal(lengths.numpy(), ink_lengths[:3])
    np.testing.assert_array_equal(class_index.numpy(), labels[:3])
    np.testing.assert_array_equal(parsed_ink[1].numpy(), inks[1])


def test_classes_file_round_trip_and_its_errors(tmp_path):
    path = tmp_path / data_format.CLASSES
    data_format.write_classes(str(path), ["cat", "The Eiffel Tower", "dog"])
    assert data_format.read_classes(str(path)) == ["cat", "The Eiffel Tower", "dog"]
    assert data_format.classes_beside(str(tmp_path / "training.tfrecord-*")) == str(path)
    (tmp_path / "blank").write_text("\n  \n")
    (tmp_path / "twice").write_text("cat\ndog\ncat\n")
    for name, flag, message in (
            ("missing", "classes_file", f"cannot read --classes_file {tmp_path}/missing:"),
            ("missing", None, f"cannot read the classes file {tmp_path}/missing:"),
            ("blank", None, f"the classes file {tmp_path}/blank names no class"),
            ("twice", None, f"the classes file {tmp_path}/twice names a class twice")):
        with pytest.raises(UserError) as error:
            data_format.read_classes(str(tmp_path / name), flag=flag)
        assert str(error.value).startswith(message)
