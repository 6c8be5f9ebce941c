"""The recurrent layers: which cell (an architecture choice: it decides the variables) apart
from which kernel runs it (a speed choice: all kernels of a cell read the same variables, so
a checkpoint trained with one runs with another).

Cells, in the Keras/cuDNN weight layout:
  lstm  gates i, f, c, o; the forget gate's bias starts at 1, nothing is added at run time;
  gru   Keras's reset_after GRU (the cuDNN one): gates z, r, h, input and recurrent biases.
Kernels:
  loop   a while loop of matmuls: any cell, any device (the lstm's gradient written by
         hand); what an exported gru runs;
  block  TensorFlow's fused op for a whole sequence (lstm: BlockLSTMV2; CPU and GPU
         kernels); what an exported lstm runs;
  cudnn  cuDNN's kernel (CudnnRNNV3) given each sequence's length, on a GPU; without a GPU
         visible, the loop;
  auto   cudnn when a GPU is visible, else the loop.

A new cell is one `Cell`: its variables, one step of its loop, its cuDNN mode, and any fused
kernels or hand-differentiated loop. Every kernel runs right-padded, time-major sequences;
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
    # (time-major x, weights) -> outputs: the loop kernel with a hand-written gradient;
    # without it, autodiff of `step`'s loop.
    recurrence: typing.Optional[typing.Callable] = None


def _lstm_step(x_t, state, recurrent_kernel, _):
    h, c = state
    i, f, g, o = tf.split(x_t + tf.matmul(h, recurrent_kernel), 4, axis=-1)
    c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
    h = tf.sigmoid(o) * tf.tanh(c)
    return h, (h, c)


def _lstm_recurrence(x, weights):
    """The LSTM over time-major x [time, batch, in] -> h [time, batch, units], with a
    hand-written gradient.

    Autodiff of the loop runs about three times the forward's ops a step and computes the
    recurrent kernel's gradient as one small matmul a step. Here the forward loop saves the
    activations it computes anyway; everything the backward pass can compute for all steps
    at once (the activations' derivatives) is computed outside its loop, whose steps are a
    matmul and a few products; the recurrent kernel's gradient is one large matmul after it.

    The gates come from one tanh a step, as sigmoid(z) = (tanh(z / 2) + 1) / 2 and
    TensorFlow's CPU sigmoid took twice a tanh's time here (a forward step 1.2x faster): the
    sigmoid gates' columns of the kernels and the bias are halved before the matmuls (small
    tensors, once a training step), so the loop runs on z' = z * scale.
    """
    kernel, recurrent_kernel, bias = weights
    units = recurrent_kernel.shape[0]
    # i, f, g, o: halved for the sigmoid gates, kept for the tanh one; activations are
    # tanh(z') * scale + offset.
    scale = tf.constant([0.5] * (2 * units) + [1.0] * units + [0.5] * units)
    offset = tf.constant([0.5] * (2 * units) + [0.0] * units + [0.5] * units)

    @tf.custom_gradient
    def run(projected, recurrent_kernel):
        # Few ops a step and no copies, as their count, not their arithmetic, bounds small
        # batches: a step is read as tensor[t] (a view of the whole tensor; no autodiff runs
        # through the loop, so this costs nothing in the gradient) and saves three tensors
        # as they are (a TensorArray write keeps the tensor): the gates before their split,
        # c and h. What else the gradient needs (tanh(c), the split gates) is computed
        # after the loop for all steps at once: each saved tensor is a loop variable and a
        # write a step, and seven of them made training 1.08x slower at batch 8 (as fast
        # at batch 64).
        steps = tf.shape(projected)[0]
        zeros = tf.zeros_like(projected[0][..., :units])

        def step(t, h, c, arrays):
            z = projected[t] + tf.matmul(h, recurrent_kernel)
            gates = tf.tanh(z) * scale + offset
            i, f, g, o = tf.split(gates, 4, axis=-1)
            c = f * c + i * g
            h = o * tf.tanh(c)
            saved = (gates, c, h)
            return t + 1, h, c, tuple(a.write(t, v) for a, v in zip(arrays, saved))

        _, _, _, arrays = tf.while_loop(
            lambda t, *_: t < steps, step,
            (0, zeros, zeros, tuple(tf.TensorArray(tf.float32, size=steps) for _ in range(3))))
        gates, cs, hs = (a.stack() for a in arrays)
        i, f, g, o = tf.split(gates, 4, axis=-1)
        tanh_c = tf.tanh(cs)

        def gradient(d_hs):
            c_prev = tf.concat([zeros[None], cs[:-1]], axis=0)
            # With dh and dc a step's gradients of h and c: dc += dh * through_h, and the
            # pre-activations' gradient is [dc, dc, dc, dh] * factors.
            through_h = o * (1 - tanh_c * tanh_c)
            # (The derivatives by z, divided by the scale: they are by z'.)
            factors = tf.concat([g * i * (1 - i), c_prev * f * (1 - f), i * (1 - g * g),
                                 tanh_c * o * (1 - o)], axis=-1) * (1 / scale)

            # Transposed once: a matmul with transpose_b=True ran 1.3x slower a step here.
            transposed_kernel = tf.transpose(recurrent_kernel)

            def back(t, dh_later, dc_later, dzs):
                dh = d_hs[t] + dh_later
                dc = dc_later + dh * through_h[t]
                dz = tf.concat([dc, dc, dc, dh], axis=-1) * factors[t]
                return t - 1, tf.matmul(dz, transposed_kernel), dc * f[t], dzs.write(t, dz)

            _, _, _, dzs = tf.while_loop(
                lambda t, *_: t >= 0, back,
                (steps - 1, zeros, zeros, tf.TensorArray(tf.float32, size=steps)))
            dzs = dzs.stack()
            h_prev = tf.concat([zeros[None], hs[:-1]], axis=0)
            return dzs, tf.matmul(tf.reshape(h_prev, [-1, units]),
                                  tf.reshape(dzs, [-1, 4 * units]), transpose_a=True)

        return hs, gradient

    return run(project(x, kernel * scale, bias * scale), recurrent_kernel * scale)


def _block_lstm(x, weights, lengths):
    kernel, recurrent_kernel, bias = weights
    units = recurrent_kernel.shape[0]
    zeros = tf.zeros([tf.shape(x)[1], units])
    no_peephole = tf.zeros([units])
    outputs = tf.raw_ops.BlockLSTMV2(
        seq_len_max=tf.cast(tf.reduce_max(lengths), tf.int64), x=x, cs_prev=zeros,
        h_prev=zeros, w=tf.concat([kernel, recurrent_kernel], axis=0), wci=no_peephole,
        wcf=no_peephole, wco=no_peephole, b=bias, use_peephole=False)
    return outputs[-1]  # h: [time, batch, units]


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
        fused={"block": _block_lstm}, recurrence=_lstm_recurrence),
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


def resolve_kernel(kernel):
    """The kernel that will run: auto and cudnn become the loop without a GPU."""
    if kernel in ("auto", "cudnn"):
        return "cudnn" if gpu_visible() else "loop"
    return kernel


def portable(cell_name):
    """What an exported model runs: a kernel every device has, as a SavedModel holding
    CudnnRNNV3 (what training on a GPU builds) could not run on a CPU. The lstm's fused op
    has CPU and GPU kernels and classifies one drawing 1.3-1.5x faster than the loop (one op
    a sequence instead of a dozen a step; measured with benchmarks/bench_serve.py)."""
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


def loop(cell, x, weights, autodiff=False):
    """The cell over time-major x [time, batch, in] as a while loop -> [time, batch, units].

    The input projection of all steps is one matmul before the loop. The loop reads its steps
    from a TensorArray: indexing a tensor instead makes each step's gradient a full-size
    tensor, quadratic in the length. autodiff: differentiate the loop of cell.step even if
    the cell has a hand-written recurrence (to check one against the other).
    """
    if cell.recurrence and not autodiff:
        return cell.recurrence(x, weights)
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
