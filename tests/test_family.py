"""The family members sketch-rnn, RPCL-pix2seqH and IA-pix2seq: their maths against NumPy references written from
docs/model.md#sketch-rnn, #rpcl-pix2seqh and §5, and each trained, checkpointed, resumed and restored through train.py
on bundled data."""
import cases
import numpy as np
import pytest
import tensorflow as tf

import dataset
import family
import hyperparams
import metrics
import model
import model_ia
import model_rpclh
import model_sketch_rnn
import sampling
import training
import utils

RTOL, ATOL = 1e-5, 1e-6


def hparams(**overrides):
    base = dict(categories=['bus', 'cat'], batch_size=8, dec_rnn_size=16, dec_model='lstm', z_size=6,
                enc_rnn_size=8, num_mixture=2, num_sub=2, num_layer_i=4, num_layer_j=4)
    base.update(overrides)
    return hyperparams.get_default_hparams().replace(**base)


def stroke5_batch(lengths, max_len, seed=0):
    rng = np.random.default_rng(seed)
    seqs = []
    for n in lengths:
        seq = np.zeros((n, 3), np.float32)
        seq[:, :2] = rng.normal(size=(n, 2))
        seq[rng.random(n) < 0.3, 2] = 1
        seq[-1, 2] = 1
        seqs.append(seq)
    return dataset.to_stroke5(seqs, max_len)


KL_TERMS = {'rpcl': (1.0, 'alpha_loss'), 'ia': (model_ia.KL_SCALE, 'alpha_loss'),
            'rpclh': (model_rpclh.KL_SCALE, 'ij_loss')}   # model_type: (scale, first KL term) of its loss


@pytest.mark.parametrize('model_type', sorted(KL_TERMS))
def test_kl_ceiling_weights_the_kl_terms(model_type):
    """kl_weight_max scales the KL weight of the latent-mixture models: with the same weights and data, the loss moves
    by exactly the change of weight times the KL terms and nothing else moves (docs/training.md#kl-ceiling)."""
    step = tf.constant(5000, tf.int64)
    strokes = stroke5_batch([4, 9, 6, 2, 7, 3, 5, 8], 10)
    images = tf.random.stateless_uniform([8, 48, 48], [0, 1], -1.0, 1.0)
    outs = []
    for ceiling in (1.0, 0.25):
        tf.random.set_seed(0)
        net = family.build_model(hparams(model_type=model_type, kl_weight_max=ceiling, max_seq_len=10))
        outs.append({k: v.numpy() for k, v in net.losses(strokes, images, step, training=False)[0].items()})
    full, low = outs
    scale, first = KL_TERMS[model_type]
    assert low['kl_weight'] == pytest.approx(0.25 * full['kl_weight'], rel=1e-6)
    assert low['lil_loss'] == full['lil_loss'] and low[first] == full[first]
    kl = scale * (full[first] + full['gaussian_loss'])
    assert full['loss'] - low['loss'] == pytest.approx((full['kl_weight'] - low['kl_weight']) * kl, rel=1e-3)


# ------------------------------------------------------------------------------------------------ H: NumPy reference

def np_density(y, m, v):
    """docs/model.md#hierarchy-density: log p~ without 2 pi, rows shifted to a maximum of 700, clipped to +-700, exp in
    float64."""
    v = v + 1e-10
    log_p = -0.5 * ((y[:, None, :] - m[None]) ** 2 / v[None]).sum(-1) - np.log(np.sqrt(v)).sum(-1)[None]
    log_p = np.clip(log_p + 700 - log_p.max(1, keepdims=True), -700, 700)
    return np.exp(log_p.astype(np.float64))


def np_norm(weighted, axis, floor=0.0):
    p = (weighted / (1e-300 + weighted.sum(axis, keepdims=True))).astype(np.float32)
    p = np.clip(p, floor, 1.0)
    return p / (p.sum(axis, keepdims=True) + 1e-10)


def np_winner_rival(scores):
    """Per row: the argmax, and the argmax once the winner's score is zeroed."""
    winner = scores.argmax(1)
    masked = scores.copy()
    masked[np.arange(len(scores)), winner] = 0
    return winner, masked.argmax(1)


def np_rpcl_soft(p):
    winner, rival = np_winner_rival(p)
    w = np.zeros_like(p)
    for b in range(len(p)):
        w[b, winner[b]] += p[b, winner[b]]
        w[b, rival[b]] -= 1e-4 * p[b, rival[b]]
    return w


