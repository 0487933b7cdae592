"""model.py against NumPy references written from the docs/model.md#rpcl-pix2seq formulas, plus a gradient test and an
overfit test."""
import math

import cases
import numpy as np
import pytest
import tensorflow as tf

import dataset
import hyperparams
import model
import raster
import sketch_model

RTOL = 1e-5


def np_softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


# ------------------------------------------------------------------------------------------------ NumPy references

def np_log_gaussian(z, m, v):
    v = v + 1e-30
    return (-0.5 * ((z[:, None, :] - m[None]) ** 2 / v[None]).sum(-1) - np.log(np.sqrt(v)).sum(-1)[None]
            - z.shape[1] / 2 * np.log(2 * 3.1416))


def np_e_step(z, alpha, m, v):
    p = np.exp(np_log_gaussian(z, m, v).astype(np.float64))
    weighted = alpha[:, 0][None].astype(np.float64) * p
    gamma = (weighted / (1e-300 + weighted.sum(1, keepdims=True))).astype(np.float32)
    gamma = np.clip(gamma, 1e-5, 1.0)
    return gamma / (gamma.sum(1, keepdims=True) + 1e-10)


def np_update(w, mu, s2, alpha, m, v):
    n = w.sum(0)
    m_hat = (w.T @ mu) / (n[:, None] + 1e-10)
    v_hat = np.stack([(w[:, k:k + 1] * ((mu - m_hat[k]) ** 2 + s2)).sum(0) for k in range(w.shape[1])])
    v_hat /= n[:, None] + 1e-10
    a_hat = n[:, None] / mu.shape[0]
    new_m = 0.95 * m + 0.05 * m_hat
    new_v = np.clip(0.95 * v + 0.05 * v_hat, 1e-10, 1e10)
    new_a = np.clip(0.95 * alpha + 0.05 * a_hat, 0, 1)
    return new_a / new_a.sum(), new_m, new_v


def np_rpcl_weights(gamma):
    w = np.zeros_like(gamma)
    for b, row in enumerate(gamma):
        order = np.argsort(-row, kind='stable')
        w[b, order[0]] = 1.0
        w[b, order[1]] = -1e-4
    return w


def np_alpha_kl(gamma, alpha):
    return (gamma * np.log(gamma / (alpha[:, 0][None] + 1e-10) + 1e-10)).mean(0).sum()


def np_gaussian_kl(gamma, mu, s2, m, v):
    total = 0.0
    for b in range(mu.shape[0]):
        for k in range(m.shape[0]):
            vk = v[k] + 1e-10
            kl = 0.5 * (np.log(vk) - np.log(s2[b] + 1e-10) + (s2[b] + (mu[b] - m[k]) ** 2) / vk - 1).sum()
            total += gamma[b, k] * kl
    return total / mu.shape[0]


def np_mdn_loss(params, targets, mask_pen):
    batch, steps, _ = params.shape
    total = 0.0
    for b in range(batch):
        for t in range(steps):
            p = params[b, t]
            pen_logits, rest = p[:3], p[3:].reshape(6, model.NUM_MDN)
            pi = np_softmax(rest[0])
            mx, my, sx, sy, rho = rest[1], rest[2], np.exp(rest[3]), np.exp(rest[4]), np.tanh(rest[5])
            dx, dy, pen = targets[b, t, 0], targets[b, t, 1], targets[b, t, 2:]
            zx, zy = (dx - mx) / sx, (dy - my) / sy
            zz = zx ** 2 + zy ** 2 - 2 * rho * zx * zy
            dens = np.exp(-zz / (2 * (1 - rho ** 2))) / (2 * np.pi * sx * sy * np.sqrt(1 - rho ** 2))
            real = 1.0 - pen[2]
            ls = -np.log((pi * dens).sum() + 1e-6) * real
            lp = -(pen * np.log(np_softmax(pen_logits))).sum()
            total += ls + (lp * real if mask_pen else lp)
    return total / batch


# ------------------------------------------------------------------------------------------------ maths tests

@pytest.fixture
def gmm_case():
    return cases.latent_case(0, k=4, d=6, b=9, s2_low=0.05, s2_high=0.5)


