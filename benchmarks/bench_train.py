"""Training, eval and prediction speed of the tutorial's model on CPU, in one run.

  python benchmarks/bench_train.py [--seconds=20]

Converts ../shared/data/quickdraw with create_dataset.py (345 classes; up to 80 training and
20 eval drawings a class), then on those TFRecords measures: training drawings/s (points a
second over a drawing's mean points) at batch 8 (the tutorial's) and 64, with length
bucketing and with the plain padded pipeline (each batch padded to its longest drawing), and
with the loop kernel differentiated by TensorFlow instead of the default (the fused LSTM op
and its hand-written gradient); eval drawings/s over the
whole eval set; the conversion's drawings/s (the whole command, Python and TensorFlow
start-up included); and the latency of one drawing's prediction through the exported
SavedModel (median of repeated calls after loading). The model is the tutorial's default
(3x128 BiLSTM, convs [48, 64, 96]).
"""

import dataclasses
import os
import statistics
import sys
import tempfile
import time

import common  # first: it puts the repository on sys.path

import tf_env  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

import classifier  # noqa: E402
import data_format  # noqa: E402
import drawing  # noqa: E402
import hparams  # noqa: E402
import input_pipeline  # noqa: E402
import model  # noqa: E402
import serving  # noqa: E402

flags.DEFINE_float("seconds", 20.0, "Measured seconds of each training configuration.")
FLAGS = flags.FLAGS


def eval_rate(pattern, params):
    """Drawings/s of a pass of evaluation (metrics included) over the whole eval set; the
    second pass, so that one-time set-up is not counted."""
    graph = tf.Graph()
    with graph.as_default():
        iterator = tf.compat.v1.data.make_initializable_iterator(
            input_pipeline.input_fn(pattern, False, 64))
        features, labels = iterator.get_next()
        spec = model.model_fn(features, labels, tf.estimator.ModeKeys.EVAL, params)
        updates = [update for _, update in spec.eval_metric_ops.values()]
        drawings = tf.shape(labels)[0]
        with tf.compat.v1.Session() as session:
            session.run([tf.compat.v1.global_variables_initializer(),
                         tf.compat.v1.local_variables_initializer()])
            for _ in range(2):
                session.run(iterator.initializer)
                count, start = 0, time.perf_counter()
                try:
                    while True:
                        count += session.run([drawings, updates])[0]
                except tf.errors.OutOfRangeError:
                    pass
            return count / (time.perf_counter() - start)


def prediction_latency(data_dir, params, work_dir, calls=200):
    """Median seconds of one drawing's prediction through an exported SavedModel."""
    estimator = tf.estimator.Estimator(model.model_fn, model_dir=os.path.join(work_dir, "m"),
                                       params=params)
    estimator.train(lambda: input_pipeline.input_fn(
        data_format.shard_pattern(data_dir, data_format.TRAINING), True, 8), steps=1)
    export = estimator.export_saved_model(
        os.path.join(work_dir, "export"), serving.serving_input_receiver_fn,
        assets_extra={serving.CLASSES_ASSET: os.path.join(data_dir, data_format.CLASSES)})
    loaded = classifier.from_saved_model(export.decode())
    with open(os.path.join(FLAGS.ndjson_path, "cat.ndjson"), "rb") as f:
        parsed = drawing.parse_lines([f.readline()])
    loaded.predict(parsed.points, parsed.lengths)
    seconds = []
    for _ in range(calls):
        start = time.perf_counter()
        loaded.predict(parsed.points, parsed.lengths)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), int(parsed.lengths[0])


def main(_):
    tf_env.setup()
    tf.get_logger().setLevel("ERROR")
    with tempfile.TemporaryDirectory() as work_dir:
        data_dir = os.path.join(work_dir, "data")
        start = time.perf_counter()
        common.run([sys.executable, os.path.join(common.REPO, "create_dataset.py"),
                    f"--ndjson_path={FLAGS.ndjson_path}", f"--output_path={data_dir}",
                    "--train_observations_per_class=80", "--eval_observations_per_class=20"])
        convert_seconds = time.perf_counter() - start
        classes = data_format.read_classes(os.path.join(data_dir, data_format.CLASSES))
        train = data_format.shard_pattern(data_dir, data_format.TRAINING)
        evals = data_format.shard_pattern(data_dir, data_format.EVAL)
        converted = sum(1 for pattern in (train, evals)
                        for _ in tf.data.TFRecordDataset(tf.io.gfile.glob(pattern)))
        params = hparams.HParams(classes=tuple(classes))
        rows = []
        mean_points, _ = common.mean_points(train)

        def training_rate(params, batch_size, bucket):  # drawings of the mean length a second
            return common.training_rate(train, params, batch_size, bucket,
                                        FLAGS.seconds) / mean_points

        for batch_size in (8, 64):
            plain = training_rate(params, batch_size, bucket=False)
            bucketed = training_rate(params, batch_size, bucket=True)
            rows.append((f"training, batch {batch_size}, plain padded pipeline", plain, ""))
            rows.append((f"training, batch {batch_size}, bucketed", bucketed,
                         f"{bucketed / plain:.2f}x plain"))
            loop = training_rate(dataclasses.replace(params, rnn_kernel="loop"), batch_size,
                                 bucket=True)
            rows.append((f"training, batch {batch_size}, bucketed, --rnn_kernel=loop", loop,
                         f"{loop / bucketed:.2f}x the default kernel"))
        rows.append(("evaluation, whole eval set, batch 64",
                     eval_rate(evals, params), ""))
        rows.append(("create_dataset.py, the whole command", converted / convert_seconds,
                     "start-up included; see bench_convert.py"))
        latency, points = prediction_latency(data_dir, params, work_dir)

    print(f"{len(classes)} classes, {converted} drawings; the tutorial's default model; "
          f"{os.cpu_count()} cores, TensorFlow {tf.__version__}")
    print(f"{'what':<52} {'drawings/s':>11}  note")
    for name, rate, note in rows:
        print(f"{name:<52} {rate:>11.0f}  {note}")
    print(f"one-drawing prediction, SavedModel ({points} points): median "
          f"{1000 * latency:.1f} ms")


if __name__ == "__main__":
    app.run(main)
