"""model.py: padding never changes a drawing's logits; the eval metrics."""

import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

import confusion
import drawing
import hparams
import model
from conftest import QUICKDRAW, REPO

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


@pytest.mark.parametrize("cell, rnn_kernel, batch_norm, time_stride, positions", [
    ("lstm", "loop", False, 1, False), ("lstm", "loop", True, 1, False),
    ("lstm", "block", False, 1, False), ("lstm", "cudnn", True, 1, False),
    ("gru", "loop", False, 1, False), ("lstm", "block", False, 2, False),
    ("lstm", "loop", True, 3, False), ("lstm", "loop", False, 1, True)])
def test_padding_never_changes_a_drawings_logits(cell, rnn_kernel, batch_norm, time_stride,
                                                 positions):
    inks = real_inks()
    short = min(inks, key=len)
    longest = max(len(i) for i in inks)
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.set_random_seed(1)
        ink = tf.compat.v1.placeholder(tf.float32, [None, None, 3])
        lengths = tf.compat.v1.placeholder(tf.int32, [None])
        logits = model.logits_fn(ink, lengths, dataclasses.replace(
            PARAMS, cell=cell, rnn_kernel=rnn_kernel, batch_norm=batch_norm,
            time_stride=time_stride, positions=positions), training=False)
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


def test_positions_are_the_points_in_their_bounding_box():
    with open(os.path.join(QUICKDRAW, "owl.ndjson"), "rb") as f:
        parsed = drawing.parse_lines([next(f) for _ in range(5)])
    inks = drawing.split_ink(*drawing.points_to_ink(parsed.points, parsed.lengths))
    batch, lengths = pad(inks, max(len(i) for i in inks) + 4, value=3.0)
    mask = tf.sequence_mask(lengths, batch.shape[1], dtype=tf.float32)[:, :, None]
    got = model.positions(tf.constant(batch), mask).numpy()
    for i, points in enumerate(drawing.split_ink(parsed.points, parsed.lengths)):
        lower, upper = points[:, :2].min(axis=0), points[:, :2].max(axis=0)
        # Every point but the first (which the ink drops), scaled to [0, 1] as the ink was.
        np.testing.assert_allclose(got[i, :lengths[i]], ((points[:, :2] - lower)
                                                         / (upper - lower))[1:], atol=1e-5)
        assert not got[i, lengths[i]:].any()


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
    counts = np.zeros((4, 4), int)  # [true, predicted]: the rankings' first classes
    for true, predicted in zip(labels, [0, 2, 2, 0, 1, 2]):
        counts[true, predicted] += 1
    np.testing.assert_array_equal(image, confusion.render(counts, classes))


MIRRORED_CLIPPING = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import model
with tf.Graph().as_default():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        variable = tf.compat.v1.get_variable("v", initializer=[1.0, 2.0])

    def replica_step():
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        # replica 0's gradient is [30, 0], replica 1's [60, 0]: their mean has norm 45
        loss = tf.reduce_sum(variable * [30.0, 0.0]) * tf.cast(1 + replica, tf.float32)
        _, shares, norm = model.clipped_update(loss, [variable], 9.0)
        return shares[0], norm

    shares, norms = strategy.run(replica_step)
    applied = strategy.reduce(tf.distribute.ReduceOp.SUM, shares, axis=None)
    with strategy.scope():
        matrix = tf.compat.v1.get_variable("m", initializer=[[1.0, 2.0]])
    decay = strategy.run(lambda: model.decay_weights([variable, matrix], tf.constant(0.25)))
    with tf.compat.v1.Session() as session:
        session.run(tf.compat.v1.global_variables_initializer())
        applied, norms = session.run([applied, strategy.experimental_local_results(norms)])
        session.run(decay)
        decayed = [session.run(v).tolist() for v in strategy.experimental_local_results(matrix)]
        vector = session.run(variable).tolist()
print(json.dumps({"applied": applied.tolist(), "norms": [float(n) for n in norms],
                  "decayed": decayed, "vector": vector}))
