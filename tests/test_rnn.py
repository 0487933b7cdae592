"""rnn.py against NumPy references written from docs/model.md#recurrent-cells (one step of each cell), plus layouts,
initialisers, the time loop, the length mask and recurrent dropout."""
import numpy as np
import pytest
import tensorflow as tf

import rnn

B, IN, N, H_HYPER, E, T = 3, 5, 6, 4, 2, 6
KEEP = 0.7
KINDS = ["lstm", "layer_norm", "hyper"]


def build(kind, use_recurrent_dropout=True, keep=KEEP, seed=0):
    tf.random.set_seed(seed)
    return rnn.make_cell(kind, N, IN, use_recurrent_dropout, keep, hyper_num_units=H_HYPER,
                         hyper_embedding_size=E)


def randomise(cell, seed=1):
    """Give every variable a random value so that no term of the formulas hides behind a trivial init."""
    rng = np.random.default_rng(seed)
    for v in cell.trainable_variables:
        v.assign(rng.normal(0.0, 0.5, v.shape).astype(np.float32) + (1.0 if "gamma" in v.name else 0.0))
    return cell


VARIABLES = ["W_xh", "W_hh", "bias", "ln_gamma", "ln_beta", "ln_c_gamma", "ln_c_beta",
             "Z_alpha", "b_alpha", "A_alpha", "Z_beta", "A_beta"]


def values(cell):
    """The cell's own variables (not its hyper cell's) as float64 arrays, by attribute name."""
    return {name: getattr(cell, name).numpy().astype(np.float64) for name in VARIABLES if hasattr(cell, name)}


# ------------------------------------------------------------- NumPy references (docs/model.md#recurrent-cells)

def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_layer_norm(x, gamma, beta, eps=1e-3):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return gamma * (x - mean) / np.sqrt(var + eps) + beta


def np_layer_norm_gates(pre, gamma, beta, n):
    """Each of the 4 N-blocks normalised separately, then γ [4N], β [4N]."""
    blocks = [np_layer_norm(pre[:, g * n:(g + 1) * n], 1.0, 0.0) for g in range(4)]
    return gamma * np.concatenate(blocks, axis=1) + beta


def np_lstm_update(pre, c, mask, keep, ln_c=None):
    """new_c = c·σ(f+1) + σ(i)·drop(tanh j); new_h = tanh(new_c or LN_c(new_c))·σ(o)."""
    i, j, f, o = np.split(pre, 4, axis=1)
    candidate = np.tanh(j) if mask is None else np.tanh(j) * mask / keep
    new_c = c * sigmoid(f + 1.0) + sigmoid(i) * candidate
    new_h = np.tanh(new_c if ln_c is None else np_layer_norm(new_c, *ln_c)) * sigmoid(o)
    return new_h, new_c


def np_lstm_step(v, x, state, mask, keep):
    n = v["W_hh"].shape[0]
    c, h = state[:, :n], state[:, n:]
    pre = np.concatenate([x, h], 1) @ np.concatenate([v["W_xh"], v["W_hh"]], 0) + v["bias"]
    new_h, new_c = np_lstm_update(pre, c, mask, keep)
    return new_h, np.concatenate([new_c, new_h], 1)


def np_layer_norm_step(v, x, state, mask, keep):
    n = v["W_hh"].shape[0]
    h, c = state[:, :n], state[:, n:]
    pre = np.concatenate([x, h], 1) @ np.concatenate([v["W_xh"], v["W_hh"]], 0)
    pre = np_layer_norm_gates(pre, v["ln_gamma"], v["ln_beta"], n)
    new_h, new_c = np_lstm_update(pre, c, mask, keep, (v["ln_c_gamma"], v["ln_c_beta"]))
    return new_h, np.concatenate([new_h, new_c], 1)


