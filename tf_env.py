"""Imported first by the entry scripts, before TensorFlow: the environment it reads as it
loads, then its known, harmless noise silenced.

oneDNN on (TF_ENABLE_ONEDNN_OPTS=1; TensorFlow 2.15 leaves it off on CPUs without AVX-512):
measured here by benchmarks/bench_speed.py, it trains the tutorial's model 1.4-1.6x faster at
batch 8 and up to 1.3x at batch 32, and within the noise at batch 64 (its matmuls are faster
for small matrices). Set TF_ENABLE_ONEDNN_OPTS=0 yourself to turn it off; likewise
TF_NUM_INTRAOP_THREADS.

Silenced:
- C++ "Unable to register cuDNN/cuFFT/cuBLAS factory" errors at import (TF_CPP_MIN_LOG_LEVEL;
  set it yourself to see C++ logs again);
- one "is deprecated" warning for every Estimator API this project is built on;
- every TensorFlow log line printed twice, by TensorFlow's handler and by absl's;
- after setup(), TensorFlow's own INFO lines, unless absl's --verbosity is 1 or more.
"""

import logging
import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
# Each op on half the cores: the model's two recurrent directions are independent chains of
# small ops that run side by side, and ops that each split across all cores slow each other
# down (here, on 2 cores: 1.2x faster at batch 8, 1.07x at batch 64).
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(max(1, (
    len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()) // 2)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


class _DropDeprecations(logging.Filter):
    def filter(self, record):
        return "is deprecated and will be removed" not in record.getMessage() and \
            "Use tf.keras instead" not in record.getMessage()


def setup():
    """TensorFlow's own INFO lines (the Estimator's hook lines, checkpoint, export and restore
    chatter) are dropped unless absl's --verbosity is 1 or more; the project logs what a
    person needs to read through absl itself."""
    import tensorflow as tf
    from absl import logging as absl_logging
    logger = tf.get_logger()
    logger.handlers = []  # absl's handler on the root logger prints them once
    logger.addFilter(_DropDeprecations())
    logger.setLevel(logging.INFO if absl_logging.get_verbosity() >= 1 else logging.WARNING)
