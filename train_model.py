r"""Trains and evaluates the drawing classifier on create_dataset.py's TFRecords.

  python train_model.py --training_data=OUT/training.tfrecord-?????-of-????? \
      --eval_data=OUT/eval.tfrecord-?????-of-????? --model_dir=runs/mine

Checkpoints, TensorBoard summaries and hparams.json go to --model_dir; rerunning with a larger
--steps resumes from the last checkpoint. `--self_test` trains a few steps on generated
drawings: an install check that needs no data.
"""

import atexit
import shutil
import tempfile

import tf_env  # first: it sets up TensorFlow before its import

from absl import flags  # noqa: E402

import cli  # noqa: E402
import hparams  # noqa: E402
import serving  # noqa: E402
import training  # noqa: E402

cli.define_flags(training.TrainConfig)
cli.define_flags(hparams.HParams)
flags.DEFINE_enum("cell_type", None, list(hparams.TUTORIAL_CELL_TYPES),
                  "The tutorial's flag, kept for its users: --cell=lstm with --rnn_kernel=auto "
                  "(lstm, cudnn_lstm) or block (block_lstm).")
flags.DEFINE_boolean("evaluate_only", False, "Train nothing: evaluate --model_dir's latest "
                     "checkpoint on every drawing of --eval_data and print its figures.")
flags.DEFINE_boolean("self_test", False, "Train a few steps on generated drawings and "
                     "evaluate; needs no data flags.")
FLAGS = flags.FLAGS


def self_test_fields(steps_given, model_dir):
    """--self_test: generated data in a temporary folder, 30 steps unless --steps is given,
    a temporary model_dir unless one is given."""
    data_dir = tempfile.mkdtemp(prefix="self_test_data-")
    atexit.register(shutil.rmtree, data_dir, ignore_errors=True)
    fields = training.write_self_test_data(data_dir)
    if not steps_given:
        fields["steps"] = 30
    fields["model_dir"] = model_dir or tempfile.mkdtemp(prefix="self_test_model-")
    return fields


def main():
    tf_env.setup()
    fields = cli.from_flags(training.TrainConfig, FLAGS)
    if FLAGS.self_test:
        fields.update(self_test_fields(FLAGS["steps"].present, fields["model_dir"]))
    # Only the hyperparameters given on the command line: the others come from the
    # model_dir's hparams.json, or are the defaults.
    overrides = cli.from_flags(hparams.HParams, FLAGS, only_present=True)
    if FLAGS.cell_type:
        if {"cell", "rnn_kernel"} & set(overrides):
            raise cli.UserError("give --cell_type or --cell and --rnn_kernel, not both")
        overrides.update(cell="lstm", rnn_kernel=hparams.TUTORIAL_CELL_TYPES[FLAGS.cell_type])
    config = training.TrainConfig(**fields, hparams=overrides)

    if FLAGS.evaluate_only:
        metrics = training.evaluate(config)
    else:
        metrics = training.train_and_evaluate(config)
    if metrics:
        print(f"eval accuracy {metrics['accuracy']:.4f}, loss {metrics['loss']:.4f} "
              f"at step {metrics['global_step']} over {int(metrics['eval_drawings'])} drawings"
              f"\n  top-3 accuracy {metrics['top_3_accuracy']:.4f}, MAP@3 "
              f"{metrics['map_at_3']:.4f}, mean per-class accuracy "
              f"{metrics['mean_per_class_accuracy']:.4f}")
        best = serving.export_dirs(config.model_dir)
        if best:
            print(f"best SavedModel (by eval accuracy): {best[-1]}")
    print(f"TensorBoard: tensorboard --logdir {config.model_dir}")


if __name__ == "__main__":
    cli.run(main)
