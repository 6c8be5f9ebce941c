"""serving.py: the in-graph preprocessing, the exports of a run."""

import dataclasses
import os

import numpy as np
import tensorflow as tf

import data_format
import drawing
import serving
from conftest import QUICKDRAW


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
        "top_k_classes", "top_k_probabilities", "probabilities", "class_index"}
    assert serving.export_dirs(str(model_dir / "nothing")) == []



def graph_op_types(graph_def):
    types = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        types |= {node.op for node in function.node_def}
    return types


def test_an_export_made_on_a_gpu_runs_on_a_cpu(trained, dataset, tmp_path, monkeypatch):
    """With a GPU visible (simulated) training builds cuDNN, and its export the loop."""
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
    assert "MatMul" in types and ({"While", "StatelessWhile", "Enter"} & types), types
    assert not any(t.startswith("Cudnn") for t in types), types
    parsed = drawing.parse_lines([open(os.path.join(QUICKDRAW, "cat.ndjson"), "rb").readline()])
    monkeypatch.undo()
    outputs = classifier.from_saved_model(export).predict(parsed.points, parsed.lengths)
    assert outputs["probabilities"].shape == (1, 4)
