"""drawing.py: parsing and the tutorial's preprocessing."""

import glob
import json
import os

import numpy as np
import pytest

import drawing
from conftest import BAD_INPUT, QUICKDRAW


def reference_ink(strokes):
    """The tutorial's preprocessing written loop by loop from its description, in float64."""
    points = []
    for stroke in strokes:
        for i in range(len(stroke[0])):
            points.append([stroke[0][i], stroke[1][i], 1.0 if i == len(stroke[0]) - 1 else 0.0])
    for axis in (0, 1):
        low = min(p[axis] for p in points)
        high = max(p[axis] for p in points)
        extent = high - low
        for p in points:
            p[axis] = (p[axis] - low) / extent if extent != 0 else p[axis] - low
    return np.array([[points[i][0] - points[i - 1][0], points[i][1] - points[i - 1][1],
                      points[i][2]] for i in range(1, len(points))])


def all_quickdraw_lines():
    lines = []
    for path in sorted(glob.glob(os.path.join(QUICKDRAW, "*.ndjson"))):
        with open(path, "rb") as f:
            lines += f.readlines()
    return lines


def test_ink_matches_loop_reference_on_every_quickdraw_drawing():
    lines = all_quickdraw_lines()
    assert len(lines) == 41011
    parsed = drawing.parse_lines(lines)
    assert parsed.skipped == []
    # The batched path (one call for all 41,011 drawings) is the one the converter uses.
    ink, ink_lengths = drawing.points_to_ink(parsed.points, parsed.lengths)
    np.testing.assert_array_equal(ink_lengths, parsed.lengths - 1)  # a row fewer than points
    inks = drawing.split_ink(ink, ink_lengths)
    assert len(inks) == 41011
    worst = 0.0
    for line, got in zip(lines, inks):
        expected = reference_ink(json.loads(line)["drawing"])
        assert got.shape == expected.shape
        assert got.dtype == np.float32
        worst = max(worst, float(np.abs(got - expected).max()))
    assert worst < 1e-6
    # Each row's x and y deltas undo to points inside the unit square.
    for got in inks[:500]:
        assert np.all(np.abs(got[:, :2]) <= 1.0)


def test_batched_equals_one_drawing_at_a_time():
    parsed = drawing.parse_lines(all_quickdraw_lines()[:300])
    batched = drawing.split_ink(*drawing.points_to_ink(parsed.points, parsed.lengths))
    points = np.split(parsed.points, np.cumsum(parsed.lengths)[:-1])
    for p, b in zip(points, batched):
        np.testing.assert_array_equal(drawing.points_to_ink(p)[0], b)


def test_points_mark_stroke_ends_and_zero_extent_axis_is_unscaled():
    word, flat = drawing.parse_line(
        '{"word": "line", "drawing": [[[0, 10], [5, 5]], [[20, 40], [5, 5]]]}')
    points, lengths = drawing.to_points([flat])
    np.testing.assert_array_equal(points, [[0, 5, 0], [10, 5, 1], [20, 5, 0], [40, 5, 1]])
    np.testing.assert_allclose(drawing.points_to_ink(points, lengths)[0],
                               [[0.25, 0, 1], [0.25, 0, 0], [0.5, 0, 1]])
    assert word == "line"


def test_raw_format_with_times_and_float_coordinates():
    line = ('{"word": "cat", "drawing": [[[1.5, 3.5, 2.0], [0.0, 4.0, 8.0], [0, 10, 20]], '
            '[[0.5], [2.0], [30]]]}')
    _, flat = drawing.parse_line(line)
    points, lengths = drawing.to_points([flat])
    np.testing.assert_array_equal(lengths, [4])
    np.testing.assert_allclose(drawing.points_to_ink(points)[0],
                               reference_ink([[[1.5, 3.5, 2.0], [0, 4, 8]], [[0.5], [2.0]]]))


def test_every_bad_line_of_the_corpus_is_skipped_with_its_reason():
    with open(os.path.join(BAD_INPUT, "cat.ndjson"), "rb") as f:
        lines = f.readlines()
    parsed = drawing.parse_lines(lines, expected_word="cat")
    assert len(parsed.lengths) == 28
    reasons = [reason for _, reason in parsed.skipped]
    assert len(reasons) == 17
    assert sorted(set(reasons)) == sorted({
        drawing.INVALID_JSON, drawing.BLANK_LINE, drawing.MISSING_WORD, drawing.NOT_AN_OBJECT,
        drawing.MISSING_DRAWING, drawing.TOO_FEW_POINTS, drawing.MALFORMED_DRAWING,
        drawing.NOT_NUMBERS, drawing.NON_FINITE, drawing.INVALID_UTF8})
    # The bad lines alternate with good ones: good lines are 0, 2, 4, ... up to 34, then 35...
    assert parsed.line_indices[:17] == list(range(0, 34, 2))


@pytest.mark.parametrize("line, reason", [
    (b'{"word":"cat","drawing":[[[0,NaN],[0,1]]]}', drawing.NON_FINITE),
    (b'{"word":"cat","drawing":[[[0,-Infinity],[0,1]]]}', drawing.NON_FINITE),
    (b'{"word":"cat","drawing":[[[0,1e39],[0,1]]]}', drawing.NON_FINITE),
    (b'{"word":"cat","drawing":[[["0","1"],[0,1]]]}', drawing.NOT_NUMBERS),
    (b'{"word":"cat","drawing":[[[[0],[1]],[0,1]]]}', drawing.NOT_NUMBERS),
    (b'{"word":"cat","drawing":[[[0,1],[0]]]}', drawing.MALFORMED_DRAWING),
    (b'{"word":"cat","drawing":{"x":[0,1]}}', drawing.MALFORMED_DRAWING),
    (b'{"word":"cat","drawing":[[[],[]],[[5],[5]]]}', drawing.TOO_FEW_POINTS),
    (b'{"word":"","drawing":[[[0,1],[0,1]]]}', drawing.MISSING_WORD),
    (b'{"word":"dog","drawing":[[[0,1],[0,1]]]}', drawing.WRONG_WORD),
    (b'\xef\xbb\xbf  \r\n', drawing.BLANK_LINE),
    (b'{"word":"cat","drawing":' + b"[" * 100000 + b"]" * 100000 + b"}", drawing.INVALID_JSON),
    (b'{"word":"cat","drawing":[[[' + b"[" * 500 + b"0" + b"]" * 500 + b",1],[0,1]]]}",
     drawing.NOT_NUMBERS),
])
def test_bad_lines_in_a_batch_are_attributed_to_the_right_line(line, reason):
    good = b'{"word":"cat","drawing":[[[0,1,2],[0,1,4]]]}\r\n'
    parsed = drawing.parse_lines([good, line, good], expected_word="cat")
    assert parsed.skipped == [(1, reason)]
    assert parsed.line_indices == [0, 2]
    np.testing.assert_array_equal(parsed.lengths, [3, 3])
