"""Which time loop is fastest for forward+backward through our cells, with and without XLA?

For each cell type it times one forward+backward pass (tf.GradientTape over all trainable variables and the initial
state, recurrent dropout on as in training) of:
  unroll      rnn.py's cell.unroll: tf.while_loop + TensorArray with the recurrent weights' gradients deferred to one
              matmul after the loop (rnn.with_deferred_weight_gradients)
  while_loop  the same loop with plain autodiff (the loops below use plain autodiff too)
  scan        tf.scan over the projected inputs (stacks the carried state at every step, as scan does)
  partial     tf.while_loop over T/k chunks of k python-unrolled steps
  python      the T steps fully unrolled in python inside tf.function
each in graph mode (tf.function) and with jit_compile=True, plus a TF1-structured baseline: the original sketch-rnn
cell code path (per-step concat([x, h])·[W_xh; W_hh], one matmul per hyper modulator, flat state split/joined every
step) run by tf.compat.v1.nn.dynamic_rnn in a v1 Graph/Session, gradients by tf.compat.v1.gradients.
Printed: median ms over --runs after --warmup calls (the first call's trace/compile time is shown separately) and
the speed-up against the baseline.

    python3 bench/rnn_unroll_bench.py                      # batch 100, T 250, N 512, input 133
    python3 bench/rnn_unroll_bench.py --cells=hyper --methods=while_loop,scan --modes=xla
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import utils  # noqa: E402

utils.tensorflow_startup()   # before TensorFlow is imported

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

import rnn  # noqa: E402

MODES = ("graph", "xla")
flags.DEFINE_list("cells", list(rnn.CELLS), "Cell types to time.")
flags.DEFINE_list("methods", ["unroll", "while_loop", "scan", "partial"],
                  "Time loops to time; 'python' (full unroll) is not a default: at T=250 its graph-mode run was "
                  "OOM-killed at 24 GB and XLA-compiling the hyper cell's unrolled graph took ~2 min already at T=20.")
flags.DEFINE_list("modes", list(MODES), "graph = tf.function; xla = tf.function(jit_compile=True).")
flags.DEFINE_bool("baseline", True, "Also time the TF1-structured dynamic_rnn baseline.")
flags.DEFINE_integer("batch", 100, "Batch size B.")
flags.DEFINE_integer("steps", 250, "Sequence length T.")
flags.DEFINE_integer("units", 512, "Cell size N.")
flags.DEFINE_integer("input_size", 133, "Input width (5 + z_size).")
flags.DEFINE_integer("chunk", 10, "Steps per while_loop iteration for the 'partial' method (must divide T).")
flags.DEFINE_integer("warmup", 1, "Untimed calls after the first (tracing) call.")
flags.DEFINE_integer("runs", 3, "Timed calls; the median is reported.")
FLAGS = flags.FLAGS

KEEP_PROB = 0.9


# ----------------------------------------------------------------------------------------------- time loops
# Each takes (cell, inputs [B, T, in], initial flat state) and returns (outputs [B, T, N], final flat state),
# stepping with the same cell internals as rnn.py's unroll so that only the loop construct differs.

def unroll_library(cell, inputs, state):
    return cell.unroll(inputs, state, training=True)


def unroll_while_loop(cell, inputs, state):
    num_steps = inputs.shape[1]
    x_proj = cell.project_inputs(tf.transpose(inputs, [1, 0, 2]))
    x_steps = tf.TensorArray(tf.float32, size=num_steps, element_shape=x_proj.shape[1:]).unstack(x_proj)
    h_steps = tf.TensorArray(tf.float32, size=num_steps, element_shape=[inputs.shape[0], cell.num_units])
    weights = cell._recurrent_weights()

    def body(t, h_steps, parts):
        h, parts = cell._step(weights, x_steps.read(t), parts, None, True)
        return t + 1, h_steps.write(t, h), parts

    _, h_steps, parts = tf.while_loop(lambda t, *_: t < num_steps, body,
                                      (tf.constant(0), h_steps, cell._split_state(state)),
                                      maximum_iterations=num_steps)
    return tf.transpose(h_steps.stack(), [1, 0, 2]), cell._join_state(parts)


def unroll_scan(cell, inputs, state):
    x_proj = cell.project_inputs(tf.transpose(inputs, [1, 0, 2]))
    weights = cell._recurrent_weights()

    def step(carry, x_t):
        return cell._step(weights, x_t, carry[1], None, True)

    parts = cell._split_state(state)
    h_steps, part_steps = tf.scan(step, x_proj, initializer=(tf.zeros_like(parts[0][:, :cell.num_units]), parts))
    return tf.transpose(h_steps, [1, 0, 2]), cell._join_state([p[-1] for p in part_steps])


def unroll_partial(cell, inputs, state):
    num_steps, k = inputs.shape[1], FLAGS.chunk
    x_proj = cell.project_inputs(tf.transpose(inputs, [1, 0, 2]))
    chunks = tf.reshape(x_proj, [num_steps // k, k] + x_proj.shape[1:])
    x_chunks = tf.TensorArray(tf.float32, size=num_steps // k, element_shape=chunks.shape[1:]).unstack(chunks)
    h_chunks = tf.TensorArray(tf.float32, size=num_steps // k, element_shape=[k, inputs.shape[0], cell.num_units])
    weights = cell._recurrent_weights()

    def body(t, h_chunks, parts):
        x_chunk, hs = x_chunks.read(t), []
        for s in range(k):
            h, parts = cell._step(weights, x_chunk[s], parts, None, True)
            hs.append(h)
        return t + 1, h_chunks.write(t, tf.stack(hs)), parts

    _, h_chunks, parts = tf.while_loop(lambda t, *_: t < num_steps // k, body,
                                       (tf.constant(0), h_chunks, cell._split_state(state)),
                                       maximum_iterations=num_steps // k)
    h_steps = tf.reshape(h_chunks.stack(), [num_steps, -1, cell.num_units])
    return tf.transpose(h_steps, [1, 0, 2]), cell._join_state(parts)


def unroll_python(cell, inputs, state):
    x_proj = cell.project_inputs(tf.transpose(inputs, [1, 0, 2]))
    weights = cell._recurrent_weights()
    parts, hs = cell._split_state(state), []
    for t in range(inputs.shape[1]):
        h, parts = cell._step(weights, x_proj[t], parts, None, True)
        hs.append(h)
    return tf.stack(hs, axis=1), cell._join_state(parts)


METHODS = {"unroll": unroll_library, "while_loop": unroll_while_loop, "scan": unroll_scan, "partial": unroll_partial,
           "python": unroll_python}


def forward_backward_fn(cell, unroll, jit_compile):
    """tf.function computing d/d(variables, state0) of Σ outputs·G + Σ final_state·G_s."""
    variables = cell.trainable_variables

    @tf.function(jit_compile=jit_compile)
    def forward_backward(inputs, state, upstream, upstream_state):
        with tf.GradientTape() as tape:
            tape.watch(state)
            outputs, final = unroll(cell, inputs, state)
            loss = tf.reduce_sum(outputs * upstream) + tf.reduce_sum(final * upstream_state)
        return tape.gradient(loss, variables + (state,))

    return forward_backward


def time_calls(call):
    """(seconds of the first call, median wall ms and median process-CPU s of FLAGS.runs calls after FLAGS.warmup
    more). CPU time is reported because the machine may be shared: it grows less than wall time under contention."""
    start = time.perf_counter()
    call()
    first = time.perf_counter() - start
    for _ in range(FLAGS.warmup):
        call()
    wall, cpu = [], []
    for _ in range(FLAGS.runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        call()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return first, 1000.0 * float(np.median(wall)), float(np.median(cpu))


def bench_method(kind, method, mode, data):
    cell = rnn.make_cell(kind, FLAGS.units, FLAGS.input_size, True, KEEP_PROB)
    fn = forward_backward_fn(cell, METHODS[method], jit_compile=(mode == "xla"))
    args = [tf.constant(a) for a in data]
    return time_calls(lambda: [g.numpy() for g in fn(*args)][-1])


# -------------------------------------------------------------------------------- TF1-structured baseline

class TF1StyleCell:
    """The original sketch-rnn cells' per-step computation, as a duck-typed RNNCell for dynamic_rnn."""

    def __init__(self, kind, num_units, input_size, hyper_num_units=256, hyper_embedding_size=32, name="cell"):
        self.kind, self.n = kind, num_units
        self.h_hyper, self.e = hyper_num_units, hyper_embedding_size
        hyper = kind == "hyper"
        self.state_size = 2 * (num_units + (hyper_num_units if hyper else 0))
        self.output_size = num_units
        with tf.compat.v1.variable_scope(name):
            self.w_xh = tf.Variable(rnn.glorot_uniform([input_size, 4 * num_units]), name="W_xh")
            self.w_hh = tf.Variable(rnn.lstm_orthogonal(num_units), name="W_hh")
            if kind != "layer_norm":
                self.bias = tf.Variable(tf.zeros([4 * num_units]), name="bias")
            if kind != "lstm":
                self.ln = [tf.Variable(tf.ones([4 * num_units])), tf.Variable(tf.zeros([4 * num_units])),
                           tf.Variable(tf.ones([num_units])), tf.Variable(tf.zeros([num_units]))]
            if hyper:
                self.hyper_cell = TF1StyleCell("layer_norm", hyper_num_units, input_size + num_units, name="hyper")
                e, h = hyper_embedding_size, hyper_num_units
                self.alpha = [(tf.Variable(tf.zeros([h, e])), tf.Variable(tf.ones([e])),
                               tf.Variable(tf.fill([e, num_units], 0.1 / e))) for _ in range(8)]
                self.beta = [(tf.Variable(tf.random.normal([h, e], stddev=0.01)),
                              tf.Variable(tf.zeros([e, num_units]))) for _ in range(4)]

    def zero_state(self, batch_size, dtype):
        return tf.zeros([batch_size, self.state_size], dtype)

    @staticmethod
    def _layer_norm(x, gamma=1.0, beta=0.0, epsilon=rnn.LN_EPSILON):
        """The original's layer norm over the last axis, as plain ops differentiated by TF1's autodiff."""
        mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
        return gamma * (x - mean) * tf.math.rsqrt(variance + epsilon) + beta

    def _ln_all(self, pre):
        gates = self._layer_norm(tf.reshape(pre, [-1, 4, self.n]))
        return self.ln[0] * tf.reshape(gates, [-1, 4 * self.n]) + self.ln[1]

    def _update(self, pre, c, dropout):
        i, j, f, o = tf.split(pre, 4, 1)
        g = tf.tanh(j)
        if dropout:
            g = tf.compat.v1.nn.dropout(g, keep_prob=KEEP_PROB)
        new_c = c * tf.sigmoid(f + 1.0) + tf.sigmoid(i) * g
        c_out = new_c if self.kind == "lstm" else self._layer_norm(new_c, self.ln[2], self.ln[3])
        return tf.tanh(c_out) * tf.sigmoid(o), new_c

    def _hyper_norm(self, layer, h_tilde, alpha, beta=None):
        z_w, b_z, a = alpha
        result = tf.matmul(tf.matmul(h_tilde, z_w) + b_z, a) * layer
        if beta is not None:
            result += tf.matmul(tf.matmul(h_tilde, beta[0]), beta[1])
        return result

    def __call__(self, x, state, dropout=True):
        n = self.n
        if self.kind == "lstm":
            c, h = tf.split(state, 2, 1)
            pre = tf.matmul(tf.concat([x, h], 1), tf.concat([self.w_xh, self.w_hh], 0)) + self.bias
            new_h, new_c = self._update(pre, c, dropout)
            return new_h, tf.concat([new_c, new_h], 1)
        if self.kind == "layer_norm":
            h, c = tf.split(state, 2, 1)
            pre = self._ln_all(tf.matmul(tf.concat([x, h], 1), tf.concat([self.w_xh, self.w_hh], 0)))
            new_h, new_c = self._update(pre, c, dropout)
            return new_h, tf.concat([new_h, new_c], 1)
        total_h, total_c = tf.split(state, 2, 1)
        h, c = total_h[:, :n], total_c[:, :n]
        hyper_state = tf.concat([total_h[:, n:], total_c[:, n:]], 1)
        h_tilde, hyper_new = self.hyper_cell(tf.concat([x, h], 1), hyper_state, dropout=False)
        xs, hs, bs = tf.split(tf.matmul(x, self.w_xh), 4, 1), tf.split(tf.matmul(h, self.w_hh), 4, 1), \
            tf.split(self.bias, 4, 0)
        pre = tf.concat([self._hyper_norm(xs[g], h_tilde, self.alpha[g])
                         + self._hyper_norm(hs[g], h_tilde, self.alpha[4 + g], self.beta[g]) + bs[g]
                         for g in range(4)], 1)
        new_h, new_c = self._update(self._ln_all(pre), c, dropout)
        hyper_h, hyper_c = tf.split(hyper_new, 2, 1)
        return new_h, tf.concat([new_h, hyper_h, new_c, hyper_c], 1)


