"""The model's hyperparameters, declared once: names, the tutorial's defaults, help, checks,
and whether they decide the variables. train_model.py's flags are derived from this
declaration; a run saves its values as MODEL_DIR/hparams.json, from which later runs,
predict.py and the exporter rebuild the exact model.
"""

import dataclasses
import json
import os

import tensorflow as tf

import recurrent
from cli import UserError, check, option

FILENAME = "hparams.json"
# The tutorial's --cell_type named an LSTM kernel; all are --cell=lstm with this rnn_kernel.
TUTORIAL_CELL_TYPES = {"lstm": "auto", "block_lstm": "block", "cudnn_lstm": "auto"}


def _architecture(default, help, **checks):
    """A hyperparameter that decides the variables: a checkpoint only restores into a model
    built with the same value."""
    return option(default, help, architecture=True, **checks)


@dataclasses.dataclass(frozen=True)
class HParams:
    """The tutorial's defaults; each field is also train_model.py's flag of the same name."""
    num_layers: int = _architecture(3, "Number of bidirectional recurrent layers.", minimum=1)
    num_nodes: int = _architecture(128, "Units in each direction of a recurrent layer.",
                                   minimum=1)
    num_conv: tuple = _architecture((48, 64, 96), "Filters of each conv1d layer.")
    conv_len: tuple = _architecture((5, 5, 3), "Width of each conv1d layer.")
    time_stride: int = _architecture(
        1, "Stride along time of the last conv1d layer: the recurrent layers read "
        "ceil(steps / this) steps of each drawing.", minimum=1)
    positions: bool = _architecture(
        False, "Feed the first conv each point's x and y in the drawing's bounding box beside "
        "the ink's offsets (computed in the graph from the ink).")
    cell: str = _architecture("lstm", "Recurrent cell.", choices=tuple(recurrent.CELLS))
    batch_norm: bool = _architecture(False, "Batch normalization before each conv (its "
                                     "statistics count valid steps only, not padding).")
    dropout: float = option(0.3, "Dropout rate before convs 2.. and after each recurrent layer.",
                            minimum=0, below=1)
    learning_rate: float = option(0.0001, "Adam's learning rate (its peak, with a schedule).",
                                  minimum=0)
    learning_rate_schedule: str = option(
        "constant", "constant: --learning_rate throughout (the tutorial). cosine: decays from "
        "--learning_rate to 0 along a half cosine, reaching 0 where the run ends: at --steps, "
        "or at --max_minutes if that comes first.", choices=("constant", "cosine"))
    warmup_steps: int = option(0, "The learning rate rises linearly from 0 over this many "
                               "first steps.", minimum=0)
    augment_stretch: float = option(
        0.0, "Training drawings only: each is stretched along x and y by random factors in "
        "[1 - this, 1 + this].", minimum=0, below=1)
    augment_rotation: float = option(
        0.0, "Training drawings only: each is rotated by a random angle within this many "
        "degrees either way.", minimum=0, below=180)
    augment_dropped_points: float = option(
        0.0, "Training drawings only: each point that does not end a stroke is left out with "
        "this probability.", minimum=0, below=1)
    augment_dropped_strokes: float = option(
        0.0, "Training drawings only: each stroke but the first is left out with this "
        "probability.", minimum=0, below=1)
    augment_jitter: float = option(
        0.0, "Training drawings only: each point moves by a random normal offset of this "
        "standard deviation (drawings are scaled to [0, 1]).", minimum=0)
    augment_reversed_strokes: float = option(
        0.0, "Training drawings only: each stroke but the first is drawn from its other end "
        "(its points in reverse order) with this probability.", minimum=0, below=1)
    augment_shuffled_strokes: float = option(
        0.0, "Training drawings only: with this probability a drawing's strokes but the first "
        "are drawn in a random order (the same picture, drawn otherwise).", minimum=0, below=1)
    label_smoothing: float = option(
        0.0, "Training loss only: the target gives the true class 1 - this and spreads this "
        "evenly over all classes.", minimum=0, below=1)
    weight_decay: float = option(
        0.0, "Decoupled weight decay (AdamW's): after each step every weight matrix (not the "
        "biases) shrinks by the step's learning rate times this.", minimum=0)
    gradient_clipping_norm: float = option(9.0, "Gradients are clipped to this global norm.")
    batch_size: int = option(8, "Training batch size.", minimum=1)
    rnn_kernel: str = option(
        "auto", "What runs the recurrent layers; every kernel reads the same variables. loop: "
        "a while loop of the cell's step; block: TensorFlow's fused op (lstm only); cudnn: "
        "cuDNN on a GPU (an error without one); auto: cudnn when a GPU is visible, else block "
        "(lstm) or loop (gru), which exported models run whatever trained them.",
        choices=recurrent.KERNELS)
    classes: tuple = _architecture((), "The class names; a class's index is its position.",
                                   flag=False)

    def __post_init__(self):
        check(self)
        if len(self.num_conv) != len(self.conv_len):
            raise UserError("--num_conv and --conv_len must have the same length")
        recurrent.check_kernel(self.cell, self.rnn_kernel)

    @property
    def num_classes(self):
        return len(self.classes)


