"""Recurrent cells of the sketch decoders and of the sketch-rnn encoder (docs/model.md#recurrent-cells,
#implementation-notes).

LSTMCell, LayerNormLSTMCell and HyperLSTMCell (Ha et al. 2016) reproduce magenta sketch-rnn's cells: gate order
(i, j, f, o), forget bias 1 inside the sigmoid, recurrent dropout without memory loss (Semeniuta et al. 2016: inverted
dropout on tanh(j) only, fresh mask every step, training only) and one flat state tensor per cell in the original
layouts, LSTM [c, h], LayerNorm [h, c], Hyper [h, h_hyper, c, c_hyper].

Speed (bench/rnn_unroll_bench.py): `unroll` projects the inputs of all steps with one matmul before the time loop,
carries the state parts separately, computes the HyperLSTM's twelve modulator embeddings and their rank-E
expansions with two batched matmuls laid out gate-major, and turns the per-step weight gradients of the recurrent
products that add to the projected inputs into one matmul after the loop (with_deferred_weight_gradients). It
backpropagates through the recurrent products with transposes made once per unroll (recurrent_matmul) and, given
lengths, stops after the longest sequence as TF1's dynamic_rnn does. The loop is tf.while_loop + TensorArray in
graph mode: tf.scan and a partially unrolled loop under XLA were no faster, the while/scan loops under XLA were
1.5-4x slower (XLA's CPU matmuls), and a fully python-unrolled loop ran out of memory at T = 250.
The maths is the original's; only the summation order of the matmuls differs.
"""
import tensorflow as tf

FORGET_BIAS = 1.0
LN_EPSILON = 1e-3
NUM_GATES = 4  # (i, j, f, o)


def glorot_uniform(shape):
    """TF1's default initialiser: U(±sqrt(6 / (fan_in + fan_out))) for a [fan_in, fan_out] matrix."""
    limit = (6.0 / (shape[0] + shape[1])) ** 0.5
    return tf.random.uniform(shape, -limit, limit)


def orthogonal(n):
    """An n×n orthogonal matrix: the U of the SVD of a standard-normal matrix."""
    _, u, _ = tf.linalg.svd(tf.random.normal([n, n]))
    return u


def lstm_orthogonal(n):
    """W_hh [n, 4n]: four independent orthogonal n×n blocks, one per gate."""
    return tf.concat([orthogonal(n) for _ in range(NUM_GATES)], axis=1)


def sum_to_shape(g, shape):
    """g summed over the axes along which a tensor of static `shape` was broadcast to g's shape (size 1 or absent)."""
    padded = [1] * (g.shape.rank - len(shape)) + list(shape)
    axes = [axis for axis, (size, g_size) in enumerate(zip(padded, g.shape)) if size == 1 and g_size != 1]
    return tf.reshape(tf.reduce_sum(g, axis=axes), shape)


def layer_norm(x, gamma, beta, epsilon=LN_EPSILON):
    """Over the last axis: y = γ·x̂ + β with x̂ = (x − mean)·rsqrt(var + eps), γ and β broadcast against x.

    Its gradient is written out, dx = rsqrt(var + eps)·(g − mean(g) − x̂·mean(g·x̂)) with g = dy·γ, dγ = Σ_b dy·x̂,
    dβ = Σ_b dy (sums over the axes γ and β are broadcast along): 11 ops where autodiff of the forward ops builds
    about twice as many inside the time loop.
    """
    @tf.custom_gradient
    def normalise(x, gamma, beta):
        centred = x - tf.reduce_mean(x, axis=-1, keepdims=True)
        rstd = tf.math.rsqrt(tf.reduce_mean(tf.square(centred), axis=-1, keepdims=True) + epsilon)
        x_hat = centred * rstd

        def gradient(dy):
            g = dy * gamma
            dx = rstd * (g - tf.reduce_mean(g, axis=-1, keepdims=True)
                         - x_hat * tf.reduce_mean(g * x_hat, axis=-1, keepdims=True))
            return dx, sum_to_shape(dy * x_hat, gamma.shape), sum_to_shape(dy, beta.shape)

        return gamma * x_hat + beta, gradient

    return normalise(x, gamma, beta)