def test_e_step_matches_numpy(gmm_case):
    c = gmm_case
    got = model.e_step(c['z'], c['alpha'], c['m'], c['v']).numpy()
    np.testing.assert_allclose(got, np_e_step(c['z'], c['alpha'], c['m'], c['v']), rtol=RTOL, atol=1e-7)
    np.testing.assert_allclose(got.sum(1), 1.0, rtol=1e-5)
    assert got.min() >= 1e-5 * 0.99


def test_e_step_underflow_quirk_and_stable_switch(gmm_case):
    c = gmm_case
    far = c['z'] + 60.0  # every log-density far below -745: float64 exp underflows
    assert np_log_gaussian(far, c['m'], c['v']).max() < -800
    quirky = model.e_step(far, c['alpha'], c['m'], c['v']).numpy()
    np.testing.assert_allclose(quirky, 1.0 / 4, rtol=1e-5)      # uniform after clipping (Q7)
    stable = model.e_step(far, c['alpha'], c['m'], c['v'], stable=True).numpy()
    log_post = np_log_gaussian(far, c['m'], c['v']) + np.log(c['alpha'][:, 0])[None]
    expected = np.clip(np_softmax(log_post, axis=1), 1e-5, 1)
    expected /= expected.sum(1, keepdims=True) + 1e-10
    np.testing.assert_allclose(stable, expected, rtol=1e-4, atol=1e-6)
    assert stable.max() > 0.5


def test_em_update_matches_numpy(gmm_case):
    c = gmm_case
    gamma = np_e_step(c['z'], c['alpha'], c['m'], c['v'])
    got = model.gmm_update(gamma, c['mu'], c['s2'], (c['alpha'], c['m'], c['v']), tf.constant(10, tf.int64))
    want = np_update(gamma, c['mu'], c['s2'], c['alpha'], c['m'], c['v'])
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w, rtol=RTOL, atol=1e-6)


def test_rpcl_weights_winner_rival_and_negative_mass():
    gamma = np.array([[0.6, 0.3, 0.1, 1e-5], [0.2, 0.1, 0.7, 1e-5], [0.5, 0.05, 0.45, 1e-5]], np.float32)
    w = model.rpcl_weights(tf.constant(gamma)).numpy()
    np.testing.assert_allclose(w, np_rpcl_weights(gamma), rtol=0, atol=0)
    assert w[0, 0] == 1.0 and w[0, 1] == pytest.approx(-1e-4)
    # component 2 is rival of sample 0? no: winner 0, rival 1; sample 1: winner 2, rival 0; sample 2: winner 0, rival 2
    alpha_hat, m_hat, _ = model.m_step(tf.constant(w), tf.eye(3, 4), tf.ones([3, 4]))
    assert alpha_hat.numpy()[1, 0] < 0  # a rival-only component gets negative weight mass


def test_rpcl_update_matches_numpy(gmm_case):
    c = gmm_case
    gamma = np_e_step(c['z'], c['alpha'], c['m'], c['v'])
    got = model.gmm_update(gamma, c['mu'], c['s2'], (c['alpha'], c['m'], c['v']), tf.constant(1503, tf.int64))
    want = np_update(np_rpcl_weights(gamma), c['mu'], c['s2'], c['alpha'], c['m'], c['v'])
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w, rtol=RTOL, atol=1e-6)


@pytest.mark.parametrize('step,rpcl', [(0, False), (498, False), (499, False), (500, False), (501, True),
                                       (502, False), (503, False), (504, True), (600, True), (601, False)])
def test_rpcl_schedule(step, rpcl):
    """RPCL iff s > 500 and s % 3 == 0 (498 is a multiple of 3 but too early)."""
    assert bool(model.is_rpcl_step(tf.constant(step, tf.int64))) == rpcl


def test_kl_terms_match_numpy(gmm_case):
    c = gmm_case
    gamma = np_e_step(c['z'], c['alpha'], c['m'], c['v'])
    np.testing.assert_allclose(model.alpha_kl(gamma, c['alpha']).numpy(), np_alpha_kl(gamma, c['alpha']), rtol=RTOL)
    np.testing.assert_allclose(model.gaussian_kl(gamma, c['mu'], c['s2'], c['m'], c['v']).numpy(),
                               np_gaussian_kl(gamma, c['mu'], c['s2'], c['m'], c['v']), rtol=RTOL)


