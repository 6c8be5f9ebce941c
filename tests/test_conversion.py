"""conversion.py, in this process: layout, splits, determinism, formats, stale shards."""

import collections
import glob
import gzip
import json
import os
import shutil
import signal
import threading
import time
import tracemalloc

import numpy as np
import pytest

import conversion
import drawing
from cli import UserError
from conftest import BAD_INPUT, classes_and_a_fifo, convert, open_fifo_writer
from data_format import read_examples


def usable_inks(path, word):
    """The ink bytes of a file's usable drawings, in file order."""
    with open(path, "rb") as f:
        parsed = drawing.parse_lines(f.readlines(), expected_word=word)
    return [i.tobytes() for i in drawing.split_ink(*drawing.points_to_ink(parsed.points,
                                                                          parsed.lengths))]


def test_layout_splits_and_shard_mixing(quickdraw_subset, tmp_path):
    results = convert(quickdraw_subset, tmp_path, train=100, evals=50, output_shards=3,
                      seed=7)
    assert [(r.name, r.train, r.eval) for r in results] == [
        (name, 100, 50) for name in ("butterfly", "circle", "square", "triangle")]
    assert sorted(os.listdir(tmp_path)) == sorted(
        [f"training.tfrecord-{i:05d}-of-00003" for i in range(3)]
        + [f"eval.tfrecord-{i:05d}-of-00003" for i in range(3)]
        + ["training.tfrecord.classes"])
    classes = (tmp_path / "training.tfrecord.classes").read_text().splitlines()
    assert classes == ["butterfly", "circle", "square", "triangle"]
    train = read_examples(str(tmp_path / "training.tfrecord-*"))
    evals = read_examples(str(tmp_path / "eval.tfrecord-*"))
    for index, name in enumerate(classes):
        expected = usable_inks(os.path.join(quickdraw_subset, f"{name}.ndjson"), name)
        got_train = sorted(ink.tobytes() for c, ink in train if c == index)
        got_eval = sorted(ink.tobytes() for c, ink in evals if c == index)
        assert got_train == sorted(expected[:100])     # the first 100 usable drawings
        assert got_eval == sorted(expected[100:150])   # the next 50, none shared
    for shard in glob.glob(str(tmp_path / "*.tfrecord-*")):
        labels = [c for c, _ in read_examples(shard)]
        assert len(set(labels)) == 4, "every shard mixes all classes"
        assert labels != sorted(labels), "and not in class order"
    assert all(ink.shape[1] == 3 and ink.dtype == np.float32 for _, ink in train)


def test_shuffled_classes_is_a_uniform_shuffle_across_chunks():
    # counts (2, 2, 1) have 30 distinct orders; chunks of 2 cut through every one of them.
    seen = collections.Counter(
        tuple(np.concatenate(list(conversion.shuffled_classes(
            [2, 2, 1], np.random.default_rng(seed), chunk_size=2))).tolist())
        for seed in range(6000))
    assert len(seen) == 30
    assert all(150 < n < 250 for n in seen.values()), seen  # 200 expected each


