"""The recurrent layers: which cell (an architecture choice: it decides the variables) apart
from which kernel runs it (a speed choice: all kernels of a cell read the same variables, so
a checkpoint trained with one runs with another).

Cells, in the Keras/cuDNN weight layout:
  lstm  gates i, f, c, o; the forget gate's bias starts at 1, nothing is added at run time;
  gru   Keras's reset_after GRU (the cuDNN one): gates z, r, h, input and recurrent biases.
Kernels:
  loop   a while loop of the cell's step, differentiated by TensorFlow: any cell, any
         device; what the gru runs without a GPU;
  block  TensorFlow's fused op for a whole sequence with a gradient written by hand (lstm:
         BlockLSTMV2; CPU and GPU kernels); what the lstm runs without a GPU;
  cudnn  cuDNN's kernel (CudnnRNNV3) given each sequence's length, on a GPU; without a GPU
         visible, what auto runs there;
  auto   cudnn when a GPU is visible, else the cell's fused kernel if it has one, else the
         loop: what exports run, whatever trained them.

A new cell is one `Cell`: its variables, one step of its loop, its cuDNN mode, and any fused
kernels. Every kernel runs right-padded, time-major sequences;
`bidirectional_stack` reverses each sequence within its own length for the backward
direction, so padding never reaches a valid step.
"""

import dataclasses
import glob
import typing

import tensorflow as tf

from cli import UserError

KERNELS = ("auto", "loop", "block", "cudnn")


@dataclasses.dataclass(frozen=True)
class Cell:
    gates: int              # blocks of `units` columns in kernel and recurrent_kernel
    make_bias: typing.Callable   # units -> the bias variable's initial value
    split_bias: typing.Callable  # bias -> (input bias, recurrent bias or None if it has none)
    state_size: int         # tensors in the loop's state, each [batch, units]
    step: typing.Callable   # (x_t @ kernel + input bias, state, recurrent_kernel,
                            #  recurrent bias) -> (output h, new state)
    cudnn_mode: str         # CudnnRNNV3's rnn_mode
    cudnn_order: tuple      # cuDNN's order of the gate blocks, as indices of ours
    fused: dict = dataclasses.field(default_factory=dict)  # kernel -> fn(x, weights, lengths)


def _lstm_step(x_t, state, recurrent_kernel, _):
    h, c = state
    i, f, g, o = tf.split(x_t + tf.matmul(h, recurrent_kernel), 4, axis=-1)
    c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
    h = tf.sigmoid(o) * tf.tanh(c)
    return h, (h, c)


def _swap_f_g(tensor):
    """The gate blocks of the last axis from the kernels' order (i, f, g, o) to the one-step
    fused ops' (i, g, f, o), and back: the swap is its own inverse. (A gather of the columns
    took 30x as long.)"""
    i, f, g, o = tf.split(tensor, 4, axis=-1)
    return tf.concat([i, g, f, o], axis=-1)


