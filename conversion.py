"""Quick, Draw! ndjson files -> sharded TFRecords of tf.train.Examples.

Two stages, so that the output is deterministic whatever the number of processes and memory
stays flat whatever the input size:

1. Per class, in parallel worker processes: stream the class's file, keep the first
   `train_per_class` usable drawings for training and the next `eval_per_class` for eval, and
   append their encoded features to two temporary files. A worker holds one line at a time.
2. In this process: a seeded shuffle of all (class) slots decides the order in which the
   examples are copied, round-robin, into the output shards, so every shard mixes classes.
   The order is drawn a chunk at a time, so it too takes memory independent of the input.

Outputs appear under their final names only once complete: shards are written into a hidden
temporary folder inside the output folder and renamed at the end.

TensorFlow is imported inside the functions that run in the main process: the worker
processes import this module, and start much faster without it.
"""

import collections
import concurrent.futures
import contextlib
import dataclasses
import gzip
import itertools
import multiprocessing
import os
import shutil
import struct
import tempfile
import time
import typing

import numpy as np

import data_format
import drawing
from cli import UserError, check, option

NDJSON_SUFFIXES = (".ndjson", ".ndjson.gz")
_LENGTH = struct.Struct("<I")
_BATCH_LINES = 256
_TMP_PREFIX = ".create_dataset-"
_OPEN_FILES = 200  # class files open at once while writing the shards


@dataclasses.dataclass(frozen=True)
class ConvertConfig:
    """What create_dataset.py converts, and how; each field is also its flag."""
    ndjson_path: str = option(help="Directory of <class>.ndjson or .ndjson.gz files.")
    output_path: str = option(help="Directory for the TFRecord shards and classes file.")
    train_observations_per_class: int = option(
        10000, "Training drawings per class: the first usable ones of each file.")
    eval_observations_per_class: int = option(
        1000, "Eval drawings per class: the usable ones that follow the training ones.")
    output_shards: int = option(10, "Number of shards for each of training and eval.",
                                minimum=1)
    classes_file: typing.Optional[str] = option(
        None, "Optional file of class names, one a line: only these classes are read, and "
        "their indices follow its order. Default: every file, sorted by name.")
    seed: int = option(0, "Seed of the shuffle; the same seed gives identical files.")
    num_workers: int = option(
        os.cpu_count() or 1, "Processes that read and convert classes in parallel; 1 "
        "converts in this process. The output does not depend on it.", minimum=1)

    def __post_init__(self):
        train, eval_ = self.train_observations_per_class, self.eval_observations_per_class
        if train < 0 or eval_ < 0 or train + eval_ == 0:
            raise UserError("the observations per class must be >= 0 and not both 0")
        check(self)


@dataclasses.dataclass
class ClassResult:
    name: str
    train: int = 0
    eval: int = 0
    skipped: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    error: str = ""  # why reading stopped early (unreadable or truncated file), if it did


def class_name(filename):
    """'cat.ndjson' and 'cat.ndjson.gz' -> 'cat'; None for any other file."""
    for suffix in NDJSON_SUFFIXES:
        if filename.endswith(suffix):
            return filename[:-len(suffix)]
    return None


def _open_binary(path):
    if "://" in path:
        # Imported here so that worker processes load TensorFlow only for remote files.
        import tensorflow as tf
        f = tf.io.gfile.GFile(path, "rb")
    else:
        f = open(path, "rb")
    return gzip.GzipFile(fileobj=f, mode="rb") if path.endswith(".gz") else f


def _read_lines(path, result):
    """The file's lines; an unreadable, truncated or corrupt file ends them, noted in
    result.error."""
    try:
        with _open_binary(path) as f:
            yield from f
    # OSError (bad .gz header, local read errors), EOFError (truncated .gz), zlib.error
    # (corrupt .gz data), TensorFlow's errors for remote files: all end this class only.
    except Exception as e:  # noqa: BLE001
        result.error = f"{type(e).__name__}: {e}"


