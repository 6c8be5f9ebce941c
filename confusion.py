"""The eval set's confusion matrix as a TensorBoard image, and the metric that accumulates it.

TensorBoard 2.15 shows an image in a box 215 pixels high and, its Time Series cards being at
least 335 wide, at least 301 wide (the Images tab: 350), shrunk to fit and drawn pixelated: a
shrunk pixel font loses rows and columns ("OWL" read "OUU"). So the image is drawn to fit
that box at its natural size. Up to LABELLED_CLASSES classes it is the matrix with the class
names beside its rows; beyond that a matrix cannot be read at that size, and the image lists
the most confused pairs and the least accurate classes. Text is drawn with a built-in 5x7
pixel font, so that rendering needs nothing but numpy.
"""

import numpy as np
import tensorflow as tf

WIDTH, HEIGHT = 301, 215
_MARGIN, _CHAR, _LINE, _ROW = 4, 6, 10, 9
_COLUMNS = (WIDTH - 2 * _MARGIN) // _CHAR  # characters a line
LABELLED_CLASSES = 20  # rows of _ROW pixels below a title and two-digit column numbers

# 5x7 glyphs: 7 rows of 5 bits, two hex digits a row. Lower case draws as upper case.
_GLYPHS = {
    "A": "0E1111111F1111", "B": "1E11111E11111E", "C": "0E11101010110E",
    "D": "1C12111111121C", "E": "1F10101E10101F", "F": "1F10101E101010",
    "G": "0E11101711110F", "H": "1111111F111111", "I": "0E04040404040E",
    "J": "0702020202120C", "K": "11121418141211", "L": "1010101010101F",
    "M": "111B1515111111", "N": "11111915131111", "O": "0E11111111110E",
    "P": "1E11111E101010", "Q": "0E11111115120D", "R": "1E11111E141211",
    "S": "0F10100E01011E", "T": "1F040404040404", "U": "1111111111110E",
    "V": "11111111110A04", "W": "1111111515150A", "X": "11110A040A1111",
    "Y": "1111110A040404", "Z": "1F01020408101F", "0": "0E11131519110E",
    "1": "040C040404040E", "2": "0E11010204081F", "3": "1F02040201110E",
    "4": "02060A121F0202", "5": "1F101E0101110E", "6": "0608101E11110E",
    "7": "1F010204080808", "8": "0E11110E11110E", "9": "0E11110F01020C",
    " ": "00000000000000", "-": "0000001F000000", ".": "00000000000C0C",
    "'": "0C040800000000", "%": "18190204081303", ">": "08040201020408",
    ":": "000C0C000C0C00", "(": "02040808080402", ")": "08040202020408",
    "_": "0000000000001F", "/": "00010204081000", ",": "000000000C0408",
    "?": "0E110102040004",
}
_FONT = {c: np.array([[(int(g[2 * r:2 * r + 2], 16) >> (4 - b)) & 1 for b in range(5)]
                      for r in range(7)], dtype=bool) for c, g in _GLYPHS.items()}


def text_mask(text):
    """A boolean [7, 6 * len(text)] image of one line of text."""
    glyphs = [_FONT.get(c.upper(), _FONT["?"]) for c in text]
    cells = [np.pad(g, ((0, 0), (0, 1))) for g in glyphs] or [np.zeros((7, 0), bool)]
    return np.concatenate(cells, axis=1)


def _write(canvas, text, top, left):
    """text in black, its top-left corner at (top, left), cut at the canvas's edges."""
    mask = text_mask(text)
    h = min(mask.shape[0], canvas.shape[0] - top)
    w = min(mask.shape[1], canvas.shape[1] - left)
    if h > 0 and w > 0:
        canvas[top:top + h, left:left + w][mask[:h, :w]] = 0


def _heat(fractions):
    """Row fractions in [0, 1] -> white (0) to dark blue (1) RGB."""
    f = fractions[..., None]
    return (255 * (1 - f) + np.array([8, 48, 107]) * f).astype(np.uint8)


def _cut(name, chars):
    return name if len(name) <= chars else name[:max(chars - 1, 1)] + "."