def bench_baseline(kind, data):
    graph = tf.Graph()
    with graph.as_default():
        cell = TF1StyleCell(kind, FLAGS.units, FLAGS.input_size)
        inputs, state, upstream, upstream_state = [tf.constant(a) for a in data]
        outputs, final = tf.compat.v1.nn.dynamic_rnn(cell, inputs, initial_state=state, swap_memory=True)
        loss = tf.reduce_sum(outputs * upstream) + tf.reduce_sum(final * upstream_state)
        grads = tf.compat.v1.gradients(loss, tf.compat.v1.trainable_variables() + [state])
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            return time_calls(lambda: session.run(grads))


# -------------------------------------------------------------------------------------------------- main

def make_data(kind):
    """inputs [B, T, in], initial state [B, S], upstream gradients of the outputs [B, T, N] and final state [B, S]."""
    rng = np.random.default_rng(0)
    b, t, n = FLAGS.batch, FLAGS.steps, FLAGS.units
    state_size = 2 * (n + (256 if kind == "hyper" else 0))  # hyper_num_units = 256
    return [rng.standard_normal(shape).astype(np.float32) * scale
            for shape, scale in [([b, t, FLAGS.input_size], 1.0), ([b, state_size], 0.5), ([b, t, n], 1.0),
                                 ([b, state_size], 1.0)]]


