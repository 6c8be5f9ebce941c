"""training.py in this process: accuracy over the whole eval set, TensorBoard, hparams.json
and resuming, seeds, the mirrored strategy, evaluation on demand."""

import dataclasses
import json
import math
import time

import pytest

import hparams
import input_pipeline
import serving
import training
from cli import UserError
from conftest import eval_pattern, scalars, tags, train_config
from data_format import read_examples


def test_trains_far_above_chance_on_the_whole_eval_set(trained, dataset):
    _, metrics = trained
    assert metrics["accuracy"] > 0.6, metrics  # 4 classes: chance is 0.25
    # Every eval drawing once, the last partial batch (244 = 3 * 64 + 52) included.
    assert metrics["eval_drawings"] == len(read_examples(eval_pattern(dataset))) == 244
    assert metrics["global_step"] == 150


def test_tensorboard_summaries(trained):
    model_dir, _ = trained
    train_tags = tags(model_dir)
    for tag in ("loss", "learning_rate", "global_norm/gradient_norm", "global_step/sec",
                "gradients/conv1d_0/kernel", "gradients/rnn/layer_0/bw/recurrent_kernel",
                "gradients/dense/bias"):
        assert tag in train_tags, tag
    eval_tags = tags(model_dir / "eval")
    assert {"accuracy", "loss", "eval_drawings", "top_3_accuracy", "map_at_3",
            "mean_per_class_accuracy", "confusion_matrix/0"} <= eval_tags


def test_hparams_saved_and_rerun_resumes(trained, dataset, log_lines):
    model_dir, _ = trained
    saved = json.loads((model_dir / "hparams.json").read_text())
    assert saved["num_nodes"] == 32 and saved["num_conv"] == [16, 16]
    assert saved["classes"] == ["butterfly", "circle", "square", "triangle"]
    assert training.checkpoint_step(str(model_dir)) == 150
    # No architecture given: the model is rebuilt from hparams.json, and training goes on.
    metrics = training.train_and_evaluate(train_config(
        dataset, model_dir, steps=180, save_checkpoints_secs=600, hparams={}))
    assert f"Restoring parameters from {model_dir}/model.ckpt-150" in log_lines
    assert training.checkpoint_step(str(model_dir)) == 180
    assert (metrics["global_step"], metrics["eval_drawings"]) == (180, 244)
    # Once more: nothing left to train, but the caller still gets the model's figures.
    again = training.train_and_evaluate(train_config(dataset, model_dir, steps=180,
                                                     hparams={}))
    assert "is at step 180 already: evaluating it" in log_lines
    assert (again["global_step"], again["eval_drawings"]) == (180, 244)
    assert training.checkpoint_step(str(model_dir)) == 180


def test_contradicting_hparams_stop_before_training(trained, dataset, tmp_path):
    model_dir, _ = trained
    step = training.checkpoint_step(str(model_dir))
    with pytest.raises(UserError) as error:
        training.train_and_evaluate(train_config(dataset, model_dir, steps=step + 20,
                                                 hparams={"num_nodes": 64}))
    assert str(error.value) == (
        f"--num_nodes=64 contradicts the model saved in {model_dir} (num_nodes=32); drop the "
        f"flag or use another --model_dir")
    classes = tmp_path / "classes"
    classes.write_text("butterfly\ncircle\nsquare\n")
    with pytest.raises(UserError, match=r"holds a model of 4 classes \(butterfly, circle, "
                                        r"square, \.\.\.\), not the 3"):
        training.train_and_evaluate(train_config(dataset, model_dir, steps=step + 20,
                                                 classes_file=str(classes)))
    assert training.checkpoint_step(str(model_dir)) == step  # nothing trained


def test_evaluate_on_demand(trained, dataset):
    model_dir, _ = trained
    metrics = training.evaluate(train_config(dataset, model_dir))
    assert metrics["global_step"] == training.checkpoint_step(str(model_dir))
    assert metrics["eval_drawings"] == 244 and metrics["accuracy"] > 0.6
    with pytest.raises(UserError, match=r"^--num_layers=2 contradicts the model saved in"):
        training.evaluate(train_config(dataset, model_dir, hparams={"num_layers": 2}))


