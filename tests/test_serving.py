"""serving.py: the in-graph preprocessing, the exports of a run."""

import dataclasses
import os

import numpy as np
import tensorflow as tf

import data_format
import drawing
import serving
from conftest import QUICKDRAW, graph_op_types


def test_in_graph_preprocessing_equals_the_converters():
    lines = []
    for name in ("cat", "The Eiffel Tower", "squiggle", "line"):
        with open(os.path.join(QUICKDRAW, f"{name}.ndjson"), "rb") as f:
            lines += f.readlines()[:500]
    lines.append(b'{"word": "raw", "drawing": [[[10.5, 10.5, 10.5], [3.25, 9.0, 20.75], '
                 b'[0, 5, 9]], [[10.5, 10.5], [1.0, 2.0]]]}')  # x of zero extent, floats
    parsed = drawing.parse_lines(lines)
    expected = drawing.split_ink(*drawing.points_to_ink(parsed.points, parsed.lengths))
    padded = drawing.pad(parsed.points, parsed.lengths)
    padded[np.arange(padded.shape[1]) >= parsed.lengths[:, None]] = np.nan  # any padding
    ink, ink_lengths = serving.points_to_ink(tf.constant(padded), tf.constant(parsed.lengths))
    ink, ink_lengths = ink.numpy(), ink_lengths.numpy()
    np.testing.assert_array_equal(ink_lengths, parsed.lengths - 1)
    worst = 0.0
    for i, want in enumerate(expected):
        worst = max(worst, float(np.abs(ink[i, :len(want)] - want).max()))
        assert not ink[i, len(want):].any(), "zero past the drawing's end"
    assert worst < 1e-6


def test_each_evaluation_exports_the_latest_and_the_best(trained):
    model_dir, _ = trained
    for kind in ("latest", "best"):
        exports = serving.export_dirs(str(model_dir), kind)
        assert exports, kind
        for path in exports:
            assert os.path.exists(os.path.join(path, "saved_model.pb"))
            with open(os.path.join(path, "assets.extra", serving.CLASSES_ASSET)) as f:
                assert f.read().split() == ["butterfly", "circle", "square", "triangle"]
    signature = tf.saved_model.load(serving.export_dirs(str(model_dir))[-1]).signatures[
        "serving_default"]
    assert set(signature.structured_input_signature[1]) == {"points", "lengths"}
    assert set(signature.structured_outputs) == {
        "top_k_classes", "top_k_probabilities", "probabilities", "class_index", "usable"}
    assert serving.export_dirs(str(model_dir / "nothing")) == []


def test_the_signature_survives_any_input(trained):
    model_dir, _ = trained
    signature = tf.saved_model.load(serving.export_dirs(str(model_dir))[-1]).signatures[
        "serving_default"]

    def run(points, lengths):
        outputs = signature(points=tf.constant(points, tf.float32),
                            lengths=tf.constant(lengths, tf.int32))
        return {k: v.numpy() for k, v in outputs.items()}
    with open(os.path.join(QUICKDRAW, "cat.ndjson"), "rb") as f:
        parsed = drawing.parse_lines([next(f) for _ in range(2)])
    good = drawing.pad(parsed.points, parsed.lengths)
    alone = run(good, parsed.lengths)
    assert alone["usable"].all()
    width = good.shape[1]
    nan = good[:1].copy()
    nan[0, 3, 0] = np.nan
    # Two good drawings among: 0 points, a length above the width, 1 point, a NaN point.
    batch = np.concatenate([good[:1], good[:1], good[:1], good[:1], nan, good[1:]])
    lengths = [parsed.lengths[0], 0, width + 50, 1, parsed.lengths[0], parsed.lengths[1]]
    mixed = run(batch, lengths)
    np.testing.assert_array_equal(mixed["usable"], [True, False, True, False, False, True])
    for i, j in ((0, 0), (5, 1)):
        np.testing.assert_allclose(mixed["probabilities"][i], alone["probabilities"][j],
                                   atol=1e-6)
        assert list(mixed["top_k_classes"][i]) == list(alone["top_k_classes"][j])
    for i in (1, 3, 4):
        assert not mixed["probabilities"][i].any() and mixed["class_index"][i] == -1
        assert set(mixed["top_k_classes"][i]) == {b""}
    assert np.isfinite(mixed["probabilities"]).all()
    # A length above the width counts as the width: the whole padded row.
    over = run(good[:1, :10], [parsed.lengths[0] + 50])
    np.testing.assert_allclose(run(good[:1, :10], [10])["probabilities"],
                               over["probabilities"], atol=1e-6)
    # A batch of only unusable drawings, even of width 1 or 0, still answers.
    for points, lengths in ((good[:1, :1], [1]), (np.zeros((2, 0, 3)), [0, 0]),
                            (np.zeros((0, 5, 3)), [])):
        outputs = run(points, lengths)
        assert not outputs["usable"].any() and len(outputs["usable"]) == len(lengths)
    # Padding changes nothing: the batch is cut to its longest drawing.
    padded = np.zeros((1, 1000, 3), np.float32)
    padded[0, :width] = good[0]
    np.testing.assert_allclose(run(padded, parsed.lengths[:1])["probabilities"],
                               alone["probabilities"][:1], atol=1e-6)