def layer_norm_lstm_update(ln_weights, pre, c, memory, gate_axis=1):
    """Per-gate LN of the pre-activations pre, [B, 4, N] (gate_axis 1) or gate-major [4, B, N] (gate_axis 0), then
    new_c = memory(i, j, f) and new_h = tanh(LN_c(new_c))·σ(o); returns (new_h, new_c).
    ln_weights = (γ, β, γ_c [N], β_c [N]) with γ, β [4, N] (gate_axis 1) or [4, 1, N] (gate_axis 0)."""
    gamma, beta, gamma_c, beta_c = ln_weights
    i, j, f, o = tf.unstack(layer_norm(pre, gamma, beta), axis=gate_axis)
    new_c = memory(i, j, f)
    return tf.tanh(layer_norm(new_c, gamma_c, beta_c)) * tf.sigmoid(o), new_c


def dense(x, w):
    """x [..., in] · w [in, out] with one 2-D matmul whatever the leading axes."""
    flat = tf.matmul(tf.reshape(x, [-1, x.shape[-1]]), w)
    return tf.reshape(flat, tf.concat([tf.shape(x)[:-1], [w.shape[1]]], axis=0))


def recurrent_matmul(a, weights, key):
    """a·W for W = weights[key] in a cell step. Inside unroll, weights also holds W's transpose (key + "_t", made once
    per unroll) and the gradient dL/da = dy·Wᵀ is a plain matmul with it (each cell's loop runs 4–6% faster on a
    2-core CPU than with autodiff's transposed-operand matmul); dL/dW = aᵀ·dy is dropped from the graph when W's
    gradient is deferred."""
    w, w_t = weights[key], weights.get(key + "_t")
    if w_t is None:
        return tf.matmul(a, w)

    @tf.custom_gradient
    def product(a, w):
        def gradient(dy):
            return tf.matmul(dy, w_t), tf.matmul(a, dy, transpose_a=True)
        return tf.matmul(a, w), gradient

    return product(a, w)


def _variable(value, name):
    return tf.Variable(value, name=name, dtype=tf.float32)


def with_deferred_weight_gradients(x_proj, weights, columns, operands):
    """Identity on x_proj [T, B, P] whose gradient also carries dL/dW = Σ_t a_tᵀ·dL/dx_proj_t[:, columns] to each W.

    For a product a_t·W that a step adds to x_proj_t[:, columns] (a_t = state part at t − 1), dL/d(a_t·W) equals
    dL/dx_proj_t, so the time loop can use stop_gradient(W) and W's gradient becomes one [K, T·B]·[T·B, P] matmul
    after the loop instead of T small matmuls and T accumulations inside it (~15% of an LSTM's forward+backward).
    operands() returns the stacked a_t [T, B, K] per weight; the loop records them, so it is called only later.
    """
    @tf.custom_gradient
    def identity(x, *unused_weights):
        def gradient(dx):
            flat_dx = tf.reshape(dx, [-1, dx.shape[-1]])
            return [dx] + [tf.matmul(tf.reshape(a, [-1, a.shape[-1]]), flat_dx[:, start:stop], transpose_a=True)
                           for a, (start, stop) in zip(operands(), columns)]
        return tf.identity(x), gradient

    return identity(x_proj, *weights)


def stateless_seed(seed):
    """A [2] int64 seed for TensorFlow's stateless random ops: `seed` itself, or (0, 0) when it is None."""
    return tf.constant([0, 0], tf.int64) if seed is None else tf.cast(seed, tf.int64)