@pytest.mark.parametrize("fields, message", [
    (dict(steps=0), "--steps must be at least 1"),
    (dict(max_points=-5), "--max_points must be at least 0"),
    (dict(save_checkpoints_steps=0), "--save_checkpoints_steps must be at least 1"),
    (dict(model_dir=""), "--model_dir is required (or --self_test)"),
    (dict(training_data="/no/such/*"), "--training_data=/no/such/* matches no file"),
    (dict(training_data=None), "--training_data is required (or --self_test)"),
])
def test_bad_settings_are_one_line_errors(dataset, tmp_path, fields, message):
    with pytest.raises(UserError) as error:
        config = train_config(dataset, tmp_path / "model")
        training.train_and_evaluate(dataclasses.replace(config, **fields))
    assert str(error.value) == message


def test_cudnn_asked_for_without_a_gpu_is_a_one_line_error(dataset, tmp_path):
    with pytest.raises(UserError, match=r"^--rnn_kernel=cudnn needs a GPU: TensorFlow found no "
                                        r"GPU it can use: check the NVIDIA driver"):
        training.train_and_evaluate(train_config(dataset, tmp_path / "model",
                                                 hparams={"rnn_kernel": "cudnn"}))
    assert not (tmp_path / "model").exists()


@pytest.fixture(scope="module")
def self_test_data(tmp_path_factory):
    return training.write_self_test_data(str(tmp_path_factory.mktemp("self_test_data")))


def self_test_run(data, model_dir, steps, cell="lstm", hparams_more=None, **fields):
    hparams = {"num_layers": 1, "num_nodes": 16, "num_conv": (8,), "conv_len": (3,),
               "cell": cell, **(hparams_more or {})}
    config = training.TrainConfig(**data, model_dir=str(model_dir), steps=steps,
                                  hparams=hparams, **fields)
    return training.train_and_evaluate(config)


def test_same_seed_reproduces_the_run(self_test_data, tmp_path):
    def train(name, seed):  # with the GRU: the other cell trains end to end too
        metrics = self_test_run(self_test_data, tmp_path / name, 15, cell="gru", seed=seed)
        assert hparams.load(str(tmp_path / name)).cell == "gru"
        return metrics["loss"], metrics["accuracy"]
    first = train("a", 7)
    assert train("b", 7) == first
    assert train("c", 8) != first


def test_mirrored_strategy_trains(self_test_data, tmp_path, log_lines):
    # One replica here (no GPU): the same training, through tf.distribute.
    metrics = self_test_run(self_test_data, tmp_path, 10, distribution_strategy="mirrored")
    assert "Using MirroredStrategy with devices" in log_lines
    assert (metrics["global_step"], metrics["eval_drawings"]) == (10, 36)


def test_evaluations_never_starve_training(self_test_data, tmp_path, log_lines):
    # A checkpoint every second and evaluations much longer than that (one drawing a batch):
    # the Estimator's own schedule evaluated after nearly every step.
    metrics = self_test_run(self_test_data, tmp_path, 400, save_checkpoints_secs=1,
                            eval_batch_size=1, eval_sample=12)
    evaluations = [m for m in log_lines.messages if m.startswith("Saving dict for global step")]
    assert 2 <= len(evaluations) <= 4, evaluations
    assert all("eval_drawings = 12.0" in m for m in evaluations[:-1])  # the sample...
    assert "eval_drawings = 36.0, global_step = 400," in evaluations[-1]  # ...then all
    assert (metrics["global_step"], metrics["eval_drawings"]) == (400, 36)


