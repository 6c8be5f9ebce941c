"""Imported first by the entry scripts: silences TensorFlow 2.15's known, harmless noise.

- C++ "Unable to register cuDNN/cuFFT/cuBLAS factory" errors at import (TF_CPP_MIN_LOG_LEVEL;
  set it yourself to see C++ logs again);
- one "is deprecated" warning for every Estimator API this project is built on;
- every TensorFlow log line printed twice, by TensorFlow's handler and by absl's.
"""

import logging
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


class _DropDeprecations(logging.Filter):
    def filter(self, record):
        return "is deprecated and will be removed" not in record.getMessage() and \
            "Use tf.keras instead" not in record.getMessage()


def setup(info=True):
    """info=False: TensorFlow's INFO lines are dropped too."""
    import tensorflow as tf
    logger = tf.get_logger()
    logger.handlers = []  # absl's handler on the root logger prints them once
    logger.addFilter(_DropDeprecations())
    logger.setLevel(logging.INFO if info else logging.WARNING)