class _RecurrentCell(tf.Module):
    """What the three cells share: recurrent dropout, the flat state, __call__ and the time loop.

    A subclass defines `_part_sizes` (state parts in layout order), `_h_part` (index of h), `_input_weights`,
    `_recurrent_weights` (dict of tensors read once per unroll), `_step(weights, x_proj, parts, dropout_mask,
    training)`, `_matrices` (keys of the weights the step multiplies through recurrent_matmul) and `_deferred`:
    (weight key, state part, x_proj columns) of each product part·weight that the step adds to those x_proj columns
    (see with_deferred_weight_gradients).
    """

    def __init__(self, num_units, input_size, use_recurrent_dropout, dropout_keep_prob, name):
        super().__init__(name=name)
        self.num_units = num_units
        self.input_size = input_size
        self.use_recurrent_dropout = use_recurrent_dropout
        self.dropout_keep_prob = dropout_keep_prob
        self.output_size = num_units

    @property
    def state_size(self):
        return sum(self._part_sizes)

    def output_from_state(self, state):
        """The h part of a flat state."""
        start = sum(self._part_sizes[:self._h_part])
        return state[:, start:start + self.num_units]

    def _split_state(self, state):
        return tf.split(state, self._part_sizes, axis=1)

    def _join_state(self, parts):
        return tf.concat(parts, axis=1)

    def _candidate(self, j, dropout_mask, training):
        """drop(tanh(j)) = tanh(j)·mask/keep when training with recurrent dropout, else tanh(j).

        A given dropout_mask (0/1, [B, N]) replaces the random draw; it is ignored when dropout is inactive.
        """
        candidate = tf.tanh(j)
        if not (training and self.use_recurrent_dropout):
            return candidate
        if dropout_mask is None:
            keep = tf.random.uniform(tf.shape(candidate)) < self.dropout_keep_prob
            dropout_mask = tf.cast(keep, candidate.dtype)
        return candidate * dropout_mask / self.dropout_keep_prob

    def _memory(self, c, i, j, f, dropout_mask, training):
        """new_c = c·σ(f + forget_bias) + σ(i)·drop(tanh(j))."""
        return c * tf.sigmoid(f + FORGET_BIAS) + tf.sigmoid(i) * self._candidate(j, dropout_mask, training)

    def project_inputs(self, x, constant=None):
        """x·W_x + b, [..., P]. With `constant` [B, C] (the last C input features, equal at every step of a
        time-major x [T, B, in − C]) their product constant·W_x[in − C:] is computed once, not once per step."""
        w, bias = self._input_weights()
        steps = x.shape[-1]
        if constant is not None:  # constant·W_x[in − C:] (+ b), once per sequence
            bias = tf.matmul(constant, w[steps:]) + (0.0 if bias is None else bias)
        proj = dense(x, w[:steps])
        return proj if bias is None else proj + bias

    def step(self, x_proj, state, dropout_mask=None, training=False):
        """One time step from the projected input slice (see project_inputs): returns (h, new flat state)."""
        h, parts = self._step(self._recurrent_weights(), x_proj, self._split_state(state), dropout_mask, training)
        return h, self._join_state(parts)

    def __call__(self, x, state, dropout_mask=None, training=False):
        return self.step(self.project_inputs(x), state, dropout_mask, training)

    def _dropout_masks(self, num_steps, batch_size, training, seed):
        """The 0/1 recurrent-dropout masks of all steps, [T, B, N] as a TensorArray, drawn in one stateless op from
        `seed` ([2] int64; None: (0, 0)) before the time loop, so that the same seed gives the same masks in any
        process; None when dropout is off."""
        if not (training and self.use_recurrent_dropout):
            return None
        keep = (tf.random.stateless_uniform([num_steps, batch_size, self.num_units], seed=stateless_seed(seed))
                < self.dropout_keep_prob)
        return tf.TensorArray(tf.float32, size=num_steps).unstack(tf.cast(keep, tf.float32))

    def unroll(self, inputs, initial_state, training=False, lengths=None, constant_input=None, seed=None):
        """Run the cell over inputs [B, T, in] (T static) from a flat initial state [B, S]; with constant_input
        [B, C], the step input is [inputs_t, constant_input] (inputs then has in − C features).

        Returns (outputs [B, T, N], final flat state [B, S]). With lengths [B], steps t >= lengths[b] keep the
        previous state and output zeros, so the final state is the one after the last real step; as TF1's
        dynamic_rnn, the loop stops after max(lengths) steps, where nothing is left to compute.
        Recurrent dropout (training only) uses a fresh mask at every step, drawn from `seed` (see _dropout_masks).
        """
        num_steps = inputs.shape[1]
        if num_steps is None:
            raise ValueError("unroll needs a static number of time steps (inputs.shape[1])")
        steps_run = num_steps
        if lengths is not None:
            lengths = tf.cast(lengths, tf.int32)
            steps_run = tf.clip_by_value(tf.reduce_max(lengths), 0, num_steps)
        weights = self._recurrent_weights()
        weights.update({key + "_t": tf.stop_gradient(tf.transpose(weights[key])) for key in self._matrices})
        keys, operand_parts, columns = zip(*self._deferred)
        operand_steps = []  # filled after the loop, read only by the gradient
        x_proj = with_deferred_weight_gradients(
            self.project_inputs(tf.transpose(inputs, [1, 0, 2]), constant_input),  # time-major, all steps at once
            [weights[key] for key in keys], columns, lambda: [steps.stack() for steps in operand_steps])
        x_steps = tf.TensorArray(x_proj.dtype, size=num_steps, element_shape=x_proj.shape[1:]).unstack(x_proj)
        h_steps = tf.TensorArray(x_proj.dtype, size=num_steps, element_shape=[inputs.shape[0], self.num_units])
        # entries of steps after steps_run are never written and stack as zeros (their dL/dx_proj is 0 too)
        operands = [tf.TensorArray(x_proj.dtype, size=num_steps, element_shape=[inputs.shape[0], self._part_sizes[i]])
                    for i in operand_parts]
        masks = self._dropout_masks(num_steps, tf.shape(inputs)[0], training, seed)

        def body(t, h_steps, operands, parts):
            loop_weights = {key: tf.stop_gradient(w) if key in keys else w for key, w in weights.items()}
            operands = [steps.write(t, tf.stop_gradient(parts[i])) for steps, i in zip(operands, operand_parts)]
            mask = None if masks is None else masks.read(t)
            h, new_parts = self._step(loop_weights, x_steps.read(t), parts, mask, training)
            if lengths is not None:
                alive = tf.expand_dims(t < lengths, 1)
                new_parts = [tf.where(alive, new, old) for new, old in zip(new_parts, parts)]
                h = tf.where(alive, h, tf.zeros_like(h))
            return t + 1, h_steps.write(t, h), operands, new_parts

        _, h_steps, operands, parts = tf.while_loop(
            lambda t, *_: t < steps_run, body, (tf.constant(0), h_steps, operands, self._split_state(initial_state)),
            maximum_iterations=num_steps)
        operand_steps.extend(operands)
        return tf.transpose(h_steps.stack(), [1, 0, 2]), self._join_state(parts)


