"""Training and evaluation from a TrainConfig: what train_model.py runs, callable from Python.

  import training
  config = training.TrainConfig(training_data="OUT/training.tfrecord-*",
                                eval_data="OUT/eval.tfrecord-*", model_dir="runs/mine",
                                steps=3000, hparams={"batch_size": 32})
  metrics = training.train_and_evaluate(config)   # {"accuracy": ..., "global_step": ...}

Alone, this process trains, evaluates each new checkpoint and exports SavedModels; in a
TF_CONFIG cluster it plays its task's part.
"""

import dataclasses
import functools
import json
import os
import time
import typing

import numpy as np
import tensorflow as tf
from absl import logging

import data_format
import drawing
import hparams as hparams_lib
import input_pipeline
import model
import recurrent
import serving
from cli import UserError, check, option


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """A training run. The fields declared with option() are train_model.py's flags too."""
    training_data: typing.Optional[str] = option(
        None, "File pattern of the training TFRecords.")
    eval_data: typing.Optional[str] = option(None, "File pattern of the eval TFRecords.")
    model_dir: typing.Optional[str] = option(
        None, "Directory for checkpoints, summaries and hparams.json.")
    classes_file: typing.Optional[str] = option(
        None, "Class names, one a line. Default: training.tfrecord.classes beside the "
        "training data.")
    steps: int = option(100000, "Global step to train to (resumes from checkpoints).",
                        minimum=1)
    max_minutes: float = option(
        0.0, "If not 0, training stops after this many minutes of this run (evaluations "
        "during it included), or at --steps if that comes first; then the final evaluation "
        "and export run as at --steps.", minimum=0)
    eval_batch_size: int = option(
        64, "Eval batch size; every eval drawing is evaluated, whatever it is.", minimum=1)
    save_checkpoints_secs: int = option(
        300, "Seconds between checkpoints; each new checkpoint is evaluated.", minimum=1)
    save_checkpoints_steps: typing.Optional[int] = option(
        None, "Steps between checkpoints, instead of --save_checkpoints_secs.", minimum=1)
    save_summary_steps: int = option(100, "Steps between TensorBoard summaries.", minimum=1)
    log_steps: int = option(100, "Steps between progress lines (and global_step/sec "
                            "summaries).", minimum=1)
    seed: int = option(0, "Seed of initialization, dropout and shuffling.")
    bucket: bool = option(True, "Batch drawings of similar lengths together (changes only "
                          "which drawings share a batch; much less padding to compute).")
    max_points: int = option(0, "If not 0, crop training drawings to this many points "
                             "(evaluation is never cropped).", minimum=0)
    eval_sample: int = option(
        10000, "Eval drawings that each evaluation during training sees: the first ones of "
        "the eval files, a fixed random sample (0: all). The whole eval set is evaluated at "
        "the end of the run, and by --evaluate_only.", minimum=0)
    distribution_strategy: str = option(
        "none", "mirrored: train on all local GPUs, one replica each (--batch_size each). "
        "A cluster needs no flag: set TF_CONFIG (see the README).",
        choices=("none", "mirrored"))
    # The hyperparameters set for this run, {name: value} (hparams.HParams' fields); the
    # others keep the model_dir's saved values, or the defaults in a new model_dir.
    hparams: typing.Optional[dict] = option(None, flag=False)

    def __post_init__(self):
        check(self)
        for name in ("eval_data", "model_dir"):
            if not getattr(self, name):
                raise UserError(f"--{name} is required (or --self_test)")

    @property
    def classes_path(self):
        return self.classes_file or data_format.classes_beside(self.training_data)


def _cluster():
    """TF_CONFIG's (cluster, task), both {} when training alone."""
    tf_config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    return tf_config.get("cluster") or {}, tf_config.get("task") or {}


def cluster_task():
    """(type, index) of this process in TF_CONFIG's cluster, or None when training alone."""
    _, task = _cluster()
    return (task.get("type"), task.get("index", 0)) if task else None


def checkpoint_step(model_dir):
    """The global step of model_dir's latest checkpoint; 0 without one."""
    checkpoint = tf.train.latest_checkpoint(model_dir)
    return int(checkpoint.rsplit("-", 1)[1]) if checkpoint else 0


