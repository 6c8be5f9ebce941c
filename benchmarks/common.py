"""Imported first by the benchmarks: the repository on sys.path, TensorFlow quieted, the
--ndjson_path flag they share, and how they run the project's scripts."""

import os
import subprocess
import sys
import tempfile

from absl import flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import tf_env  # noqa: E402,F401  (before TensorFlow's import)

flags.DEFINE_string("ndjson_path", os.path.join(REPO, "..", "shared", "data", "quickdraw"),
                    "Directory of <class>.ndjson files.")


class CommandFailed(RuntimeError):
    """A benchmark's child command exited non-zero."""


def _failed(command, returncode, stderr):
    # The project's scripts end on a one-line error: the line to show, not a
    # CalledProcessError naming only the command.
    lines = (stderr or "").strip().splitlines() or ["(nothing on stderr)"]
    name = os.path.basename(command[1])
    return CommandFailed(f"{name} exited with {returncode}: {lines[-1]}")


def run(command, **kwargs):
    """subprocess.run(command) with its output captured as text; CommandFailed, ending on the
    child's last line of stderr, if it fails."""
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if result.returncode:
        raise _failed(command, result.returncode, result.stderr)
    return result


PEER = os.path.join(REPO, "..", "shared", "peers", "peer_torch.py")
# glibc's malloc told to keep what it frees, for the PyTorch peer: as it is, at batch 64 the
# peer spent most of its time in the kernel, handing large buffers back and faulting them in
# again each step. No buffer handed back (a threshold above any allocation), nor trimmed.
PEER_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "2000000000", "MALLOC_TRIM_THRESHOLD_": "4000000000",
               "MALLOC_TOP_PAD_": "1000000000"}

LARGE_CLASS = 598  # drawings: the fewest of the 17 large classes of ../shared/data/quickdraw


def convert_large_classes(ndjson_path, work, per_class, eval_per_class=10):
    """Converts the classes of ndjson_path with at least LARGE_CLASS drawings (linked into
    work/ndjson) into work/data, per_class training drawings each; returns both folders."""
    ndjson, data_dir = os.path.join(work, "ndjson"), os.path.join(work, "data")
    os.makedirs(ndjson)
    for name in sorted(os.listdir(ndjson_path)):
        # Absolute: a link holding a relative path resolves from work/ndjson, not from here.
        path = os.path.abspath(os.path.join(ndjson_path, name))
        with open(path, "rb") as f:
            if sum(1 for _ in f) >= LARGE_CLASS:
                os.symlink(path, os.path.join(ndjson, name))
    run([sys.executable, os.path.join(REPO, "create_dataset.py"), f"--ndjson_path={ndjson}",
         f"--output_path={data_dir}", f"--train_observations_per_class={per_class}",
         f"--eval_observations_per_class={eval_per_class}"])
    return ndjson, data_dir


def run_for_usage(command):
    """Runs command (output discarded); returns its os.wait4 resource usage (ru_maxrss: its
    peak memory) or raises CommandFailed as run does."""
    with tempfile.TemporaryFile("w+") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
        _, status, usage = os.wait4(process.pid, 0)
        # Reaped here, not by Popen.wait: told, so that Popen does not warn it still runs.
        process.returncode = os.waitstatus_to_exitcode(status)
        if status:
            stderr.seek(0)
            raise _failed(command, process.returncode, stderr.read())
    return usage


def training_rate(pattern, params, batch_size, bucket, seconds):
    """Drawing points a second of bare training steps (input pipeline, model, optimizer; no
    hooks) for `seconds`, after a warm-up. Points, not drawings: in a pass over the data the
    bucketed pipeline hands out short drawings sooner than long ones (their buckets fill
    first), so that its drawings a second would overstate its speed."""
    import dataclasses
    import time

    import tensorflow as tf

    import input_pipeline
    import model
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.train.create_global_step()
        dataset = input_pipeline.input_fn(pattern, True, batch_size, seed=0, bucket=bucket)
        features, labels = tf.compat.v1.data.make_one_shot_iterator(dataset).get_next()
        spec = model.model_fn(features, labels, tf.estimator.ModeKeys.TRAIN,
                              dataclasses.replace(params, batch_size=batch_size))
        step = (spec.train_op, tf.reduce_sum(features["lengths"]))
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            for _ in range(5):
                session.run(step)
            points, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                points += session.run(step)[1]
            return points / (time.perf_counter() - start)


def best_seconds(session, fetch, runs=5):
    """The fastest of `runs` session.run(fetch), after one untimed."""
    import time
    session.run(fetch)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(fetch)
        times.append(time.perf_counter() - start)
    return min(times)


def matmul_seconds(shapes):
    """Best seconds of each matmul of `shapes`, (a, b, transpose_a, transpose_b), on the
    threads TensorFlow's environment gives this process."""
    import tensorflow as tf
    graph = tf.Graph()
    with graph.as_default():
        # Both operands variables: drawing one anew in each run took 15% of the time here.
        products = [tf.reduce_sum(tf.matmul(
            tf.Variable(tf.random.normal(a)), tf.Variable(tf.random.normal(b)),
            transpose_a=transpose_a, transpose_b=transpose_b))
            for a, b, transpose_a, transpose_b in shapes]
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            return [best_seconds(session, product) for product in products]


def matmul_peak(n=4096):
    """FLOP/s of an [n, n] x [n, n] fp32 matmul: the peak the benchmarks measure against."""
    (seconds,) = matmul_seconds([([n, n], [n, n], False, False)])
    return 2 * n ** 3 / seconds


def lstm_flop_per_point(params):
    """Training FLOPs of the recurrent matmuls per drawing point: per layer and direction,
    x @ kernel and h @ recurrent_kernel, 2 * in * 4 units each; backward twice forward. The
    recurrent layers read one point in params.time_stride."""
    forward, inputs = 0, params.num_conv[-1]
    for _ in range(params.num_layers):
        forward += 2 * 2 * 4 * params.num_nodes * (inputs + params.num_nodes)
        inputs = 2 * params.num_nodes
    return 3 * forward / params.time_stride


def mean_points(pattern):
    """The mean number of points of the drawings of `pattern`, and how many there are:
    points a second over this is drawings of the data's mean length a second."""
    import numpy as np

    import data_format
    lengths = [len(ink) for _, ink in data_format.read_examples(pattern)]
    return float(np.mean(lengths)), len(lengths)
