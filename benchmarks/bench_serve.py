"""Latency of one guess: the Python predictor, the HTTP API of serve.py, and padding's cost.

  ./run_sample.sh                                  # trains runs/sample/model, if not done
  python benchmarks/bench_serve.py [--model_dir=runs/sample/model] [--repeats=300]

One drawing of --points points (the first such drawing of the sample's classes; the
dataset's mean is about 53), classified one at a time after a warm-up; medians and 90th
percentiles in milliseconds:
- the Python predictor on the run's best SavedModel (classifier.from_saved_model:
  strokes in, top 5 out; what predict.py and serve.py run);
- the same through the HTTP API (web.py in this process, one keep-alive connection: JSON
  both ways included);
- the SavedModel's signature on the drawing as it is and padded to 1,000 points.
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


def timed(call, repeats):
    for _ in range(20):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(1000 * (time.perf_counter() - start))
    times.sort()
    return statistics.median(times), times[int(0.9 * len(times))]


def main(argv):
    del argv
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
    rows = [("Python predictor (classify_strokes)",
             timed(lambda: model.classify_strokes([strokes]), FLAGS.repeats))]

    server, _ = web.serve_in_thread(web.ServeConfig(port=0), model)
    connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1])
    body = json.dumps({"instances": [strokes]})

    def over_http():
        connection.request("POST", "/v1/models/quickdraw:predict", body,
                           {"Content-Type": "application/json"})
        response = connection.getresponse()
        assert response.status == 200, response.read()
        response.read()
    rows.append(("HTTP API (POST :predict, keep-alive)", timed(over_http, FLAGS.repeats)))
    server.shutdown()

    signature = tf.saved_model.load(exports[-1]).signatures["serving_default"]
    points, lengths = drawing.to_points([drawing.flatten_strokes(strokes)])
    padded = np.zeros((1, 1000, 3), np.float32)
    padded[0, :len(points)] = points
    lengths = tf.constant(lengths, tf.int32)
    for name, batch in (("signature, unpadded", drawing.pad(points, lengths.numpy())),
                        ("signature, padded to 1,000 points", padded)):
        batch = tf.constant(batch)
        rows.append((name, timed(lambda: signature(points=batch, lengths=lengths),
                                 FLAGS.repeats)))

    print(f"one drawing of {FLAGS.points} points, {FLAGS.repeats} guesses each, "
          f"model {exports[-1]}")
    print("| path | median ms | 90th percentile ms |\n| --- | ---: | ---: |")
    for name, (median, p90) in rows:
        print(f"| {name} | {median:.2f} | {p90:.2f} |")


if __name__ == "__main__":
    app.run(main)