def np_h_update(y, mu, s2, m, v, q_i, q_ji, rpcl):
    """docs/model.md#hierarchy-em-update (EM) / §4.4 (RPCL), step by step."""
    num_j = m.shape[0]
    q_j = q_ji @ q_i
    r = np_norm(q_j[:, 0][None] * np_density(y, m, v), 1)
    w = np_rpcl_soft(r) if rpcl else r
    n = w.sum(0) + 1e-10
    new_m = 0.95 * m + 0.05 * (w.T @ mu) / n[:, None]
    v_hat = np.stack([(w[:, j:j + 1] * ((mu - new_m[j]) ** 2 + s2)).sum(0) for j in range(num_j)]) / n[:, None]
    new_v = np.clip(0.95 * v + 0.05 * v_hat, 1e-10, 1e10)
    new_q_j = np.clip(0.95 * q_j + 0.05 * w.mean(0)[:, None], 0, 1)
    new_q_j /= new_q_j.sum()
    dens = np_density(y, new_m, new_v)
    p_j = np_norm(new_q_j[:, 0][None] * dens, 1)
    big_p = np_norm(dens[:, :, None] * q_ji[None], 1)                       # p(j|y,i) [B, J, I]
    coact = np.zeros((num_j, num_j))
    for c in range(num_j):
        for i in range(num_j):
            if c != i:
                coact[c, i] = (big_p[:, c, i] * big_p[:, i, i]).sum()
    winner, rival = np_winner_rival(coact.T)
    target = 0.5 * np.eye(num_j)
    for i in range(num_j):
        target[winner[i], i] += 0.5
        if rpcl:
            target[rival[i], i] -= 1e-4
    new_q_ji = np.clip(0.95 * q_ji + 0.05 * target, 1e-10, 1)
    new_q_ji /= new_q_ji.sum(0, keepdims=True) + 1e-10
    p_i = np_norm(q_i[:, 0][None] * (dens @ new_q_ji), 1, floor=1e-10)
    joint = p_i[:, None, :] * big_p / (p_j[:, :, None] + 1e-10)
    p_ji = joint / (joint.sum(2, keepdims=True) + 1e-10)
    w_i = np_rpcl_soft(p_i) if rpcl else p_i
    new_q_i = np.clip(0.95 * q_i + 0.05 * w_i.mean(0)[:, None], 1e-10, 1)
    new_q_i /= new_q_i.sum() + 1e-10
    posteriors = dict(r=r, p_j=p_j, p_i=p_i, p_ji=p_ji)
    return posteriors, (new_m, new_v, new_q_i, new_q_ji), target


@pytest.fixture
def h_case():
    rng = np.random.default_rng(0)
    j, d, b = 4, 3, 12
    m = rng.uniform(-1, 1, (j, d)).astype(np.float32)
    v = rng.uniform(0.3, 1.2, (j, d)).astype(np.float32)
    mu = (m[rng.integers(0, j, b)] + 0.4 * rng.normal(size=(b, d))).astype(np.float32)
    s2 = rng.uniform(0.05, 0.5, (b, d)).astype(np.float32)
    y = (mu + np.sqrt(s2) * rng.normal(size=(b, d))).astype(np.float32)
    q_i = rng.dirichlet(np.ones(j))[:, None].astype(np.float32)
    q_ji = (model_rpclh.anchored_q_ji(j).numpy() + rng.uniform(0, 0.2, (j, j))).astype(np.float32)
    q_ji /= q_ji.sum(0, keepdims=True)
    return dict(y=y, mu=mu, s2=s2, m=m, v=v, q_i=q_i, q_ji=q_ji)


@pytest.mark.parametrize('rpcl', [False, True])
def test_h_update_matches_numpy(h_case, rpcl):
    c = h_case
    params = (c['m'], c['v'], c['q_i'], c['q_ji'])
    got_post, got_params = model_rpclh.hierarchy_update(c['y'], c['mu'], c['s2'], params, tf.constant(rpcl))
    want_post, want_params, _ = np_h_update(c['y'], c['mu'], c['s2'], *params, rpcl=rpcl)
    for key in want_post:
        np.testing.assert_allclose(got_post[key].numpy(), want_post[key], rtol=RTOL, atol=ATOL, err_msg=key)
    for name, got, want in zip(('de_mu', 'de_sigma2', 'de_i', 'de_ij'), got_params, want_params):
        np.testing.assert_allclose(got.numpy(), want, rtol=RTOL, atol=ATOL, err_msg=name)
    new_q_ji = got_params[3].numpy()
    np.testing.assert_allclose(new_q_ji.sum(0), 1.0, rtol=1e-6)                   # q(j|i) columns stay normalised
    np.testing.assert_allclose(got_params[2].numpy().sum(), 1.0, rtol=1e-6)
    np.testing.assert_allclose(got_post['p_ji'].numpy().sum(2), 1.0, rtol=1e-5)


