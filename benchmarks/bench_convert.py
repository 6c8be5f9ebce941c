"""Converter throughput: this project's converter against the tutorial's per-line method.

  python benchmarks/bench_convert.py [--ndjson_path=../shared/data/quickdraw] [--repeats=3]

The baseline is the straightforward implementation of the tutorial's method: per line,
json.loads, numpy preprocessing, a tf.train.Example built field by field, written to a random
shard. Both convert every drawing of every file; the best of --repeats runs is reported. The
project's converter runs with 1 process and with --num_workers processes, and the two outputs
are compared byte for byte. Last, the peak memory of the converter on the data and on four
times the data: it streams, so it should not grow.
"""

import filecmp
import json
import os
import random
import sys
import tempfile
import time

import common  # first: it puts the repository on sys.path
from common import REPO  # noqa: E402

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

import conversion  # noqa: E402

flags.DEFINE_integer("repeats", 3, "Runs of each converter; the fastest counts.")
flags.DEFINE_integer("num_workers", os.cpu_count() or 1, "Processes for the parallel run.")
FLAGS = flags.FLAGS


def tutorial_parse_line(line):
    sample = json.loads(line)
    strokes = sample["drawing"]
    ink = np.zeros((sum(len(s[0]) for s in strokes), 3), dtype=np.float32)
    t = 0
    for stroke in strokes:
        ink[t:t + len(stroke[0]), 0] = stroke[0]
        ink[t:t + len(stroke[0]), 1] = stroke[1]
        t += len(stroke[0])
        ink[t - 1, 2] = 1
    lower = np.min(ink[:, 0:2], axis=0)
    scale = np.max(ink[:, 0:2], axis=0) - lower
    scale[scale == 0] = 1
    ink[:, 0:2] = (ink[:, 0:2] - lower) / scale
    ink[1:, 0:2] -= ink[0:-1, 0:2]
    return ink[1:, :], sample["word"]


def tutorial_convert(ndjson_path, output_dir, shards=10):
    import tensorflow as tf
    writers = [tf.io.TFRecordWriter(os.path.join(output_dir, f"training.tfrecord-{i:05d}"))
               for i in range(shards)]
    classes = []
    count = 0
    for filename in sorted(os.listdir(ndjson_path)):
        with open(os.path.join(ndjson_path, filename)) as f:
            for line in f:
                ink, name = tutorial_parse_line(line)
                if name not in classes:
                    classes.append(name)
                example = tf.train.Example(features=tf.train.Features(feature={
                    "class_index": tf.train.Feature(
                        int64_list=tf.train.Int64List(value=[classes.index(name)])),
                    "ink": tf.train.Feature(float_list=tf.train.FloatList(value=ink.flatten())),
                    "shape": tf.train.Feature(int64_list=tf.train.Int64List(value=ink.shape)),
                }))
                writers[random.randint(0, shards - 1)].write(example.SerializeToString())
                count += 1
    for w in writers:
        w.close()
    return count


def best_time(run, repeats):
    best, count = float("inf"), 0
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            count = run(out)
            best = min(best, time.perf_counter() - start)
    return best, count


def project_convert(out, num_workers):
    config = conversion.ConvertConfig(
        ndjson_path=FLAGS.ndjson_path, output_path=out, train_observations_per_class=10**9,
        eval_observations_per_class=0, num_workers=num_workers)
    results = conversion.convert(config, log=lambda _: None, warn=lambda _: None)
    return sum(r.train for r in results)


def peak_memory_mb(ndjson_path, output_path):
    """Peak resident memory of `create_dataset.py --num_workers=1` (all in one process)."""
    usage = common.run_for_usage(
        [sys.executable, os.path.join(REPO, "create_dataset.py"), f"--ndjson_path={ndjson_path}",
         f"--output_path={output_path}", "--train_observations_per_class=1000000000",
         "--eval_observations_per_class=0", "--num_workers=1"])
    return usage.ru_maxrss / 1024


def memory_rows(work_dir, copies=4):
    """Peak memory on the data and on `copies` times the data: it should not grow."""
    bigger = os.path.join(work_dir, "bigger")
    os.makedirs(bigger)
    for name in os.listdir(FLAGS.ndjson_path):
        with open(os.path.join(FLAGS.ndjson_path, name), "rb") as f:
            data = f.read()
        with open(os.path.join(bigger, name), "wb") as f:
            f.write(data * copies)
    return [(1, peak_memory_mb(FLAGS.ndjson_path, os.path.join(work_dir, "out1"))),
            (copies, peak_memory_mb(bigger, os.path.join(work_dir, "out4")))]


def main(_):
    # TensorFlow is imported inside functions: the converter's worker processes are spawned
    # and re-import this module, which should stay light as create_dataset.py is.
    import tensorflow as tf
    rows = []
    seconds, count = best_time(lambda out: tutorial_convert(FLAGS.ndjson_path, out),
                               FLAGS.repeats)
    rows.append(("tutorial method, per line, 1 process", count, seconds))
    for workers in sorted({1, FLAGS.num_workers}):
        seconds, count = best_time(lambda out: project_convert(out, workers), FLAGS.repeats)
        rows.append((f"create_dataset.py, {workers} process(es)", count, seconds))
    with tempfile.TemporaryDirectory() as one, tempfile.TemporaryDirectory() as many:
        project_convert(one, 1)
        project_convert(many, FLAGS.num_workers)
        names = sorted(os.listdir(one))
        _, mismatch, errors = filecmp.cmpfiles(one, many, names, shallow=False)
        identical = names == sorted(os.listdir(many)) and not mismatch and not errors

    baseline = rows[0][1] / rows[0][2]
    print(f"{'converter':<40} {'drawings':>9} {'seconds':>8} {'drawings/s':>11} "
          f"{'vs tutorial':>12}")
    for name, count, seconds in rows:
        rate = count / seconds
        print(f"{name:<40} {count:>9} {seconds:>8.2f} {rate:>11.0f} {rate / baseline:>11.2f}x")
    print(f"output of 1 and {FLAGS.num_workers} processes byte-identical: {identical}")
    with tempfile.TemporaryDirectory() as work_dir:
        for copies, megabytes in memory_rows(work_dir):
            print(f"peak memory of create_dataset.py --num_workers=1 on {copies}x the data "
                  f"({copies * rows[0][1]} drawings): {megabytes:.0f} MB")
    print(f"machine: {os.cpu_count()} cores, TensorFlow {tf.__version__}")
    if not identical:
        sys.exit(1)


if __name__ == "__main__":
    app.run(main)
