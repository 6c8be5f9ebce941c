"""serving.py: the in-graph preprocessing, the exports of a run."""

import os

import numpy as np
import tensorflow as tf

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