def test_h_rpcl_update_differs_from_em(h_case):
    """The RPCL version de-learns rivals at both levels and in the merge, so its results differ from EM's."""
    c = h_case
    params = (c['m'], c['v'], c['q_i'], c['q_ji'])
    _, em = model_rpclh.hierarchy_update(c['y'], c['mu'], c['s2'], params, tf.constant(False))
    _, rpcl = model_rpclh.hierarchy_update(c['y'], c['mu'], c['s2'], params, tf.constant(True))
    for a, b in zip(em, rpcl):
        assert np.abs(a.numpy() - b.numpy()).max() > 1e-9
    _, _, target = np_h_update(c['y'], c['mu'], c['s2'], *params, rpcl=True)
    assert target.min() == pytest.approx(-1e-4)            # the rival partner of some group


def test_merge_target_and_convergence():
    """Partner c*(i) = argmax_c sum_b p(c|y,i) p(i|y,i); repeated merges drive column i to 0.5 at i and c*(i)."""
    p = np.full((2, 3, 3), 0.05, np.float32)
    p[:, 0, 0], p[:, 2, 0] = 0.6, 0.35          # group 0: anchor 0 fires with partner 2
    p[:, 1, 1], p[:, 0, 1] = 0.5, 0.45          # group 1: partner 0
    p[:, 2, 2], p[:, 1, 2] = 0.7, 0.25          # group 2: partner 1
    coact = model_rpclh.co_activation(tf.constant(p)).numpy()
    np.testing.assert_allclose(np.diag(coact), 0.0)
    np.testing.assert_allclose(coact[2, 0], 2 * 0.35 * 0.6, rtol=1e-6)

    @tf.function
    def merge_many(q_ji):
        for _ in tf.range(400):
            q_ji = model_rpclh.merge_q_ji(q_ji, tf.constant(p), tf.constant(False))
        return q_ji

    q_ji = merge_many(model_rpclh.anchored_q_ji(3))
    want = 0.5 * np.eye(3)
    want[[2, 0, 1], [0, 1, 2]] = 0.5
    np.testing.assert_allclose(q_ji.numpy(), want, atol=1e-6)


def test_anchored_q_ji_and_sizes():
    q = model_rpclh.anchored_q_ji(4).numpy()
    np.testing.assert_allclose(np.diag(q), 5 / 8, rtol=1e-6)
    np.testing.assert_allclose(q[0, 1], 1 / 8, rtol=1e-6)
    np.testing.assert_allclose(q.sum(0), 1.0, rtol=1e-6)
    with pytest.raises(utils.UserError, match='num_layer_i .* must equal num_layer_j'):
        model_rpclh.RPCLPix2SeqH(hparams(num_layer_i=3, num_layer_j=4))


def test_ij_loss_matches_numpy(h_case):
    c = h_case
    post, new = model_rpclh.hierarchy_update(c['y'], c['mu'], c['s2'], (c['m'], c['v'], c['q_i'], c['q_ji']),
                                             tf.constant(False))
    p_j, p_ji, q_i, q_ji = post['p_j'].numpy(), post['p_ji'].numpy(), new[2].numpy(), new[3].numpy()
    joint = p_j[:, :, None] * p_ji
    want = (joint * np.log(joint / (q_i[:, 0][None, None] * q_ji[None] + 1e-10) + 1e-10)).sum() / len(p_j)
    np.testing.assert_allclose(model_rpclh.ij_kl(p_j, p_ji, q_i, q_ji).numpy(), want, rtol=RTOL)


