"""Accuracy against training minutes: the tutorial's settings against recipes/fast.flags.

  pip install -r benchmarks/requirements.txt     # matplotlib, for the plot
  python benchmarks/bench_recipe.py --classes=17 --minutes=10 --seeds=0,1,2
  python benchmarks/bench_recipe.py --classes=345 --minutes=10 --seeds=0 --runs=tutorial,recipe

Protocol (issue 11), on --ndjson_path:
- 17 classes: the 17 large classes, the first 500 usable drawings of each for training and
  the next 90 for evaluation (create_dataset.py's own split).
- 345 classes: every class, the first two thirds of its lines for training and the rest for
  evaluation (the two parts converted apart).

Each run is `train_model.py` on those TFRecords with --max_minutes, a checkpoint a minute and
each one evaluated on every eval drawing (17 classes) or on the first --eval_sample (345;
the final evaluation covers them all): the learning curve is the accuracy of each
evaluation against the minutes since the command started (start-up and evaluations
included, as the user waits for them). Runs:
- tutorial: the tutorial's model and defaults but batch 32 and Adam 1e-3 (issue 11's
  reference: the defaults' batch 8 and 1e-4 learn far more slowly per minute);
- recipe: --flagfile=recipes/fast.flags;
- peer: the PyTorch peer (../shared/peers/peer_torch.py --bucket, batch 32, Adam 1e-3; 17
  classes only), for as many steps as its measured rate fits in --minutes of training
  (its start-up and evaluation are not counted against it), evaluated once at the end;
  with glibc's malloc as it is or keeping what it frees, whichever ran faster over 100
  steps (as bench_speed.py compares).

Prints each run's curve and a summary table (final top-1, mean over seeds), writes
results.json to --output_dir and the curves as a PNG to --plot. Runs of earlier invocations
with the same settings (flags, the recipe file) stay in results.json unless run again, and
in the table and the plot if they had the same --minutes: seeds can be added one invocation
at a time. With recipe runs at two or more --minutes, it also prints a projection: a power
law, error = a * drawings^-b, through the mean end error at each budget against the drawings
seen (of top-1, and of the mean per-class accuracy: the 345 classes are unbalanced), and the
drawings, steps and minutes it needs to reach --target_accuracy (the README's projection
ran this with --minutes 5, then 10, then 20):

  python benchmarks/bench_recipe.py --classes=345 --minutes=5 --seeds=0 --runs=recipe
"""

import glob
import json
import os
import shutil
import sys
import time

import common  # first: it puts the repository on sys.path
from common import REPO  # noqa: E402

from absl import app, flags  # noqa: E402

import data_format  # noqa: E402

flags.DEFINE_enum("classes", "17", ["17", "345"], "Which protocol.")
flags.DEFINE_float("minutes", 10.0, "Each run's --max_minutes.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds of the tutorial and recipe runs.")
flags.DEFINE_list("runs", ["tutorial", "recipe", "peer"], "Which runs.")
flags.DEFINE_string("output_dir", os.path.join(REPO, "runs", "bench_recipe"),
                    "Where the data, the runs and results.json go.")
flags.DEFINE_string("plot", None, "PNG file of the learning curves (default: "
                    "docs/recipe_<classes>.png).")
flags.DEFINE_integer("eval_sample", 5000, "345 classes: eval drawings of each evaluation "
                     "during training.")
flags.DEFINE_string("torch_python", os.path.join(REPO, "..", "torch-venv", "bin", "python"),
                    "A Python with torch installed, for the peer.")
flags.DEFINE_float("target_accuracy", 0.7, "The accuracy the projection aims at (the "
                   "tutorial's ~70% top-1).")
FLAGS = flags.FLAGS

LARGE = ("cat dog horse bird flamingo duck circle scorpion owl monkey butterfly mosquito ant "
         "squiggle swan square triangle").split()