ARCHITECTURE = tuple(f.name for f in dataclasses.fields(HParams)
                     if f.metadata.get("architecture"))


def from_dict(values):
    """HParams from hparams.json's dict (lists become tuples; an unknown key is an error)."""
    values = dict(values)
    cell_type = values.pop("cell_type", None)  # saved before cell and rnn_kernel were apart
    if cell_type is not None:
        values.setdefault("rnn_kernel", TUTORIAL_CELL_TYPES[cell_type])
    values.pop("num_classes", None)  # derived from classes
    known = {f.name for f in dataclasses.fields(HParams)}
    if set(values) - known:
        raise UserError(f"unknown hyperparameters {sorted(set(values) - known)}")
    return HParams(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def load(model_dir):
    """The saved hyperparameters of model_dir, or None if it has none."""
    path = os.path.join(model_dir, FILENAME)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return from_dict(json.load(f))


def load_trained(model_dir):
    """(hyperparameters, latest checkpoint) of a model_dir that train_model.py trained;
    UserError if it has no hparams.json or no checkpoint."""
    hparams = load(model_dir)
    if hparams is None:
        raise UserError(f"no {FILENAME} in {model_dir}: not a model_dir of train_model.py")
    checkpoint = tf.train.latest_checkpoint(model_dir)
    if checkpoint is None:
        raise UserError(f"no checkpoint in {model_dir}")
    return hparams, checkpoint


def write(model_dir, hparams):
    tf.io.gfile.makedirs(model_dir)
    tmp = os.path.join(model_dir, FILENAME + ".tmp")
    with tf.io.gfile.GFile(tmp, "w") as f:
        json.dump(dataclasses.asdict(hparams), f, indent=2, sort_keys=True)
        f.write("\n")
    tf.io.gfile.rename(tmp, os.path.join(model_dir, FILENAME), overwrite=True)


def resolve(model_dir, overrides, classes, save=True):
    """The hyperparameters of a run of model_dir.

    overrides: the hyperparameters the user set ({name: value}; the others keep their saved
    or default values); classes: the classes file's names. With nothing saved in model_dir,
    the defaults with the overrides (saved there if `save`). Otherwise the saved model wins:
    an override or classes that would change the variables are an error, and the other
    overrides (learning rate, batch size, kernel, ...) apply to this run.
    """
    saved = load(model_dir)
    if saved is None:
        hparams = HParams(**overrides, classes=tuple(classes))
        if save:
            write(model_dir, hparams)
        return hparams
    if saved.classes != tuple(classes):
        raise UserError(
            f"{model_dir} holds a model of {saved.num_classes} classes "
            f"({_preview(saved.classes)}), not the {len(classes)} of the classes file "
            f"({_preview(classes)}); use another --model_dir")
    for key in ARCHITECTURE:
        if key in overrides and overrides[key] != getattr(saved, key):
            raise UserError(
                f"--{key}={_flag_text(overrides[key])} contradicts the model saved in "
                f"{model_dir} ({key}={_flag_text(getattr(saved, key))}); drop the flag or "
                f"use another --model_dir")
    return dataclasses.replace(saved, **overrides)


def _flag_text(value):
    return json.dumps(list(value)) if isinstance(value, tuple) else value


def _preview(classes, count=3):
    shown = ", ".join(classes[:count])
    return shown + (", ..." if len(classes) > count else "")
