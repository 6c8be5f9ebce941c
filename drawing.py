"""Drawing preprocessing shared by the converter, the input pipeline and prediction.

A drawing arrives as Quick, Draw! strokes: a list of `[[x...], [y...]]` (the dataset's
"simplified" files) or `[[x...], [y...], [t...]]` (its raw files). It goes through two steps:

  strokes -> points: the points of all strokes concatenated, shape [points, 3]: x, y and
                     1.0 at the last point of each stroke, else 0.0.
  points  -> ink:    the tutorial's normalization: x and y scaled to [0, 1] by the drawing's
                     bounding box (an axis of zero extent is left unscaled), then differences
                     of consecutive points, dropping the first point: shape [points - 1, 3].

This module imports no TensorFlow: the converter's worker processes use it, and they start
faster without it. The in-graph twin of `points_to_ink` lives in `serving.py`; how ink is
stored in TFRecords, in `data_format.py`.
"""

import dataclasses
import json

import numpy as np

# Reasons a line is skipped. The converter and predict.py count skips under these names.
INVALID_UTF8 = "invalid utf-8"
BLANK_LINE = "blank line"
INVALID_JSON = "invalid json"
NOT_AN_OBJECT = "not a json object"
MISSING_WORD = "missing or empty word"
MISSING_DRAWING = "missing or null drawing"
MALFORMED_DRAWING = "malformed drawing"
NOT_NUMBERS = "coordinates are not numbers"
NON_FINITE = "non-finite coordinate"
TOO_FEW_POINTS = "fewer than 2 points"
WRONG_WORD = "word differs from the file's class"


