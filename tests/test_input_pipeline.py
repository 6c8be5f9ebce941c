"""input_pipeline.py: bucketing changes which drawings share a batch, nothing else."""

import collections

import numpy as np
import tensorflow as tf

import input_pipeline
from input_pipeline import Augmentation
from conftest import eval_pattern, training_pattern
from data_format import read_examples


def drawings(dataset):
    """Counter of (label, ink bytes) over a dataset of batches, and the padding efficiency."""
    seen, real, padded = collections.Counter(), 0, 0
    for features, labels in dataset:
        ink, lengths = features["ink"].numpy(), features["lengths"].numpy()
        padded += ink.shape[0] * ink.shape[1]
        real += lengths.sum()
        for row, length, label in zip(ink, lengths, labels.numpy()):
            assert not row[length:].any(), "zero past the drawing's end"
            seen[(int(label), row[:length].tobytes())] += 1
    return seen, real / padded


def test_bucketed_eval_sees_every_drawing_once_with_less_padding(dataset):
    pattern = eval_pattern(dataset)
    expected = collections.Counter((c, ink.tobytes()) for c, ink in read_examples(pattern))
    plain, plain_efficiency = drawings(input_pipeline.input_fn(pattern, False, 32, bucket=False))
    bucketed, efficiency = drawings(input_pipeline.input_fn(pattern, False, 32, bucket=True))
    assert plain == bucketed == expected and sum(expected.values()) == 244
    assert efficiency > 0.85 > plain_efficiency


def test_training_batches_hold_the_real_drawings_cropped_only_when_asked(dataset):
    pattern = training_pattern(dataset)
    source = {ink.tobytes(): ink for _, ink in read_examples(pattern)}
    cropped = {ink[:30].tobytes() for ink in source.values()}
    for max_points, known in ((0, set(source)), (30, cropped)):
        batches = input_pipeline.input_fn(pattern, True, 16, seed=1, max_points=max_points)
        for features, labels in batches.take(40):
            lengths = features["lengths"].numpy()
            assert len(lengths) == 16 and (max_points == 0 or lengths.max() <= max_points)
            for row, length in zip(features["ink"].numpy(), lengths):
                assert row[:length].tobytes() in known
    # Lengths in a bucketed batch are alike: the spread is far below the data's.
    spreads = [np.ptp(f["lengths"].numpy()) for f, _ in
               input_pipeline.input_fn(pattern, True, 16, seed=1).take(40)]
    assert np.median(spreads) < 0.25 * np.ptp([len(i) for i in source.values()])


def test_same_seed_same_batches(dataset):
    pattern = training_pattern(dataset)

    def first_labels():
        return [labels.numpy().tolist() for _, labels in
                input_pipeline.input_fn(pattern, True, 8, seed=3).take(10)]
    assert first_labels() == first_labels()


def test_task_shards_split_the_training_data(dataset, tmp_path):
    # 2 files: by file for 2 tasks; by record for 3 (fewer files than tasks).
    pattern = training_pattern(dataset)
    every = collections.Counter(ink.tobytes() for _, ink in read_examples(pattern))
    for count in (2, 3):
        parts = []
        for index in range(count):
            seen = set()
            batches = input_pipeline.input_fn(pattern, True, 50, seed=index, bucket=False,
                                              shard=(index, count))
            for features, _ in batches.take(13):  # over an epoch of each part
                ink, lengths = features["ink"].numpy(), features["lengths"].numpy()
                seen.update(row[:n].tobytes() for row, n in zip(ink, lengths))
            parts.append(seen)
        assert sum(len(p) for p in parts) == len(set().union(*parts)), "no drawing shared"
        assert set().union(*parts) == set(every), "and none left out"


def augmented_batches(dataset, count, seed=7, **augment):
    """[(ink, lengths)] of the first `count` training batches of 16, with `augment`."""
    return [(f["ink"].numpy(), f["lengths"].numpy()) for f, _ in input_pipeline.input_fn(
        training_pattern(dataset), True, 16, seed=seed, augment=Augmentation(**augment)
    ).take(count)]