@pytest.mark.parametrize('mask_pen', [False, True])
def test_reconstruction_loss_matches_numpy(mask_pen):
    rng = np.random.default_rng(1)
    params = rng.normal(scale=0.5, size=(3, 7, 3 + 6 * model.NUM_MDN)).astype(np.float32)
    targets = np.zeros((3, 7, 5), np.float32)
    targets[..., :2] = rng.normal(size=(3, 7, 2))
    pen = rng.integers(0, 2, (3, 7))
    targets[..., 2], targets[..., 3] = 1 - pen, pen
    targets[0, 5:, :] = [0, 0, 0, 0, 1]   # padding rows of a short sketch
    got = model.reconstruction_loss(params, targets, mask_pen).numpy()
    np.testing.assert_allclose(got, np_mdn_loss(params, targets, mask_pen), rtol=RTOL)


def test_z_dependence_is_the_shuffled_minus_the_own_code_loss():
    """A hand-made decoder whose MDN means are the code itself: each sketch's own code predicts its offsets, another
    sketch's code does not, and z_dependence is the NumPy loss difference; a decoder that ignores z gives 0."""
    rng = np.random.default_rng(2)
    targets = np.zeros((4, 6, 5), np.float32)
    targets[..., :2] = rng.normal(size=(4, 6, 2))
    targets[..., 2] = 1
    strokes = np.concatenate([np.tile([[[0, 0, 1, 0, 0]]], (4, 1, 1)), targets], axis=1).astype(np.float32)
    z = targets[..., :2].reshape(4, 12)

    def params_from(codes):   # mu_x, mu_y of every component = the code's offsets; sigma 1, rho 0, pi uniform
        params = np.zeros((4, 6, 3 + 6 * model.NUM_MDN), np.float32)
        offsets = np.asarray(codes).reshape(4, 6, 2)
        params[..., 3 + model.NUM_MDN:3 + 2 * model.NUM_MDN] = offsets[..., :1]
        params[..., 3 + 2 * model.NUM_MDN:3 + 3 * model.NUM_MDN] = offsets[..., 1:]
        return params

    got = float(model.z_dependence(lambda codes: tf.constant(params_from(codes)), strokes, tf.constant(z)))
    shuffled = np_mdn_loss(params_from(np.roll(z, 1, axis=0)), targets, True)
    own = np_mdn_loss(params_from(z), targets, True)
    assert got == pytest.approx(shuffled - own, rel=1e-5) and got > 5
    fixed = tf.constant(params_from(np.zeros_like(z)))
    assert float(model.z_dependence(lambda codes: fixed, strokes, tf.constant(z))) == 0.0


def test_schedules():
    hps = hyperparams.get_default_hparams()
    for s in (0, 1, 10000, 50000):
        np.testing.assert_allclose(model.kl_weight(tf.constant(s)).numpy(), 1 - 0.999 * 0.9999 ** s, rtol=1e-5)
        want_lr = (1e-3 - 1e-5) * 0.9999 ** (s / 3) + 1e-5
        np.testing.assert_allclose(model.learning_rate(tf.constant(s), hps).numpy(), want_lr, rtol=1e-5)
    assert model.kl_weight(tf.constant(0)).numpy() == pytest.approx(0.001, rel=1e-4)


@pytest.mark.parametrize('step', [0, 7, 14175, 60000])
def test_kl_ceiling_scales_the_warm_up(step):
    """kl_weight_max = 1 is the original's schedule bit for bit; another value scales the whole warm-up."""
    s = tf.constant(step, tf.int64)
    assert model.kl_weight(s, 1.0).numpy() == model.kl_weight(s).numpy()
    want = np.float32(0.25 * (1.0 - 0.999 * 0.9999 ** step))
    assert model.kl_weight(s, 0.25).numpy() == pytest.approx(want, rel=1e-7)


def test_a_model_type_missing_an_interface_method_cannot_be_built():
    class Incomplete(sketch_model.SketchModel):   # encode, losses and learning_rate; no assign_state
        def encode(self, strokes, images):
            return None

        def losses(self, strokes, images, step, training, seed=None):
            return None

        def learning_rate(self, step):
            return 0.0

    with pytest.raises(TypeError, match='assign_state'):
        Incomplete()


