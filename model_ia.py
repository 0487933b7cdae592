"""IA-pix2seq: RPCL-pix2seq with the latent mixture learned by Bayesian Ying-Yang harmony learning
(docs/model.md#ia-pix2seq).

Instead of RPCL's winner/rival weights, each code's responsibilities gamma are reweighted by how well each Gaussian
fits it compared with the gamma-average, w = gamma (1 + delta): better than average is reinforced, worse is
de-learned, an automatic soft rival penalisation. The M-step reads the sampled codes (not the encoder means), the
encoder variance is floored at 0.1, and the prior terms are cross-entropies (the harmony objective has no entropy
term). Encoder, decoders, cells, Adam, the flat mixture `gmm` and the training step are RPCL-pix2seq's (model.py).

The released original cannot run (its constructor calls a build method that does not exist, Q15); this is
the model that code describes. Its `tf.set_random_seed(1234)` is not reproduced: train.py seeds the run.
"""
import math

import tensorflow as tf

import model
import sketch_model

SIGMA2_FLOOR, SIGMA2_CEILING = 0.1, 1e5  # encoder variance clip, and the GMM variance ceiling
DELTA_MIN, DELTA_MAX = -1.0001, 1.0       # clip of the harmony weights' delta
KL_SCALE = 0.5                            # loss = 0.5 kl_w(s) (alpha_loss + gaussian_loss) + lil (+ de_loss)
IMAGE_EPOCHS = 3                          # the CNN decoder is trained during the first 3 epochs only
VALID_STEP = 100000                       # validation runs at s = 1e5 (kl_w ~ 1, no image term)


# ------------------------------------------------------------------------------------------------ harmony update

def e_step(z, de_alpha, de_mu, de_sigma2):
    """gamma_bk = alpha_k N_bk / sum_j alpha_j N_bj with log N shifted by its row mean (stop-gradient) before exp in
    float64, clipped to [1/(100K), 1] and renormalised."""
    log_n = model.log_gaussian(z, de_mu, de_sigma2)
    log_n -= tf.stop_gradient(tf.reduce_mean(log_n, axis=1, keepdims=True))
    weighted = tf.transpose(tf.cast(de_alpha, tf.float64)) * tf.exp(tf.cast(log_n, tf.float64))
    gamma = tf.cast(weighted / (1e-300 + tf.reduce_sum(weighted, axis=1, keepdims=True)), tf.float32)
    return model.clip_renormalise(gamma, floor=1.0 / (100 * de_alpha.shape[0]))


def harmony_weights(gamma, sigma2, de_sigma2):
    """w = gamma (1 + delta), delta_bk = clip(l_bk - sum_j gamma_bj l_bj, -1.0001, 1) with
    l_bk = log(gamma_bk + 1e-10) - 1/2 sum_d s2_bd / v_kd."""
    fit = tf.math.log(gamma + 1e-10) - 0.5 * tf.reduce_sum(sigma2[:, None, :] / de_sigma2[None, :, :], axis=-1)
    delta = fit - tf.reduce_sum(gamma * fit, axis=1, keepdims=True)
    return gamma * (1.0 + tf.clip_by_value(delta, DELTA_MIN, DELTA_MAX))


def m_step(w, z, sigma2, de_mu, batch=sketch_model.LOCAL_BATCH):
    """Batch estimates: n = sum_b w + 1e-10; m_hat = sum_b w z / n; v_hat = sum_b w [s2 + (z - m_old)^2] / n with the
    OLD mean de_mu (RPCL-pix2seq's uses m_hat); a_hat = mean_b w. Sums and means over the global batch under
    tf.distribute (`batch`). Returns (a_hat, m_hat, v_hat)."""
    n = batch.total(tf.reduce_sum(w, axis=0))[:, None] + 1e-10
    m_hat = batch.total(tf.matmul(w, z, transpose_a=True)) / n
    sq = sigma2[:, None, :] + tf.square(z[:, None, :] - de_mu[None, :, :])
    v_hat = batch.total(tf.einsum('bk,bkd->kd', w, sq)) / n
    return batch.mean(w)[:, None], m_hat, v_hat


def harmony_update(z, sigma2, gmm_params, repeat, batch=sketch_model.LOCAL_BATCH):
    """`repeat` rounds of E-step, harmony weights, M-step on the sampled codes z (statistics over `batch`) and the
    smoothed update model.smooth_update (alpha floored at 1e-10, sigma2 capped at 1e5). Returns (gamma, w) of the
    last round and the updated (alpha, mu, sigma2)."""
    for _ in range(repeat):
        gamma = e_step(z, *gmm_params)
        w = harmony_weights(gamma, sigma2, gmm_params[2])
        estimate = m_step(w, z, sigma2, gmm_params[1], batch)
        gmm_params = model.smooth_update(gmm_params, estimate, alpha_floor=1e-10, sigma2_ceiling=SIGMA2_CEILING)
    return gamma, w, gmm_params