class LSTMCell(_RecurrentCell):
    """pre = x·W_xh + h·W_hh + b; new_c = c·σ(f+1) + σ(i)·drop(tanh j); new_h = tanh(new_c)·σ(o). State [c, h]."""

    def __init__(self, num_units, input_size, use_recurrent_dropout=False, dropout_keep_prob=0.9, name=None):
        super().__init__(num_units, input_size, use_recurrent_dropout, dropout_keep_prob, name)
        self._part_sizes = (num_units, num_units)  # [c, h]
        self._h_part = 1
        self._matrices = ("W_hh",)
        self._deferred = (("W_hh", 1, (0, NUM_GATES * num_units)),)  # h·W_hh is added to x_proj
        with self.name_scope:
            self.W_xh = _variable(glorot_uniform([input_size, NUM_GATES * num_units]), "W_xh")
            self.W_hh = _variable(lstm_orthogonal(num_units), "W_hh")
            self.bias = _variable(tf.zeros([NUM_GATES * num_units]), "bias")

    def _input_weights(self):
        return self.W_xh, self.bias  # x_proj = x·W_xh + b, [..., 4N]

    def _recurrent_weights(self):
        return {"W_hh": tf.convert_to_tensor(self.W_hh)}

    def _step(self, weights, x_proj, parts, dropout_mask, training):
        c, h = parts
        i, j, f, o = tf.split(x_proj + recurrent_matmul(h, weights, "W_hh"), NUM_GATES, axis=1)
        new_c = self._memory(c, i, j, f, dropout_mask, training)
        new_h = tf.tanh(new_c) * tf.sigmoid(o)
        return new_h, [new_c, new_h]


