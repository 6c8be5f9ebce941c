"""Training speed of the tutorial's model on this CPU, side by side with the PyTorch peer.

  python benchmarks/bench_speed.py [--torch_python=../torch-venv/bin/python] [--seconds=20]
      [--rounds=3]

In one run, on the same drawings (the first 500 usable drawings of each of the 17 classes of
--ndjson_path with at least 598, converted with create_dataset.py), measures:
- TensorFlow's fp32 matmul peak here (4096 x 4096 x 4096, best of 5, on every core), with
  oneDNN off and on (TF_ENABLE_ONEDNN_OPTS=0/1, a setting read when TensorFlow loads: each in
  its own process);
- bare training steps of this project (input pipeline, model, Adam; no hooks) at each
  --batch_sizes, with length bucketing, under both oneDNN settings;
- the PyTorch peer (../shared/peers/peer_torch.py --bucket: packed sequences, batches of
  drawings of similar length) at the same batch sizes, if --torch_python runs, as it is and
  with glibc's malloc told to keep what it frees (PEER_MALLOC): as it is, at batch 64 it
  spent most of its time in the kernel, handing large buffers back and faulting them in
  again each step (here 2.1 of its 5.0 CPU-minutes; 2.3x faster kept);
- the whole `train_model.py` run (input pipeline, hooks, summaries, checkpoints) at the
  tutorial's batch 8, from its global_step/sec log lines, against the bare step.

All but the whole run are measured --rounds times, in turn (peaks, then each batch size's
three contenders), and reported as medians: this machine's speed drifts by up to 1.5x within
minutes, and a round puts each contender through the same spell. This project's rate is
measured in points trained a second, as its bucketed pipeline hands out short drawings
sooner than long ones in a pass over the data (their buckets fill first), so that its
drawings a second would overstate it; its drawings/s is that over a drawing's mean points.
The peer's is its own: its batches are drawn at random from the whole data. It prints
drawings/s, points/s, GFLOP/s (the LSTM matmuls' FLOPs, forward and backward, per drawing
point), the share of the faster setting's matmul peak of the same round, and the ratio to
the faster peer's rate of the same round (median and range over the rounds).
"""

import json
import os
import re
import sys
import tempfile
from statistics import median

import common  # first: it puts the repository on sys.path
from common import REPO

from absl import app, flags  # noqa: E402

flags.DEFINE_string("torch_python", os.path.join(REPO, "..", "torch-venv", "bin", "python"),
                    "A Python with torch installed, to run the PyTorch peer (skipped if it "
                    "does not run).")
flags.DEFINE_list("batch_sizes", ["8", "32", "64"], "Training batch sizes to measure.")
flags.DEFINE_float("seconds", 20.0, "Measured seconds of each of this project's rates.")
flags.DEFINE_integer("rounds", 3, "Times everything is measured, in turn; the table gives "
                     "medians.")
flags.DEFINE_integer("per_class", 500, "Training drawings a class.")
flags.DEFINE_integer("full_run_steps", 1500, "Steps of the whole train_model.py run.")
flags.DEFINE_string("measure", None, "Internal: what a child process measures.")
flags.DEFINE_string("data_dir", None, "Internal: the converted drawings.")
FLAGS = flags.FLAGS


def onednn_env(onednn):
    """The environment of a child process with oneDNN off (0) or on (1)."""
    return dict(os.environ, TF_ENABLE_ONEDNN_OPTS=str(onednn))