def np_hyper_step(v, v_hyper, x, state, mask, keep):
    n, m, e = N, H_HYPER, E
    h, h_hyper, c, c_hyper = np.split(state, [n, n + m, 2 * n + m], axis=1)
    h_tilde, hyper_state = np_layer_norm_step(v_hyper, np.concatenate([x, h], 1),
                                              np.concatenate([h_hyper, c_hyper], 1), None, keep)
    xh, hh = x @ v["W_xh"], h @ v["W_hh"]

    def alpha(k):  # modulator k of (ix, jx, fx, ox, ih, jh, fh, oh): (h̃·Z + b_z)·A
        return (h_tilde @ v["Z_alpha"][:, k * e:(k + 1) * e] + v["b_alpha"][k * e:(k + 1) * e]) @ v["A_alpha"][k]

    def beta(g):  # modulator g of (ih, jh, fh, oh): (h̃·Z_b)·A_b
        return (h_tilde @ v["Z_beta"][:, g * e:(g + 1) * e]) @ v["A_beta"][g]

    gate = lambda a, g: a[:, g * n:(g + 1) * n]  # noqa: E731
    pre = np.concatenate([alpha(g) * gate(xh, g) + alpha(4 + g) * gate(hh, g) + beta(g) + v["bias"][g * n:(g + 1) * n]
                          for g in range(4)], axis=1)
    pre = np_layer_norm_gates(pre, v["ln_gamma"], v["ln_beta"], n)
    new_h, new_c = np_lstm_update(pre, c, mask, keep, (v["ln_c_gamma"], v["ln_c_beta"]))
    return new_h, np.concatenate([new_h, hyper_state[:, :m], new_c, hyper_state[:, m:]], 1)


def np_step(cell, kind, x, state, mask):
    v = values(cell)
    if kind == "lstm":
        return np_lstm_step(v, x, state, mask, KEEP)
    if kind == "layer_norm":
        return np_layer_norm_step(v, x, state, mask, KEEP)
    return np_hyper_step(v, values(cell.hyper_cell), x, state, mask, KEEP)


# ------------------------------------------------------------------------------------------------ tests

@pytest.mark.parametrize("training", [True, False], ids=["train_fixed_mask", "eval"])
@pytest.mark.parametrize("kind", KINDS)
def test_one_step_matches_numpy(kind, training):
    cell = randomise(build(kind))
    rng = np.random.default_rng(2)
    x = rng.normal(size=[B, IN]).astype(np.float32)
    state = rng.normal(0.0, 0.8, [B, cell.state_size]).astype(np.float32)
    mask = (rng.random([B, N]) < KEEP).astype(np.float32)
    h, new_state = cell(tf.constant(x), tf.constant(state), dropout_mask=tf.constant(mask), training=training)
    # in eval the given mask must be ignored
    ref_h, ref_state = np_step(cell, kind, x.astype(np.float64), state.astype(np.float64), mask if training else None)
    np.testing.assert_allclose(h.numpy(), ref_h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new_state.numpy(), ref_state, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind, sizes, h_slice", [
    ("lstm", 2 * N, slice(N, 2 * N)),
    ("layer_norm", 2 * N, slice(0, N)),
    ("hyper", 2 * (N + H_HYPER), slice(0, N)),
])
def test_state_layout(kind, sizes, h_slice):
    cell = build(kind)
    assert (cell.state_size, cell.output_size) == (sizes, N)
    state = np.tile(np.arange(sizes, dtype=np.float32), [B, 1])
    np.testing.assert_array_equal(cell.output_from_state(tf.constant(state)).numpy(), state[:, h_slice])
    h, new_state = cell(tf.zeros([B, IN]), tf.constant(state / sizes))
    np.testing.assert_array_equal(cell.output_from_state(new_state).numpy(), h.numpy())


def recurrent_matrices(cell):
    return [cell.W_hh] + ([cell.hyper_cell.W_hh] if isinstance(cell, rnn.HyperLSTMCell) else [])


@pytest.mark.parametrize("kind", KINDS)
def test_w_hh_is_four_orthogonal_blocks(kind):
    for w_hh in recurrent_matrices(build(kind)):
        n = w_hh.shape[0]
        assert w_hh.shape == (n, 4 * n)
        blocks = np.split(w_hh.numpy(), 4, axis=1)
        for block in blocks:
            np.testing.assert_allclose(block.T @ block, np.eye(n), atol=1e-5)
        assert not np.allclose(blocks[0], blocks[1])


@pytest.mark.parametrize("kind", KINDS)
def test_w_xh_glorot_uniform_and_zero_biases(kind):
    cell = build(kind)
    inputs = [(cell.W_xh, IN, N)]
    if kind == "hyper":  # the hyper cell reads [x, h]
        inputs.append((cell.hyper_cell.W_xh, IN + N, H_HYPER))
    for w, fan_in, n in inputs:
        assert w.shape == (fan_in, 4 * n)
        limit = np.sqrt(6.0 / (fan_in + 4 * n))
        assert 0.8 * limit < np.abs(w.numpy()).max() <= limit
    for module in [cell] + ([cell.hyper_cell] if kind == "hyper" else []):
        v = values(module)
        for name in {"bias", "ln_beta", "ln_c_beta"} & v.keys():
            np.testing.assert_array_equal(v[name], 0.0)
        for name in {"ln_gamma", "ln_c_gamma"} & v.keys():
            np.testing.assert_array_equal(v[name], 1.0)
        assert len({"bias", "ln_beta"} & v.keys()) >= 1


