"""recurrent.py: every kernel of a cell reads the same variables and computes the same
sequence; the cuDNN graph and its parameter buffer."""

import numpy as np
import pytest
import tensorflow as tf

import recurrent
from conftest import graph_op_types

UNITS, LAYERS = 16, 2


def sequences(seed=0, batch=5, longest=30, inputs=6):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, longest + 1, size=batch).astype(np.int32)
    lengths[0] = longest
    x = rng.normal(size=(batch, longest, inputs)).astype(np.float32)
    x[np.arange(longest) >= lengths[:, None]] = 0
    return x, lengths


def run_stack(cell, kernel, x, lengths, seed=5):
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.set_random_seed(seed)
        outputs = recurrent.bidirectional_stack(tf.constant(x), tf.constant(lengths), cell,
                                                UNITS, LAYERS, 0.0, kernel)
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            names = [(v.op.name, v.shape.as_list()) for v in tf.compat.v1.global_variables()]
            return session.run(outputs), names, graph


@pytest.mark.parametrize("cell, kernels", [("lstm", ("loop", "block", "cudnn")),
                                           ("gru", ("loop", "cudnn"))])
def test_kernels_of_a_cell_share_variables_and_agree(cell, kernels):
    x, lengths = sequences()
    results = {k: run_stack(cell, recurrent.resolve_kernel(cell, k), x, lengths)
               for k in kernels}
    outputs, names, _ = results["loop"]
    gates = recurrent.CELLS[cell].gates
    assert ("rnn/layer_1/bw/recurrent_kernel", [UNITS, gates * UNITS]) in names
    assert ("rnn/layer_0/fw/kernel", [6, gates * UNITS]) in names
    assert outputs.shape == (5, 30, 2 * UNITS)
    for kernel in kernels:
        other_outputs, other_names, _ = results[kernel]
        assert other_names == names
        valid = np.arange(30) < lengths[:, None]
        np.testing.assert_allclose(other_outputs[valid], outputs[valid], atol=2e-5)


def test_a_sequence_alone_and_in_a_padded_batch_agree():
    x, lengths = sequences()
    batched, _, _ = run_stack("gru", "loop", x, lengths)
    for i in (1, 2):
        alone, _, _ = run_stack("gru", "loop", x[i:i + 1, :lengths[i]], lengths[i:i + 1])
        np.testing.assert_allclose(batched[i, :lengths[i]], alone[0], atol=2e-5)


@pytest.mark.parametrize("cell", sorted(recurrent.CELLS))
def test_cudnn_kernel_runs_cudnn_with_each_sequences_length(cell):
    graph = tf.Graph()
    with graph.as_default():
        lengths = tf.compat.v1.placeholder(tf.int32, [None])
        x = tf.compat.v1.placeholder(tf.float32, [None, None, 6])
        recurrent.bidirectional_stack(x, lengths, cell, UNITS, LAYERS, 0.0, "cudnn")
    cudnn_ops = [op for op in graph.get_operations() if op.type == "CudnnRNNV3"]
    assert len(cudnn_ops) == 2 * LAYERS  # forward and backward, every layer
    # Input 4 is sequence_lengths, which cuDNN reads on the host: one tensor for every layer,
    # computed on the CPU from the lengths (not the padded width), and never 0.
    [sequence_lengths] = {op.inputs[4] for op in cudnn_ops}
    assert "CPU" in sequence_lengths.op.device
    for op in cudnn_ops:
        assert op.get_attr("rnn_mode") == cell.encode() and op.get_attr("time_major")
    source, seen = sequence_lengths.op, set()
    while source.type != "Placeholder" and source.name not in seen:
        seen.add(source.name)
        source = source.inputs[0].op
    assert source is lengths.op
    # Run just the lengths' ops: this CPU has no kernel for the rest.
    with tf.Graph().as_default():
        tf.import_graph_def(tf.compat.v1.graph_util.extract_sub_graph(
            graph.as_graph_def(), [sequence_lengths.op.name]), name="")
        with tf.compat.v1.Session() as session:
            assert session.run(sequence_lengths.name, {lengths.name: [0, 4]}).tolist() == [1, 4]
    # The backward direction reads the forward's input reversed within each length
    # (reverse_within, tested below).
    for forward, backward in zip(cudnn_ops[::2], cudnn_ops[1::2]):
        reversed_input = backward.inputs[0].op
        assert reversed_input.name.endswith("IdentityN")  # reverse_within's custom gradient
        assert forward.inputs[0] in list(reversed_input.inputs)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def cudnn_reference(cell, params_buffer, x, units):
    """cuDNN's documented LSTM and GRU, read from its parameter buffer: the input weights of
    each gate, then the recurrent ones (each [units, inputs], row-major), then the input and
    the recurrent biases. Gates: LSTM i, f, c, o; GRU r, z, h (h = tanh(W_h x + b_Wh +
    r * (R_h h + b_Rh)), h = (1 - z) * h' + z * h)."""
    gates, inputs = (4 if cell == "lstm" else 3), x.shape[-1]
    sizes = [units * inputs] * gates + [units * units] * gates + [units] * 2 * gates
    parts = np.split(params_buffer, np.cumsum(sizes)[:-1])
    W = [p.reshape(units, inputs) for p in parts[:gates]]
    R = [p.reshape(units, units) for p in parts[gates:2 * gates]]
    bw, br = parts[2 * gates:3 * gates], parts[3 * gates:]
    h, c, out = np.zeros(units), np.zeros(units), []
    for xt in x:
        if cell == "lstm":
            gate = [W[k] @ xt + R[k] @ h + bw[k] + br[k] for k in range(4)]
            c = sigmoid(gate[1]) * c + sigmoid(gate[0]) * np.tanh(gate[2])
            h = sigmoid(gate[3]) * np.tanh(c)
        else:
            r = sigmoid(W[0] @ xt + bw[0] + R[0] @ h + br[0])
            z = sigmoid(W[1] @ xt + bw[1] + R[1] @ h + br[1])
            candidate = np.tanh(W[2] @ xt + bw[2] + r * (R[2] @ h + br[2]))
            h = (1 - z) * candidate + z * h
        out.append(h)
    return np.array(out)