def data_stream(config):
    """(shard index, shard count, seed) of this process's training data.

    In a cluster the chief and each worker read their own part of the files with their own
    seed (which also decides their dropout), so that a worker adds data. A run that starts
    from a checkpoint at step S gets another seed than at step 0, so that it goes on to other
    drawings instead of replaying the first ones. A new run alone uses --seed itself.
    """
    cluster, task = _cluster()
    index = 1 + task.get("index", 0) if task.get("type") == "worker" else 0
    count = 1 + len(cluster.get("worker", [])) if task else 1
    start = checkpoint_step(config.model_dir)
    if (index, start) == (0, 0):
        return index, count, config.seed
    state = np.random.SeedSequence([config.seed, index, start]).generate_state(1)[0]
    return index, count, int(state % 2**31)


def _check_gpu_request(config):
    """Whether a GPU is visible; asking for cuDNN without one is an error saying why."""
    gpu = recurrent.gpu_visible()
    if not gpu and (config.hparams or {}).get("rnn_kernel") == "cudnn":
        raise UserError(f"--rnn_kernel=cudnn needs a GPU: {recurrent.why_no_gpu()}")
    return gpu


def _check_pattern(flag, pattern):
    if not tf.io.gfile.glob(pattern):
        raise UserError(f"--{flag}={pattern} matches no file")


def _estimator(config, hparams, seed=None, horizon=None):
    strategy = tf.distribute.MirroredStrategy() \
        if config.distribution_strategy == "mirrored" else None
    checkpoints = ({"save_checkpoints_steps": config.save_checkpoints_steps}
                   if config.save_checkpoints_steps else
                   {"save_checkpoints_secs": config.save_checkpoints_secs})
    run_config = tf.estimator.RunConfig(
        model_dir=config.model_dir, tf_random_seed=config.seed if seed is None else seed,
        train_distribute=strategy, save_summary_steps=config.save_summary_steps,
        log_step_count_steps=config.log_steps, **checkpoints)
    return tf.estimator.Estimator(functools.partial(model.estimator_spec, horizon=horizon),
                                  config=run_config, params=hparams)


def _eval_input_fn(config, limit=0):
    return lambda: input_pipeline.input_fn(config.eval_data, False, config.eval_batch_size,
                                           bucket=config.bucket, limit=limit)


def _evaluate_all(estimator, config):
    """The metrics of the estimator's latest checkpoint over every eval drawing."""
    return estimator.evaluate(_eval_input_fn(config), name=None)


class _StopAt(tf.estimator.SessionRunHook):
    """Ends training at the first step that finishes after `deadline` (a time.time())."""

    def __init__(self, deadline):
        self._deadline = deadline

    def after_run(self, run_context, run_values):
        if time.time() >= self._deadline:
            run_context.request_stop()


def _metrics_text(metrics):
    return (f"accuracy {metrics['accuracy']:.4f}, top-3 {metrics['top_3_accuracy']:.4f}, "
            f"loss {metrics['loss']:.4f} over {int(metrics['eval_drawings']):,} drawings")


def _duration(seconds):
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}"


class _Progress(tf.estimator.SessionRunHook):
    """Every `every` steps, one line: step / total, drawings/s, elapsed, ETA (to --steps, or
    to the --max_minutes deadline if that comes first), loss, and the last evaluation's
    accuracy."""

    def __init__(self, every, drawings_per_step, horizon, evaluations):
        self._every, self._drawings_per_step = every, drawings_per_step
        self._horizon, self._evaluations = horizon, evaluations

    def begin(self):
        self._step_tensor = tf.compat.v1.train.get_global_step()
        self._loss = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.LOSSES)[0]
        self._start = self._last = None

    def after_create_session(self, session, coord):
        self._last = self._start = (time.monotonic(), session.run(self._step_tensor))

    def before_run(self, run_context):
        return tf.compat.v1.train.SessionRunArgs((self._step_tensor, self._loss))

    def after_run(self, run_context, run_values):
        step, loss = run_values.results
        step += 1  # the step just run
        if step % self._every and step < self._horizon.steps:
            return
        now = time.monotonic()
        rate = (step - self._last[1]) / max(now - self._last[0], 1e-9)
        self._last = now, step
        eta = (self._horizon.steps - step) / max(rate, 1e-9)
        if self._horizon.seconds:
            eta = min(eta, max(0.0, self._horizon.deadline - time.time()))
        line = (f"step {step:,}/{self._horizon.steps:,} ({100 * step / self._horizon.steps:.0f}%)"
                f"  {rate * self._drawings_per_step:,.1f} drawings/s"
                f"  elapsed {_duration(now - self._start[0])}  ETA {_duration(eta)}"
                f"  loss {loss:.4f}")
        if self._evaluations and self._evaluations.last:
            line += "  eval accuracy {accuracy:.4f} (step {global_step:,})".format(
                **self._evaluations.last)
        logging.info("%s", line)