def test_augmentation_stretches_and_rotates_training_drawings_only(dataset):
    def batches(**augment):
        return augmented_batches(dataset, 6, seed=5, **augment)
    plain = batches()
    rotated = batches(rotation=30.0)
    stretched = batches(stretch=0.5)
    assert [b[1].tolist() for b in rotated] == [b[1].tolist() for b in plain]
    for (ink, lengths), (turned, _), (pulled, _) in zip(plain, rotated, stretched):
        # The pen column and the padding stay as they were; rotation keeps every step's
        # length and turns a drawing's steps by one angle within 30 degrees; stretching
        # scales x and y by one factor each in [0.5, 1.5].
        for augmented in (turned, pulled):
            np.testing.assert_array_equal(augmented[:, :, 2], ink[:, :, 2])
            for row, length in zip(augmented, lengths):
                assert not row[length:].any()
        np.testing.assert_allclose(np.linalg.norm(turned[:, :, :2], axis=2),
                                   np.linalg.norm(ink[:, :, :2], axis=2), atol=1e-5)
        for before, after, after_stretch, length in zip(ink, turned, pulled, lengths):
            moving = np.linalg.norm(before[:length, :2], axis=1) > 1e-3
            angles = (np.arctan2(after[:length, 1], after[:length, 0])
                      - np.arctan2(before[:length, 1], before[:length, 0]))[moving]
            angles = (angles + np.pi) % (2 * np.pi) - np.pi
            assert np.ptp(angles) < 1e-3 and abs(angles[0]) <= np.radians(30) + 1e-6
            for axis in (0, 1):
                moved = np.abs(before[:length, axis]) > 1e-3
                factors = after_stretch[:length, axis][moved] / before[:length, axis][moved]
                assert np.ptp(factors) < 1e-3 and 0.5 - 1e-6 <= factors[0] <= 1.5 + 1e-6
    assert not np.allclose(rotated[0][0], plain[0][0])
    # Seeded: the same seed gives the same augmented drawings.
    np.testing.assert_array_equal(batches(rotation=30.0)[3][0], rotated[3][0])
    # Evaluation data is never augmented.
    evals = [f["ink"].numpy() for f, _ in input_pipeline.input_fn(
        eval_pattern(dataset), False, 16, augment=Augmentation(rotation=30.0, stretch=0.5))]
    assert [e.tobytes() for e in evals] == [f["ink"].numpy().tobytes() for f, _ in
                                             input_pipeline.input_fn(eval_pattern(dataset),
                                                                     False, 16)]


def positions(row, length):
    """A drawing's points (but the first) relative to its first: the deltas summed."""
    return np.cumsum(row[:length, :2], axis=0)


def is_subsequence(points, of):
    """Whether `points` are some of the points `of`, in their order (within float error)."""
    start = 0
    for point in points:
        close = np.flatnonzero(np.abs(of[start:] - point).max(axis=1) < 1e-5)
        if not len(close):
            return False
        start += close[0] + 1
    return True


def strokes(row, length):
    return int(row[:length, 2].sum())


def test_dropped_points_and_strokes_leave_the_kept_points_where_they_were(dataset):
    pattern = training_pattern(dataset)

    def batches(**augment):
        return [(f["ink"].numpy(), f["lengths"].numpy(), labels.numpy()) for f, labels in
                input_pipeline.input_fn(pattern, True, 16, seed=7,
                                        augment=Augmentation(**augment)).take(8)]
    plain = batches()
    thinned = batches(dropped_points=0.5)
    fewer = batches(dropped_strokes=0.5)
    shaken = batches(jitter=0.01)
    dropped_points = dropped_strokes = kept_points = 0
    for (ink, lengths, labels), (thin, thin_lengths, thin_labels), (few, few_lengths, _) in zip(
            plain, thinned, fewer):
        assert (labels == thin_labels).all()
        for row, n, row_thin, n_thin, row_few, n_few in zip(
                ink, lengths, thin, thin_lengths, few, few_lengths):
            assert 1 <= n_thin <= n and 1 <= n_few <= n
            assert not row_thin[n_thin:].any() and not row_few[n_few:].any()
            before, after = positions(row, n), positions(row_thin, n_thin)
            # Every kept point is an original point, in order; the stroke ends and the last
            # point are all kept.
            assert is_subsequence(after, before)
            np.testing.assert_allclose(after[-1], before[-1], atol=1e-5)
            assert strokes(row_thin, n_thin) == strokes(row, n)
            dropped_points += n - n_thin
            kept_points += n_thin
            # Dropped strokes: the first stroke is whole, the others kept or left out whole.
            first = int(np.argmax(row[:n, 2] > 0.5)) + 1 if row[:n, 2].any() else n
            np.testing.assert_allclose(row_few[:first], row[:first], atol=1e-6)
            assert strokes(row_few, n_few) <= strokes(row, n)
            dropped_strokes += strokes(row, n) - strokes(row_few, n_few)
    assert 0.25 < dropped_points / (dropped_points + kept_points) < 0.5  # ends are kept
    assert dropped_strokes > 0
    # Jitter moves each point, not each delta: the positions' offsets have the asked spread.
    offsets = np.concatenate([positions(a, n) - positions(b, n) for (ink, lengths, _),
                              (jittered, _, _) in zip(plain, shaken)
                              for a, b, n in zip(jittered, ink, lengths)])
    assert 0.008 < offsets.std() < 0.012
    assert [b[1].tolist() for b in shaken] == [b[1].tolist() for b in plain]
    # Seeded like the rest.
    np.testing.assert_array_equal(batches(dropped_points=0.5)[2][0], thinned[2][0])