@pytest.mark.parametrize("cell", sorted(recurrent.CELLS))
def test_cudnn_parameter_buffer_gives_the_same_cell_as_the_loop(cell):
    """No GPU here: the buffer handed to cuDNN, read back by cuDNN's documented layout,
    must compute what the loop computes from the same variables."""
    units, inputs, steps = 5, 3, 7
    rng = np.random.default_rng(0)
    x = rng.normal(size=(steps, inputs)).astype(np.float32)
    graph = tf.Graph()
    with graph.as_default():
        with tf.compat.v1.variable_scope("fw"):
            weights = recurrent.make_weights(recurrent.CELLS[cell], inputs, units)
        buffer = recurrent.cudnn_params(recurrent.CELLS[cell], weights)
        loop = recurrent.loop(recurrent.CELLS[cell], tf.constant(x[:, None, :]), weights)[:, 0]
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            # Non-zero biases everywhere, so that a misplaced one shows.
            session.run(weights[2].assign(rng.normal(size=weights[2].shape).astype(np.float32)))
            buffer_value, loop_value = session.run([buffer, loop])
    np.testing.assert_allclose(cudnn_reference(cell, buffer_value, x, units), loop_value,
                               atol=1e-5)


def test_lstm_block_kernels_hand_written_gradient_matches_autodiff_of_the_loop():
    x, lengths = sequences(seed=3)
    x = np.transpose(x, [1, 0, 2])  # time-major
    rng = np.random.default_rng(4)
    cell = recurrent.CELLS["lstm"]
    weights = [tf.constant(rng.normal(scale=0.4, size=shape).astype(np.float32))
               for shape in ([6, 4 * UNITS], [UNITS, 4 * UNITS], [4 * UNITS])]
    # A loss that weighs each valid output differently, as the model's masked sum does
    upstream = rng.normal(size=(30, 5, UNITS)).astype(np.float32)
    upstream[np.arange(30)[:, None] >= lengths] = 0
    results = []
    for kernel in ("block", "loop"):
        with tf.Graph().as_default():
            inputs = tf.constant(x)
            tensors = [tf.constant(w) for w in weights]
            if kernel == "block":
                outputs = cell.fused["block"](inputs, tensors, tf.constant(lengths))
            else:
                outputs = recurrent.loop(cell, inputs, tensors)
            loss = tf.reduce_sum(outputs * upstream)
            grads = tf.gradients(loss, [inputs] + tensors)
            types = graph_op_types(tf.compat.v1.get_default_graph().as_graph_def())
            with tf.compat.v1.Session() as session:
                results.append((session.run([outputs] + grads), types))
    (custom, custom_types), (reference, reference_types) = results
    assert {"BlockLSTMV2", "LSTMBlockCellGrad"} <= custom_types
    assert "BlockLSTMGradV2" not in custom_types and "LSTMBlockCellGrad" not in reference_types
    for got, expected in zip(custom, reference):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_dropout_mask_keeps_the_share_asked_scaled_up():
    with tf.Graph().as_default():
        tf.compat.v1.set_random_seed(0)
        mask = recurrent.dropout_mask([3, 200, 256], 0.3)
        with tf.compat.v1.Session() as session:
            value = session.run(mask)
    assert value.shape == (3, 200, 256)
    np.testing.assert_allclose(np.unique(value), [0, 1 / 0.7], rtol=1e-6)
    assert abs((value > 0).mean() - 0.7) < 0.01
    # layers draw different masks
    assert (value[0] != value[1]).mean() > 0.3


def test_dropout_mask_of_an_odd_size_and_a_rate_near_one_and_reproducible_from_the_seed():
    values = []
    for _ in range(2):
        with tf.Graph().as_default():
            tf.compat.v1.set_random_seed(3)
            masks = recurrent.dropout_mask([5, 7, 3], 0.5), recurrent.dropout_mask([2000], 0.999999)
            with tf.compat.v1.Session() as session:
                values.append(session.run(masks))
    (odd, near_one), (odd_again, _) = values
    assert odd.shape == (5, 7, 3) and 0.3 < (odd > 0).mean() < 0.7
    np.testing.assert_array_equal(odd, odd_again)
    assert (near_one > 0).sum() <= 2


def test_reverse_within_lengths_is_reverse_sequence_and_so_is_its_gradient():
    x, lengths = sequences(seed=6)
    x = np.transpose(x, [1, 0, 2])  # time-major
    upstream = np.random.default_rng(7).normal(size=x.shape).astype(np.float32)
    with tf.Graph().as_default():
        inputs = tf.constant(x)
        ours = recurrent.reverse_within(inputs, recurrent.reversal(tf.constant(lengths), 30))
        reference = tf.reverse_sequence(inputs, lengths, seq_axis=0, batch_axis=1)
        gradients = [tf.gradients(tf.reduce_sum(y * upstream), inputs)[0]
                     for y in (ours, reference)]
        with tf.compat.v1.Session() as session:
            (ours, reference), (our_gradient, reference_gradient) = session.run(
                [(ours, reference), gradients])
    np.testing.assert_array_equal(ours, reference)
    np.testing.assert_array_equal(our_gradient, reference_gradient)
    assert not np.array_equal(ours, x)