def _layer_norm_weights(gamma, beta, gamma_c, beta_c, num_units, gate_axis=1):
    """(γ, β, γ_c [N], β_c [N]) for layer_norm_lstm_update, γ and β [4, N] (gate_axis 1) or [4, 1, N] (0)."""
    gate_shape = [NUM_GATES, num_units] if gate_axis == 1 else [NUM_GATES, 1, num_units]
    return (tf.reshape(gamma, gate_shape), tf.reshape(beta, gate_shape), tf.convert_to_tensor(gamma_c),
            tf.convert_to_tensor(beta_c))


class LayerNormLSTMCell(_RecurrentCell):
    """pre = LN_gates(x·W_xh + h·W_hh) (no bias); new_h = tanh(LN_c(new_c))·σ(o). State [h, c]."""

    def __init__(self, num_units, input_size, use_recurrent_dropout=False, dropout_keep_prob=0.9, name=None):
        super().__init__(num_units, input_size, use_recurrent_dropout, dropout_keep_prob, name)
        self._part_sizes = (num_units, num_units)  # [h, c]
        self._h_part = 0
        self._matrices = ("W_hh",)
        self._deferred = (("W_hh", 0, (0, NUM_GATES * num_units)),)  # h·W_hh is added to x_proj
        with self.name_scope:
            self.W_xh = _variable(glorot_uniform([input_size, NUM_GATES * num_units]), "W_xh")
            self.W_hh = _variable(lstm_orthogonal(num_units), "W_hh")
            self.ln_gamma = _variable(tf.ones([NUM_GATES * num_units]), "ln_gamma")
            self.ln_beta = _variable(tf.zeros([NUM_GATES * num_units]), "ln_beta")
            self.ln_c_gamma = _variable(tf.ones([num_units]), "ln_c_gamma")
            self.ln_c_beta = _variable(tf.zeros([num_units]), "ln_c_beta")

    def _input_weights(self):
        return self.W_xh, None  # x_proj = x·W_xh, [..., 4N]

    def _recurrent_weights(self):
        return {"W_hh": tf.convert_to_tensor(self.W_hh),
                "ln": _layer_norm_weights(self.ln_gamma, self.ln_beta, self.ln_c_gamma, self.ln_c_beta,
                                          self.num_units)}

    def _step(self, weights, x_proj, parts, dropout_mask, training):
        h, c = parts
        pre = tf.reshape(x_proj + recurrent_matmul(h, weights, "W_hh"), [-1, NUM_GATES, self.num_units])
        new_h, new_c = layer_norm_lstm_update(weights["ln"], pre, c,
                                              lambda i, j, f: self._memory(c, i, j, f, dropout_mask, training))
        return new_h, [new_h, new_c]