class BadDrawing(ValueError):
    """A line that holds no usable drawing; `reason` is one of the constants above."""

    def __init__(self, reason, detail=""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def _reject_constant(name):
    # json accepts NaN, Infinity and -Infinity by default; a drawing never should.
    raise BadDrawing(NON_FINITE, name)


def parse_line(line):
    """One ndjson line (bytes or str) -> (word, strokes). Raises BadDrawing.

    Checks the JSON, the word and the strokes' structure; the coordinates' values are checked
    by `to_points`, which converts many drawings in one go.
    """
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError as e:
            raise BadDrawing(INVALID_UTF8, str(e)) from None
    line = line.lstrip("\ufeff")
    if not line.strip():
        raise BadDrawing(BLANK_LINE)
    try:
        sample = json.loads(line, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise BadDrawing(INVALID_JSON, str(e)) from None
    except RecursionError:  # nested deeper than the parser's stack
        raise BadDrawing(INVALID_JSON, "nested too deeply") from None
    if not isinstance(sample, dict):
        raise BadDrawing(NOT_AN_OBJECT)
    word = sample.get("word")
    if not isinstance(word, str) or not word:
        raise BadDrawing(MISSING_WORD)
    strokes = sample.get("drawing")
    if strokes is None:
        raise BadDrawing(MISSING_DRAWING)
    return word, flatten_strokes(strokes)


def flatten_strokes(strokes):
    """[[x...], [y...](, [t...])] strokes -> (xs, ys, stroke_lengths) as Python lists.

    Empty strokes hold no points and are dropped; a drawing needs at least 2 points in all,
    since its ink has one row fewer than it has points.
    """
    if not isinstance(strokes, list):
        raise BadDrawing(MALFORMED_DRAWING, "drawing is not a list of strokes")
    xs, ys, stroke_lengths = [], [], []
    for stroke in strokes:
        if (not isinstance(stroke, list) or len(stroke) not in (2, 3)
                or not isinstance(stroke[0], list) or not isinstance(stroke[1], list)):
            raise BadDrawing(MALFORMED_DRAWING, "a stroke is not [[x...], [y...](, [t...])]")
        x, y = stroke[0], stroke[1]
        if len(x) != len(y):
            raise BadDrawing(MALFORMED_DRAWING, "a stroke has more x than y or the reverse")
        if x:
            xs += x
            ys += y
            stroke_lengths.append(len(x))
    if len(xs) < 2:
        raise BadDrawing(TOO_FEW_POINTS, f"{len(xs)} point(s)")
    return xs, ys, stroke_lengths


def to_points(flat_drawings):
    """Flattened drawings -> (points, lengths): a ragged batch.

    points: float32 [sum(lengths), 3], the drawings' points one after the other: x, y and 1.0
    at the last point of each stroke. lengths: int64 [drawings], points per drawing.
    Raises BadDrawing when any coordinate is not a finite number; `parse_lines` then finds
    which drawing it was.
    """
    xs = [v for xs, _, _ in flat_drawings for v in xs]
    ys = [v for _, ys, _ in flat_drawings for v in ys]
    try:
        xy = np.array((xs, ys))
    except ValueError:  # nested lists of uneven depth
        raise BadDrawing(NOT_NUMBERS) from None
    # np.array turns strings into a string dtype and bools into bool; neither is a coordinate.
    if xy.dtype.kind not in "iuf":
        raise BadDrawing(NOT_NUMBERS)
    points = np.zeros((xy.shape[1], 3), dtype=np.float32)
    with np.errstate(over="ignore"):  # a value beyond float32 becomes inf, rejected below
        points[:, :2] = xy.T
    if not np.isfinite(points[:, :2]).all():  # NaN or inf, or too large for float32
        raise BadDrawing(NON_FINITE)
    stroke_lengths = [n for _, _, lengths in flat_drawings for n in lengths]
    stroke_ends = np.cumsum(np.array(stroke_lengths, dtype=np.int64)) - 1
    points[stroke_ends, 2] = 1.0
    lengths = np.array([len(xs) for xs, _, _ in flat_drawings], dtype=np.int64)
    return points, lengths


@dataclasses.dataclass
class ParsedLines:
    """The usable drawings among some lines, as a ragged batch, and why the others were not."""
    points: np.ndarray        # float32 [sum(lengths), 3]
    lengths: np.ndarray       # int64 [usable drawings]
    words: list               # the usable drawings' words
    line_indices: list        # the usable drawings' positions among the lines
    skipped: list             # (position among the lines, reason) of the others


def parse_lines(lines, expected_word=None):
    """Parses ndjson lines; a line whose word is not `expected_word` (if given) is skipped."""
    flat, words, line_indices, skipped = [], [], [], []
    for i, line in enumerate(lines):
        try:
            word, flat_drawing = parse_line(line)
            if expected_word is not None and word != expected_word:
                raise BadDrawing(WRONG_WORD, word)
        except BadDrawing as e:
            skipped.append((i, e.reason))
            continue
        flat.append(flat_drawing)
        words.append(word)
        line_indices.append(i)
    points, lengths, kept, rejected = to_points_sorted_out(flat)
    if rejected:
        skipped = sorted(skipped + [(line_indices[k], e.reason) for k, e in rejected])
        words = [words[k] for k in kept]
        line_indices = [line_indices[k] for k in kept]
    return ParsedLines(points, lengths, words, line_indices, skipped)


def to_points_sorted_out(flat_drawings):
    """to_points of the drawings whose coordinates are all finite numbers: (points, lengths,
    kept, rejected), kept the positions of the converted drawings among flat_drawings and
    rejected [(position, BadDrawing)] of the others. One batch unless a drawing fails."""
    try:
        points, lengths = to_points(flat_drawings)
        return points, lengths, list(range(len(flat_drawings))), []
    except BadDrawing:  # rare: convert one by one to find the culprits
        kept, rejected = [], []
        for k, flat_drawing in enumerate(flat_drawings):
            try:
                to_points([flat_drawing])
                kept.append(k)
            except BadDrawing as e:
                rejected.append((k, e))
        points, lengths = to_points([flat_drawings[k] for k in kept])
        return points, lengths, kept, rejected


def points_to_ink(points, lengths=None):
    """The tutorial's preprocessing, on a ragged batch: points [sum(lengths), 3] -> (ink,
    ink_lengths).

    Per drawing: x and y scaled to [0, 1] by its bounding box (an axis of zero extent is left
    unscaled), then differences of consecutive points, dropping the first point. Returns
    float32 ink [sum(ink_lengths), 3] and ink_lengths = lengths - 1: each drawing has one row
    fewer than it has points. `lengths` None means one drawing.
    """
    points = np.asarray(points, dtype=np.float32)
    if lengths is None:
        lengths = [len(points)]
    lengths = np.asarray(lengths, dtype=np.int64)
    if not len(lengths):
        return np.zeros((0, 3), dtype=np.float32), lengths
    starts = np.cumsum(lengths) - lengths
    lower = np.minimum.reduceat(points[:, :2], starts, axis=0)
    scale = np.maximum.reduceat(points[:, :2], starts, axis=0) - lower
    scale[scale == 0] = 1.0
    drawing_of_point = np.repeat(np.arange(len(lengths)), lengths)
    xy = (points[:, :2] - lower[drawing_of_point]) / scale[drawing_of_point]
    not_first = np.ones(len(points), dtype=bool)
    not_first[starts] = False
    ink = np.empty((len(points) - len(lengths), 3), dtype=np.float32)
    ink[:, :2] = (xy[1:] - xy[:-1])[not_first[1:]]
    ink[:, 2] = points[not_first, 2]
    return ink, lengths - 1


def pad(ragged, lengths):
    """A ragged batch [sum(lengths), 3] -> zero-padded [len(lengths), max(lengths), 3]."""
    lengths = np.asarray(lengths, dtype=np.int64)
    padded = np.zeros((len(lengths), max(lengths, default=0), 3), dtype=np.float32)
    padded[np.arange(padded.shape[1]) < lengths[:, None]] = ragged
    return padded


def split_ink(ink, ink_lengths):
    """A ragged batch -> a list of per-drawing [n, 3] arrays (views, no copies)."""
    return np.split(ink, np.cumsum(ink_lengths)[:-1])