TRAIN_PER_CLASS, EVAL_PER_CLASS = 500, 90  # the 17-class protocol
RUN_FLAGS = {
    "tutorial": ["--batch_size=32", "--learning_rate=0.001"],
    "recipe": ["--flagfile=" + os.path.join(REPO, "recipes", "fast.flags")],
}


def settings(name):
    """What a run's result depends on besides its seed: its flags, the recipe file's lines."""
    if name == "peer":
        return ["peer_torch.py --bucket --batch 32 --lr 0.001", "malloc: the faster"]
    # The recipe file by its path in the repository, so that results.json matches in any clone.
    lines = [flag.replace(REPO + os.sep, "") for flag in RUN_FLAGS[name]]
    if name == "recipe":
        with open(os.path.join(REPO, "recipes", "fast.flags")) as f:
            lines += [line.strip() for line in f if line.strip().startswith("--")]
    return lines


def convert(ndjson_dir, output_dir, train, eval_):
    common.run([sys.executable, os.path.join(REPO, "create_dataset.py"),
                f"--ndjson_path={ndjson_dir}", f"--output_path={output_dir}",
                f"--train_observations_per_class={train}",
                f"--eval_observations_per_class={eval_}", "--output_shards=4"])


def prepare(classes, ndjson_path, folder):
    """{training_data, eval_data, classes_file, peer_data} of the protocol's drawings."""
    training_dir = os.path.join(folder, "training")
    if classes == "17":
        ndjson = os.path.join(folder, "ndjson")
        os.makedirs(ndjson, exist_ok=True)
        for name in LARGE:
            link = os.path.join(ndjson, name + ".ndjson")
            if not os.path.exists(link):
                os.symlink(os.path.abspath(os.path.join(ndjson_path, name + ".ndjson")), link)
        if not os.path.exists(os.path.join(training_dir, data_format.CLASSES)):
            convert(ndjson, training_dir, TRAIN_PER_CLASS, EVAL_PER_CLASS)
        eval_data = data_format.shard_pattern(training_dir, data_format.EVAL)
    else:
        eval_dir = os.path.join(folder, "eval")
        if not os.path.exists(os.path.join(eval_dir, data_format.CLASSES)):
            for part in ("training", "eval"):
                os.makedirs(os.path.join(folder, part + "_ndjson"), exist_ok=True)
            for path in sorted(glob.glob(os.path.join(ndjson_path, "*.ndjson"))):
                with open(path) as f:
                    lines = f.readlines()
                cut = (2 * len(lines) + 2) // 3
                for part, chosen in (("training", lines[:cut]), ("eval", lines[cut:])):
                    with open(os.path.join(folder, part + "_ndjson",
                                           os.path.basename(path)), "w") as f:
                        f.writelines(chosen)
            every = 10**9
            convert(os.path.join(folder, "training_ndjson"), training_dir, every, 0)
            convert(os.path.join(folder, "eval_ndjson"), eval_dir, every, 0)
        eval_data = data_format.shard_pattern(eval_dir, data_format.TRAINING)
    return {"training_data": data_format.shard_pattern(training_dir, data_format.TRAINING),
            "eval_data": eval_data,
            "classes_file": os.path.join(training_dir, data_format.CLASSES),
            "peer_data": os.path.join(folder, "ndjson")}