class _Evaluations(tf.compat.v1.train.CheckpointSaverListener):
    """During training, evaluates (the eval sample) and exports after each checkpoint, once
    training has gone on for 9 times as long as the last evaluation took, counted from its
    end: evaluations never run back to back and take about 10% of the time at most, whatever
    their size. (The Estimator's own schedule counts from the start of an evaluation, so one
    longer than the interval starves training.) With checkpoints by steps, evaluations also
    start --save_checkpoints_secs apart at least; checkpoints by time are spaced by the
    saver. The checkpoint where training ends is left to the final evaluation."""

    def __init__(self, evaluate_and_export, config, horizon):
        self._evaluate_and_export = evaluate_and_export
        self._min_seconds = config.save_checkpoints_secs if config.save_checkpoints_steps \
            else 0
        self._horizon = horizon
        self.count, self.seconds = 0, 0.0
        self.last = None  # the last evaluation's metrics

    def begin(self):
        self._next, self._first = 0.0, True

    def after_save(self, session, global_step_value):
        if self._first:  # the checkpoint written as training starts: nothing new to evaluate
            self._first = False
            return
        if time.monotonic() < self._next or global_step_value >= self._horizon.steps or (
                self._horizon.seconds and time.time() >= self._horizon.deadline):
            return
        start = time.monotonic()
        self.last = self._evaluate_and_export(final=False)
        end = time.monotonic()
        logging.info("evaluation at step %d (%.0f s with the export): %s", global_step_value,
                     end - start, _metrics_text(self.last))
        self.count, self.seconds = self.count + 1, self.seconds + end - start
        # min_seconds from the start: the saver counts its interval from the checkpoint
        # before this evaluation, so counted from the end the next one always came early.
        self._next = max(start + self._min_seconds, end + 9 * (end - start))