# ------------------------------------------------------------------------------------------------ losses, schedule

def alpha_cross_entropy(gamma, alpha):
    """alpha_loss = sum_k mean_b [-gamma_bk log(alpha_k + 1e-30)]."""
    return tf.reduce_sum(tf.reduce_mean(-gamma * tf.math.log(tf.transpose(alpha) + 1e-30), axis=0))


def gaussian_cross_entropy(gamma, mu, sigma2, de_mu, de_sigma2):
    """gaussian_loss = mean_b sum_k gamma_bk 1/2 sum_d [log(2 * 3.1416) + log(v_k + 1e-30)
    + (s2_b + (mu_b - m_k)^2) / (v_k + 1e-30)]: the expected negative log-likelihood of z under Gaussian k."""
    v = de_sigma2[None, :, :] + 1e-30
    nll = 0.5 * tf.reduce_sum(math.log(2 * model.ORIGINAL_PI) + tf.math.log(v)
                              + (sigma2[:, None, :] + tf.square(mu[:, None, :] - de_mu[None, :, :])) / v, axis=-1)
    return tf.reduce_mean(tf.reduce_sum(gamma * nll, axis=1))


def steps_per_epoch(hps):
    """S_epoch = num_per_category * len(categories) / B (the original's `epoch_per_step`). The original assumes every
    category has num_per_category training sketches; when there are fewer (e.g. the bundled 340 per category), the
    real number of training sketches, hps.train_size as computed by dataset.load_dataset, is used instead."""
    assumed = hps.num_per_category * len(hps.categories)
    real = hps.train_size if hps.train_size > 0 else assumed
    return min(assumed, real) / hps.batch_size


def trains_image_decoder(step, hps):
    """The CNN decoder is trained iff s < 3 S_epoch."""
    return tf.cast(step, tf.float64) < IMAGE_EPOCHS * steps_per_epoch(hps)


# ------------------------------------------------------------------------------------------------ the model

class IAPix2Seq(model.RPCLPix2Seq):
    """RPCL-pix2seq with BYY harmony learning of the latent mixture (`repeat` harmony updates per step). Validation
    samples z (no z = mu) at s = 1e5 with the pen loss masked; `winners` and `labels` are argmax_k of the harmony
    weights (the original's `code_label`); `gaussian_index` is argmax_k gamma under the stored mixture.

    `semi_percent` and `semi_balanced` are accepted and change nothing, as in the original
    (docs/model.md#semi-supervision-flags, #ia-pix2seq)."""

    def encode(self, strokes, images):
        """(mu, sigma2) of q(z|x), sigma2 clipped to [0.1, 1e5]; `strokes` is unused."""
        del strokes
        mu, sigma2 = self.encoder(images)
        return mu, tf.clip_by_value(sigma2, SIGMA2_FLOOR, SIGMA2_CEILING)

    def responsibilities(self, z):
        """gamma [N, K] of codes z under the stored mixture (gaussian_index is its argmax)."""
        return e_step(z, *self.gmm.params())

    def labels(self, z, mu, sigma2, transient=False):
        """{'gau_idx': argmax_k of the harmony weights w(z)} for codes z with encoder variances sigma2 (the original's
        label)."""
        del mu, transient
        weights = harmony_weights(self.responsibilities(z), sigma2, self.gmm.de_sigma2)
        return {'gau_idx': tf.argmax(weights, axis=1)}

    def losses(self, strokes, images, step, training, seed=None):
        """One forward pass: (losses, updated mixture, harmony weights w). z is sampled in training and validation."""
        if not training:
            step = tf.constant(VALID_STEP, tf.int64)
        z_seed, decoder_seed = model.draw_seeds(seed, 2)
        mu, sigma2 = self.encode(strokes, images)
        z = model.reparameterise(mu, tf.sqrt(sigma2), z_seed)
        gamma, w, new_gmm = harmony_update(z, sigma2, self.gmm.params(), self.hps.repeat, self.batch)
        alpha, de_mu, de_sigma2 = [tf.stop_gradient(p) for p in new_gmm]
        params = self.decoder(strokes[:, :-1], z, training, decoder_seed)
        out = dict(alpha_loss=alpha_cross_entropy(gamma, alpha),
                   gaussian_loss=gaussian_cross_entropy(gamma, mu, sigma2, de_mu, de_sigma2),
                   lil_loss=model.reconstruction_loss(params, strokes[:, 1:], mask_pen=not training),
                   de_loss=model.image_loss(images, self.image_decoder(z), kind='absolute'),
                   kl_weight=model.kl_weight(step, self.hps.kl_weight_max))
        image_term = tf.where(trains_image_decoder(step, self.hps), out['de_loss'], 0.0)
        out['loss'] = (KL_SCALE * out['kl_weight'] * (out['alpha_loss'] + out['gaussian_loss']) + out['lil_loss']
                       + image_term)
        return out, new_gmm, w
