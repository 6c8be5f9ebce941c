"""confusion.py: the confusion-matrix image, legible at the size TensorBoard shows it."""

import glob
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

import confusion
from conftest import QUICKDRAW, free_port, tags, wait_until_answering

ALL_CLASSES = sorted(name[:-len(".ndjson")] for name in os.listdir(QUICKDRAW)
                     if name.endswith(".ndjson"))
SEVENTEEN = sorted("cat dog horse bird flamingo duck circle scorpion owl monkey butterfly "
                   "mosquito ant squiggle swan square triangle".split())


def shows(image, text):
    """Whether the image holds text in the pixel font, black on white, at any position."""
    mask = confusion.text_mask(text)
    ink = image.min(axis=2) == 0
    windows = np.lib.stride_tricks.sliding_window_view(ink, mask.shape)
    return bool((windows == mask).all(axis=(2, 3)).any())


def fits(image):
    """Within TensorBoard's box, nothing cut at the right edge (its margin is blank)."""
    return (image.shape[0] <= confusion.HEIGHT and image.shape[1] <= confusion.WIDTH
            and (image[:, -4:] == 255).all())


def test_confusion_image_in_tensorboard(trained):
    model_dir, _ = trained
    images = []
    for path in glob.glob(os.path.join(model_dir, "eval", "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            images += [v.image for v in event.summary.value if v.tag == "confusion_matrix/0"]
    assert "confusion_matrix/0" in tags(os.path.join(model_dir, "eval"))
    image = tf.io.decode_png(images[-1].encoded_image_string).numpy()
    assert fits(image)
    assert all(shows(image, f"{i} {name}")
               for i, name in enumerate(["butterfly", "circle", "square", "triangle"]))


def test_seventeen_classes_show_the_matrix_with_every_name():
    counts = np.diag(np.arange(10, 27))
    counts[0, 5] = 10  # ant: 10 of 20 taken for duck
    image = confusion.render(counts, SEVENTEEN)
    assert fits(image)
    assert shows(image, f"{100 * 306 / 316:.1f}% of 316 right")
    assert all(shows(image, f"{i:>2} {name}") for i, name in enumerate(SEVENTEEN))
    first_row = image[image.shape[0] - 4 - 17 * 9:image.shape[0] - 4 - 16 * 9 - 1]
    blues = {tuple(pixel) for pixel in first_row.reshape(-1, 3)} - {(255, 255, 255), (0, 0, 0)}
    assert tuple(confusion._heat(np.array(0.5))) in blues


def test_long_names_and_up_to_labelled_classes_fit_the_box():
    rng = np.random.default_rng(0)
    for n in (2, 5, 17, confusion.LABELLED_CLASSES, confusion.LABELLED_CLASSES + 1, 100, 345):
        classes = list(rng.choice(ALL_CLASSES, n, replace=False))
        classes[0] = "The Great Wall of China"
        image = confusion.render(rng.integers(0, 50, (n, n)), classes)
        assert fits(image), (n, image.shape)
        image = confusion.render(np.diag(np.full(n, 1000)), classes)  # the longest title
        assert fits(image) and shows(image, f"100.0% of {1000 * n:,}"), n
    image = confusion.render(np.eye(3, dtype=int), ["The Great Wall of China"] * 3)
    assert shows(image, "0 The Great Wall of China")


def test_many_classes_list_the_most_confused_pairs_and_the_least_accurate():
    counts = np.diag(np.full(345, 10))
    counts[7, 7], counts[7, 300] = 4, 6   # 60% of class 7 taken for class 300
    counts[9, 9], counts[9, 2] = 9, 1     # 10% of class 9 taken for class 2
    names = list(ALL_CLASSES)
    image = confusion.render(counts, names)
    assert fits(image)
    assert shows(image, f"60.0% {names[7]} -> {names[300]}")
    assert shows(image, f"10.0% {names[9]} -> {names[2]}")
    assert shows(image, f"least accurate: {names[7]} 40%, {names[9]} 90%")
    wall = names.index("The Great Wall of China")
    counts[wall, wall], counts[wall, 5] = 0, 10
    image = confusion.render(counts, names)
    assert shows(image, f"100.0% The Great Wall of China -> {names[5]}")


@pytest.fixture(scope="module")
def tensorboard(tmp_path_factory, trained):
    """TensorBoard on the trained model's eval run and a 345-class image."""
    model_dir, _ = trained
    tmp_path = tmp_path_factory.mktemp("tensorboard")
    os.symlink(os.path.join(model_dir, "eval"), tmp_path / "eval_4")
    counts = np.random.default_rng(1).integers(0, 9, (345, 345)) + np.diag(np.full(345, 90))
    image = confusion.render(counts, ALL_CLASSES)
    with tf.summary.create_file_writer(str(tmp_path / "eval_345")).as_default():
        tf.summary.image("confusion_matrix", image[None], step=1)
    process, url = start_tensorboard(tmp_path)
    yield url
    process.terminate()
    process.wait(timeout=30)


def start_tensorboard(logdir):
    """(the TensorBoard process, its URL), once it answers."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", f"--logdir={logdir}", f"--port={port}",
         "--host=127.0.0.1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    wait_until_answering(url, process, "TensorBoard")
    return process, url


SHOWN_IMAGES = """
function images(root, found) {
  root.querySelectorAll('*').forEach(e => {
    if (e.tagName == 'IMG' && e.naturalWidth) found.push(e);
    if (e.shadowRoot) images(e.shadowRoot, found);
  });
  return found;
}
return images(document, []).map(i => {
  const box = i.getBoundingClientRect();
  return [i.naturalWidth, i.naturalHeight, box.width, box.height];
});
"""


@pytest.mark.parametrize("tab", ["timeseries", "images"])
def test_tensorboard_shows_the_confusion_images_unshrunk(browser, tensorboard, tab):
    """TensorBoard's own page in Chromium at a desktop window size: both runs' images are
    drawn at least at their natural size (a shrunk pixel font is what made them illegible)."""
    browser.set_window_size(1280, 900)
    try:
        browser.get("about:blank")  # a new page: TensorBoard keeps other tabs' images
        browser.get(f"{tensorboard}#{tab}")
        deadline = time.monotonic() + 60
        while len(shown := browser.execute_script(SHOWN_IMAGES)) < 2:
            assert time.monotonic() < deadline, shown
            time.sleep(0.5)
    finally:
        browser.set_window_size(900, 600)
    for width, height, box_width, box_height in shown:
        # Time Series fits the image in its box (object-fit: contain); the Images tab
        # scales it to the card's width.
        assert min(box_width / width, box_height / height) >= 1, shown