def _extract_class(task):
    """Stage 1 for one class: writes <tmp>/<i>.train and <i>.eval, returns a ClassResult."""
    index, name, path, train_per_class, eval_per_class, tmp_dir = task
    result = ClassResult(name)
    wanted = train_per_class + eval_per_class
    kept = 0
    with contextlib.closing(_read_lines(path, result)) as lines, \
            open(os.path.join(tmp_dir, f"{index}.train"), "wb") as train_file, \
            open(os.path.join(tmp_dir, f"{index}.eval"), "wb") as eval_file:
        while kept < wanted:
            # Lines are parsed in batches, which numpy converts many times faster than one by
            # one; a batch never reads more lines than drawings are still wanted.
            batch = list(itertools.islice(lines, min(_BATCH_LINES, wanted - kept)))
            if not batch:
                break
            parsed = drawing.parse_lines(batch, expected_word=name)
            result.skipped.update(reason for _, reason in parsed.skipped)
            for features in data_format.encode_ink_features(
                    *drawing.points_to_ink(parsed.points, parsed.lengths)):
                out = train_file if kept < train_per_class else eval_file
                out.write(_LENGTH.pack(len(features)))
                out.write(features)
                kept += 1
    result.train = min(kept, train_per_class)
    result.eval = kept - result.train
    return result


class _ClassRecords:
    """The records of the classes' temporary files, each class's in order, with at most
    _OPEN_FILES files open at once whatever the number of classes: the least recently read
    is closed, and reopened where it stopped."""

    def __init__(self, paths):
        self._paths = paths
        self._offsets = [0] * len(paths)
        self._open = collections.OrderedDict()  # class -> file, least recently read first

    def next(self, c):
        f = self._open.pop(c, None)
        if f is None:
            if len(self._open) >= _OPEN_FILES:
                evicted, oldest = self._open.popitem(last=False)
                self._offsets[evicted] = oldest.tell()
                oldest.close()
            f = open(self._paths[c], "rb")
            f.seek(self._offsets[c])
        self._open[c] = f
        return f.read(_LENGTH.unpack(f.read(_LENGTH.size))[0])

    def close(self):
        for f in self._open.values():
            f.close()


def shuffled_classes(counts, rng, chunk_size=1 << 16):
    """A uniformly shuffled sequence holding class c counts[c] times, in chunks, in memory
    that does not grow with sum(counts): each chunk's class counts are drawn from those left
    (multivariate hypergeometric, exactly the first chunk_size positions of a shuffle of the
    whole), then shuffled. Yields int arrays."""
    left = np.array(counts, dtype=np.int64)  # a copy: counts stays as it was
    classes = np.arange(len(left), dtype=np.int32)
    while left.sum():
        drawn = rng.multivariate_hypergeometric(left, min(chunk_size, int(left.sum())))
        left -= drawn
        chunk = np.repeat(classes, drawn)
        rng.shuffle(chunk)
        yield chunk


def _write_split(sources, counts, tmp_dir, prefix, shards, rng):
    """Stage 2 for one split: copies the classes' records into shards in a seeded order."""
    import tensorflow as tf
    records = _ClassRecords(sources)
    paths = [os.path.join(tmp_dir, data_format.shard_name(prefix, s, shards))
             for s in range(shards)]
    writers = [tf.io.TFRecordWriter(p) for p in paths]
    position = 0
    for chunk in shuffled_classes(counts, rng):
        for c in chunk.tolist():
            writers[position % shards].write(data_format.encode_example(records.next(c), c))
            position += 1
    records.close()
    for w in writers:
        w.close()
    return paths