def _block_lstm(x, weights, _lengths):
    """The LSTM over time-major x [time, batch, in] -> h [time, batch, units], every step
    run (the lengths are not needed).

    Forward, TensorFlow's fused op for the whole sequence (BlockLSTMV2; CPU and GPU kernels):
    it keeps every activation the gradient needs. The gradient is written by hand: a loop of
    TensorFlow's fused one-step LSTM gradient (LSTMBlockCellGrad) and one matmul a step, the
    weights' gradients as large matmuls after it. TensorFlow's own gradient of the fused op
    (BlockLSTMGradV2) computes those as small matmuls every step (a layer's forward and
    gradient 1.3x slower at batch 64, 3.3x at 8), and autodiff of a loop of the step runs
    about three times the forward's ops a step.
    """
    kernel, recurrent_kernel, bias = weights
    units = recurrent_kernel.shape[0]

    @tf.custom_gradient
    def run(x, kernel, recurrent_kernel, bias):
        steps, batch = tf.unstack(tf.shape(x)[:2])
        zeros = tf.zeros(tf.stack([batch, units]))
        no_peephole = tf.zeros([units])
        # All steps: past seq_len_max the op leaves the gates unset, which the gradient reads.
        i, cs, f, o, g, tanh_c, hs = tf.raw_ops.BlockLSTMV2(
            seq_len_max=tf.cast(steps, tf.int64), x=x, cs_prev=zeros,
            h_prev=zeros, w=tf.concat([kernel, recurrent_kernel], axis=0), wci=no_peephole,
            wcf=no_peephole, wco=no_peephole, b=bias, use_peephole=False)

        def gradient(d_hs):
            no_input = tf.zeros(tf.stack([batch, 0]))
            c_prev = tf.concat([zeros[None], cs[:-1]], axis=0)
            recurrent_swapped = _swap_f_g(recurrent_kernel)
            # Transposed once: a matmul with transpose_b=True ran 1.3x slower a step here.
            recurrent_swapped_t = tf.transpose(recurrent_swapped)

            def back(t, dh_later, dc_later, dzs):
                # x, h_prev, w and b only give the op its shapes (x is [batch, 0]).
                dc, dz, _, _, _ = tf.raw_ops.LSTMBlockCellGrad(
                    x=no_input, cs_prev=c_prev[t], h_prev=zeros, w=recurrent_swapped,
                    wci=no_peephole, wcf=no_peephole, wco=no_peephole, b=bias, i=i[t],
                    cs=cs[t], f=f[t], o=o[t], ci=g[t], co=tanh_c[t], cs_grad=dc_later,
                    h_grad=d_hs[t] + dh_later, use_peephole=False)
                return t - 1, tf.matmul(dz, recurrent_swapped_t), dc, dzs.write(t, dz)

            _, _, _, dzs = tf.while_loop(
                lambda t, *_: t >= 0, back,
                (steps - 1, zeros, zeros, tf.TensorArray(tf.float32, size=steps)))
            dzs = tf.reshape(dzs.stack(), [-1, 4 * units])  # gates i, g, f, o
            # The first step's h_prev is zero: the recurrent kernel's gradient skips it, so
            # both operands are views (the first step's rows and the last's cut off). The
            # bias's gradient is a matmul too: reduce_sum over rows ran slower here (both
            # 1.03x at batch 64).
            h_prev = tf.reshape(hs[:-1], [-1, units])
            # The small tensors are swapped to match dzs, not dzs to match them.
            d_x = tf.matmul(dzs, _swap_f_g(kernel), transpose_b=True)
            d_weights = (tf.matmul(tf.reshape(x, [-1, x.shape[-1]]), dzs, transpose_a=True),
                         tf.matmul(h_prev, dzs[batch:], transpose_a=True),
                         tf.matmul(tf.ones(tf.stack([1, steps * batch])), dzs)[0])
            return (tf.reshape(d_x, tf.shape(x)), *(_swap_f_g(d) for d in d_weights))

        return hs, gradient

    return run(x, kernel, recurrent_kernel, bias)


def _gru_step(x_t, state, recurrent_kernel, recurrent_bias):
    (h,) = state
    x_z, x_r, x_h = tf.split(x_t, 3, axis=-1)
    h_z, h_r, h_h = tf.split(tf.matmul(h, recurrent_kernel) + recurrent_bias, 3, axis=-1)
    z = tf.sigmoid(x_z + h_z)
    r = tf.sigmoid(x_r + h_r)
    h = z * h + (1 - z) * tf.tanh(x_h + r * h_h)  # reset after the recurrent matmul
    return h, (h,)


CELLS = {
    "lstm": Cell(
        gates=4,
        make_bias=lambda units: tf.concat([tf.zeros([units]), tf.ones([units]),
                                           tf.zeros([2 * units])], axis=0),
        split_bias=lambda bias: (bias, None),  # one bias, added to the input projection
        state_size=2, step=_lstm_step, cudnn_mode="lstm", cudnn_order=(0, 1, 2, 3),
        fused={"block": _block_lstm}),
    "gru": Cell(
        gates=3,
        make_bias=lambda units: tf.zeros([2 * 3 * units]),
        split_bias=lambda bias: tuple(tf.split(bias, 2)),
        state_size=1, step=_gru_step, cudnn_mode="gru", cudnn_order=(1, 0, 2)),
}


def check_kernel(cell_name, kernel):
    if kernel not in ("auto", "loop", "cudnn") and kernel not in CELLS[cell_name].fused:
        raise UserError(f"--rnn_kernel={kernel} has no {cell_name} version; use loop, cudnn "
                        f"or auto")


def gpu_visible():
    return bool(tf.config.list_logical_devices("GPU"))


def resolve_kernel(cell_name, kernel):
    """The kernel that will run: auto and cudnn become cudnn with a GPU visible, else what
    an export runs."""
    if kernel in ("auto", "cudnn"):
        return "cudnn" if gpu_visible() else portable(cell_name)
    return kernel


def portable(cell_name):
    """What an exported model runs: a kernel every device has, as a SavedModel holding
    CudnnRNNV3 (what training on a GPU builds) could not run on a CPU; on a CPU also the
    fastest. The lstm's fused op has CPU and GPU kernels, classifies one drawing 1.3-1.5x
    faster than a loop (one op a sequence instead of a dozen a step; measured with
    benchmarks/bench_serve.py) and, with its gradient, trains faster (docs/design.md)."""
    return "block" if "block" in CELLS[cell_name].fused else "loop"