def test_an_export_made_on_a_gpu_runs_on_a_cpu(trained, dataset, tmp_path, monkeypatch):
    """With a GPU visible (simulated) training builds cuDNN, and its export the fused op that
    every device has: every op of the SavedModel has a CPU kernel."""
    from tensorflow.core.protobuf import saved_model_pb2

    import classifier
    import hparams as hparams_lib
    import model
    import recurrent
    model_dir, _ = trained
    monkeypatch.setattr(recurrent, "gpu_visible", lambda: True)
    params = dataclasses.replace(hparams_lib.load(str(model_dir)), rnn_kernel="cudnn")
    with tf.Graph().as_default() as graph:
        features = {"ink": tf.zeros([2, 9, 3]), "lengths": tf.constant([9, 0])}
        model.model_fn(features, tf.constant([0, 1]), tf.estimator.ModeKeys.TRAIN, params)
        assert "CudnnRNNV3" in graph_op_types(graph.as_graph_def())
    estimator = tf.estimator.Estimator(model.model_fn, model_dir=str(model_dir), params=params)
    export = estimator.export_saved_model(str(tmp_path), serving.serving_input_receiver_fn,
                                          assets_extra={serving.CLASSES_ASSET: str(
                                              dataset / data_format.CLASSES)}).decode()
    saved = saved_model_pb2.SavedModel()
    with open(os.path.join(export, "saved_model.pb"), "rb") as f:
        saved.ParseFromString(f.read())
    types = graph_op_types(saved.meta_graphs[0].graph_def)
    assert "BlockLSTMV2" in types and not any(t.startswith("Cudnn") for t in types), types
    from tensorflow.python.framework import kernels
    without_cpu_kernel = [op for op in types if op not in ("_Arg", "_Retval") and not {
        "CPU", "DEFAULT"} & {k.device_type for k in kernels.get_registered_kernels_for_op(op).kernel}]
    assert not without_cpu_kernel
    parsed = drawing.parse_lines([open(os.path.join(QUICKDRAW, "cat.ndjson"), "rb").readline()])
    monkeypatch.undo()
    outputs = classifier.from_saved_model(export).predict(parsed.points, parsed.lengths)
    assert outputs["probabilities"].shape == (1, 4)


def test_a_drawing_of_zero_extent_stays_finite_in_the_exports_graph_mode():
    # Exports are built in a TF1 graph, where `tensor == 0` is Python's identity test, not
    # elementwise: the guard against a zero extent never fired there and x/0 gave NaN.
    points = np.array([[[10.5, 3.25, 0], [10.5, 9.0, 0], [10.5, 20.75, 1]]], np.float32)
    with tf.Graph().as_default():
        ink, _ = serving.points_to_ink(tf.constant(points), tf.constant([3]))
        with tf.compat.v1.Session() as session:
            ink = session.run(ink)
    assert np.isfinite(ink).all() and not ink[0, :, 0].any()