def list_class_files(ndjson_path, log):
    """{class name: path} for every *.ndjson(.gz) file in the folder, other files logged."""
    import tensorflow as tf
    if not tf.io.gfile.isdir(ndjson_path):
        raise UserError(f"--ndjson_path {ndjson_path!r} is not a directory")
    files = {}
    for filename in sorted(tf.io.gfile.listdir(ndjson_path)):
        name = class_name(filename)
        path = os.path.join(ndjson_path, filename)
        if name is None or tf.io.gfile.isdir(path):
            log(f"skipping {filename}: not an .ndjson or .ndjson.gz file")
        elif name in files:
            log(f"skipping {filename}: class {name!r} already read from {files[name]}")
        else:
            files[name] = path
    return files


def convert(config, log=print, warn=print, progress_seconds=10.0):
    """Converts config.ndjson_path's files; returns a ClassResult for every class read.

    With config.classes_file only its classes are read, in its order; else every class
    found, in sorted order. A class with no usable drawing is left out of the output and the
    indices of the classes after it move up by one.
    """
    import tensorflow as tf
    ndjson_path, output_path = config.ndjson_path, config.output_path
    train_per_class = config.train_observations_per_class
    eval_per_class = config.eval_observations_per_class
    output_shards = config.output_shards
    files = list_class_files(ndjson_path, log)
    if config.classes_file is None:
        classes = sorted(files)
    else:
        classes = data_format.read_classes(config.classes_file, flag="classes_file")
        for name in classes:
            if name not in files:
                warn(f"class {name!r} has no file in {ndjson_path}; left out")
        classes = [name for name in classes if name in files]
    if not classes:
        raise UserError(f"no .ndjson or .ndjson.gz file to read in {ndjson_path}")

    tf.io.gfile.makedirs(output_path)
    local_output = "://" not in output_path
    # On the output's own filesystem, so that the final renames are atomic.
    tmp_root = output_path if local_output else None
    if local_output:
        _remove_killed_runs_folders(output_path, log)
    with tempfile.TemporaryDirectory(prefix=f"{_TMP_PREFIX}{os.getpid()}-",
                                     dir=tmp_root) as tmp_dir:
        tasks = [(i, name, files[name], train_per_class, eval_per_class, tmp_dir)
                 for i, name in enumerate(classes)]
        results = _run_stage1(tasks, config.num_workers, log, progress_seconds)
        for r in results:
            if r.error:
                warn(f"class {r.name!r}: stopped reading early: {r.error}")
            if r.train + r.eval == 0:
                warn(f"class {r.name!r}: no usable drawing; left out")
            elif r.train < train_per_class or r.eval < eval_per_class:
                warn(f"class {r.name!r}: only {r.train} training and {r.eval} eval drawings "
                     f"(asked for {train_per_class} and {eval_per_class})")
        used = [i for i, r in enumerate(results) if r.train + r.eval > 0]
        if not used:
            raise UserError(f"no usable drawing in {ndjson_path}; "
                            f"skipped lines: {dict(_total_skips(results))}")
        rng = np.random.default_rng(config.seed)
        written = []
        for split, prefix in (("train", data_format.TRAINING), ("eval", data_format.EVAL)):
            # A kept class's index is its position among the kept classes.
            sources = [os.path.join(tmp_dir, f"{i}.{split}") for i in used]
            counts = [getattr(results[i], split) for i in used]
            final_prefix = os.path.join(output_path, prefix)
            log(f"writing {sum(counts)} {split} drawings to "
                f"{final_prefix}-*-of-{output_shards:05d}")
            written += [(p, os.path.join(output_path, os.path.basename(p))) for p in
                        _write_split(sources, counts, tmp_dir, prefix, output_shards, rng)]
        classes_tmp = os.path.join(tmp_dir, data_format.CLASSES)
        data_format.write_classes(classes_tmp, [results[i].name for i in used])
        written.append((classes_tmp, os.path.join(output_path, data_format.CLASSES)))
        _remove_stale_shards(output_path, output_shards, log)
        # The classes file goes first and comes back last: a run that dies between the
        # renames leaves no classes file, so no one trains on its shards mixed with older ones.
        old_classes = os.path.join(output_path, data_format.CLASSES)
        if tf.io.gfile.exists(old_classes):
            tf.io.gfile.remove(old_classes)
        for tmp, final in written:
            if local_output:
                os.replace(tmp, final)
            else:  # an object store's upload is atomic; there is no rename across filesystems
                tf.io.gfile.copy(tmp, final, overwrite=True)
    return results