@pytest.mark.parametrize("eval_seconds, by_steps, evaluated", [
    (4, False, [60, 120, 180, 240]),  # every checkpoint, a minute apart
    (10, False, [60, 180]),  # 9 x 10 s of training between evaluations: every other one
    (4, True, [60, 180]),  # checkpoints by steps: 100 s from one's start to the next
])
def test_which_checkpoints_are_evaluated(monkeypatch, tmp_path, eval_seconds, by_steps,
                                         evaluated):
    clock = [0.0]
    monkeypatch.setattr(training.time, "monotonic", lambda: clock[0])
    steps = []

    def evaluate_and_export(final):
        steps.append(step)
        clock[0] += eval_seconds
        return dict(accuracy=0.5, top_3_accuracy=0.9, loss=1.0, eval_drawings=12)

    config = train_config(tmp_path, tmp_path, save_checkpoints_secs=100 if by_steps else 60,
                          save_checkpoints_steps=50 if by_steps else None)
    evaluations = training._Evaluations(evaluate_and_export, config,
                                        training.model.Horizon(1000))
    evaluations.begin()
    # The saver writes a checkpoint as training starts, then one a minute, counted from
    # the one before (the evaluation's time included), and one where training ends.
    for step in (0, 60, 120, 180, 240, 1000):
        clock[0] = max(clock[0], step + 0.01)
        evaluations.after_save(None, step)
    assert steps == evaluated
    assert evaluations.count == len(evaluated)


def first_batch(config, stream):
    index, count, seed = stream
    dataset = input_pipeline.input_fn(config.training_data, True, 16, seed=seed,
                                      shard=(index, count))
    features, _ = next(iter(dataset))
    return features["ink"].numpy().tobytes()


def test_each_cluster_task_reads_its_own_data(dataset, tmp_path, monkeypatch):
    config = train_config(dataset, tmp_path)
    cluster = {"ps": ["h:1"], "chief": ["h:2"], "worker": ["h:3", "h:4"], "evaluator": ["h:5"]}
    streams = {}
    for role, index in (("chief", 0), ("worker", 0), ("worker", 1)):
        monkeypatch.setenv("TF_CONFIG", json.dumps(
            {"cluster": cluster, "task": {"type": role, "index": index}}))
        streams[role, index] = training.data_stream(config)
    assert [s[:2] for s in streams.values()] == [(0, 3), (1, 3), (2, 3)]
    assert streams["chief", 0][2] == config.seed
    assert len({s[2] for s in streams.values()}) == 3, "a seed of its own each"
    assert len({first_batch(config, s) for s in streams.values()}) == 3


def test_a_resumed_run_goes_on_to_other_drawings(trained, dataset):
    model_dir, _ = trained
    config = train_config(dataset, model_dir)
    fresh = train_config(dataset, model_dir / "new")
    resumed_stream = training.data_stream(config)
    assert training.data_stream(fresh) == (0, 1, fresh.seed)
    assert resumed_stream[:2] == (0, 1) and resumed_stream[2] != fresh.seed
    assert resumed_stream == training.data_stream(config), "the same for the same step"
    assert first_batch(config, resumed_stream) != first_batch(fresh, (0, 1, fresh.seed))


def test_max_minutes_ends_training_then_evaluates_and_exports(self_test_data, tmp_path,
                                                              log_lines):
    start = time.time()
    metrics = self_test_run(self_test_data, tmp_path, 10**6, max_minutes=0.25,
                            hparams_more={"learning_rate_schedule": "cosine"})
    assert time.time() - start < 60
    assert 10 < metrics["global_step"] < 10**6 and metrics["eval_drawings"] == 36
    assert f"--max_minutes=0.25 reached at step {metrics['global_step']}" in log_lines
    assert serving.export_dirs(str(tmp_path))
    # The cosine schedule followed the clock down to about 0 at the end. Its clock starts
    # after `start` and each rate is computed before its summary is written, so no rate may
    # be below the schedule's at the summary's time counted from `start` (however long the
    # start-up took: the budget counts it).
    logged = scalars(tmp_path, "learning_rate")
    rates = [rate for _, rate, _ in logged]
    for _, rate, wall_time in logged:
        progress = min(1.0, (wall_time - start) / 15)
        assert rate >= 1e-4 * 0.5 * (1 + math.cos(math.pi * progress)) - 1e-9
    assert rates[-1] < 0.1e-4 and rates == sorted(rates, reverse=True)