class HyperLSTMCell(_RecurrentCell):
    """HyperLSTM (Ha et al. 2016) with layer norm, as in sketch-rnn. State [h (N), h_hyper, c (N), c_hyper].

    The hyper cell, a LayerNormLSTMCell(hyper_num_units) without recurrent dropout, reads [x, h] and outputs h̃.
    Each gate g of the main cell is  g = α_gx(h̃)⊙(x·W_xh)_g + α_gh(h̃)⊙(h·W_hh)_g + β_gh(h̃) + b_g  with
    α(h̃) = (h̃·Z + b_z)·A and β(h̃) = (h̃·Z_b)·A_b, then per-gate layer norm and the LSTM update with LN on c.

    The twelve modulators are stored fused, rows/blocks in the order (ix, jx, fx, ox, ih, jh, fh, oh) for α and
    (ih, jh, fh, oh) for β:  Z_alpha [H̃, 8E] = 0, b_alpha [8E] = 1, A_alpha [8, E, N] = 0.1/E (so α ≡ 0.1 at
    init), Z_beta [H̃, 4E] ~ Normal(0, 0.01), A_beta [4, E, N] = 0.
    """

    def __init__(self, num_units, input_size, use_recurrent_dropout=False, dropout_keep_prob=0.9,
                 hyper_num_units=256, hyper_embedding_size=32, name=None):
        super().__init__(num_units, input_size, use_recurrent_dropout, dropout_keep_prob, name)
        self.hyper_num_units = hyper_num_units
        self.hyper_embedding_size = hyper_embedding_size
        self._part_sizes = (num_units, hyper_num_units, num_units, hyper_num_units)  # [h, h_hyper, c, c_hyper]
        self._h_part = 0
        # h·W_xh^hyper[in:] and h_hyper·W_hh^hyper are added to the hyper part of x_proj (h·W_hh is modulated: not)
        hyper_columns = (0, NUM_GATES * hyper_num_units)
        self._matrices = ("hyper_W_h", "hyper_W_hh", "W_hh")
        self._deferred = (("hyper_W_h", 0, hyper_columns), ("hyper_W_hh", 1, hyper_columns))
        gates, e = NUM_GATES, hyper_embedding_size
        with self.name_scope:
            self.hyper_cell = LayerNormLSTMCell(hyper_num_units, input_size + num_units, use_recurrent_dropout=False,
                                                dropout_keep_prob=dropout_keep_prob, name="hyper_cell")
            self.W_xh = _variable(glorot_uniform([input_size, gates * num_units]), "W_xh")
            self.W_hh = _variable(lstm_orthogonal(num_units), "W_hh")
            self.bias = _variable(tf.zeros([gates * num_units]), "bias")
            self.Z_alpha = _variable(tf.zeros([hyper_num_units, 2 * gates * e]), "Z_alpha")
            self.b_alpha = _variable(tf.ones([2 * gates * e]), "b_alpha")
            self.A_alpha = _variable(tf.fill([2 * gates, e, num_units], 0.1 / e), "A_alpha")
            self.Z_beta = _variable(tf.random.normal([hyper_num_units, gates * e], stddev=0.01), "Z_beta")
            self.A_beta = _variable(tf.zeros([gates, e, num_units]), "A_beta")
            self.ln_gamma = _variable(tf.ones([gates * num_units]), "ln_gamma")
            self.ln_beta = _variable(tf.zeros([gates * num_units]), "ln_beta")
            self.ln_c_gamma = _variable(tf.ones([num_units]), "ln_c_gamma")
            self.ln_c_beta = _variable(tf.zeros([num_units]), "ln_c_beta")

    def _input_weights(self):
        """x_proj = [x·W_xh^hyper[:in] | x·W_xh], [..., 4H̃ + 4N]: the x parts of the hyper and main pre-activations."""
        return tf.concat([self.hyper_cell.W_xh[:self.input_size], self.W_xh], axis=1), None

    def _recurrent_weights(self):
        """As stored, except Z [12, H̃, E], b_z [12, 1, E], bias and LN γ, β [4, 1, N]: gate-major (see _step)."""
        hyper, e, modulators = self.hyper_cell, self.hyper_embedding_size, 3 * NUM_GATES
        return {
            "hyper_W_h": hyper.W_xh[self.input_size:],  # the h rows of the hyper cell's input weights
            "hyper_W_hh": tf.convert_to_tensor(hyper.W_hh),
            "hyper_ln": _layer_norm_weights(hyper.ln_gamma, hyper.ln_beta, hyper.ln_c_gamma, hyper.ln_c_beta,
                                            self.hyper_num_units),
            "W_hh": tf.convert_to_tensor(self.W_hh),
            "Z": tf.transpose(tf.reshape(tf.concat([self.Z_alpha, self.Z_beta], axis=1), [-1, modulators, e]),
                              [1, 0, 2]),
            "b_z": tf.reshape(tf.concat([self.b_alpha, tf.zeros([NUM_GATES * e])], 0), [modulators, 1, e]),
            "A": tf.concat([self.A_alpha, self.A_beta], axis=0),
            "bias": tf.reshape(self.bias, [NUM_GATES, 1, self.num_units]),
            "ln": _layer_norm_weights(self.ln_gamma, self.ln_beta, self.ln_c_gamma, self.ln_c_beta, self.num_units,
                                      gate_axis=0),
        }

    def _modulators(self, weights, h_tilde):
        """[α_ix..α_ox, α_ih..α_oh, β_ih..β_oh] as [12, B, N]: (h̃·Z_k + b_z,k)·A_k for each modulator k.

        Two batched matmuls (batch = modulator, h̃ broadcast), gate-major so that no transpose is needed.
        """
        return tf.matmul(tf.matmul(h_tilde[tf.newaxis], weights["Z"]) + weights["b_z"], weights["A"])

    def _gate_major(self, a):
        """[B, 4N] -> [4, B, N]."""
        return tf.transpose(tf.reshape(a, [-1, NUM_GATES, self.num_units]), [1, 0, 2])

    def _hyper_step(self, weights, hyper_x, h, h_hyper, c_hyper):
        """The hyper cell (LayerNormLSTM on [x, h], no dropout): pre = x·W_xh^hyper[:in] + h·W_xh^hyper[in:] +
        h_hyper·W_hh^hyper. Returns (h̃, c_hyper')."""
        pre = hyper_x + recurrent_matmul(h, weights, "hyper_W_h") + recurrent_matmul(h_hyper, weights, "hyper_W_hh")
        return layer_norm_lstm_update(weights["hyper_ln"], tf.reshape(pre, [-1, NUM_GATES, self.hyper_num_units]),
                                      c_hyper, lambda i, j, f: self.hyper_cell._memory(c_hyper, i, j, f, None, False))

    def _step(self, weights, x_proj, parts, dropout_mask, training):
        h, h_hyper, c, c_hyper = parts
        hyper_x, xh = tf.split(x_proj, [NUM_GATES * self.hyper_num_units, NUM_GATES * self.num_units], axis=1)
        h_tilde, new_c_hyper = self._hyper_step(weights, hyper_x, h, h_hyper, c_hyper)
        alpha_x, alpha_h, beta_h = tf.split(self._modulators(weights, h_tilde), 3, axis=0)  # [4, B, N] each
        hh = recurrent_matmul(h, weights, "W_hh")
        pre = alpha_x * self._gate_major(xh) + alpha_h * self._gate_major(hh) + beta_h + weights["bias"]
        new_h, new_c = layer_norm_lstm_update(weights["ln"], pre, c,
                                              lambda i, j, f: self._memory(c, i, j, f, dropout_mask, training),
                                              gate_axis=0)
        return new_h, [new_h, h_tilde, new_c, new_c_hyper]


# dec_model / enc_model name -> cell class
CELLS = {"lstm": LSTMCell, "layer_norm": LayerNormLSTMCell, "hyper": HyperLSTMCell}


def make_cell(dec_model, num_units, input_size, use_recurrent_dropout, dropout_keep_prob,
              hyper_num_units=256, hyper_embedding_size=32, name=None):
    """The cell named by dec_model / enc_model: 'lstm' | 'layer_norm' | 'hyper'."""
    if dec_model not in CELLS:
        raise ValueError(f"unknown cell type {dec_model!r}; choose one of {', '.join(CELLS)}")
    if dec_model == "hyper":
        return HyperLSTMCell(num_units, input_size, use_recurrent_dropout, dropout_keep_prob,
                             hyper_num_units, hyper_embedding_size, name=name)
    return CELLS[dec_model](num_units, input_size, use_recurrent_dropout, dropout_keep_prob, name=name)