def child(measure, data_dir, onednn, *extra):
    """Runs this script in a child process with oneDNN on or off; returns its JSON line.
    The peak is measured with every core on the one matmul."""
    env = onednn_env(onednn)
    if measure == "peak":
        env["TF_NUM_INTRAOP_THREADS"] = str(os.cpu_count())
    out = common.run([sys.executable, os.path.abspath(__file__), f"--measure={measure}",
                      f"--data_dir={data_dir}", *extra], env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def measure_training(data_dir, batch_size):
    import data_format
    import hparams
    classes = data_format.read_classes(os.path.join(data_dir, data_format.CLASSES))
    params = hparams.HParams(classes=tuple(classes))
    rate = common.training_rate(data_format.shard_pattern(data_dir, data_format.TRAINING),
                                params, batch_size, True, FLAGS.seconds)
    return {"points_per_s": rate}


def run_peer(ndjson, batch_size, steps, malloc_kept):
    try:
        out = common.run(
            [FLAGS.torch_python, common.PEER, f"--data={ndjson}", f"--per_class={FLAGS.per_class}",
             f"--batch={batch_size}", f"--steps={steps}", "--warmup=3", "--lr=1e-3",
             "--bucket"], cwd=os.path.dirname(common.PEER),
            env=dict(os.environ, **common.PEER_MALLOC) if malloc_kept else None).stdout
    except (OSError, common.CommandFailed) as error:
        print(f"PyTorch peer skipped: {error}", file=sys.stderr)
        return None
    return json.loads(out.strip().splitlines()[-1])["examples_per_sec"]


def full_run_rate(data_dir, model_dir, onednn):
    """Steps/s of train_model.py at batch 8 from its global_step/sec lines (the first, which
    includes the start, left out)."""
    import data_format
    log = common.run(
        [sys.executable, os.path.join(REPO, "train_model.py"),
         f"--training_data={data_format.shard_pattern(data_dir, data_format.TRAINING)}",
         f"--eval_data={data_format.shard_pattern(data_dir, data_format.EVAL)}",
         f"--model_dir={model_dir}", f"--steps={FLAGS.full_run_steps}",
         "--verbosity=1"],  # TensorFlow's global_step/sec lines
        env=onednn_env(onednn)).stderr
    rates = [float(r) for r in re.findall(r"global_step/sec: ([0-9.]+)", log)][1:]
    return sum(rates) / len(rates)


def main(_):
    if FLAGS.measure == "peak":
        print(json.dumps({"gflops": common.matmul_peak() / 1e9}))
        return
    if FLAGS.measure:
        print(json.dumps(measure_training(FLAGS.data_dir, int(FLAGS.measure))))
        return

    import data_format
    import hparams
    with tempfile.TemporaryDirectory() as work:
        ndjson, data_dir = common.convert_large_classes(FLAGS.ndjson_path, work, FLAGS.per_class)
        points, drawings = common.mean_points(
            data_format.shard_pattern(data_dir, data_format.TRAINING))
        flop = common.lstm_flop_per_point(hparams.HParams())
        batch_sizes = list(map(int, FLAGS.batch_sizes))
        # Each round measures everything once, in turn, so that a slow spell of the machine
        # falls on every contender of a round rather than on one of them.
        rounds = []
        for round_index in range(FLAGS.rounds):
            peaks = {onednn: child("peak", data_dir, onednn)["gflops"] for onednn in (0, 1)}
            rates = {}
            for batch_size in batch_sizes:
                for onednn in (0, 1):
                    rates[batch_size, onednn] = child(
                        str(batch_size), data_dir, onednn,
                        f"--seconds={FLAGS.seconds}")["points_per_s"] / points
                # as many drawings as this project trained in --seconds, at the peer's own
                # pace: enough batches that their lengths average out
                steps = max(50, int(FLAGS.seconds * max(rates[batch_size, 0],
                                                        rates[batch_size, 1]) / batch_size))
                for kept in (False, True):
                    rates[batch_size, "peer", kept] = run_peer(ndjson, batch_size, steps, kept)
                # The ratios are against the faster of the two, in each round.
                peers = [rates[batch_size, "peer", kept] for kept in (False, True)]
                rates[batch_size, "peer"] = None if None in peers else max(peers)
            rounds.append((peaks, rates))
            print(f"round {round_index + 1}/{FLAGS.rounds}: GFLOP/s peaks "
                  f"{ {k: round(v) for k, v in peaks.items()} }, drawings/s "
                  f"{ {k: round(v, 1) for k, v in rates.items() if v} }", file=sys.stderr,
                  flush=True)
        batch_8 = {onednn: median(round_rates[8, onednn] for _, round_rates in rounds)
                   for onednn in (0, 1)} if 8 in batch_sizes else None
        if batch_8:  # the whole run, at the tutorial's batch, under the faster setting
            onednn = max(batch_8, key=batch_8.get)
            full = full_run_rate(data_dir, os.path.join(work, "model"), onednn) * 8

    print(f"{drawings} training drawings of 17 classes, {points:.1f} points a drawing; "
          f"{flop / 1e6:.2f} MFLOP a point to train; {os.cpu_count()} cores")
    def gflops(rate):
        return rate * points * flop / 1e9

    peaks = {onednn: median(round_peaks[onednn] for round_peaks, _ in rounds)
             for onednn in (0, 1)}
    print(f"fp32 matmul peak (4096^3), median of {len(rounds)} rounds: oneDNN off "
          f"{peaks[0]:.0f} GFLOP/s, on {peaks[1]:.0f} GFLOP/s")
    print("medians over the rounds; of peak: against the faster setting's peak of the same "
          "round; vs peer: against the faster peer's rate of the same round")
    print(f"{'batch':>5}  {'what':<30} {'drawings/s':>10} {'points/s':>9} {'GFLOP/s':>8} "
          f"{'of peak':>8} {'vs peer':>8} {'range vs peer':>14}")
    for batch_size in batch_sizes:
        for what, name in (((0,), "this project, oneDNN off"),
                           ((1,), "this project, oneDNN on"),
                           (("peer", False), "PyTorch peer, bucketed"),
                           (("peer", True), "  the same, malloc kept")):
            rates = [round_rates[(batch_size, *what)] for _, round_rates in rounds]
            if None in rates:
                continue
            peers = [round_rates[batch_size, "peer"] for _, round_rates in rounds]
            shares = [gflops(rate) / max(round_peaks.values())
                      for rate, (round_peaks, _) in zip(rates, rounds)]
            rate = median(rates)
            ratio = range_ = "-"
            if None not in peers:
                ratios = [a / b for a, b in zip(rates, peers)]
                ratio = f"{median(ratios):.2f}x"
                range_ = f"{min(ratios):.2f}-{max(ratios):.2f}x"
            print(f"{batch_size:>5}  {name:<30} {rate:>10.1f} {rate * points:>9.0f} "
                  f"{gflops(rate):>8.1f} {median(shares):>8.0%} {ratio:>8} "
                  f"{range_:>14}")
    if batch_8:
        print(f"train_model.py, batch 8, oneDNN {'on' if onednn else 'off'}: {full:.1f} "
              f"drawings/s, {full / batch_8[onednn]:.0%} of the bare step")


if __name__ == "__main__":
    app.run(main)
