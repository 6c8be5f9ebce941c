r"""Classifies drawings with a trained model.

  python predict.py --model_dir=runs/mine --input=drawings.ndjson
  python predict.py --saved_model=runs/mine/export/best/1700000000 --input=- < drawings.ndjson

Each input line is a Quick, Draw! ndjson record (simplified or raw strokes); bad lines are
reported on stderr and skipped. Prints each drawing's top-k classes with probabilities, and its
true word when the line has one; then, when true words are present, top-1 and top-3 accuracy.
"""

import json
import sys

import tf_env  # first: it sets up TensorFlow before its import

import tensorflow as tf  # noqa: E402
from absl import flags, logging  # noqa: E402

import classifier  # noqa: E402
import cli  # noqa: E402

cli.define_flags(classifier.PredictConfig)
FLAGS = flags.FLAGS


def open_input(path):
    if path == "-":
        return sys.stdin.buffer
    if not tf.io.gfile.exists(path):
        raise cli.UserError(f"--input {path} does not exist")
    return tf.io.gfile.GFile(path, "rb")


def report(prediction, top_k, output_format):
    classes = prediction.classes[:top_k]
    probabilities = prediction.probabilities[:top_k]
    if output_format == "json":
        print(json.dumps({"line": prediction.line, "word": prediction.word, "top_k": [
            {"class": c, "probability": round(float(p), 6)}
            for c, p in zip(classes, probabilities)]}))
    else:
        ranked = ", ".join(f"{c} {p:.3f}" for c, p in zip(classes, probabilities))
        print(f"line {prediction.line}: {ranked}"
              + (f"  (true: {prediction.word})" if prediction.word else ""))


def main():
    config = classifier.PredictConfig(**cli.from_flags(classifier.PredictConfig, FLAGS))
    if not config.input:
        raise cli.UserError("--input is required (a file, or - for standard input)")
    tf_env.setup()
    logging.set_verbosity(logging.WARNING)
    model = classifier.load(config)
    drawings = skipped = top1 = top3 = 0
    for result in model.classify_lines(open_input(config.input), config.batch_size):
        if isinstance(result, classifier.Skipped):
            print(f"line {result.line}: skipped: {result.reason}", file=sys.stderr)
            skipped += 1
            continue
        report(result, config.top_k, config.output_format)
        drawings += 1
        top1 += result.classes[0] == result.word
        top3 += result.word in result.classes[:3]
    if drawings == 0:
        raise cli.UserError(f"no usable drawing in {config.input} ({skipped} lines skipped)")
    summary = (f"top-1 accuracy {top1 / drawings:.4f}, top-3 accuracy {top3 / drawings:.4f} "
               f"over {drawings} drawings ({skipped} lines skipped)")
    print(summary, file=sys.stderr if config.output_format == "json" else sys.stdout)


if __name__ == "__main__":
    cli.run(main)