def train_and_evaluate(config):
    """Runs this task's part of the training; returns the metrics of the final evaluation,
    over every eval drawing (None in a cluster task that does not evaluate)."""
    if not config.training_data:
        raise UserError("--training_data is required (or --self_test)")
    _check_pattern("training_data", config.training_data)
    _check_pattern("eval_data", config.eval_data)
    classes = data_format.read_classes(config.classes_path, flag="classes_file")
    gpu = _check_gpu_request(config)
    task = cluster_task()
    # In a cluster every task runs this same command; the chief alone writes hparams.json.
    hparams = hparams_lib.resolve(config.model_dir, config.hparams or {}, classes,
                                  save=task is None or task[0] == "chief")
    if not gpu:
        if hparams.rnn_kernel == "cudnn":  # saved by a run on a GPU, resumed here
            logging.warning("this model was trained with --rnn_kernel=cudnn and no GPU is "
                            "visible here: running the same recurrent layers as a loop")
        elif recurrent.gpu_present_but_unused():
            logging.warning("a GPU is present but unused, training on the CPU: %s",
                            recurrent.why_no_gpu())
    logging.info("hyperparameters: %s",
                 {k: v for k, v in dataclasses.asdict(hparams).items() if k != "classes"})

    shard_index, shard_count, seed = data_stream(config)
    budget = 60 * config.max_minutes
    horizon = model.Horizon(config.steps, time.time() + budget if budget else 0.0, budget)
    estimator = _estimator(config, hparams, seed, horizon)

    def train_input_fn():
        return input_pipeline.input_fn(
            config.training_data, True, hparams.batch_size, seed=seed, bucket=config.bucket,
            max_points=config.max_points, shard=(shard_index, shard_count),
            augment=input_pipeline.Augmentation.of(hparams))

    exporters = serving.exporters(config.classes_path)
    sample_input_fn = _eval_input_fn(config, limit=config.eval_sample)

    def evaluate_and_export(final, input_fn=sample_input_fn):
        metrics = estimator.evaluate(input_fn, name=None)
        checkpoint = estimator.latest_checkpoint()
        for exporter in exporters:
            exporter.export(estimator, os.path.join(config.model_dir, "export", exporter.name),
                            checkpoint, metrics, final)
        return metrics

    strategy = estimator.config.train_distribute
    evaluations = _Evaluations(evaluate_and_export, config, horizon)
    hooks = [_Progress(config.log_steps, hparams.batch_size * (
        strategy.num_replicas_in_sync if strategy else 1), horizon,
        evaluations if task is None else None)]
    if budget:
        hooks.append(_StopAt(horizon.deadline))

    if task is not None:  # the Estimator's distributed runtime; an evaluator task evaluates
        eval_spec = tf.estimator.EvalSpec(
            sample_input_fn, steps=None, start_delay_secs=0,
            throttle_secs=config.save_checkpoints_secs, exporters=exporters)
        tf.estimator.train_and_evaluate(
            estimator, tf.estimator.TrainSpec(train_input_fn, max_steps=config.steps,
                                              hooks=hooks),
            eval_spec)
        if task[0] != "evaluator":
            return None
        return _evaluate_all(estimator, config)

    start_step = checkpoint_step(config.model_dir)
    start = time.monotonic()
    estimator.train(train_input_fn, max_steps=config.steps, hooks=hooks,
                    saving_listeners=[evaluations])
    seconds = time.monotonic() - start
    end_step = checkpoint_step(config.model_dir)
    if budget and end_step < config.steps:
        logging.info("--max_minutes=%g reached at step %d", config.max_minutes, end_step)
    if end_step == start_step:
        # The checkpoint is at --steps already, so nothing was trained: evaluate it anyway.
        logging.info("%s is at step %d already: evaluating it", config.model_dir, start_step)
        return _evaluate_all(estimator, config)
    logging.info("evaluations during training: %d, %.0f s with their exports, %.1f%% of the "
                 "%.0f s of training; now the final one, over every eval drawing",
                 evaluations.count, evaluations.seconds, 100 * evaluations.seconds / seconds,
                 seconds)
    return evaluate_and_export(final=True, input_fn=_eval_input_fn(config))


def evaluate(config):
    """The metrics of model_dir's latest checkpoint over every drawing of eval_data."""
    _check_pattern("eval_data", config.eval_data)
    hparams_lib.load_trained(config.model_dir)
    _check_gpu_request(config)
    # As for training: an architecture flag or classes file that contradicts the model is
    # an error rather than silently ignored; the other flags (e.g. --rnn_kernel) apply.
    classes = data_format.read_classes(config.classes_path, flag="classes_file")
    hparams = hparams_lib.resolve(config.model_dir, config.hparams or {}, classes, save=False)
    estimator = _estimator(config, hparams)
    return _evaluate_all(estimator, config)


def write_self_test_data(folder, per_class=48, seed=0):
    """Generated drawings of 3 classes (circles, squiggles, lines) in create_dataset.py's
    layout; returns the TrainConfig fields that point at them."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 2 * np.pi, 24)
    shapes = [lambda: np.stack([np.cos(t), np.sin(t)], 1),
              lambda: np.stack([t, np.sin(3 * t)], 1),
              lambda: np.stack([t, 0.5 * t], 1)]
    for prefix, count in ((data_format.TRAINING, per_class), (data_format.EVAL, per_class // 4)):
        path = os.path.join(folder, data_format.shard_name(prefix, 0, 1))
        with tf.io.TFRecordWriter(path) as writer:
            for i in range(count * len(shapes)):
                xy = shapes[i % 3]() + rng.normal(scale=0.05, size=(len(t), 2))
                points = np.concatenate([xy, np.zeros((len(t), 1))], 1).astype(np.float32)
                points[-1, 2] = 1
                [features] = data_format.encode_ink_features(*drawing.points_to_ink(points))
                writer.write(data_format.encode_example(features, i % 3))
    data_format.write_classes(os.path.join(folder, data_format.CLASSES),
                              ["circle", "squiggle", "line"])
    return {"training_data": data_format.shard_pattern(folder, data_format.TRAINING),
            "eval_data": data_format.shard_pattern(folder, data_format.EVAL),
            "classes_file": os.path.join(folder, data_format.CLASSES)}