@pytest.mark.parametrize('step', [0, 1, 2, 3, 4, 998, 999, 1000, 1001, 1003, 5000])
def test_h_loss_schedule(step):
    """0.1 kl_w(s) (ij + gauss) + de_loss on steps s < 1000 with s % 4 != 0, else + lil_loss."""
    ij, gauss, lil, de = 0.3, 2.0, 50.0, 700.0
    step = tf.constant(step, tf.int64)
    got = model_rpclh.total_loss(step, model.kl_weight(step), ij, gauss, lil, de).numpy()
    reconstruction = de if step < 1000 and step % 4 != 0 else lil
    np.testing.assert_allclose(got, 0.1 * (1 - 0.999 * 0.9999 ** int(step)) * (ij + gauss) + reconstruction,
                               rtol=1e-6)


@pytest.mark.parametrize('step,rpcl', [(0, False), (99, False), (100, False), (101, False), (102, True),
                                       (103, False), (105, True), (600, True)])
def test_h_rpcl_schedule(step, rpcl):
    assert bool(model.is_rpcl_step(tf.constant(step, tf.int64), model_rpclh.HIERARCHY_RPCL_START)) == rpcl


# ------------------------------------------------------------------------------------------------ IA: NumPy reference

def np_ia_e_step(z, alpha, m, v):
    v = v + 1e-30
    log_n = (-0.5 * ((z[:, None] - m[None]) ** 2 / v[None]).sum(-1) - np.log(np.sqrt(v)).sum(-1)[None]
             - z.shape[1] / 2 * np.log(2 * 3.1416))
    log_n -= log_n.mean(1, keepdims=True)
    weighted = alpha[:, 0][None].astype(np.float64) * np.exp(log_n.astype(np.float64))
    gamma = np.clip((weighted / (1e-300 + weighted.sum(1, keepdims=True))).astype(np.float32), 1 / (100 * len(m)), 1)
    return gamma / gamma.sum(1, keepdims=True)


def np_harmony(gamma, s2, v):
    fit = np.log(gamma + 1e-10) - 0.5 * (s2[:, None, :] / v[None]).sum(-1)
    delta = fit - (gamma * fit).sum(1, keepdims=True)
    return gamma * (1 + np.clip(delta, -1.0001, 1)), delta


def np_ia_m_step(w, z, s2, alpha, m, v):
    n = w.sum(0) + 1e-10
    m_hat = (w.T @ z) / n[:, None]
    v_hat = np.stack([(w[:, k:k + 1] * (s2 + (z - m[k]) ** 2)).sum(0) for k in range(len(m))]) / n[:, None]
    new_alpha = np.clip(0.95 * alpha + 0.05 * w.mean(0)[:, None], 1e-10, 1)
    return (new_alpha / new_alpha.sum(), 0.95 * m + 0.05 * m_hat,
            np.clip(0.95 * v + 0.05 * v_hat, 1e-10, 1e5))


@pytest.fixture
def ia_case():
    return cases.latent_case(1, k=4, d=5, b=10, s2_low=0.1, s2_high=0.6)


