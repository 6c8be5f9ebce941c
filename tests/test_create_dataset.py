"""create_dataset.py as the user runs it: the summary, warnings, one-line errors, --help, a
killed run."""

import collections
import glob
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import (BAD_INPUT, REPO, classes_and_a_fifo, convert, error_line,
                      open_fifo_writer, run)
from data_format import read_examples


def test_bad_input_corpus_keeps_every_good_drawing(tmp_path):
    result = run("create_dataset.py", f"--ndjson_path={BAD_INPUT}", f"--output_path={tmp_path}",
                 "--train_observations_per_class=25", "--eval_observations_per_class=10",
                 "--output_shards=2", "--num_workers=2")
    classes = (tmp_path / "training.tfrecord.classes").read_text().splitlines()
    assert classes == ["cat", "owl", "squiggle"]  # empty_class has no usable drawing
    train = collections.Counter(classes[c] for c, _ in
                                read_examples(str(tmp_path / "training.tfrecord-*")))
    evals = collections.Counter(classes[c] for c, _ in
                                read_examples(str(tmp_path / "eval.tfrecord-*")))
    assert train == {"cat": 25, "owl": 25, "squiggle": 3}
    assert evals == {"cat": 3, "owl": 5}
    # MANIFEST.md: usable drawings cat 28, owl 30, squiggle 3, empty_class 0.
    assert {c: train[c] + evals[c] for c in classes} == {"cat": 28, "owl": 30, "squiggle": 3}
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()[1:5]}
    assert rows == {"cat": ["25", "3", "17"], "empty_class": ["0", "0", "3"],
                    "owl": ["25", "5", "0"], "squiggle": ["3", "0", "0"]}
    assert "skipped lines by reason: blank line: 3," in result.stdout
    assert "skipping README.txt" in result.stderr
    assert "class 'empty_class': no usable drawing; left out" in result.stderr
    assert "class 'squiggle': only 3 training and 0 eval drawings" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["--output_shards=x"], "flag --output_shards=x: invalid literal for int()"),
    (["--output_shards=0"], "--output_shards must be at least 1"),
    (["--train_observations_per_class=-1"], "must be >= 0"),
    (["extra"], "unexpected arguments: extra"),
])
def test_bad_arguments_fail_with_one_line(tmp_path, args, message):
    defaults = {"--ndjson_path": BAD_INPUT, "--output_path": str(tmp_path / "out")}
    for arg in args:
        defaults.pop(arg.split("=")[0], None)
    argv = [f"{k}={v}" for k, v in defaults.items()] + args
    last = error_line(run("create_dataset.py", *argv, check=False))
    assert last.startswith("create_dataset.py: error:")
    assert message in last


def test_nothing_usable_fails_with_one_line(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(os.path.join(BAD_INPUT, "empty_class.ndjson"), src)
    last = error_line(run("create_dataset.py", f"--ndjson_path={src}",
                          f"--output_path={tmp_path}/out", check=False))
    assert last.startswith("create_dataset.py: error: no usable drawing in")
    assert "'blank line': 1" in last
    assert not glob.glob(str(tmp_path / "out" / "*.tfrecord*"))


def test_help_lists_every_flag():
    result = run("create_dataset.py", "--help")
    for flag in ("ndjson_path", "output_path", "train_observations_per_class",
                 "eval_observations_per_class", "output_shards", "classes_file", "seed",
                 "num_workers"):
        assert f"--{flag}:" in result.stdout


def test_killed_run_leaves_no_incomplete_file_under_a_final_name(quickdraw_subset, tmp_path):
    out = tmp_path / "out"
    convert(quickdraw_subset, out, train=20, evals=5, output_shards=2)
    before = {p: (out / p).read_bytes() for p in os.listdir(out)}
    src, fifo = classes_and_a_fifo(quickdraw_subset, tmp_path)
    process = subprocess.Popen(
        [sys.executable, os.path.join(REPO, "create_dataset.py"), f"--ndjson_path={src}",
         f"--output_path={out}", "--train_observations_per_class=20",
         "--eval_observations_per_class=5", "--output_shards=2", "--num_workers=1", "--seed=9"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    writer = None
    try:
        writer = open_fifo_writer(fifo, alive=lambda: process.poll() is None)
        os.write(writer, b'{"word": "zzz", "drawing": [[[0, 1], [0, 1]]]}\n')
        time.sleep(0.5)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if writer is not None:
            os.close(writer)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == -signal.SIGKILL
    after = {p: (out / p).read_bytes() for p in os.listdir(out) if not p.startswith(".")}
    assert after == before, "the earlier complete output is untouched"
    # The killed run's temporary folder is left; the next run removes it.
    assert [p for p in os.listdir(out) if p.startswith(".create_dataset-")]
    convert(quickdraw_subset, out, train=20, evals=5, output_shards=2)
    assert not [p for p in os.listdir(out) if p.startswith(".")]
