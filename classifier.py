"""A trained classifier, from a SavedModel or from a model_dir's latest checkpoint, for
drawings as drawn: what predict.py runs, callable from Python.

  import classifier
  model = classifier.load(classifier.PredictConfig(model_dir="runs/sample/model"))
  with open("drawings.ndjson", "rb") as f:
      for result in model.classify_lines(f):
          print(result)          # a Prediction, or a Skipped line with its reason

Both sources take points (x, y, end of stroke; see drawing.to_points) and apply the
converter's preprocessing in the graph (serving.py), so they see exactly what the model was
trained on.
"""

import dataclasses
import itertools
import os
import typing

import numpy as np
import tensorflow as tf

import data_format
import drawing
import hparams as hparams_lib
import model
import serving
from cli import UserError, check, option


@dataclasses.dataclass(frozen=True)
class PredictConfig:
    """Which model classifies what, and how; each field is also predict.py's flag."""
    model_dir: typing.Optional[str] = option(
        None, "A train_model.py model_dir: its latest checkpoint.")
    saved_model: typing.Optional[str] = option(
        None, "A SavedModel folder (model_dir/export/best/<n>).")
    input: typing.Optional[str] = option(
        None, "ndjson file of drawings, or - for standard input.")
    output_format: str = option("text", "text: one line a drawing; json: one JSON object a "
                                "drawing.", choices=("text", "json"))
    top_k: int = option(3, f"Classes to print a drawing (at most {model.TOP_K}).", minimum=1)
    batch_size: int = option(64, "Drawings run through the model at once.", minimum=1)

    def __post_init__(self):
        check(self)
        if bool(self.model_dir) == bool(self.saved_model):
            raise UserError("give exactly one of --model_dir and --saved_model")
        if self.top_k > model.TOP_K:
            raise UserError(f"--top_k must be between 1 and {model.TOP_K}")


@dataclasses.dataclass
class Prediction:
    line: int             # 1-based line number in the input
    word: typing.Optional[str]  # the line's true word, if it has one
    classes: list         # the model's top classes, best first
    probabilities: list


@dataclasses.dataclass
class Skipped:
    line: int
    reason: str           # one of drawing.py's reasons


class Classifier:
    """predict(points, lengths) on a ragged batch -> dict of numpy arrays: top_k_classes
    (names, best first), top_k_probabilities, probabilities (over `classes`)."""

    def __init__(self, run, classes):
        self._run = run
        self.classes = list(classes)

    def predict(self, points, lengths):
        outputs = self._run(drawing.pad(points, lengths), np.asarray(lengths, np.int32))
        outputs["top_k_classes"] = np.vectorize(
            lambda b: b.decode("utf-8"), otypes=[object])(outputs["top_k_classes"])
        return outputs

    def classify_strokes(self, drawings):
        """Drawings as strokes (each `[[x...], [y...](, [t...])]` a stroke, as in the
        dataset) -> for each, in order, {"top_k_classes", "top_k_probabilities"} or the
        drawing.BadDrawing that says why it cannot be classified. The others are classified
        whatever is wrong with some."""
        results, flats, places = [None] * len(drawings), [], []
        for index, strokes in enumerate(drawings):
            try:
                flats.append(drawing.flatten_strokes(strokes))
                places.append(index)
            except drawing.BadDrawing as e:
                results[index] = e
        points, lengths, kept, rejected = drawing.to_points_sorted_out(flats)
        for k, error in rejected:
            results[places[k]] = error
        if kept:
            outputs = self.predict(points, lengths)
            for i, k in enumerate(kept):
                results[places[k]] = {
                    "top_k_classes": list(outputs["top_k_classes"][i]),
                    "top_k_probabilities": outputs["top_k_probabilities"][i].tolist()}
        return results

    def classify_lines(self, lines, batch_size=64):
        """ndjson lines -> a Prediction or a Skipped for each, in order."""
        lines, first_line = iter(lines), 1
        while batch := list(itertools.islice(lines, batch_size)):
            parsed = drawing.parse_lines(batch)
            results = [Skipped(first_line + index, reason) for index, reason in parsed.skipped]
            if len(parsed.lengths):
                outputs = self.predict(parsed.points, parsed.lengths)
                results += [Prediction(first_line + index, word,
                                       list(outputs["top_k_classes"][i]),
                                       outputs["top_k_probabilities"][i].tolist())
                            for i, (index, word) in enumerate(zip(parsed.line_indices,
                                                                  parsed.words))]
            yield from sorted(results, key=lambda r: r.line)
            first_line += len(batch)


def load(config):
    """The Classifier that config names (its saved_model or its model_dir)."""
    if config.saved_model:
        return from_saved_model(config.saved_model)
    return from_model_dir(config.model_dir)


def from_saved_model(path):
    if not tf.io.gfile.exists(os.path.join(path, "saved_model.pb")):
        raise UserError(f"no saved_model.pb in {path}")
    signature = tf.saved_model.load(path).signatures["serving_default"]
    classes = data_format.read_classes(os.path.join(path, "assets.extra",
                                                    serving.CLASSES_ASSET))

    def run(points, lengths):
        outputs = signature(points=tf.constant(points), lengths=tf.constant(lengths))
        return {k: v.numpy() for k, v in outputs.items()}
    return Classifier(run, classes)


def from_model_dir(model_dir):
    """The latest checkpoint, in the model that model_dir/hparams.json describes."""
    params, checkpoint = hparams_lib.load_trained(model_dir)
    graph = tf.Graph()
    with graph.as_default():
        receiver = serving.serving_input_receiver_fn()
        spec = model.model_fn(receiver.features, None, tf.estimator.ModeKeys.PREDICT, params)
        outputs = spec.export_outputs["serving_default"].outputs
        session = tf.compat.v1.Session(graph=graph)
        tf.compat.v1.train.Saver().restore(session, checkpoint)

    def run(points, lengths):
        return session.run(outputs, {receiver.receiver_tensors["points"]: points,
                                     receiver.receiver_tensors["lengths"]: lengths})
    return Classifier(run, params.classes)