def _remove_killed_runs_folders(output_path, log):
    """Deletes the temporary folders of runs that were killed: <prefix><pid>-* of a process
    that no longer runs."""
    for name in os.listdir(output_path):
        if not name.startswith(_TMP_PREFIX):
            continue
        pid = name[len(_TMP_PREFIX):].split("-")[0]
        try:
            os.kill(int(pid), 0)
            continue  # that run is still going
        except (ValueError, ProcessLookupError):
            pass
        except PermissionError:  # another user's live process
            continue
        log(f"removing {name}: left by a run that was killed")
        shutil.rmtree(os.path.join(output_path, name), ignore_errors=True)


def _remove_stale_shards(output_path, output_shards, log):
    """Deletes shards of an earlier run with another shard count: a glob would mix them in."""
    import tensorflow as tf
    for prefix in (data_format.TRAINING, data_format.EVAL):
        for path in tf.io.gfile.glob(data_format.shard_pattern(output_path, prefix)):
            if not path.endswith(f"-of-{output_shards:05d}"):
                log(f"removing {path}: left by an earlier run with another --output_shards")
                tf.io.gfile.remove(path)


def _run_stage1(tasks, num_workers, log, progress_seconds):
    results = [None] * len(tasks)
    start = last_report = time.monotonic()
    done_drawings = 0

    def record(i, result):
        nonlocal done_drawings, last_report
        results[i] = result
        done_drawings += result.train + result.eval
        now = time.monotonic()
        finished = sum(r is not None for r in results)
        if now - last_report >= progress_seconds or finished == len(tasks):
            last_report = now
            log(f"read {finished}/{len(tasks)} classes, {done_drawings} drawings kept, "
                f"{done_drawings / max(now - start, 1e-9):.0f} drawings/s")

    if num_workers == 1:
        for i, task in enumerate(tasks):
            record(i, _extract_class(task))
    else:
        # spawn, not fork: the parent has TensorFlow loaded, and forking it is unsafe. An
        # executor, not a multiprocessing.Pool: a worker that dies ends the run with an error
        # where a Pool would start another one and wait forever.
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(num_workers, mp_context=context) as pool:
            futures = {pool.submit(_extract_class, task): i for i, task in enumerate(tasks)}
            try:
                for future in concurrent.futures.as_completed(futures):
                    record(futures[future], future.result())
            except concurrent.futures.process.BrokenProcessPool:
                raise UserError(
                    "a converter process died (killed, or out of memory; from a Python "
                    "script, call convert() under `if __name__ == \"__main__\":` or with "
                    "num_workers=1)") from None
    return results


def _total_skips(results):
    total = collections.Counter()
    for r in results:
        total.update(r.skipped)
    return total


def summary_table(results):
    """The per-class table (train, eval, skipped) and the skip counts by reason, as text."""
    width = max([len("class")] + [len(r.name) for r in results])
    lines = [f"{'class':<{width}}  {'train':>7}  {'eval':>7}  {'skipped':>7}"]
    for r in results:
        lines.append(f"{r.name:<{width}}  {r.train:>7}  {r.eval:>7}  "
                     f"{sum(r.skipped.values()):>7}")
    lines.append(f"{'total':<{width}}  {sum(r.train for r in results):>7}  "
                 f"{sum(r.eval for r in results):>7}  "
                 f"{sum(sum(r.skipped.values()) for r in results):>7}")
    skips = _total_skips(results)
    lines.append("skipped lines by reason: " + (", ".join(
        f"{reason}: {n}" for reason, n in sorted(skips.items())) if skips else "none"))
    return "\n".join(lines)