def why_no_gpu():
    """Why TensorFlow sees no GPU, in a few words, for a one-line message."""
    if not tf.test.is_built_with_cuda():
        return ("this TensorFlow is built without GPU support (on Linux: pip install "
                "'tensorflow[and-cuda]==2.15.1')")
    return ("TensorFlow found no GPU it can use: check the NVIDIA driver (nvidia-smi) and "
            "the CUDA libraries (pip install 'tensorflow[and-cuda]==2.15.1'); "
            "TF_CPP_MIN_LOG_LEVEL=0 shows what failed to load")


def gpu_present_but_unused():
    """An NVIDIA device file with no GPU visible to TensorFlow: a GPU that failed to load."""
    return bool(glob.glob("/dev/nvidia[0-9]*")) and not gpu_visible()


def make_weights(cell, input_size, units):
    """(kernel [in, gates * units], recurrent_kernel [units, gates * units], bias), created
    in the current variable scope."""
    kernel = tf.compat.v1.get_variable(
        "kernel", [input_size, cell.gates * units],
        initializer=tf.compat.v1.glorot_uniform_initializer())
    recurrent_kernel = tf.compat.v1.get_variable(
        "recurrent_kernel", [units, cell.gates * units],
        initializer=tf.compat.v1.orthogonal_initializer())
    bias = tf.compat.v1.get_variable("bias", initializer=cell.make_bias(units))
    return kernel, recurrent_kernel, bias


def project(x, kernel, bias):
    """x [time, batch, in] @ kernel + bias, for all steps in one matmul."""
    return tf.reshape(tf.matmul(tf.reshape(x, [-1, x.shape[-1]]), kernel) + bias,
                      tf.concat([tf.shape(x)[:2], [-1]], 0))


def loop(cell, x, weights):
    """The cell over time-major x [time, batch, in] as a while loop -> [time, batch, units].

    The input projection of all steps is one matmul before the loop. The loop reads its steps
    from a TensorArray: indexing a tensor instead makes each step's gradient a full-size
    tensor, quadratic in the length.
    """
    kernel, recurrent_kernel, bias = weights
    input_bias, recurrent_bias = cell.split_bias(bias)
    steps, batch = tf.unstack(tf.shape(x)[:2])
    projected = project(x, kernel, input_bias)
    inputs = tf.TensorArray(tf.float32, size=steps).unstack(projected)
    zeros = tf.zeros(tf.stack([batch, recurrent_kernel.shape[0]]))

    def step(t, state, outputs):
        h, state = cell.step(inputs.read(t), state, recurrent_kernel, recurrent_bias)
        return t + 1, state, outputs.write(t, h)

    outputs = tf.TensorArray(tf.float32, size=steps)
    _, _, outputs = tf.while_loop(lambda t, *_: t < steps, step,
                                  (0, (zeros,) * cell.state_size, outputs))
    return outputs.stack()


def cudnn_params(cell, weights):
    """Keras-layout weights -> cuDNN's opaque parameter buffer for one direction.

    cuDNN's layout: the input weights of each gate, then their recurrent weights, each
    [units, inputs] row-major, in cuDNN's gate order; then the input biases and the recurrent
    biases in the same order.
    """
    kernel, recurrent_kernel, bias = weights

    def in_cudnn_order(tensor, axis):
        blocks = tf.split(tensor, cell.gates, axis=axis)
        return [blocks[k] for k in cell.cudnn_order]

    matrices = in_cudnn_order(kernel, 1) + in_cudnn_order(recurrent_kernel, 1)
    input_bias, recurrent_bias = cell.split_bias(bias)
    if recurrent_bias is None:
        recurrent_bias = tf.zeros_like(input_bias)
    biases = in_cudnn_order(input_bias, 0) + in_cudnn_order(recurrent_bias, 0)
    return tf.concat([tf.reshape(tf.transpose(m), [-1]) for m in matrices] + biases, axis=0)


def cudnn_lengths(lengths):
    """What CudnnRNNV3 reads as sequence lengths: it reads them in host memory, so they are
    computed there, once for every layer, rather than copied back from the GPU each time; and
    at least 1, as cuDNN refuses an empty sequence (an empty drawing's outputs are masked)."""
    with tf.device("/cpu:0"):
        return tf.maximum(tf.cast(lengths, tf.int32), 1)