def main(argv):
    del argv
    tf.get_logger().setLevel("ERROR")  # one tf.function per row: retracing warnings are expected
    if FLAGS.steps % FLAGS.chunk:
        raise app.UsageError("--chunk must divide --steps")
    for name, values, known in (("cells", FLAGS.cells, rnn.CELLS), ("methods", FLAGS.methods, METHODS),
                                ("modes", FLAGS.modes, MODES)):
        unknown = [v for v in values if v not in known]
        if unknown:
            raise app.UsageError(f"unknown --{name}: {', '.join(unknown)} (choose from {', '.join(known)})")
    print(f"forward+backward, batch {FLAGS.batch}, T {FLAGS.steps}, N {FLAGS.units}, input {FLAGS.input_size}, "
          f"recurrent dropout on; median of {FLAGS.runs} runs after {FLAGS.warmup} warm-up; "
          f"TF {tf.__version__}, {os.cpu_count()} CPUs")
    print(f"{'cell':<11}{'method':<18}{'mode':<6}{'median ms':>10}{'vs base':>9}{'cpu s':>7}{'first s':>9}"
          f"{'load':>6}")
    for kind in FLAGS.cells:
        data = make_data(kind)
        rows = [("tf1 dynamic_rnn", "v1", lambda: bench_baseline(kind, data))] if FLAGS.baseline else []
        rows += [(f"partial (k={FLAGS.chunk})" if method == "partial" else method, mode,
                  lambda method=method, mode=mode: bench_method(kind, method, mode, data))
                 for method in FLAGS.methods for mode in FLAGS.modes]
        base_ms = None
        for label, mode, run in rows:
            first, ms, cpu = run()
            base_ms = base_ms or (ms if FLAGS.baseline else None)
            ratio = f"{base_ms / ms:.2f}x" if base_ms else "-"
            print(f"{kind:<11}{label:<18}{mode:<6}{ms:>10.0f}{ratio:>9}{cpu:>7.1f}{first:>9.1f}"
                  f"{os.getloadavg()[0]:>6.1f}", flush=True)


if __name__ == "__main__":
    app.run(main)