def test_shuffled_classes_memory_is_flat_at_50m_drawings():
    counts = np.full(345, 50_000_000 // 345)
    tally = np.zeros(345, dtype=np.int64)
    tracemalloc.start()
    for chunk in conversion.shuffled_classes(counts, np.random.default_rng(0)):
        tally += np.bincount(chunk, minlength=345)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert (tally == counts).all()
    assert peak < 4e6, f"{peak / 1e6:.1f} MB for 50M drawings"


def test_same_seed_gives_identical_files_whatever_the_process_count(quickdraw_subset, tmp_path):
    convert(quickdraw_subset, tmp_path / "a", train=60, evals=20,
            output_shards=2, seed=3, num_workers=1)
    convert(quickdraw_subset, tmp_path / "b", train=60, evals=20,
            output_shards=2, seed=3, num_workers=2)
    convert(quickdraw_subset, tmp_path / "c", train=60, evals=20,
            output_shards=2, seed=4, num_workers=2)
    names = sorted(os.listdir(tmp_path / "a"))
    assert names == sorted(os.listdir(tmp_path / "b")) == sorted(os.listdir(tmp_path / "c"))
    for name in names:
        a, b, c = ((tmp_path / d / name).read_bytes() for d in "abc")
        assert a == b
        if name.startswith("training.tfrecord-"):
            assert a != c, "another seed shuffles differently"
    # ... but the same drawings overall.
    assert sorted(i.tobytes() for _, i in read_examples(str(tmp_path / "a/training*-of-*"))) == \
        sorted(i.tobytes() for _, i in read_examples(str(tmp_path / "c/training*-of-*")))


def test_few_open_files_whatever_the_class_count(quickdraw_subset, tmp_path, monkeypatch):
    convert(quickdraw_subset, tmp_path / "a", train=60, evals=20, output_shards=2, seed=3)
    monkeypatch.setattr(conversion, "_OPEN_FILES", 2)  # 4 classes, 2 files open at most
    convert(quickdraw_subset, tmp_path / "b", train=60, evals=20, output_shards=2, seed=3)
    for name in sorted(os.listdir(tmp_path / "a")):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_classes_file_restricts_and_orders(quickdraw_subset, tmp_path):
    classes_file = tmp_path / "classes.txt"
    classes_file.write_text("triangle\nsquare\n\nunicorn\n")
    out = tmp_path / "out"
    warnings = []
    conversion.convert(conversion.ConvertConfig(
        ndjson_path=quickdraw_subset, output_path=str(out), classes_file=str(classes_file),
        train_observations_per_class=10, eval_observations_per_class=5, output_shards=1),
        log=lambda _: None, warn=warnings.append)
    assert (out / "training.tfrecord.classes").read_text() == "triangle\nsquare\n"
    assert any("class 'unicorn' has no file" in w for w in warnings)
    train = read_examples(str(out / "training.tfrecord-*"))
    triangle = usable_inks(os.path.join(quickdraw_subset, "triangle.ndjson"), "triangle")
    assert sorted(i.tobytes() for c, i in train if c == 0) == sorted(triangle[:10])
    assert collections.Counter(c for c, _ in train) == {0: 10, 1: 10}


def test_gzip_and_raw_format(tmp_path):
    raw = [{"word": "zigzag", "drawing": [[[0.5, 10.25, 20.0], [3.0, 7.5, 1.0], [0, 16, 33]],
                                          [[4.0, 8.0], [9.0, 2.0], [50, 66]]]}
           for _ in range(3)]
    src = tmp_path / "src"
    src.mkdir()
    with gzip.open(src / "zigzag.ndjson.gz", "wt") as f:
        f.writelines(json.dumps(d) + "\n" for d in raw)
    convert(str(src), tmp_path / "out", train=2, evals=1, output_shards=1)
    train = read_examples(str(tmp_path / "out/training.tfrecord-*"))
    assert len(train) == 2 and len(read_examples(str(tmp_path / "out/eval.tfrecord-*"))) == 1
    _, flat = drawing.parse_line(json.dumps(raw[0]))
    np.testing.assert_array_equal(train[0][1],
                                  drawing.points_to_ink(drawing.to_points([flat])[0])[0])
    assert train[0][1].shape == (4, 3)


def test_corrupt_gzip_skips_the_class_with_its_reason(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    with open(os.path.join(BAD_INPUT, "owl.ndjson"), "rb") as f:
        data = bytearray(gzip.compress(f.read()))
    data[200:260] = bytes(60)  # the compressed stream, not the header
    (src / "owl.ndjson.gz").write_bytes(bytes(data))
    (src / "notgzip.ndjson.gz").write_bytes(b"plain text, not gzip\n")
    shutil.copy(os.path.join(BAD_INPUT, "cat.ndjson"), src)
    results = convert(str(src), tmp_path / "out", train=100, evals=0, output_shards=1)
    errors = {r.name: r.error.split(":")[0] for r in results}
    assert errors == {"cat": "", "notgzip": "BadGzipFile", "owl": "error"}  # zlib.error
    assert [r.train for r in results] == [28, 0, 0]


def test_truncated_gzip_keeps_what_was_read(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    with open(os.path.join(BAD_INPUT, "owl.ndjson"), "rb") as f:
        data = gzip.compress(f.read())
    (src / "owl.ndjson.gz").write_bytes(data[:len(data) // 2])
    results = convert(str(src), tmp_path / "out", train=100, evals=0, output_shards=1)
    assert 0 < results[0].train < 30
    assert "EOFError" in results[0].error


def test_stale_shards_of_another_shard_count_are_removed(quickdraw_subset, tmp_path):
    convert(quickdraw_subset, tmp_path, train=5, evals=5, output_shards=3)
    convert(quickdraw_subset, tmp_path, train=5, evals=5, output_shards=2)
    assert sorted(p for p in os.listdir(tmp_path) if "-of-" in p) == [
        "eval.tfrecord-00000-of-00002", "eval.tfrecord-00001-of-00002",
        "training.tfrecord-00000-of-00002", "training.tfrecord-00001-of-00002"]


@pytest.mark.parametrize("fields, message", [
    (dict(ndjson_path="/no/such/dir"), "--ndjson_path '/no/such/dir' is not a directory"),
    (dict(classes_file="/no/such/file"), "cannot read --classes_file /no/such/file: "),
    (dict(train=0, evals=0),
     "the observations per class must be >= 0 and not both 0"),
    (dict(num_workers=0), "--num_workers must be at least 1"),
])
def test_bad_settings_are_one_line_errors(tmp_path, fields, message):
    fields = dict(dict(ndjson_path=BAD_INPUT), **fields)
    with pytest.raises(UserError) as error:
        convert(output_path=tmp_path / "out", **fields)
    assert str(error.value).startswith(message)


def test_a_worker_that_dies_ends_the_run_with_an_error(quickdraw_subset, tmp_path):
    # A FIFO as a class file holds its worker process until the test kills it, as the
    # kernel kills a process out of memory: a multiprocessing.Pool would wait forever.
    src, fifo = classes_and_a_fifo(quickdraw_subset, tmp_path)
    outcome = []

    def run():
        try:
            convert(src, tmp_path / "out", train=20, evals=5, num_workers=2)
        except UserError as e:
            outcome.append(str(e))
    thread = threading.Thread(target=run)
    thread.start()
    writer, reader, deadline = None, None, time.monotonic() + 60
    try:
        writer = open_fifo_writer(fifo, alive=thread.is_alive)
        while reader is None:  # the worker process that has the FIFO open
            assert time.monotonic() < deadline
            for fd in glob.glob("/proc/[0-9]*/fd/*"):
                try:
                    pid = int(fd.split("/")[2])
                    if pid != os.getpid() and os.readlink(fd) == str(fifo):
                        reader = pid
                except OSError:
                    pass
        os.kill(reader, signal.SIGKILL)
        thread.join(timeout=60)
    finally:
        if writer is not None:
            os.close(writer)
    assert not thread.is_alive(), "the run hangs"
    assert outcome and outcome[0].startswith("a converter process died")


def test_a_run_that_dies_between_renames_leaves_no_classes_file(quickdraw_subset, tmp_path,
                                                                 monkeypatch):
    convert(quickdraw_subset, tmp_path, train=5, evals=5, output_shards=2, seed=1)
    renames = []

    def dies_on_the_third(tmp, final):
        renames.append(final)
        if len(renames) == 3:
            raise OSError("disk gone")
        os.rename(tmp, final)
    monkeypatch.setattr(conversion.os, "replace", dies_on_the_third)
    with pytest.raises(OSError):
        convert(quickdraw_subset, tmp_path, train=5, evals=5, output_shards=2, seed=2)
    assert os.path.basename(renames[-1]).startswith("eval.tfrecord-")
    assert not (tmp_path / "training.tfrecord.classes").exists()