def test_hyper_modulator_inits():
    tf.random.set_seed(0)
    cell = rnn.HyperLSTMCell(N, IN, hyper_num_units=64, hyper_embedding_size=32)
    assert cell.Z_alpha.shape == (64, 8 * 32) and cell.A_alpha.shape == (8, 32, N)
    np.testing.assert_array_equal(cell.Z_alpha.numpy(), 0.0)
    np.testing.assert_array_equal(cell.b_alpha.numpy(), 1.0)
    np.testing.assert_allclose(cell.A_alpha.numpy(), 0.1 / 32, rtol=1e-7)
    np.testing.assert_array_equal(cell.A_beta.numpy(), 0.0)
    z_beta = cell.Z_beta.numpy()
    assert z_beta.shape == (64, 4 * 32)
    assert abs(z_beta.std() - 0.01) < 0.001 and abs(z_beta.mean()) < 0.001
    default = rnn.make_cell("hyper", N, IN, False, 0.9)
    assert (default.hyper_cell.num_units, default.hyper_embedding_size) == (256, 32)
    assert not default.hyper_cell.use_recurrent_dropout


@pytest.mark.parametrize("kind", KINDS)
def test_seeded_builds_are_identical(kind):
    first, second = build(kind, seed=5), build(kind, seed=5)
    for a, b in zip(first.trainable_variables, second.trainable_variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.array_equal(first.W_xh.numpy(), build(kind, seed=6).W_xh.numpy())


def python_loop(cell, inputs, state, steps):
    outputs = []
    for t in range(steps):
        h, state = cell(inputs[:, t], state)
        outputs.append(h)
    return outputs, state


def random_case(kind, seed):
    """A randomised cell of `kind`, the generator that drew them, inputs [B, T, IN] and an initial state."""
    cell = randomise(build(kind))
    rng = np.random.default_rng(seed)
    inputs = tf.constant(rng.normal(size=[B, T, IN]).astype(np.float32))
    state = tf.constant(rng.normal(0.0, 0.8, [B, cell.state_size]).astype(np.float32))
    return cell, rng, inputs, state


@pytest.mark.parametrize("kind", KINDS)
def test_unroll_equals_python_loop_of_call(kind):
    cell, _, inputs, state = random_case(kind, 3)
    outputs, final = tf.function(cell.unroll)(inputs, state)
    loop_outputs, loop_final = python_loop(cell, inputs, state, T)
    assert outputs.shape == (B, T, N) and final.shape == (B, cell.state_size)
    np.testing.assert_allclose(outputs.numpy(), tf.stack(loop_outputs, 1).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(final.numpy(), loop_final.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind, jit_compile", [(kind, False) for kind in KINDS] + [("hyper", True)])
def test_lengths_keep_the_state_of_the_last_real_step(kind, jit_compile):
    cell, _, inputs, state = random_case(kind, 4)
    lengths = [T, 2, 0]
    unroll = tf.function(lambda x, s, n: cell.unroll(x, s, lengths=n), jit_compile=jit_compile)
    outputs, final = unroll(inputs, state, tf.constant(lengths))
    for b, length in enumerate(lengths):
        loop_outputs, loop_state = python_loop(cell, inputs[b:b + 1], state[b:b + 1], length)
        np.testing.assert_allclose(final.numpy()[b], loop_state.numpy()[0], rtol=1e-5, atol=1e-6)
        for t in range(T):
            expected = loop_outputs[t].numpy()[0] if t < length else np.zeros(N)
            np.testing.assert_allclose(outputs.numpy()[b, t], expected, rtol=1e-5, atol=1e-6)


def loop_gradients(cell, inputs, state, upstream):
    """Gradients of Σ outputs·G + Σ final state by plain autodiff through a python loop of __call__."""
    with tf.GradientTape() as tape:
        tape.watch(state)
        outputs, final = python_loop(cell, inputs, state, T)
        loss = tf.reduce_sum(tf.stack(outputs, 1) * upstream) + tf.reduce_sum(final)
    return tape.gradient(loss, cell.trainable_variables + (state,))


@pytest.mark.parametrize("kind, jit_compile", [(kind, False) for kind in KINDS] + [("hyper", True)])
def test_unroll_gradients_equal_autodiff_of_the_python_loop(kind, jit_compile):
    """unroll computes the recurrent weights' gradients after the loop (with_deferred_weight_gradients)."""
    cell, rng, inputs, state = random_case(kind, 6)
    upstream = tf.constant(rng.normal(size=[B, T, N]).astype(np.float32))

    @tf.function(jit_compile=jit_compile)
    def unroll_gradients(inputs, state, upstream):
        with tf.GradientTape() as tape:
            tape.watch(state)
            outputs, final = cell.unroll(inputs, state)
            loss = tf.reduce_sum(outputs * upstream) + tf.reduce_sum(final)
        return tape.gradient(loss, cell.trainable_variables + (state,))

    for got, expected in zip(unroll_gradients(inputs, state, upstream), loop_gradients(cell, inputs, state, upstream)):
        scale = np.abs(expected.numpy()).max()
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-5, atol=1e-5 * scale)


@pytest.mark.parametrize("kind", KINDS)
def test_lengths_below_t_stop_the_loop_early_with_the_same_values_and_gradients(kind):
    """max(lengths) = 3 < T: the loop runs 3 steps (as TF1's dynamic_rnn); outputs after a sketch's length are zeros
    and the gradients of its final states equal autodiff through a python loop of each sketch's real steps."""
    cell, _, inputs, state = random_case(kind, 7)
    lengths = [3, 1, 0]

    @tf.function
    def unroll_gradients(inputs, state, lengths):
        with tf.GradientTape() as tape:
            tape.watch(state)
            outputs, final = cell.unroll(inputs, state, training=False, lengths=lengths)
            loss = tf.reduce_sum(tf.square(final))
        return outputs, final, tape.gradient(loss, cell.trainable_variables + (state,))

    outputs, final, gradients = unroll_gradients(inputs, state, tf.constant(lengths))
    with tf.GradientTape() as tape:
        tape.watch(state)
        finals = [python_loop(cell, inputs[b:b + 1], state[b:b + 1], length)[1] for b, length in enumerate(lengths)]
        loss = tf.reduce_sum(tf.square(tf.concat(finals, 0)))
    expected_gradients = tape.gradient(loss, cell.trainable_variables + (state,))
    np.testing.assert_allclose(final.numpy(), tf.concat(finals, 0).numpy(), rtol=1e-5, atol=1e-6)
    for b, length in enumerate(lengths):
        np.testing.assert_array_equal(outputs.numpy()[b, length:], 0.0)
    for got, expected in zip(gradients, expected_gradients):
        expected = np.zeros(got.shape) if expected is None else expected.numpy()
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-5 * max(np.abs(expected).max(), 1e-3))


def test_recurrent_matmul_with_a_transposed_copy_has_autodiff_gradients():
    rng = np.random.default_rng(8)
    a, w, dy = (tf.constant(rng.normal(size=shape).astype(np.float32)) for shape in ([3, 4], [4, 5], [3, 5]))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([a, w])
        fused = rnn.recurrent_matmul(a, {"W": w, "W_t": tf.transpose(w)}, "W")
        plain = tf.matmul(a, w)
    np.testing.assert_allclose(fused.numpy(), plain.numpy(), rtol=1e-6)
    for got, expected in zip(tape.gradient(fused, [a, w], output_gradients=dy),
                             tape.gradient(plain, [a, w], output_gradients=dy)):
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(rnn.recurrent_matmul(a, {"W": w}, "W").numpy(), plain.numpy())


def autodiff_layer_norm(x, gamma, beta, eps=1e-3):
    """The layer norm as plain ops, for autodiff: γ·(x − mean)·rsqrt(var + eps) + β."""
    mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
    return gamma * (x - mean) * tf.math.rsqrt(variance + eps) + beta


@pytest.mark.parametrize("shape, param_shape", [([B, 4, N], [4, N]), ([B, N], [N]), ([4, B, N], [4, 1, N])])
def test_layer_norm_value_and_written_out_gradient(shape, param_shape):
    rng = np.random.default_rng(8)
    x, upstream = (tf.constant(rng.normal(0.5, 2.0, shape).astype(np.float32)) for _ in range(2))
    gamma, beta = (tf.constant(rng.normal(1.0, 0.3, param_shape).astype(np.float32)) for _ in range(2))
    grads = []
    for layer_norm in (rnn.layer_norm, autodiff_layer_norm):
        with tf.GradientTape() as tape:
            tape.watch([x, gamma, beta])
            y = layer_norm(x, gamma, beta)
            loss = tf.reduce_sum(y * upstream)
        grads.append(tape.gradient(loss, [x, gamma, beta]))
        np.testing.assert_allclose(y.numpy(), np_layer_norm(x.numpy(), gamma.numpy(), beta.numpy()), rtol=1e-5,
                                   atol=1e-5)
    for got, expected in zip(*grads):
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_constant_input_equals_rows_with_the_constant_appended(kind):
    """unroll(x, constant_input=z) computes z's input projection once; values and gradients are those of unrolling
    the rows [x_t, z]."""
    cell = randomise(build(kind))
    rng = np.random.default_rng(9)
    steps = tf.constant(rng.normal(size=[B, T, IN - 2]).astype(np.float32))
    constant = tf.constant(rng.normal(size=[B, 2]).astype(np.float32))
    state = tf.constant(rng.normal(0.0, 0.8, [B, cell.state_size]).astype(np.float32))
    upstream = tf.constant(rng.normal(size=[B, T, N]).astype(np.float32))

    @tf.function
    def run(concatenate):
        with tf.GradientTape() as tape:
            tape.watch(constant)
            if concatenate:
                rows = tf.concat([steps, tf.tile(constant[:, None], [1, T, 1])], axis=-1)
                outputs, final = cell.unroll(rows, state)
            else:
                outputs, final = cell.unroll(steps, state, constant_input=constant)
            loss = tf.reduce_sum(outputs * upstream) + tf.reduce_sum(final)
        return [outputs, final, *tape.gradient(loss, cell.trainable_variables + (constant,))]

    for got, expected in zip(run(False), run(True)):
        scale = np.abs(expected.numpy()).max()
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-5, atol=1e-5 * scale)


