"""Where the bare training step's time goes on this CPU: why its share of the matmul peak is
what benchmarks/bench_speed.py reports.

  python benchmarks/bench_step.py [--batch_size=64] [--seconds=20] [--rounds=2]

On bench_speed.py's drawings (the first 500 of each of the 17 large classes), in one run,
--rounds times in turn (oneDNN as the project sets it):
- the bare training step (common.training_rate) on every core, and on one core (the process
  pinned to one CPU, one thread for ops and one for scheduling them);
- the 4096^3 fp32 matmul peak on every core and on one;
- on one core, the step's large matmuls at its shapes (batch x the mean drawing's points
  rows): for each layer and direction the gradients of the input, the kernel and the
  recurrent kernel, which hold all the recurrent layers' FLOPs but the forward's (the fused
  op's matmul a step) and the backward loop's (one [batch, 512] x [512, 128] a step).

It prints the one-core step's GFLOP/s against the one-core peak and how much of its time the
large matmuls take; the rest is the forward op, the backward loop (a matmul and the fused
one-step gradient a step) and everything else. How well two cores share the step is the all-core
rate over the one-core rate times the cores.
"""

import json
import os
import sys
import tempfile
from statistics import median

import common  # first: it puts the repository on sys.path

from absl import app, flags  # noqa: E402

flags.DEFINE_integer("batch_size", 64, "Training batch size.")
flags.DEFINE_float("seconds", 20.0, "Measured seconds of each training rate.")
flags.DEFINE_integer("rounds", 2, "Times everything is measured, in turn; medians shown.")
flags.DEFINE_integer("per_class", 500, "Training drawings a class.")
flags.DEFINE_string("measure", None, "Internal: what a child process measures.")
flags.DEFINE_string("data_dir", None, "Internal: the converted drawings.")
FLAGS = flags.FLAGS


def large_matmul_shapes(rows, params):
    """(a, b, transpose_a, transpose_b) of each large matmul of one direction's training step
    over `rows` points: for each layer, the gradients of its input, its kernel and its
    recurrent kernel."""
    units = 4 * params.num_nodes
    shapes, inputs = [], params.num_conv[-1]
    for _ in range(params.num_layers):
        shapes += [([rows, units], [inputs, units], False, True),
                   ([rows, inputs], [rows, units], True, False),
                   ([rows, params.num_nodes], [rows, units], True, False)]
        inputs = 2 * params.num_nodes
    return shapes


def matmul_flop(a, b, transpose_a, transpose_b):
    """2 m k n for [m, k] x [k, n]."""
    (m, k), n = (a[::-1] if transpose_a else a), (b[0] if transpose_b else b[1])
    return 2 * m * k * n


def child(measure, data_dir, one_core):
    """Runs this script's `measure` in a child process, pinned to one CPU or not; returns
    its JSON line. On every core, the peak's matmul splits across all of them."""
    env = dict(os.environ)
    kwargs = {}
    if one_core:
        env.update(TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1")
        cpu = min(os.sched_getaffinity(0))
        kwargs["preexec_fn"] = lambda: os.sched_setaffinity(0, {cpu})
    elif measure == "peak":
        env["TF_NUM_INTRAOP_THREADS"] = str(len(os.sched_getaffinity(0)))
    out = common.run([sys.executable, os.path.abspath(__file__), f"--measure={measure}",
                      f"--data_dir={data_dir}", f"--seconds={FLAGS.seconds}",
                      f"--batch_size={FLAGS.batch_size}"], env=env, **kwargs).stdout
    return json.loads(out.strip().splitlines()[-1])


def measure(data_dir):
    if FLAGS.measure == "peak":
        return {"peak_gflops": common.matmul_peak() / 1e9}
    import data_format
    import hparams
    pattern = data_format.shard_pattern(data_dir, data_format.TRAINING)
    params = hparams.HParams(
        classes=tuple(data_format.read_classes(os.path.join(data_dir, data_format.CLASSES))))
    if FLAGS.measure == "step":
        return {"points_per_s": common.training_rate(pattern, params, FLAGS.batch_size, True,
                                                     FLAGS.seconds)}
    points, _ = common.mean_points(pattern)
    rows = round(FLAGS.batch_size * points)
    shapes = large_matmul_shapes(rows, params)
    seconds = 2 * sum(common.matmul_seconds(shapes))  # both directions
    return {"seconds_per_point": seconds / rows,
            "flop_per_point": 2 * sum(matmul_flop(*shape) for shape in shapes) / rows,
            "peak_gflops": common.matmul_peak() / 1e9}


def main(_):
    if FLAGS.measure:
        print(json.dumps(measure(FLAGS.data_dir)))
        return
    import hparams
    flop = common.lstm_flop_per_point(hparams.HParams())
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as work:
        _, data_dir = common.convert_large_classes(FLAGS.ndjson_path, work, FLAGS.per_class)
        rounds = []
        for index in range(FLAGS.rounds):
            rounds.append({"all": child("step", data_dir, False)["points_per_s"],
                           "one": child("step", data_dir, True)["points_per_s"],
                           **child("matmuls", data_dir, True),
                           "all_peak_gflops": child("peak", data_dir, False)["peak_gflops"]})
            print(f"round {index + 1}/{FLAGS.rounds}: {rounds[-1]}", file=sys.stderr,
                  flush=True)

    def mid(key):
        return median(r[key] for r in rounds)

    one, all_, peak = mid("one"), mid("all"), mid("peak_gflops")
    large_share = mid("flop_per_point") / flop
    large_time = median(r["seconds_per_point"] * r["one"] for r in rounds)
    print(f"batch {FLAGS.batch_size}, {cores} cores, medians of {len(rounds)} rounds; "
          f"{flop / 1e6:.2f} MFLOP a point to train")
    print(f"one core:   {one:8.0f} points/s, {one * flop / 1e9:6.1f} GFLOP/s, "
          f"{median(r['one'] * flop / 1e9 / r['peak_gflops'] for r in rounds):.0%} of its "
          f"peak ({peak:.0f} GFLOP/s)")
    print(f"  its large matmuls: {large_share:.0%} of the FLOPs at "
          f"{median(r['flop_per_point'] / r['seconds_per_point'] for r in rounds) / 1e9:.0f} "
          f"GFLOP/s, {large_time:.0%} of its time")
    print(f"  the rest: the forward op and the backward loop ({1 - large_share:.0%} of the "
          f"FLOPs) and all other ops, {1 - large_time:.0%}")
    print(f"all cores:  {all_:8.0f} points/s, {all_ * flop / 1e9:6.1f} GFLOP/s, "
          f"{median(r['all'] * flop / 1e9 / r['all_peak_gflops'] for r in rounds):.0%} of "
          f"their peak ({mid('all_peak_gflops'):.0f} GFLOP/s, "
          f"{median(r['all_peak_gflops'] / r['peak_gflops'] for r in rounds):.2f}x one core's)")
    print(f"  {median(r['all'] / r['one'] for r in rounds) / cores:.0%} of {cores} times the "
          f"one-core step")


if __name__ == "__main__":
    app.run(main)
