"""The tutorial's job at its real size: converting, then training with evaluation on.

  python benchmarks/bench_scale.py [--fraction=1.0] [--steps=1500] [--work_dir=DIR]

Builds an ndjson set of 345 classes x 11,000 drawings (times --fraction) by cycling the real
drawings of ../shared/data/quickdraw (about 2 GB at 1.0), converts it with the tutorial's
split (10,000 training and 1,000 eval drawings a class, times --fraction) and measures the
time and peak memory of create_dataset.py; then trains the tutorial's model on it for --steps
with evaluation on (a checkpoint every --save_checkpoints_secs, each evaluation on the
default eval sample) and reports steps/s, the time of each evaluation, the share of the
training's wall time spent evaluating and exporting, the final evaluation over every eval
drawing, and the disk the data takes.
"""

import logging
import os
import resource
import shutil
import sys
import tempfile
import time

import common  # first: it puts the repository on sys.path
from common import REPO  # noqa: E402

from absl import app, flags  # noqa: E402

flags.DEFINE_float("fraction", 1.0, "Share of the full size (345 x 11,000 drawings) to build.")
flags.DEFINE_integer("steps", 1500, "Training steps (batch 8, the tutorial's model).")
flags.DEFINE_integer("save_checkpoints_secs", 30, "Seconds between checkpoints.")
flags.DEFINE_string("work_dir", None, "Where to build, convert and train (default: a "
                    "temporary folder, removed at the end).")
FLAGS = flags.FLAGS


def build_ndjson(folder, per_class):
    """Every class of --ndjson_path cycled to per_class lines; returns the bytes written."""
    os.makedirs(folder)
    total = 0
    for name in sorted(os.listdir(FLAGS.ndjson_path)):
        if not name.endswith(".ndjson"):
            continue
        with open(os.path.join(FLAGS.ndjson_path, name), "rb") as f:
            lines = f.readlines()
        with open(os.path.join(folder, name), "wb") as out:
            for i in range(per_class):
                total += out.write(lines[i % len(lines)])
    return total


def folder_bytes(folder):
    return sum(os.path.getsize(os.path.join(root, f))
               for root, _, files in os.walk(folder) for f in files)


class LogLines(logging.Handler):
    """The times and messages of the log lines of training."""

    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append((time.monotonic(), record.getMessage()))

    def find(self, prefix):
        return [(t, m) for t, m in self.lines if m.startswith(prefix)]


def main(_):
    work = FLAGS.work_dir or tempfile.mkdtemp(prefix="bench_scale-")
    ndjson, data = os.path.join(work, "ndjson"), os.path.join(work, "data")
    try:
        per_class = round(11000 * FLAGS.fraction)
        start = time.perf_counter()
        size = build_ndjson(ndjson, per_class)
        print(f"built {per_class} drawings x {len(os.listdir(ndjson))} classes: "
              f"{size / 1e9:.2f} GB of ndjson in {time.perf_counter() - start:.0f} s")

        start = time.perf_counter()
        train, evals = round(10000 * FLAGS.fraction), round(1000 * FLAGS.fraction)
        usage = common.run_for_usage(
            [sys.executable, os.path.join(REPO, "create_dataset.py"), f"--ndjson_path={ndjson}",
             f"--output_path={data}", f"--train_observations_per_class={train}",
             f"--eval_observations_per_class={evals}"])
        seconds = time.perf_counter() - start
        workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"create_dataset.py: {seconds:.0f} s; peak memory {usage.ru_maxrss / 1024:.0f} "
              f"MB (the largest of its processes {workers:.0f} MB); TFRecords "
              f"{folder_bytes(data) / 1e9:.2f} GB")

        import tensorflow as tf
        import data_format
        import tf_env
        import training
        tf_env.setup()
        log = LogLines()
        tf.get_logger().addHandler(log)
        logging.getLogger("absl").addHandler(log)
        model_dir = os.path.join(work, "model")
        config = training.TrainConfig(
            training_data=data_format.shard_pattern(data, data_format.TRAINING),
            eval_data=data_format.shard_pattern(data, data_format.EVAL), model_dir=model_dir,
            steps=FLAGS.steps, save_checkpoints_secs=FLAGS.save_checkpoints_secs)
        metrics = training.train_and_evaluate(config)
        [(_, summary)] = log.find("evaluations during training:")
        starts = [t for t, _ in log.find("Starting evaluation")]
        ends = [t for t, _ in log.find("Saving dict for global step")]
        print(summary.split("; now")[0])
        print("each evaluation (without its exports): "
              + ", ".join(f"{end - begin:.1f} s" for begin, end in zip(starts, ends)))
        print(f"steps/s: {FLAGS.steps / float(summary.split(' of the ')[1].split(' s')[0]):.1f}"
              f" (batch 8, evaluations included)")
        print(f"final evaluation over all {int(metrics['eval_drawings'])} eval drawings: "
              f"{ends[-1] - starts[-1]:.0f} s; accuracy {metrics['accuracy']:.4f}")
        print(f"model_dir: {folder_bytes(model_dir) / 1e6:.0f} MB")
    finally:
        if not FLAGS.work_dir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    app.run(main)