def forgetful_lstm(use_recurrent_dropout, keep):
    """An LSTM whose step depends on x only (W_hh = 0, forget gate shut), so equal inputs give equal steps
    unless a dropout mask intervenes; a dropped unit then outputs exactly tanh(0)·σ(o) = 0."""
    cell = randomise(rnn.LSTMCell(64, IN, use_recurrent_dropout, keep))
    cell.W_hh.assign(tf.zeros_like(cell.W_hh))
    cell.bias.assign(tf.concat([tf.zeros([128]), tf.fill([64], -200.0), tf.zeros([64])], 0))
    return cell


def test_recurrent_dropout_only_in_training_with_a_fresh_mask_each_step():
    keep, steps = 0.5, 10
    cell = forgetful_lstm(True, keep)
    x = np.random.default_rng(5).normal(size=[4, 1, IN]).astype(np.float32)
    inputs, state = tf.constant(np.repeat(x, steps, axis=1)), tf.zeros([4, 128])
    v = values(cell)
    pre = x[:, 0].astype(np.float64) @ v["W_xh"] + v["bias"]
    i, j, _, o = np.split(pre, 4, axis=1)
    kept_value = np.tanh(sigmoid(i) * np.tanh(j) / keep) * sigmoid(o)

    train_outputs = tf.function(lambda x, s: cell.unroll(x, s, training=True))(inputs, state)[0].numpy()
    masks = train_outputs != 0.0
    assert 0.4 < masks.mean() < 0.6
    assert all(not np.array_equal(masks[:, t], masks[:, t + 1]) for t in range(steps - 1))
    expected = np.where(masks, kept_value[:, None, :], 0.0)
    np.testing.assert_allclose(train_outputs, expected, rtol=1e-5, atol=1e-6)

    first, _ = cell(inputs[:, 0], state, training=True)
    second, _ = cell(inputs[:, 0], state, training=True)
    assert not np.array_equal(first.numpy(), second.numpy())

    eval_outputs = cell.unroll(inputs, state, training=False)[0].numpy()
    no_dropout = np.tanh(sigmoid(i) * np.tanh(j)) * sigmoid(o)
    np.testing.assert_allclose(eval_outputs, np.repeat(no_dropout[:, None], steps, 1), rtol=1e-5, atol=1e-6)


def test_no_dropout_in_training_when_switched_off():
    cell = forgetful_lstm(False, 0.5)
    inputs, state = tf.random.normal([4, 3, IN]), tf.zeros([4, 128])
    np.testing.assert_array_equal(cell.unroll(inputs, state, training=True)[0].numpy(),
                                  cell.unroll(inputs, state, training=False)[0].numpy())


def test_make_cell():
    for kind, cls, num_variables in [("lstm", rnn.LSTMCell, 3), ("layer_norm", rnn.LayerNormLSTMCell, 6),
                                     ("hyper", rnn.HyperLSTMCell, 6 + 12)]:
        cell = build(kind)
        assert type(cell) is cls and cell.dropout_keep_prob == KEEP and cell.use_recurrent_dropout
        assert len(cell.trainable_variables) == num_variables  # the hyper cell's variables are tracked too
    assert build("hyper").hyper_cell.num_units == H_HYPER and build("hyper").hyper_embedding_size == E
    with pytest.raises(ValueError, match="gru"):
        rnn.make_cell("gru", N, IN, False, 0.9)
