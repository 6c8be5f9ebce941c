r"""Converts Quick, Draw! ndjson files into sharded TFRecords for train_model.py.

  python create_dataset.py --ndjson_path=DIR --output_path=OUT

DIR holds one <class>.ndjson (or .ndjson.gz) file per class, in the dataset's simplified or
raw layout. Writes OUT/training.tfrecord-0000i-of-0000n, OUT/eval.tfrecord-0000i-of-0000n
and OUT/training.tfrecord.classes (one class name a line; its line number is its index).
"""

import tf_env  # noqa: F401  (first: it sets up TensorFlow before its import)

from absl import flags, logging  # noqa: E402

import cli  # noqa: E402
import conversion  # noqa: E402

cli.define_flags(conversion.ConvertConfig)
FLAGS = flags.FLAGS


def main():
    config = conversion.ConvertConfig(**cli.from_flags(conversion.ConvertConfig, FLAGS))
    results = conversion.convert(config, log=logging.info, warn=logging.warning)
    print(conversion.summary_table(results))


if __name__ == "__main__":
    cli.run(main)
