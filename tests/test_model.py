"""model.py: padding never changes a drawing's logits; the eval metrics."""

import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf

import drawing
import hparams
import model
from conftest import QUICKDRAW

PARAMS = hparams.HParams(classes=tuple("abcdef"), num_layers=2, num_nodes=16,
                         num_conv=(8, 12), conv_len=(5, 3))


def real_inks(count=12):
    with open(os.path.join(QUICKDRAW, "cat.ndjson"), "rb") as f:
        parsed = drawing.parse_lines([next(f) for _ in range(count)])
    return drawing.split_ink(*drawing.points_to_ink(parsed.points, parsed.lengths))


def pad(inks, length, value=0.0):
    batch = np.full((len(inks), length, 3), value, dtype=np.float32)
    for i, ink in enumerate(inks):
        batch[i, :len(ink)] = ink
    return batch, np.array([len(i) for i in inks], dtype=np.int32)


@pytest.mark.parametrize("cell, rnn_kernel, batch_norm", [
    ("lstm", "loop", False), ("lstm", "loop", True), ("lstm", "block", False),
    ("lstm", "cudnn", True), ("gru", "loop", False)])
def test_padding_never_changes_a_drawings_logits(cell, rnn_kernel, batch_norm):
    inks = real_inks()
    short = min(inks, key=len)
    longest = max(len(i) for i in inks)
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.set_random_seed(1)
        ink = tf.compat.v1.placeholder(tf.float32, [None, None, 3])
        lengths = tf.compat.v1.placeholder(tf.int32, [None])
        logits = model.logits_fn(ink, lengths, dataclasses.replace(
            PARAMS, cell=cell, rnn_kernel=rnn_kernel, batch_norm=batch_norm), training=False)
        session = tf.compat.v1.Session()
        session.run(tf.compat.v1.global_variables_initializer())

    def run(batch, pad_to, value=0.0):
        padded, batch_lengths = pad(batch, pad_to, value)
        return session.run(logits, {ink: padded, lengths: batch_lengths})

    alone = run([short], len(short))[0]
    with_short = run([short, short[:3]], len(short))[0]
    with_long = run([short] + inks, longest)[0]
    # Garbage past each drawing's end changes nothing either.
    with_garbage = run([short] + inks, longest + 40, value=7.0)[0]
    every_alone = np.stack([run([i], len(i))[0] for i in inks])
    every_batched = run(inks, longest)
    session.close()
    for other in (with_short, with_long, with_garbage):
        np.testing.assert_allclose(other, alone, rtol=0, atol=2e-5)
    np.testing.assert_allclose(every_batched, every_alone, rtol=0, atol=2e-5)
    assert np.abs(alone).max() > 1e-3  # the logits are not trivially zero


def test_metrics_against_a_hand_computed_example():
    classes = ["a", "b", "c", "d"]
    labels = [0, 1, 2, 3, 0, 2]
    # Class ranking per drawing, best first; the label's rank is 1, 2, 1, 4, 3, 1.
    rankings = [[0, 1, 2, 3], [2, 1, 0, 3], [2, 0, 1, 3], [0, 1, 2, 3], [1, 2, 0, 3],
                [2, 3, 1, 0]]
    logits = np.zeros((6, 4), np.float32)
    for row, ranking in enumerate(rankings):
        logits[row, ranking] = [4.0, 3.0, 2.0, 1.0]
    graph = tf.Graph()
    with graph.as_default():
        metrics = model.eval_metrics(tf.constant(labels, tf.int64), tf.constant(logits),
                                     classes)
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.local_variables_initializer())
            session.run([update for _, update in metrics.values()])
            values = session.run({k: v for k, (v, _) in metrics.items()})
    assert values["accuracy"] == pytest.approx(3 / 6)                   # ranks 1, 1, 1
    assert values["top_3_accuracy"] == pytest.approx(5 / 6)             # all but rank 4
    assert values["map_at_3"] == pytest.approx((1 + 1 / 2 + 1 + 0 + 1 / 3 + 1) / 6)
    # Per class: a 1/2, b 0/1, c 2/2, d 0/1.
    assert values["mean_per_class_accuracy"] == pytest.approx((0.5 + 0 + 1 + 0) / 4)
    assert values["eval_drawings"] == 6
    summary = tf.compat.v1.Summary.FromString(values["confusion_matrix"])
    image = tf.io.decode_png(summary.value[0].image.encoded_image_string).numpy()
    assert image.shape == (24 + 4 * 14 + 4, image.shape[1], 3)
