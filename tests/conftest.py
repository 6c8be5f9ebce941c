import errno
import glob
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(REPO), "shared", "data")
QUICKDRAW = os.path.join(SHARED, "quickdraw")
BAD_INPUT = os.path.join(SHARED, "bad_input", "mixed")
SAMPLE = os.path.join(REPO, "data", "sample")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
sys.path.insert(0, REPO)

import tf_env  # noqa: E402,F401  (first: TensorFlow runs as the commands run it)
import conversion  # noqa: E402
import data_format  # noqa: E402

# A small model that learns the 4-class test set in 150 steps.
SMALL_HPARAMS = {"num_layers": 1, "num_nodes": 32, "num_conv": (16, 16), "conv_len": (5, 3),
                 "batch_size": 32, "learning_rate": 0.005, "dropout": 0.0}


def run(script, *args, check=True, timeout=600, **kwargs):
    """Runs one of the project's scripts as the user would; returns the CompletedProcess."""
    result = subprocess.run([sys.executable, os.path.join(REPO, script), *args],
                            capture_output=True, text=True, timeout=timeout, cwd=REPO, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"{script} exited {result.returncode}:\n{result.stderr[-3000:]}")
    return result


def error_line(result):
    """The one-line error a script failed with: exit 1, no traceback, its last stderr line."""
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    return result.stderr.strip().splitlines()[-1]


def graph_op_types(graph_def):
    """The op types of a graph, its functions' (while loops' bodies, ...) included."""
    types = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        types |= {node.op for node in function.node_def}
    return types


def quiet(_):
    pass


def convert(ndjson_path, output_path, train=10000, evals=1000, **fields):
    """conversion.convert in this process, silently, keeping `train` training and `evals`
    eval drawings a class; returns its ClassResults."""
    config = conversion.ConvertConfig(
        ndjson_path=str(ndjson_path), output_path=str(output_path),
        train_observations_per_class=train, eval_observations_per_class=evals, **fields)
    return conversion.convert(config, log=quiet, warn=quiet)


@pytest.fixture(scope="session")
def quickdraw_subset(tmp_path_factory):
    """A folder with a few classes of ../shared/data/quickdraw (hundreds of drawings each)."""
    folder = tmp_path_factory.mktemp("quickdraw_subset")
    for name in ("circle", "square", "triangle", "butterfly"):
        os.symlink(os.path.join(QUICKDRAW, f"{name}.ndjson"), folder / f"{name}.ndjson")
    return str(folder)


@pytest.fixture(scope="session")
def dataset(quickdraw_subset, tmp_path_factory):
    """The 4 classes converted: 300 training and 61 eval drawings each, 2 shards."""
    out = tmp_path_factory.mktemp("dataset")
    convert(quickdraw_subset, out, train=300, evals=61, output_shards=2)
    return out


def eval_lines(quickdraw_subset):
    """The eval drawings' ndjson lines: in each file, lines 301-361 (the data has no bad
    line, so the first 300 are training drawings)."""
    lines = []
    for name in sorted(os.listdir(quickdraw_subset)):
        with open(os.path.join(quickdraw_subset, name), "rb") as f:
            lines += f.readlines()[300:361]
    return lines


def training_pattern(folder):
    return data_format.shard_pattern(str(folder), data_format.TRAINING)


def eval_pattern(folder):
    return data_format.shard_pattern(str(folder), data_format.EVAL)


def data_flags(dataset):
    return [f"--training_data={training_pattern(dataset)}",
            f"--eval_data={eval_pattern(dataset)}"]


def train_config(dataset, model_dir, **fields):
    import training
    fields.setdefault("hparams", SMALL_HPARAMS)
    return training.TrainConfig(
        training_data=training_pattern(dataset), eval_data=eval_pattern(dataset),
        model_dir=str(model_dir),
        save_summary_steps=20, **fields)


def tags(folder):
    import tensorflow as tf
    found = set()
    for path in glob.glob(os.path.join(folder, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            found.update(value.tag for value in event.summary.value)
    return found


def scalars(folder, tag):
    """[(step, value, wall_time)] of a scalar summary in folder's event files, by step."""
    import tensorflow as tf
    found = []
    for path in glob.glob(os.path.join(folder, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            found += [(event.step, tf.make_ndarray(value.tensor).item()
                       if value.HasField("tensor") else value.simple_value, event.wall_time)
                      for value in event.summary.value if value.tag == tag]
    return sorted(found)


class LogLines(logging.Handler):
    """The messages of TensorFlow's and absl's loggers while it is attached."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())

    def __contains__(self, text):
        return any(text in message for message in self.messages)


@pytest.fixture
def log_lines():
    import tensorflow as tf
    handler = LogLines()
    loggers = [tf.get_logger(), logging.getLogger("absl")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    yield handler
    for logger, level in zip(loggers, levels):
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.fixture(scope="session")
def trained(dataset, tmp_path_factory):
    """The small model trained 150 steps on `dataset`, in this process: (model_dir, the
    final evaluation's metrics)."""
    import training
    model_dir = tmp_path_factory.mktemp("model")
    metrics = training.train_and_evaluate(train_config(dataset, model_dir, steps=150))
    return model_dir, metrics


def classes_and_a_fifo(quickdraw_subset, folder):
    """(src, fifo): a folder of quickdraw_subset's class files (links) and a FIFO as one more,
    zzz.ndjson: the converter blocks on it, mid-run, until something writes to it."""
    src = folder / "src"
    src.mkdir()
    for name in os.listdir(quickdraw_subset):
        os.symlink(os.path.join(quickdraw_subset, name), src / name)
    fifo = src / "zzz.ndjson"
    os.mkfifo(fifo)
    return src, fifo


def open_fifo_writer(fifo, alive, timeout=60):
    """The FIFO opened for writing, once a reader has it open; `alive()` must stay true."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as e:  # ENXIO: no reader yet
            assert e.errno == errno.ENXIO and time.monotonic() < deadline and alive()
            time.sleep(0.05)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_answering(url, process, what, timeout=120):
    """Waits for url to answer while process runs; AssertionError naming `what` if it
    exits or the timeout passes first."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=5)
            return
        except OSError:  # not listening yet
            assert process.poll() is None, f"{what} exited {process.returncode}"
            assert time.monotonic() < deadline, f"{what} did not answer in {timeout} s"
            time.sleep(0.3)


def start_chromium(width=900, height=600):
    """Headless Chromium driven by Selenium, its window width x height."""
    from selenium import webdriver
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     f"--window-size={width},{height}"):
        options.add_argument(argument)
    return webdriver.Chrome(options=options,
                            service=webdriver.ChromeService(executable_path=CHROMEDRIVER))


@pytest.fixture(scope="session")
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("needs Debian's chromium and chromium-driver (.ci/run installs them)")
    pytest.importorskip("selenium.webdriver")
    driver = start_chromium()
    yield driver
    driver.quit()
