"""predict.py as the user runs it: a SavedModel in a fresh process, a checkpoint from
standard input, bad lines, one-line errors."""

import json
import os

import tensorflow as tf

import drawing
import hparams
import input_pipeline
import model
import serving
from conftest import error_line, eval_lines, eval_pattern, run
from data_format import read_examples


def ink_key(line):
    parsed = drawing.parse_lines([line])
    return drawing.points_to_ink(parsed.points, parsed.lengths)[0].tobytes()


def test_saved_model_in_a_fresh_process_agrees_with_the_estimator(trained, dataset,
                                                                  quickdraw_subset, tmp_path):
    model_dir, _ = trained
    params = hparams.load(model_dir)
    estimator = tf.estimator.Estimator(model.model_fn, model_dir=str(model_dir), params=params)
    predicted = estimator.predict(
        lambda: input_pipeline.input_fn(eval_pattern(dataset), False, 64,
                                        bucket=False),  # in file order, as read_examples
        predict_keys=["class_index"])
    by_ink = {ink.tobytes(): params.classes[p["class_index"]] for (_, ink), p in
              zip(read_examples(eval_pattern(dataset)), predicted)}
    assert len(by_ink) == 244

    lines = eval_lines(quickdraw_subset)
    source = tmp_path / "eval.ndjson"
    source.write_bytes(b"".join(lines))
    saved_model = serving.export_dirs(str(model_dir), "latest")[-1]  # the latest checkpoint's
    assert os.path.exists(os.path.join(saved_model, "assets.extra", "classes.txt"))
    result = run("predict.py", f"--saved_model={saved_model}", f"--input={source}",
                 "--output_format=json", "--top_k=1")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 244
    agree = sum(by_ink[ink_key(lines[r["line"] - 1])] == r["top_k"][0]["class"] for r in rows)
    assert agree == 244
    assert "top-1 accuracy" in result.stderr  # JSON mode keeps stdout JSON only


def test_predict_from_a_checkpoint_reports_bad_lines(trained, quickdraw_subset, tmp_path):
    model_dir, _ = trained
    lines = eval_lines(quickdraw_subset)[:3]
    source = tmp_path / "drawings.ndjson"
    source.write_bytes(lines[0] + b'{"word": "cat", "drawing": [[[1], [2]]]}\n' + lines[1]
                       + b"not json\n" + lines[2])
    result = run("predict.py", f"--model_dir={model_dir}", "--input=-",
                 input=source.read_text())
    assert "line 2: skipped: fewer than 2 points" in result.stderr
    assert "line 4: skipped: invalid json" in result.stderr
    out = result.stdout.splitlines()
    assert [l.split(":")[0] for l in out[:3]] == ["line 1", "line 3", "line 5"]
    assert out[0].endswith("(true: butterfly)") and len(out[0].split(",")) == 3
    assert out[3].startswith("top-1 accuracy ") and out[3].endswith(
        "over 3 drawings (2 lines skipped)")


def test_predict_bad_arguments_fail_with_one_line():
    assert error_line(run("predict.py", "--input=x", check=False)) == \
        "predict.py: error: give exactly one of --model_dir and --saved_model"