def test_ia_e_step_and_harmony_weights_match_numpy(ia_case):
    c = ia_case
    gamma = model_ia.e_step(c['z'], c['alpha'], c['m'], c['v']).numpy()
    np.testing.assert_allclose(gamma, np_ia_e_step(c['z'], c['alpha'], c['m'], c['v']), rtol=RTOL, atol=ATOL)
    assert gamma.min() >= 1 / 400 * 0.99
    want, delta = np_harmony(gamma, c['s2'], c['v'])
    assert np.abs(delta).max() > 1.0001             # the delta clip is active in this case
    assert (want < gamma).any() and (want > gamma).any()
    np.testing.assert_allclose(model_ia.harmony_weights(gamma, c['s2'], c['v']).numpy(), want, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize('repeat', [1, 3])
def test_ia_harmony_update_matches_numpy(ia_case, repeat):
    """The M-step reads the sampled z and the OLD mean in v_hat; `repeat` rounds."""
    c = ia_case
    got_gamma, got_w, got = model_ia.harmony_update(c['z'], c['s2'], (c['alpha'], c['m'], c['v']), repeat)
    params = (c['alpha'], c['m'], c['v'])
    for _ in range(repeat):
        gamma = np_ia_e_step(c['z'], *params)
        w, _ = np_harmony(gamma, c['s2'], params[2])
        params = np_ia_m_step(w, c['z'], c['s2'], *params)
    np.testing.assert_allclose(got_gamma.numpy(), gamma, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(got_w.numpy(), w, rtol=RTOL, atol=ATOL)
    for name, g, want in zip(('alpha', 'mu', 'sigma2'), got, params):
        np.testing.assert_allclose(g.numpy(), want, rtol=RTOL, atol=ATOL, err_msg=name)


def test_ia_cross_entropies_match_numpy(ia_case):
    c = ia_case
    gamma = np_ia_e_step(c['z'], c['alpha'], c['m'], c['v'])
    want_alpha = (-gamma * np.log(c['alpha'][:, 0][None] + 1e-30)).mean(0).sum()
    v = c['v'][None] + 1e-30
    nll = 0.5 * (np.log(2 * 3.1416) + np.log(v) + (c['s2'][:, None] + (c['mu'][:, None] - c['m'][None]) ** 2) / v)
    want_gauss = (gamma * nll.sum(-1)).sum(1).mean()
    np.testing.assert_allclose(model_ia.alpha_cross_entropy(gamma, c['alpha']).numpy(), want_alpha, rtol=RTOL)
    np.testing.assert_allclose(model_ia.gaussian_cross_entropy(gamma, c['mu'], c['s2'], c['m'], c['v']).numpy(),
                               want_gauss, rtol=RTOL)


@pytest.mark.parametrize('num_per_category,train_size,want', [
    (70000, -1, 70000 * 2 / 16), (70000, 680, 680 / 16), (100, 200, 200 / 16), (100, 680, 200 / 16)])
def test_ia_steps_per_epoch(num_per_category, train_size, want):
    hps = hparams(num_per_category=num_per_category, train_size=train_size, batch_size=16)
    assert model_ia.steps_per_epoch(hps) == pytest.approx(want)
    step = tf.constant(int(3 * want), tf.int64)
    assert bool(model_ia.trains_image_decoder(step - 1, hps)) and not bool(model_ia.trains_image_decoder(step + 1, hps))


def test_ia_encoder_variance_floor():
    tf.random.set_seed(0)
    net = model_ia.IAPix2Seq(hparams())
    images = tf.random.uniform([2, 48, 48], -1, 1)
    net.encoder.fc_sigma2.b.assign(tf.linspace(-5.0, 1.0, 6))      # variances on both sides of the floor
    _, raw = net.encoder(images)
    _, sigma2 = net.encode(None, images)
    assert raw.numpy().min() < 0.1 < raw.numpy().max()
    np.testing.assert_allclose(sigma2.numpy(), np.clip(raw.numpy(), 0.1, 1e5))


# ------------------------------------------------------------------------------------------------ sketch-rnn

def test_kl_with_tolerance_and_its_gradient():
    rng = np.random.default_rng(2)
    mu = rng.normal(size=(5, 6)).astype(np.float32)
    presig = rng.normal(scale=0.5, size=(5, 6)).astype(np.float32)
    want = -0.5 * np.mean(1 + presig - mu ** 2 - np.exp(presig))
    assert want > 0.2
    np.testing.assert_allclose(model_sketch_rnn.kl_with_tolerance(mu, presig, 0.2).numpy(), want, rtol=RTOL)
    small = tf.Variable(np.full((5, 6), 0.01, np.float32))
    with tf.GradientTape() as tape:
        kl = model_sketch_rnn.kl_with_tolerance(small, tf.zeros([5, 6]), 0.2)
    assert kl.numpy() == pytest.approx(0.2)
    assert not np.any(tape.gradient(kl, small).numpy())     # below the tolerance: no KL gradient


@pytest.mark.parametrize('step', [0, 1, 10000, 20000, 100000])
def test_sketch_rnn_schedules(step):
    hps = hparams()
    want_kl = 0.5 - (0.5 - 0.01) * 0.99995 ** step
    want_lr = (1e-3 - 1e-5) * 0.9999 ** step + 1e-5
    np.testing.assert_allclose(model_sketch_rnn.annealed_kl_weight(tf.constant(step), hps).numpy(), want_kl,
                               rtol=1e-5)
    np.testing.assert_allclose(model_sketch_rnn.learning_rate(tf.constant(step), hps).numpy(), want_lr, rtol=1e-5)


@pytest.mark.parametrize('enc_model', ['lstm', 'layer_norm', 'hyper'])
def test_encoder_reads_only_real_rows(enc_model):
    """fw final h = the fw cell after row L_b, bw final h = the bw cell over rows L_b..1; padding never enters."""
    tf.random.set_seed(0)
    hps = hparams(enc_model=enc_model, hyper_num_units=8, hyper_embedding_size=4)
    encoder = model_sketch_rnn.StrokeEncoder(hps)
    lengths = [3, 7, 5]
    strokes = stroke5_batch(lengths, 9)
    np.testing.assert_array_equal(model_sketch_rnn.sequence_lengths(strokes).numpy(), lengths)
    h_enc = encoder(strokes, training=False).numpy()
    for b, n in enumerate(lengths):
        rows = strokes[b:b + 1, 1:n + 1]
        zeros = tf.zeros([1, encoder.fw.state_size])
        fw = encoder.fw.output_from_state(encoder.fw.unroll(rows, zeros)[1])
        bw = encoder.bw.output_from_state(encoder.bw.unroll(rows[:, ::-1], zeros)[1])
        np.testing.assert_allclose(h_enc[b], np.concatenate([fw[0], bw[0]]), rtol=1e-5, atol=1e-6)
    garbage = strokes.copy()
    garbage[0, 4:, :4] = 3.0                         # every row after sketch 0's last real one (p3 kept)
    np.testing.assert_allclose(encoder(garbage, training=False).numpy()[0], h_enc[0], rtol=1e-6, atol=1e-7)


def test_sketch_rnn_initialisers_optimiser_and_costs():
    tf.random.set_seed(0)
    hps = hparams(dec_rnn_size=64)
    net = model_sketch_rnn.SketchRNN(hps)
    limit = np.sqrt(3 / 123)
    bias = net.decoder.out_fc.b.numpy()
    assert np.abs(bias).max() <= limit and np.abs(bias).max() > limit / 2
    assert np.abs(net.decoder.out_fc.w.numpy()).max() <= np.sqrt(6 / (64 + 123))
    assert net.decoder.init_fc.w.numpy().std() == pytest.approx(0.001, rel=0.15)
    assert net.fc_presig.w.numpy().std() == pytest.approx(0.001, rel=0.15)
    assert net.optimizer.beta_1 == 0.9 and net.optimizer.epsilon == 1e-8
    strokes = stroke5_batch([4, 9, 6, 2], 10)
    step = tf.constant(20000, tf.int64)
    train_out, _, _ = net.losses(strokes, None, step, training=True)
    np.testing.assert_allclose(train_out['kl_weight'].numpy(), 0.5 - 0.49 * 0.99995 ** 20000, rtol=1e-5)
    valid, _, _ = net.losses(strokes, None, step, training=False)
    assert valid['kl_weight'].numpy() == pytest.approx(0.01)      # Q25: magenta's never-fed eval weight
    np.testing.assert_allclose(valid['loss'].numpy(), valid['lil_loss'].numpy() + 0.01 * valid['kl_loss'].numpy(),
                               rtol=1e-6)
    assert valid['kl_loss'].numpy() >= 0.2


def test_sketch_rnn_lil_loss_is_mean_over_cells():
    """r_cost = mean over B*T of (L_s + L_p), pen loss unmasked even in validation (magenta's trainer)."""
    tf.random.set_seed(0)
    net = model_sketch_rnn.SketchRNN(hparams(conditional=False))
    strokes = stroke5_batch([4, 9, 6, 2], 10)
    params = net.decoder(strokes[:, :-1], None, training=False)
    coef = model.mdn_coefficients(params)
    targets = strokes[:, 1:]
    density = model.bivariate_normal(targets[..., :1], targets[..., 1:2], coef['mu_x'], coef['mu_y'],
                                     coef['sigma_x'], coef['sigma_y'], coef['rho']).numpy()
    offset = -np.log((np.exp(coef['log_pi'].numpy()) * density).sum(-1) + 1e-6) * (1 - targets[..., 4])
    log_pen = tf.nn.log_softmax(coef['pen_logits']).numpy()
    pen = -(targets[..., 2:] * log_pen).sum(-1)
    out, _, _ = net.losses(strokes, None, tf.constant(0, tf.int64), training=False)
    np.testing.assert_allclose(out['lil_loss'].numpy(), (offset + pen).mean(), rtol=1e-5)
    assert out['loss'].numpy() == out['lil_loss'].numpy() and out['kl_loss'].numpy() == 0


def test_unconditional_sketch_rnn_is_decoder_only():
    tf.random.set_seed(0)
    net = model_sketch_rnn.SketchRNN(hparams(conditional=False))
    assert not hasattr(net, 'encoder') and net.decoder.cell.input_size == 5
    assert not any('init_fc' in v.name for v in net.variables)
    strokes = stroke5_batch([4, 9], 10)
    mu, sigma2 = net.encode(strokes, None)
    assert not np.any(mu.numpy()) and not np.any(sigma2.numpy())
    sketches = net.decoder.generate(mu, 12, 0.5, seed=1)
    assert sketches.shape == (2, 12, 5)


# ------------------------------------------------------------------------------------------------ end to end

TINY = ('categories=[bus,cat], num_per_category=40, batch_size=16, dec_rnn_size=16, dec_model=lstm, z_size=6, '
        'enc_rnn_size=8, num_mixture=2, num_sub=2, num_layer_i=3, num_layer_j=3')


@pytest.mark.parametrize('model_type', ['sketch_rnn', 'rpclh', 'ia'])
def test_train_resume_restore(model_type, png_data_dir, tmp_path):
    """Train one epoch, resume for a second, restore the best checkpoint, encode test sketches, generate, sample
    with sample.py and score the samples with retrieval.py."""
    log_root = str(tmp_path / model_type)
    tf.random.set_seed(0)
    hps, *sets = training.prepare_run(log_root, png_data_dir, f'{TINY}, model_type={model_type}', resume=False)
    first = training.train_and_evaluate(hps, sets, log_root, max_epochs=1, checkpoint_minutes=0)
    assert first['step'] == sets[0].num_batches > 0 and first['epoch'] == 1
    assert type(first['model']) is family.MODEL_TYPES[model_type]
    hps, *sets = training.prepare_run(log_root, png_data_dir, '', resume=True)
    second = training.train_and_evaluate(hps, sets, log_root, max_epochs=2, checkpoint_minutes=0, resume=True)
    assert second['epoch'] + second['strikes'] == 2                   # the resumed run did its one epoch
    assert second['step'] in (first['step'], 2 * first['step'])        # improved, or rolled back to the best
    net, restored_hps = family.restore_model(log_root)
    assert restored_hps.model_type == model_type and restored_hps.max_seq_len == hps.max_seq_len
    adam = {id(v) for v in second['model'].optimizer.variables}
    trained = [v for v in second['model'].variables if id(v) not in adam]   # inference restores no Adam moments
    assert len(net.variables) == len(trained)
    for mine, theirs in zip(net.variables, trained):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy(), err_msg=mine.name)
    batch = sets[2].get_batch(0)
    mu, sigma2 = net.encode(batch.strokes, batch.images)
    assert mu.shape == sigma2.shape == (16, 6)
    assert np.isfinite(mu.numpy()).all() and (sigma2.numpy() > 0).all()
    index = net.gaussian_index(mu).numpy()
    assert index.shape == (16,) and index.min() >= 0 and index.max() < 4
    sketches = net.decoder.generate(mu[:3], 20, 0.5, seed=7)
    np.testing.assert_array_equal(sketches.numpy(), net.decoder.generate(mu[:3], 20, 0.5, seed=7).numpy())
    np.testing.assert_array_equal(sketches.numpy()[..., 2:].sum(-1), 1.0)     # one pen state per row
    if model_type == 'rpclh':
        for transient in (False, True):
            labels = net.labels(mu, mu, sigma2, transient=transient)
            i_label, j_label = labels['i_label'], labels['j_label']
            assert i_label.shape == j_label.shape == (16,) and j_label.numpy().max() < 3
        np.testing.assert_array_equal(net.labels(mu, mu, sigma2)['j_label'].numpy(), index)
        np.testing.assert_allclose(net.mixture_weights().numpy().sum(), 1.0, rtol=1e-5)
    if model_type == 'ia':
        assert net.labels(mu, mu, sigma2)['gau_idx'].shape == (16,)
    sample_dir = str(tmp_path / 'sample')
    count = sampling.sample(net, sets[2], sample_dir, num_per_category=5, seed=3, progress=False)
    samples = metrics.load_sample_dir(sample_dir, hps.categories)
    assert count == len(samples.names) == 10
    scores = metrics.ret_scores(samples.codes, metrics.encode_generated(net, samples, sample_dir))
    assert sorted(scores) == [1, 10, 50] and 0.0 <= scores[1] <= scores[10] == scores[50] == 1.0
