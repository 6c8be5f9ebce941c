"""classifier.py in this process: a checkpoint and its SavedModel give the same predictions;
bad lines are skipped with their reasons and line numbers; loading errors."""

import numpy as np
import pytest

import classifier
import hparams
import serving
import training
from cli import UserError
from conftest import SMALL_HPARAMS, eval_lines, train_config


def agreeing_predictions(model_dir, lines):
    """The predictions of model_dir's latest checkpoint for lines, once it is asserted that its
    latest export predicts the same (in batches of another size)."""
    from_checkpoint = classifier.load(classifier.PredictConfig(model_dir=str(model_dir)))
    from_export = classifier.load(classifier.PredictConfig(
        saved_model=serving.export_dirs(str(model_dir), "latest")[-1]))
    assert from_checkpoint.classes == from_export.classes == [
        "butterfly", "circle", "square", "triangle"]
    a = list(from_checkpoint.classify_lines(lines, batch_size=7))
    b = list(from_export.classify_lines(lines, batch_size=64))
    assert len(a) == len(b) == len(lines)
    for x, y in zip(a, b):
        assert x.line == y.line and x.word == y.word and x.classes == y.classes
        np.testing.assert_allclose(x.probabilities, y.probabilities, atol=1e-5)
    return a


def test_checkpoint_and_saved_model_agree(trained, quickdraw_subset):
    model_dir, _ = trained
    a = agreeing_predictions(model_dir, eval_lines(quickdraw_subset)[::8])
    assert sum(x.classes[0] == x.word for x in a) > 0.6 * len(a)


def test_positions_are_computed_alike_from_a_checkpoint_and_in_the_export(
        dataset, quickdraw_subset, tmp_path):
    # --positions derives features from the ink inside the graph; the export must rebuild them.
    training.train_and_evaluate(train_config(dataset, tmp_path, steps=30, hparams={
        **SMALL_HPARAMS, "positions": True}))
    assert hparams.load(str(tmp_path)).positions
    agreeing_predictions(tmp_path, eval_lines(quickdraw_subset)[::16])


def test_bad_lines_are_skipped_with_their_reasons(trained, quickdraw_subset):
    model_dir, _ = trained
    model = classifier.from_model_dir(str(model_dir))
    good = eval_lines(quickdraw_subset)[:3]
    lines = [good[0], b'{"word": "cat", "drawing": [[[1], [2]]]}\n', good[1], b"not json\n",
             good[2]]
    results = list(model.classify_lines(lines, batch_size=2))
    assert [r.line for r in results] == [1, 2, 3, 4, 5]
    assert results[1] == classifier.Skipped(2, "fewer than 2 points")
    assert results[3] == classifier.Skipped(4, "invalid json")
    for r in (results[0], results[2], results[4]):
        assert isinstance(r, classifier.Prediction) and r.word == "butterfly"
        assert len(r.classes) == 4 and sorted(r.classes) == sorted(model.classes)
        assert r.probabilities == sorted(r.probabilities, reverse=True)


@pytest.mark.parametrize("fields, message", [
    (dict(), "give exactly one of --model_dir and --saved_model"),
    (dict(model_dir="a", saved_model="b"), "give exactly one of --model_dir and --saved_model"),
    (dict(model_dir="a", top_k=6), "--top_k must be between 1 and 5"),
    (dict(model_dir="a", top_k=0), "--top_k must be at least 1"),
    (dict(model_dir="a", output_format="xml"), "--output_format must be one of text, json, "
                                               "not 'xml'"),
])
def test_bad_settings_are_one_line_errors(fields, message):
    with pytest.raises(UserError) as error:
        classifier.PredictConfig(**fields)
    assert str(error.value) == message


@pytest.mark.parametrize("fields, message", [
    (dict(saved_model="/no/such"), "no saved_model.pb in /no/such"),
    (dict(model_dir="/tmp"), "no hparams.json in /tmp: not a model_dir of train_model.py"),
])
def test_a_missing_model_is_a_one_line_error(fields, message):
    with pytest.raises(UserError) as error:
        classifier.load(classifier.PredictConfig(**fields))
    assert str(error.value) == message


def test_bad_strokes_get_their_reasons_and_the_others_are_answered(trained, quickdraw_subset):
    import json

    import drawing
    model_dir, _ = trained
    model = classifier.from_saved_model(serving.export_dirs(str(model_dir))[-1])
    good = [json.loads(line)["drawing"] for line in eval_lines(quickdraw_subset)[:2]]
    results = model.classify_strokes([good[0], [[[0], [0]]], [[[0, float("nan")], [0, 1]]],
                                      "abc", good[1]])
    alone = model.classify_strokes(good)
    assert [results[0], results[4]] == alone
    assert [(type(r), r.reason) for r in results[1:4]] == [
        (drawing.BadDrawing, drawing.TOO_FEW_POINTS), (drawing.BadDrawing, drawing.NON_FINITE),
        (drawing.BadDrawing, drawing.MALFORMED_DRAWING)]
