"""confusion.py: the confusion-matrix image, in TensorBoard and for many classes."""

import glob
import os

import numpy as np
import tensorflow as tf

import confusion
from conftest import tags


def test_confusion_image_in_tensorboard(trained):
    model_dir, _ = trained
    images = []
    for path in glob.glob(os.path.join(model_dir, "eval", "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            images += [v.image for v in event.summary.value if v.tag == "confusion_matrix/0"]
    assert images and images[-1].height == 24 + 4 * 14 + 4
    assert "confusion_matrix/0" in tags(os.path.join(model_dir, "eval"))


def test_confusion_image_names_the_most_confused_pairs_for_many_classes():
    classes = [f"class {i}" for i in range(345)]
    counts = np.diag(np.full(345, 10))
    counts[7, 7], counts[7, 300] = 4, 6    # 60% of class 7 taken for class 300
    counts[9, 9], counts[9, 2] = 9, 1      # 10% of class 9 taken for class 2
    image = confusion.render(counts, classes)
    side = 2 * 345
    for k, line in ((3, "class 7 -> class 300: 60.0% (6)"), (4, "class 9 -> class 2: 10.0% (1)")):
        mask = confusion.text_mask(line)
        region = image[4 + 12 * k:4 + 12 * k + 7, side + 12:side + 12 + mask.shape[1]]
        np.testing.assert_array_equal(region.min(axis=2) == 0, mask)