def cudnn(cell, x, weights, lengths):
    """lengths: as cudnn_lengths gives."""
    zeros = tf.zeros([1, tf.shape(x)[1], weights[1].shape[0]])
    outputs, _, _, _, _ = tf.raw_ops.CudnnRNNV3(
        input=x, input_h=zeros, input_c=zeros, params=cudnn_params(cell, weights),
        sequence_lengths=lengths, rnn_mode=cell.cudnn_mode, time_major=True,
        is_training=True)
    return outputs


def _run(cell, kernel, x, weights, lengths):
    if kernel == "loop":
        return loop(cell, x, weights)
    if kernel == "cudnn":
        return cudnn(cell, x, weights, lengths)
    return cell.fused[kernel](x, weights, lengths)


def dropout_mask(shape, rate):
    """Inverted dropout's mask: 1 / (1 - rate) where kept, else 0.

    Each element is 16 random bits (a rate within 2**-16 of the one asked): one 32-bit draw
    serves two elements, and the draw, not the arithmetic, is the cost (a float per element
    took 1.6x as long here, 6% of a training step at batch 64)."""
    size = tf.reduce_prod(shape)
    seed = tf.random.uniform([2], maxval=tf.int32.max, dtype=tf.int32)
    bits = tf.random.stateless_uniform([(size + 1) // 2], seed, minval=None, maxval=None,
                                       dtype=tf.uint32)
    halves = tf.reshape(tf.bitcast(bits, tf.uint16), [-1])[:size]
    threshold = min(int(round(rate * 2 ** 16)), 2 ** 16 - 1)
    return tf.cast(tf.reshape(halves, shape) >= threshold, tf.float32) / (1 - rate)


def reversal(lengths, steps):
    """The rows of a time-major [steps * batch, ...] tensor that reverse each sequence within
    its length (padding stays where it is): what reverse_within gathers."""
    t = tf.range(steps)[:, None]
    source = tf.where(t < lengths[None, :], lengths[None, :] - 1 - t, t)
    return tf.reshape(source * tf.size(lengths) + tf.range(tf.size(lengths))[None, :], [-1])


@tf.custom_gradient
def reverse_within(x, rows):
    """tf.reverse_sequence(x, lengths, seq_axis=0, batch_axis=1) for time-major x, as one
    gather of the rows reversal(lengths) gives: 4.7x faster here for [53, 64, 256]. The
    reversal is its own inverse, so its gradient is the same gather (a gather's own would
    sum scattered slices)."""
    def gather(tensor):
        rows_first = tf.reshape(tensor, tf.concat([[-1], tf.shape(tensor)[2:]], 0))
        return tf.reshape(tf.gather(rows_first, rows), tf.shape(tensor))
    return gather(x), lambda upstream: (gather(upstream), None)


def bidirectional_stack(x, lengths, cell_name, units, num_layers, dropout, kernel):
    """x [batch, time, in] -> [batch, time, 2 * units]; only valid steps are meaningful.

    lengths: [batch] valid steps; dropout: rate after each layer (0 when not training);
    kernel: loop, block or cudnn (as resolve_kernel gives; cudnn needs a GPU to run, not to
    be built). Variables: rnn/layer_<i>/{fw,bw}/{kernel,recurrent_kernel,bias}.
    """
    cell = CELLS[cell_name]
    x = tf.transpose(x, [1, 0, 2])  # time-major: what all kernels take
    kernel_lengths = cudnn_lengths(lengths) if kernel == "cudnn" else lengths
    rows = reversal(lengths, tf.shape(x)[0])
    if dropout > 0:
        # All layers' masks at once, from the input's shape, so the draw runs beside the
        # first layer; drawn from the shape of the layer before, between two layers, it
        # stalled the stack (this 1.03-1.09x faster at batch 32 and 64).
        kept = dropout_mask(tf.concat([[num_layers], tf.shape(x)[:2], [2 * units]], 0), dropout)
    for layer in range(num_layers):
        with tf.compat.v1.variable_scope(f"rnn/layer_{layer}"):
            weights = []
            for direction in ("fw", "bw"):
                with tf.compat.v1.variable_scope(direction):
                    weights.append(make_weights(cell, x.shape[-1], units))
            # Each sequence reversed within its length: the backward direction also starts
            # on real points and meets the padding only at the end.
            # The two directions are independent ops, so that two cores run them at once.
            forward = _run(cell, kernel, x, weights[0], kernel_lengths)
            backward = _run(cell, kernel, reverse_within(x, rows), weights[1], kernel_lengths)
            backward = reverse_within(backward, rows)
            x = tf.concat([forward, backward], axis=-1)
            if dropout > 0:
                x = x * kept[layer]
    return tf.transpose(x, [1, 0, 2])