def _matrix(fractions, classes, title):
    n = len(classes)
    digits = len(str(n - 1))
    longest = digits + 1 + max(len(name) for name in classes)
    cell = min(14, max(6, (WIDTH - 2 * _MARGIN - 2 - _CHAR * longest) // n))
    label_chars = (WIDTH - 2 * _MARGIN - 2 - n * cell) // _CHAR
    labels = [f"{i:>{digits}} {_cut(name, label_chars - digits - 1)}"
              for i, name in enumerate(classes)]
    left = _MARGIN + _CHAR * max(len(label) for label in labels) + 2
    top = _MARGIN + _LINE + 8 * digits + 1
    canvas = np.full((top + n * _ROW + _MARGIN, WIDTH, 3), 255, np.uint8)
    _write(canvas, title, _MARGIN, _MARGIN)
    for j in range(n):  # predicted classes' numbers above the columns, digits stacked
        for k, digit in enumerate(f"{j:>{digits}}"):
            _write(canvas, digit, _MARGIN + _LINE + 8 * k, left + j * cell)
    for i, label in enumerate(labels):
        row = top + i * _ROW
        _write(canvas, label, row + 1, _MARGIN)
        for j in range(n):
            canvas[row:row + _ROW - 1, left + j * cell:left + (j + 1) * cell - 1] = _heat(
                fractions[i, j])
    return canvas


def _packed(entries, head):
    """entries joined by ", " after head, as lines of at most _COLUMNS characters."""
    lines, line = [], head
    for entry in entries:
        if len(line) + 2 + len(entry) > _COLUMNS and line != head:
            lines.append(line + ",")
            line = "  "
        line += ("" if line in (head, "  ") else ", ") + entry
    return lines + [line]


def _summary(confusion, fractions, classes, title):
    n = len(classes)
    recall = np.diag(fractions)
    least = [f"{_cut(classes[i], 20)} {100 * recall[i]:.0f}%"
             for i in np.argsort(recall, kind="stable")[:8]]
    worst = _packed(least, "least accurate: ")[:3]
    room = (HEIGHT - 2 * _MARGIN) // _LINE - len(worst) - 2
    lines = [title, "most confused (share of the true class):"]
    off_diagonal = fractions * (1 - np.eye(n))
    for flat in np.argsort(-off_diagonal, axis=None, kind="stable")[:room]:
        i, j = divmod(int(flat), n)
        if confusion[i, j] == 0:
            break
        share = f"{100 * fractions[i, j]:4.1f}% "
        names = _COLUMNS - len(share) - len(" -> ")
        first = _cut(classes[i], max(names // 2, names - len(classes[j])))
        lines.append(share + first + " -> " + _cut(classes[j], names - len(first)))
    lines += worst
    canvas = np.full((2 * _MARGIN + _LINE * len(lines), WIDTH, 3), 255, np.uint8)
    for k, line in enumerate(lines):
        _write(canvas, line, _MARGIN + _LINE * k, _MARGIN)
    return canvas


def render(confusion, classes):
    """confusion [true, predicted] counts -> an RGB uint8 image of at most HEIGHT x WIDTH."""
    confusion = np.asarray(confusion, dtype=np.int64)
    totals = confusion.sum(axis=1, keepdims=True)
    fractions = confusion / np.maximum(totals, 1)
    total = int(totals.sum())
    accuracy = 100 * np.trace(confusion) / max(total, 1)
    if len(classes) <= LABELLED_CLASSES:
        return _matrix(fractions, classes,
                       f"{accuracy:.1f}% of {total:,} right. row: true, col: guess")
    return _summary(confusion, fractions, classes, f"{accuracy:.1f}% of {total:,} drawings right")


def metric(labels, predicted, classes):
    """An eval_metric_ops entry: (a serialized image Summary, the op that accumulates)."""
    n = len(classes)
    total = tf.compat.v1.Variable(
        tf.zeros([n, n], tf.int64), trainable=False, name="confusion_matrix",
        collections=[tf.compat.v1.GraphKeys.LOCAL_VARIABLES,
                     tf.compat.v1.GraphKeys.METRIC_VARIABLES])
    update = total.assign_add(tf.math.confusion_matrix(labels, predicted, n, dtype=tf.int64))
    image = tf.numpy_function(lambda counts: render(counts, classes), [total.value()],
                              tf.uint8, stateful=False)
    image.set_shape([None, None, 3])
    return tf.compat.v1.summary.image("confusion_matrix", image[None], collections=[]), update