def test_adam_matches_tf1_formula():
    var = tf.Variable([1.0, -2.0, 0.5])
    opt = sketch_model.Adam([var])
    m = v = np.zeros(3)
    x = np.array([1.0, -2.0, 0.5])
    for t, g in enumerate([np.array([0.1, -0.3, 2.0]), np.array([-0.2, 0.5, 0.1])], start=1):
        opt.apply([tf.constant(g, tf.float32)], [var], tf.constant(1e-3))
        m = 0.5 * m + 0.5 * g
        v = 0.999 * v + 0.001 * g * g
        x = x - 1e-3 * math.sqrt(1 - 0.999 ** t) / (1 - 0.5 ** t) * m / (np.sqrt(v) + 1e-8)
    np.testing.assert_allclose(var.numpy(), x, rtol=1e-5)


def test_gradient_reaches_encoder_through_responsibilities(gmm_case):
    c = gmm_case
    mu = tf.Variable(c['mu'])
    eps = tf.constant(np.random.default_rng(3).normal(size=c['mu'].shape).astype(np.float32))

    def alpha_loss(stop):
        with tf.GradientTape() as tape:
            z = mu + tf.sqrt(c['s2']) * eps
            gamma = model.e_step(z, c['alpha'], c['m'], c['v'])
            gamma = tf.stop_gradient(gamma) if stop else gamma
            loss = model.alpha_kl(gamma, c['alpha'])
        return tape.gradient(loss, mu)

    assert np.abs(alpha_loss(stop=False).numpy()).max() > 1e-4
    assert alpha_loss(stop=True) is None


# ------------------------------------------------------------------------------------------------ model tests

def small_hps(**overrides):
    base = dict(categories=['bee', 'bus'], dec_rnn_size=64, dec_model='lstm', z_size=16, batch_size=16,
                num_mixture=2, num_sub=2, num_per_category=70000)
    base.update(overrides)
    return hyperparams.get_default_hparams().replace(**base)


def real_batch(hps, n=16, seed=0):
    seqs = dataset.load_strokes_npz('data/bee.npz')['train'][:n // 2] + \
        dataset.load_strokes_npz('data/bus.npz')['train'][:n // 2]
    seqs = [s.astype(np.float32) for s in seqs]
    images = raster.render_fast(seqs, width=hps.png_width).astype(np.float32) / 255.0 * 2 - 1
    factor = dataset.scale_factor(seqs)
    seqs = [np.concatenate([s[:, :2] / factor, s[:, 2:]], axis=1) for s in seqs]
    max_len = max(len(s) for s in seqs)
    return tf.constant(dataset.to_stroke5(seqs, max_len)), tf.constant(images), max_len


def test_model_gradient_reaches_encoder_via_gamma():
    tf.random.set_seed(0)
    hps = small_hps(num_mixture=3, num_sub=1)
    net = model.RPCLPix2Seq(hps)
    strokes, images, _ = real_batch(hps)
    with tf.GradientTape() as tape:
        out, _, _ = net.losses(strokes, images, tf.constant(0, tf.int64), training=True)
    grads = tape.gradient(out['alpha_loss'], net.encoder.fc_mu.w)
    assert grads is not None and np.abs(grads.numpy()).max() > 0


def test_small_model_overfits_real_sketches():
    """16 real bundled sketches: the total loss at least halves and responsibilities stop being uniform."""
    tf.random.set_seed(1)
    hps = small_hps(dec_rnn_size=128, num_mixture=2, num_sub=2, learning_rate=3e-3, use_recurrent_dropout=False)
    net = model.RPCLPix2Seq(hps)
    strokes, images, max_len = real_batch(hps)
    train, _ = sketch_model.compile_steps(net, 16, max_len, hps.png_width)
    losses = [float(train(strokes, images, tf.constant(s, tf.int64), tf.constant([0, s], tf.int64))['loss'])
              for s in range(120)]
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    assert np.isfinite(losses).all()
    assert last < 0.5 * first, (first, last)
    mu, _ = net.encode(None, images)
    gamma = model.e_step(mu, *net.gmm.params()).numpy()
    assert gamma.max(axis=1).mean() > 0.5   # uniform would be 0.25