def stroke_points(row, length):
    """A drawing's points (but the first) split by stroke."""
    return np.split(positions(row, length), np.flatnonzero(row[:length - 1, 2] > 0.5) + 1)


def test_reversed_strokes_draw_whole_strokes_from_their_other_end(dataset):
    def batches(**augment):
        return augmented_batches(dataset, 8, **augment)
    eligible = flipped = 0
    for (ink, lengths), (flips, flip_lengths) in zip(batches(),
                                                     batches(reversed_strokes=0.5)):
        assert (lengths == flip_lengths).all()
        for row, flip, n in zip(ink, flips, lengths):
            assert not flip[n:].any()
            np.testing.assert_array_equal(flip[:, 2], row[:, 2])  # the ends stay ends
            before, after = stroke_points(row, n), stroke_points(flip, n)
            np.testing.assert_allclose(after[0], before[0], atol=1e-5)  # never the first
            for old, new in zip(before[1:], after[1:]):
                if len(old) > 1 and not np.allclose(new, old, atol=1e-5):
                    np.testing.assert_allclose(new, old[::-1], atol=1e-5)
                    flipped += 1
                eligible += len(old) > 1
    assert 0.35 < flipped / eligible < 0.65


def test_shuffled_strokes_draw_the_same_strokes_in_another_order(dataset):
    def batches(**augment):
        return augmented_batches(dataset, 40, **augment)
    shuffled = batches(shuffled_strokes=0.5)
    eligible = reordered = 0
    for (ink, lengths), (mixed, mixed_lengths) in zip(batches(), shuffled):
        assert (lengths == mixed_lengths).all()
        for row, new_row, n in zip(ink, mixed, lengths):
            assert not new_row[n:].any()
            assert strokes(new_row, n) == strokes(row, n)
            before, after = stroke_points(row, n), stroke_points(new_row, n)
            np.testing.assert_allclose(after[0], before[0], atol=1e-5)  # the first stays first
            # The same strokes, each whole and in its own point order: a permutation.
            unmatched = list(before[1:])
            for stroke in after[1:]:
                match = [i for i, old in enumerate(unmatched)
                         if old.shape == stroke.shape and np.allclose(old, stroke, atol=1e-5)]
                assert match, "a stroke that was not in the drawing"
                unmatched.pop(match[0])
            assert not unmatched
            if len(before) > 2:
                eligible += 1
                reordered += not all(old.shape == new.shape and np.allclose(old, new, atol=1e-5)
                                     for old, new in zip(before, after))
    # Half the drawings of 3 or more strokes drawn anew; a few come out in their own order.
    assert eligible > 60 and 0.3 < reordered / eligible < 0.6
    np.testing.assert_array_equal(batches(shuffled_strokes=0.5)[2][0], shuffled[2][0])  # seeded


def test_the_first_stroke_stays_whole_in_the_estimators_graph_mode(dataset):
    # The Estimator builds the pipeline in a TF1 graph, where `tensor == 0` is Python's
    # identity test (False), not elementwise: there the first stroke could be dropped (a
    # one-stroke drawing became empty) or moved, which eager tests did not see.
    augment = Augmentation(dropped_strokes=0.9, shuffled_strokes=0.9)
    with tf.Graph().as_default():
        batches = [tf.compat.v1.data.make_one_shot_iterator(input_pipeline.input_fn(
            training_pattern(dataset), True, 16, seed=7, augment=a)).get_next()[0]
            for a in (Augmentation(), augment)]
        with tf.compat.v1.Session() as session:
            for _ in range(8):
                plain, changed = session.run(batches)
                for row, new_row, n, new_n in zip(plain["ink"], changed["ink"],
                                                  plain["lengths"], changed["lengths"]):
                    first = stroke_points(row, n)[0]
                    assert new_n >= len(first)
                    np.testing.assert_allclose(stroke_points(new_row, new_n)[0], first,
                                               atol=1e-5)