def eval_curves(model_dir, start, tags):
    """{tag: [(minutes since start, step, value)]} of the run's evaluations, in order, read
    in one pass over its event files."""
    import tensorflow as tf
    curves = {tag: [] for tag in tags}
    for path in sorted(glob.glob(os.path.join(model_dir, "eval", "events.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag in curves:
                    curves[value.tag].append(((event.wall_time - start) / 60, event.step,
                                              value.simple_value))
    return {tag: sorted(points) for tag, points in curves.items()}


def train_run(name, seed, data, folder):
    model_dir = os.path.join(folder, f"{name}-seed{seed}")
    if os.path.exists(model_dir):
        shutil.rmtree(model_dir)
    sample = 0 if FLAGS.classes == "17" else FLAGS.eval_sample
    command = [sys.executable, os.path.join(REPO, "train_model.py"), *RUN_FLAGS[name],
               f"--training_data={data['training_data']}", f"--eval_data={data['eval_data']}",
               f"--classes_file={data['classes_file']}", f"--model_dir={model_dir}",
               f"--max_minutes={FLAGS.minutes}", "--steps=100000000",
               "--save_checkpoints_secs=60", f"--eval_sample={sample}", f"--seed={seed}"]
    start = time.time()
    common.run(command)
    curves = eval_curves(model_dir, start, ("accuracy", "mean_per_class_accuracy"))
    curve, per_class = curves["accuracy"], curves["mean_per_class_accuracy"]
    return {"run": name, "seed": seed, "curve": curve, "final_accuracy": curve[-1][2],
            "final_mean_per_class_accuracy": per_class[-1][2], "steps": curve[-1][1],
            "minutes": (time.time() - start) / 60,
            "settings": settings(name), "minutes_budget": FLAGS.minutes}


def peer_run(seed, data):
    def peer(env, *extra):
        out = common.run([FLAGS.torch_python, common.PEER, "--data", data["peer_data"],
                          "--per_class", str(TRAIN_PER_CLASS), "--batch", "32",
                          "--lr", "0.001", "--bucket", "--seed", str(seed), *extra],
                         env=dict(os.environ, **env)).stdout
        return json.loads(out.strip().splitlines()[-1])
    # glibc's malloc as it is or keeping what it frees (bench_speed.py), whichever is faster
    envs = {"as it is": {}, "kept": common.PEER_MALLOC}
    rates = {name: peer(env, "--steps", "100", "--warmup", "5")["examples_per_sec"]
             for name, env in envs.items()}
    malloc = max(rates, key=rates.get)
    steps = int(rates[malloc] * 60 * FLAGS.minutes / 32)
    start = time.time()
    result = peer(envs[malloc], "--steps", str(steps), "--warmup", "0",
                  "--eval_per_class", str(EVAL_PER_CLASS))
    minutes = (time.time() - start) / 60
    return {"run": "peer", "seed": seed, "final_accuracy": result["eval_accuracy"],
            "steps": steps, "minutes": minutes, "malloc": malloc,
            "curve": [(minutes, steps, result["eval_accuracy"])],
            "settings": settings("peer"), "minutes_budget": FLAGS.minutes}


def summary(results):
    lines = ["| run | seeds | steps (mean) | final top-1 per seed | mean top-1 |",
             "| --- | ---: | ---: | --- | ---: |"]
    for name in ("tutorial", "recipe", "peer"):
        runs = [r for r in results if r["run"] == name]
        if not runs:
            continue
        accuracies = [r["final_accuracy"] for r in runs]
        lines.append(f"| {name} | {len(runs)} | {sum(r['steps'] for r in runs) / len(runs):,.0f}"
                     f" | {', '.join(f'{a:.4f}' for a in accuracies)} | "
                     f"{sum(accuracies) / len(accuracies):.4f} |")
    return "\n".join(lines)


MEASURES = {"final_accuracy": "top-1", "final_mean_per_class_accuracy": "mean per-class accuracy"}


def projection(results, target_accuracy, measure="final_accuracy"):
    """Lines on the power law through the recipe's end points at each budget (the
    `measure` of their final evaluations), or None."""
    import numpy as np
    by_budget = {}
    for r in results:
        if r["run"] == "recipe" and "minutes_budget" in r and measure in r:
            batch = next(int(line.split("=")[1]) for line in r["settings"]
                         if line.startswith("--batch_size="))
            by_budget.setdefault(r["minutes_budget"], []).append(
                (r["steps"] * batch, 1 - r[measure], r["steps"] * batch / r["minutes"]))
    if len(by_budget) < 2:
        return None
    budgets = sorted(by_budget)
    drawings, error, per_minute = np.array([np.mean(by_budget[m], axis=0) for m in budgets]).T
    slope, intercept = np.polyfit(np.log(drawings), np.log(error), 1)
    lines = [f"{MEASURES[measure]}: recipe at {m:g} minutes: {d:,.0f} drawings seen, error {e:.4f}"
             for m, d, e in zip(budgets, drawings, error)]
    lines.append(f"power law: error = {np.exp(intercept):.3g} * drawings^{slope:.3f}")
    if slope >= 0:
        return lines + ["the error does not fall with drawings: no projection"]
    needed = np.exp((np.log(1 - target_accuracy) - intercept) / slope)
    minutes = needed / per_minute[-1]
    lines.append(f"{MEASURES[measure]} {target_accuracy:g} (error {1 - target_accuracy:g}) at "
                 f"{needed:,.0f} drawings, {needed / batch:,.0f} steps of {batch}, {minutes:,.0f}"
                 f" minutes at the longest run's {per_minute[-1] / 60:.0f} drawings/s "
                 "(evaluations included)")
    return lines


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot
    colors = {"tutorial": "tab:blue", "recipe": "tab:red", "peer": "tab:gray"}
    figure, axes = pyplot.subplots(figsize=(7, 4.2), dpi=110)
    labelled = set()
    for result in results:
        minutes, _, accuracy = zip(*result["curve"])
        name = result["run"]
        label = None if name in labelled else {
            "tutorial": "tutorial model, batch 32, Adam 1e-3",
            "recipe": "recipes/fast.flags",
            "peer": "PyTorch peer, batch 32, Adam 1e-3 (end only)"}[name]
        labelled.add(name)
        axes.plot(minutes, accuracy, "o-" if len(minutes) > 1 else "s", color=colors[name],
                  label=label, markersize=3 if len(minutes) > 1 else 7, linewidth=1.2)
    axes.set_xlabel("minutes since the command started (2-core CPU)")
    axes.set_ylabel("eval top-1 accuracy")
    axes.set_title(f"{FLAGS.classes} classes: accuracy against training time")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path)


def main(argv):
    del argv
    import tf_env
    tf_env.setup()  # no deprecation warnings from the event file reader
    folder = os.path.join(FLAGS.output_dir, f"classes{FLAGS.classes}")
    os.makedirs(folder, exist_ok=True)
    data = prepare(FLAGS.classes, FLAGS.ndjson_path, os.path.join(folder, "data"))
    results_file = os.path.join(folder, "results.json")
    results = []
    if os.path.exists(results_file):  # earlier invocations' runs of the same settings
        with open(results_file) as f:
            results = [r for r in json.load(f) if r.get("settings") == settings(r["run"])]
    for seed in [int(s) for s in FLAGS.seeds]:
        for name in FLAGS.runs:
            if name == "peer":
                if FLAGS.classes != "17" or seed != int(FLAGS.seeds[0]):
                    continue
                result = peer_run(seed, data)
            else:
                result = train_run(name, seed, data, folder)
            results = [r for r in results if (r["run"], r["seed"], r.get("minutes_budget"))
                       != (name, seed, FLAGS.minutes)] + [result]
            print(f"{name} seed {seed}: " + ", ".join(
                f"{m:.1f} min {a:.4f}" for m, _, a in result["curve"]), flush=True)
            with open(results_file, "w") as f:  # after each run
                json.dump(results, f, indent=1)
    budget = [r for r in results if r.get("minutes_budget") == FLAGS.minutes]
    print(summary(budget))
    plot(budget, FLAGS.plot or os.path.join(REPO, "docs", f"recipe_{FLAGS.classes}.png"))
    for measure in MEASURES:
        lines = projection(results, FLAGS.target_accuracy, measure)
        if lines:
            print("\n".join(lines))


if __name__ == "__main__":
    app.run(main)
