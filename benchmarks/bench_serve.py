"""Latency of one guess: the Python predictor, the HTTP API of serve.py, padding's cost, and
the recurrent kernel exports run.

  ./run_sample.sh                                  # trains runs/sample/model, if not done
  python benchmarks/bench_serve.py [--model_dir=runs/sample/model] [--repeats=300]

One drawing of --points points (the first such drawing of the sample's classes; the
dataset's mean is about 53), classified one at a time after a warm-up; medians and 90th
percentiles in milliseconds. The paths take turns, a few dozen guesses at a time, so that
the machine's drifts in speed reach them all alike:
- the Python predictor on the run's best SavedModel (classifier.from_saved_model:
  strokes in, top 5 out; what predict.py and serve.py run);
- the same through the HTTP API (web.py in this process, one keep-alive connection: JSON
  both ways included);
- the SavedModel's signature on the drawing as it is and padded to 1,000 points;
- the signature of the same checkpoint exported with the while loop instead of the fused
  LSTM op (what exports ran before), for the ratio.
"""

import glob
import http.client
import json
import os
import statistics
import time

from common import REPO  # first: it puts the repository on sys.path

from absl import app, flags  # noqa: E402

flags.DEFINE_string("model_dir", os.path.join(REPO, "runs", "sample", "model"),
                    "A train_model.py model_dir with an export (run_sample.sh makes one).")
flags.DEFINE_integer("repeats", 300, "Timed guesses of each kind.")
flags.DEFINE_integer("points", 53, "Points of the drawing.")
FLAGS = flags.FLAGS


def a_drawing(points):
    for path in sorted(glob.glob(os.path.join(REPO, "data", "sample", "*.ndjson"))):
        with open(path) as f:
            for line in f:
                strokes = json.loads(line)["drawing"]
                if sum(len(s[0]) for s in strokes) == points:
                    return strokes
    raise SystemExit(f"no drawing of {points} points in data/sample")


def timed(calls, repeats, turns=10):
    """{name: call} -> {name: (median ms, 90th percentile ms)}, the calls taking turns."""
    times = {name: [] for name in calls}
    for turn in range(turns + 1):
        for name, call in calls.items():
            for _ in range(repeats // turns if turn else 20):  # turn 0: the warm-up
                start = time.perf_counter()
                call()
                if turn:
                    times[name].append(1000 * (time.perf_counter() - start))
    return {name: (statistics.median(t), sorted(t)[int(0.9 * len(t))])
            for name, t in times.items()}


def loop_export(model_dir, folder):
    """The model_dir's checkpoint exported with the while loop for its recurrent layers."""
    import tensorflow as tf

    import hparams
    import model
    import recurrent
    import serving
    params, _ = hparams.load_trained(model_dir)
    portable, recurrent.portable = recurrent.portable, lambda cell: "loop"
    try:
        estimator = tf.estimator.Estimator(model.model_fn, model_dir=model_dir, params=params)
        return estimator.export_saved_model(folder, serving.serving_input_receiver_fn).decode()
    finally:
        recurrent.portable = portable


def main(argv):
    del argv
    import tempfile

    import numpy as np
    import tensorflow as tf

    import classifier
    import drawing
    import serving
    import web

    exports = serving.export_dirs(FLAGS.model_dir)
    if not exports:
        raise SystemExit(f"no export in {FLAGS.model_dir}: run ./run_sample.sh first")
    model = classifier.from_saved_model(exports[-1])
    strokes = a_drawing(FLAGS.points)
    server, _ = web.serve_in_thread(web.ServeConfig(port=0), model)
    connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1])
    body = json.dumps({"instances": [strokes]})

    def over_http():
        connection.request("POST", "/v1/models/quickdraw:predict", body,
                           {"Content-Type": "application/json"})
        response = connection.getresponse()
        assert response.status == 200, response.read()
        response.read()

    signature = tf.saved_model.load(exports[-1]).signatures["serving_default"]
    with tempfile.TemporaryDirectory() as folder:
        with_loop = tf.saved_model.load(loop_export(FLAGS.model_dir, folder)).signatures[
            "serving_default"]
    points, lengths = drawing.to_points([drawing.flatten_strokes(strokes)])
    unpadded = tf.constant(drawing.pad(points, lengths))
    padded = np.zeros((1, 1000, 3), np.float32)
    padded[0, :len(points)] = points
    padded = tf.constant(padded)
    lengths = tf.constant(lengths, tf.int32)
    rows = timed({
        "Python predictor (classify_strokes)": lambda: model.classify_strokes([strokes]),
        "HTTP API (POST :predict, keep-alive)": over_http,
        "signature, unpadded": lambda: signature(points=unpadded, lengths=lengths),
        "signature, padded to 1,000 points": lambda: signature(points=padded, lengths=lengths),
        "signature exported with the while loop, unpadded":
            lambda: with_loop(points=unpadded, lengths=lengths),
    }, FLAGS.repeats)
    server.shutdown()
    print(f"one drawing of {FLAGS.points} points, {FLAGS.repeats} guesses each, "
          f"model {exports[-1]}")
    print("| path | median ms | 90th percentile ms |\n| --- | ---: | ---: |")
    for name, (median, p90) in rows.items():
        print(f"| {name} | {median:.2f} | {p90:.2f} |")


if __name__ == "__main__":
    app.run(main)