"""


def test_mirrored_replicas_clip_their_summed_update(tmp_path):
    """Two replicas (two logical CPUs, in a fresh process): the update they apply together
    is the mean of their gradients clipped to the norm, not each one's clipped and summed."""
    result = subprocess.run([sys.executable, "-c", MIRRORED_CLIPPING], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(outcome["applied"], [9.0, 0.0], rtol=1e-6)
    np.testing.assert_allclose(outcome["norms"], [45.0, 45.0], rtol=1e-6)
    # Weight decay shrinks a matrix once on each replica's copy, not once per replica, and
    # leaves a vector (a bias) alone.
    np.testing.assert_allclose(outcome["decayed"], [[[0.75, 1.5]]] * 2, rtol=1e-6)
    assert outcome["vector"] == [1.0, 2.0]


def rates(params, horizon, steps):
    """The learning rate at each of `steps`, from model.learning_rate's graph."""
    graph = tf.Graph()
    with graph.as_default():
        step = tf.compat.v1.train.create_global_step()
        rate = model.learning_rate(params, horizon)
        at = tf.compat.v1.placeholder(tf.int64, [])
        assign = step.assign(at)
        with tf.compat.v1.Session() as session:
            result = []
            for s in steps:
                session.run(assign, {at: s})
                result.append(session.run(rate))
            return result


def test_learning_rate_schedules():
    constant = dataclasses.replace(PARAMS, learning_rate=0.01)
    assert rates(constant, None, [0, 500]) == pytest.approx([0.01, 0.01])
    warm = dataclasses.replace(constant, warmup_steps=10)
    assert rates(warm, None, [0, 4, 9, 100]) == pytest.approx([0.001, 0.005, 0.01, 0.01])
    cosine = dataclasses.replace(constant, learning_rate_schedule="cosine")
    by_steps = model.Horizon(steps=200)
    assert rates(cosine, by_steps, [0, 50, 100, 200, 300]) == pytest.approx(
        [0.01, 0.01 * (1 + 0.5 ** 0.5) / 2, 0.005, 0, 0], abs=1e-7)
    # A time budget half spent: the schedule is half way, whatever the step, unless the
    # steps are further on.
    by_time = model.Horizon(steps=200, deadline=time.time() + 3600, seconds=7200)
    assert rates(cosine, by_time, [0, 150]) == pytest.approx(
        [0.005, 0.01 * (1 - 0.5 ** 0.5) / 2], rel=1e-3)
    with pytest.raises(ValueError, match="Horizon"):
        rates(cosine, None, [0])


SIX_LABELS = np.arange(6)


@contextlib.contextmanager
def six_drawing_spec(params, mode):
    """(spec, session): estimator_spec in `mode` on six cat drawings labelled 0-5, in a
    seeded graph with initialized variables (the graph is the default inside)."""
    inks, lengths = pad(real_inks(6), 200)
    with tf.Graph().as_default():
        tf.compat.v1.random.set_random_seed(1)
        tf.compat.v1.train.create_global_step()
        spec = model.estimator_spec({"ink": tf.constant(inks), "lengths": lengths},
                                    tf.constant(SIX_LABELS), mode, params)
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            yield spec, session


def test_label_smoothing_changes_the_training_loss_only():
    labels = SIX_LABELS
    smoothed = dataclasses.replace(PARAMS, label_smoothing=0.2, dropout=0.0)
    losses = {}
    for mode in (tf.estimator.ModeKeys.TRAIN, tf.estimator.ModeKeys.EVAL):
        with six_drawing_spec(smoothed, mode) as (spec, session):
            loss, logits = session.run([spec.loss, session.graph.get_tensor_by_name("logits:0")])
        log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        target = np.full(log_p.shape, 0.2 / 6) + 0.8 * np.eye(6)[labels]
        losses[mode] = loss, -(target * log_p).sum(axis=1).mean(), \
            -log_p[np.arange(6), labels].mean()
    train, smoothed_loss, plain_loss = losses[tf.estimator.ModeKeys.TRAIN]
    assert train == pytest.approx(smoothed_loss, rel=1e-5)
    assert abs(smoothed_loss - plain_loss) > 1e-3
    evaluated, _, plain_loss = losses[tf.estimator.ModeKeys.EVAL]
    assert evaluated == pytest.approx(plain_loss, rel=1e-5)


def test_batch_norm_statistics_count_valid_steps_only():
    inks = real_inks()
    longest = max(len(i) for i in inks)
    params = dataclasses.replace(PARAMS, batch_norm=True, dropout=0.0)
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.set_random_seed(1)
        ink = tf.compat.v1.placeholder(tf.float32, [None, None, 3])
        lengths = tf.compat.v1.placeholder(tf.int32, [None])
        logits = model.logits_fn(ink, lengths, params, training=True)
        updates = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS)
        with tf.compat.v1.variable_scope("batch_norm_0", reuse=True):
            moving_mean = tf.compat.v1.get_variable("moving_mean")
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())

            def run(pad_to, value):
                padded, batch_lengths = pad(inks, pad_to, value)
                return session.run(logits, {ink: padded, lengths: batch_lengths})
            tight = run(longest, 0.0)
            # In training, the batch's statistics normalize: padding, even garbage, is not
            # counted in them.
            np.testing.assert_allclose(run(longest + 40, 7.0), tight, rtol=0, atol=2e-5)
            padded, batch_lengths = pad(inks, longest + 40, 7.0)
            session.run(updates, {ink: padded, lengths: batch_lengths})
            valid = np.concatenate(inks)
            np.testing.assert_allclose(session.run(moving_mean), 0.01 * valid.mean(axis=0),
                                       rtol=1e-4, atol=1e-7)


def test_weight_decay_shrinks_the_matrices_after_adams_step():
    after = {}
    for decay in (0.0, 0.5):
        params = dataclasses.replace(PARAMS, weight_decay=decay, dropout=0.0,
                                     learning_rate=0.01)
        with six_drawing_spec(params, tf.estimator.ModeKeys.TRAIN) as (spec, session):
            session.run(spec.train_op)
            after[decay] = {v.op.name: session.run(v)
                            for v in tf.compat.v1.trainable_variables()}
    matrices = [name for name, value in after[0.0].items() if value.ndim > 1]
    assert {"dense/kernel", "conv1d_0/kernel"} <= set(matrices)
    for name, value in after[0.0].items():
        shrunk = value * (1 - 0.01 * 0.5) if value.ndim > 1 else value
        np.testing.assert_allclose(after[0.5][name], shrunk, rtol=1e-5, atol=1e-7)
