"""RPCL-pix2seqH: RPCL-pix2seq with a two-level latent hierarchy (docs/model.md#rpcl-pix2seqh).

Level k: J Gaussians N(m_j, diag v_j) (`de_mu`, `de_sigma2`, the README's "specific patterns"). Level l: I groups
(the "general patterns") with weights q(i) (`de_i`) and mixing columns q(j|i) (`de_ij`); the prior over Gaussians is
q(j) = sum_i q(j|i) q(i). Every training step runs one EM update of the hierarchy (an RPCL update on every third
step after step 100) inside the differentiable forward pass, trains on the gamma-weighted Gaussian KL plus the
structural KL between the joint posterior over (j, i) and q(i) q(j|i), and then stores the updated parameters.

Encoder, decoders, cells and the mixture density loss are RPCL-pix2seq's (model.py); the image loss is L1 and
replaces the stroke loss on three of every four of the first 1000 steps.
"""
import tensorflow as tf

import model
import sketch_model
import utils

HIERARCHY_RPCL_START = 100  # RPCL updates only when s > 100 (RPCL-pix2seq: model.RPCL_START) and s % 3 == 0
IMAGE_PHASE_END = 1000  # while s < IMAGE_PHASE_END, steps with s % IMAGE_EVERY != 0 train the image branch only
IMAGE_EVERY = 4
KL_SCALE = 0.1          # loss = 0.1 kl_w(s) (ij_loss + gaussian_loss) + (de_loss or lil_loss)
LOG_CEILING = 700.0     # each row of log-densities is shifted so that its largest entry is 700, then clipped to ±700


# ------------------------------------------------------------------------------------------------ the hierarchy

def anchored_q_ji(num_j):
    """The original's fresh-start q(j|i): (ones + J·eye) with columns normalised, i.e. (J+1)/(2J) on the diagonal and
    1/(2J) elsewhere; group i is anchored on Gaussian j = i."""
    raw = tf.ones([num_j, num_j]) + num_j * tf.eye(num_j)
    return raw / tf.reduce_sum(raw, axis=0, keepdims=True)


class LatentHierarchy(tf.Module):
    """de_mu, de_sigma2 [J, D] ~ U(-1, 1), 1; de_i [I, 1] = 1/I; de_ij [J, I] = anchored_q_ji. Assigned, never trained.

    The original creates de_ij at 1/J and overwrites it at a fresh start; here the fresh-start value is the initial
    value and a restored checkpoint replaces it, which is the same."""

    def __init__(self, num_i, num_j, z_size, name='latent_hierarchy'):
        super().__init__(name=name)
        if num_i != num_j:
            raise utils.UserError(f'num_layer_i ({num_i}) must equal num_layer_j ({num_j}): RPCL-pix2seqH pairs '
                                  f'group i with its anchor Gaussian j = i')
        self.de_mu = tf.Variable(tf.random.uniform([num_j, z_size], -1.0, 1.0), trainable=False, name='de_mu')
        self.de_sigma2 = tf.Variable(tf.ones([num_j, z_size]), trainable=False, name='de_sigma2')
        self.de_i = tf.Variable(tf.fill([num_i, 1], 1.0 / num_i), trainable=False, name='de_i')
        self.de_ij = tf.Variable(anchored_q_ji(num_j), trainable=False, name='de_ij')

    def params(self):
        return self.de_mu, self.de_sigma2, self.de_i, self.de_ij

    def assign(self, de_mu, de_sigma2, de_i, de_ij):
        self.de_mu.assign(de_mu)
        self.de_sigma2.assign(de_sigma2)
        self.de_i.assign(de_i)
        self.de_ij.assign(de_ij)


# ------------------------------------------------------------------------------------------------ densities, posteriors

def scaled_density(y, de_mu, de_sigma2):
    """p~(y|j) in float64 [B, J] from log p~ = -1/2 sum_d (y - m_j)^2 / (v_j + 1e-10) - sum_d log sqrt(v_j + 1e-10),
    each row shifted by 700 - max_j log p~ and clipped to ±700; the shift cancels in every normalised posterior."""
    v = de_sigma2 + 1e-10
    diff = y[:, None, :] - de_mu[None, :, :]
    log_p = -0.5 * tf.reduce_sum(diff * diff / v, axis=-1) - tf.reduce_sum(tf.math.log(tf.sqrt(v)), axis=-1)[None, :]
    log_p = tf.clip_by_value(log_p + LOG_CEILING - tf.reduce_max(log_p, axis=1, keepdims=True),
                             -LOG_CEILING, LOG_CEILING)
    return tf.exp(tf.cast(log_p, tf.float64))


def posterior(weighted, floor=0.0):
    """Normalise float64 weights over axis 1: clip(w / (sum w + 1e-300), floor, 1) in float32, renormalised."""
    ratio = weighted / (1e-300 + tf.reduce_sum(weighted, axis=1, keepdims=True))
    return model.clip_renormalise(tf.cast(ratio, tf.float32), floor)


def level_k_posterior(density, q_j):
    """p(j|y) = norm_j(q(j) p~(y|j)), [B, J]."""
    return posterior(density * tf.cast(tf.transpose(q_j), tf.float64))


def level_l_posterior(density, q_i, q_ji):
    """p(i|y) = norm_i(q(i) sum_j p~(y|j) q(j|i)), clipped to [1e-10, 1], [B, I]."""
    return posterior(tf.cast(tf.transpose(q_i), tf.float64) * tf.matmul(density, tf.cast(q_ji, tf.float64)), 1e-10)


def within_group_posterior(density, q_ji):
    """p(j|y,i) = p~(y|j) q(j|i) / sum_j' p~(y|j') q(j'|i), [B, J, I]."""
    return posterior(density[:, :, None] * tf.cast(q_ji, tf.float64)[None, :, :])


def group_given_gaussian(p_i, p_j_given_i, p_j):
    """p(i|y,j) = norm_i(p(i|y) p(j|y,i) / (p(j|y) + 1e-10)) with norm_i(x) = x / (sum_i x + 1e-10), [B, J, I]."""
    joint = p_i[:, None, :] * p_j_given_i / (p_j[:, :, None] + 1e-10)
    return joint / (tf.reduce_sum(joint, axis=2, keepdims=True) + 1e-10)


# ------------------------------------------------------------------------------------------------ one update

def winner_rival(scores, axis):
    """One-hot winner (argmax) and rival (argmax once the winner's score is zeroed) along `axis`. As the original:
    scores are >= 0, so when every other score is 0 the rival is index 0, which may be the winner itself."""
    depth = scores.shape[axis]
    winner = tf.one_hot(tf.argmax(scores, axis=axis), depth, axis=axis)
    rival = tf.one_hot(tf.argmax(scores * (1.0 - winner), axis=axis), depth, axis=axis)
    return winner, rival


def update_weights(p, rpcl):
    """EM: w = p. RPCL: w = p (1[winner] - 1e-4 1[rival]), soft-weighted (unlike RPCL-pix2seq's hard weights)."""
    winner, rival = winner_rival(p, axis=1)
    return tf.where(rpcl, p * (winner - model.DELEARN * rival), p)


def level_k_update(w, mu, sigma2, de_mu, de_sigma2, q_j, batch=sketch_model.LOCAL_BATCH):
    """m_hat = sum_b w mu / n; m <- 0.95 m + 0.05 m_hat; v_hat = sum_b w [(mu - m)^2 + s2] / n with the already
    smoothed m (RPCL-pix2seq uses m_hat); q_hat = mean_b w. Returns the smoothed (q_j, m, v), n = sum_b w + 1e-10.
    Sums and means over b are the global batch's under tf.distribute (`batch`)."""
    n = batch.total(tf.reduce_sum(w, axis=0))[:, None] + 1e-10
    m_hat = batch.total(tf.matmul(w, mu, transpose_a=True)) / n
    sq = tf.square(mu[:, None, :] - model.ema(de_mu, m_hat)[None, :, :]) + sigma2[:, None, :]
    v_hat = batch.total(tf.einsum('bj,bjd->jd', w, sq)) / n
    q_hat = batch.mean(w)[:, None]
    return model.smooth_update((q_j, de_mu, de_sigma2), (q_hat, m_hat, v_hat))


def co_activation(p_j_given_i, batch=sketch_model.LOCAL_BATCH):
    """C[c, i] = sum_b p(c|y_b,i) p(i|y_b,i) for c != i, 0 for c = i: how often partner c fires with anchor i."""
    anchor = tf.linalg.diag_part(p_j_given_i)  # p(i|y,i), [B, I]
    c = batch.total(tf.einsum('bci,bi->ci', p_j_given_i, anchor))
    return c * (1.0 - tf.eye(c.shape[0], c.shape[1]))


def merge_q_ji(q_ji, p_j_given_i, rpcl, batch=sketch_model.LOCAL_BATCH):
    """q(j|i) <- column-normalise(clip(0.95 q(j|i) + 0.05 H, 1e-10, 1)), target H = 0.5 1[j = i] + 0.5 1[j = c*(i)]
    with c*(i) = argmax_c C[c, i] (C over the global batch); RPCL also puts -1e-4 at the rival partner (second
    largest C[., i])."""
    winner, rival = winner_rival(co_activation(p_j_given_i, batch), axis=0)
    penalty = tf.where(rpcl, model.DELEARN, 0.0)
    target = 0.5 * (winner + tf.eye(q_ji.shape[0], q_ji.shape[1])) - penalty * rival
    merged = tf.clip_by_value(model.ema(q_ji, target), 1e-10, 1.0)
    return merged / (tf.reduce_sum(merged, axis=0, keepdims=True) + 1e-10)


def level_l_update(w, q_i, batch=sketch_model.LOCAL_BATCH):
    """q(i) <- normalise(clip(0.95 q(i) + 0.05 mean_b w_bi, 1e-10, 1)), the mean over the global batch."""
    q = tf.clip_by_value(model.ema(q_i, batch.mean(w)[:, None]), 1e-10, 1.0)
    return q / (tf.reduce_sum(q) + 1e-10)


def hierarchy_update(y, mu, sigma2, params, rpcl, batch=sketch_model.LOCAL_BATCH):
    """One EM (rpcl False) or RPCL (rpcl True) update of the hierarchy from codes y and encoder outputs mu, sigma2,
    its statistics taken over `batch` (model.LocalBatch or, under tf.distribute, the global batch).

    Returns (posteriors, new params): posteriors = dict(r = p(j|y) under the stored parameters, p_j = p(j|y) and
    p_i = p(i|y) after the update, p_ji = p(i|y,j)); new params = (de_mu, de_sigma2, de_i, de_ij). Differentiable in
    y, mu and sigma2 (only argmax choices are not)."""
    de_mu, de_sigma2, q_i, q_ji = params
    q_j = tf.matmul(q_ji, q_i)  # q(j) = sum_i q(j|i) q(i)
    r = level_k_posterior(scaled_density(y, de_mu, de_sigma2), q_j)
    new_q_j, new_mu, new_sigma2 = level_k_update(update_weights(r, rpcl), mu, sigma2, de_mu, de_sigma2, q_j, batch)
    density = scaled_density(y, new_mu, new_sigma2)
    p_j = level_k_posterior(density, new_q_j)
    p_j_given_i = within_group_posterior(density, q_ji)
    new_q_ji = merge_q_ji(q_ji, p_j_given_i, rpcl, batch)
    p_i = level_l_posterior(density, q_i, new_q_ji)
    new_q_i = level_l_update(update_weights(p_i, rpcl), q_i, batch)
    posteriors = dict(r=r, p_j=p_j, p_i=p_i, p_ji=group_given_gaussian(p_i, p_j_given_i, p_j))
    return posteriors, (new_mu, new_sigma2, new_q_i, new_q_ji)


# ------------------------------------------------------------------------------------------------ losses, schedule

def ij_kl(p_j, p_ji, q_i, q_ji):
    """ij_loss = (1/B) sum_b,j,i p_j p_ji log(p_j p_ji / (q(i) q(j|i) + 1e-10) + 1e-10): KL of the joint posterior
    over (Gaussian, group) from the hierarchical prior."""
    joint = p_j[:, :, None] * p_ji
    prior = tf.transpose(q_i)[None, :, :] * q_ji[None, :, :]
    return tf.reduce_sum(joint * tf.math.log(joint / (prior + 1e-10) + 1e-10)) / tf.cast(tf.shape(p_j)[0], p_j.dtype)


def image_branch_only(step):
    """The image branch replaces the stroke loss iff s < 1000 and s % 4 != 0."""
    return tf.logical_and(step < IMAGE_PHASE_END, tf.math.floormod(step, IMAGE_EVERY) != 0)


def total_loss(step, kl_w, ij_loss, gaussian_loss, lil_loss, de_loss):
    """0.1 kl_w (ij + gauss) + (de_loss if image_branch_only(s) else lil_loss); de_weight is not used."""
    reconstruction = tf.where(image_branch_only(step), de_loss, lil_loss)
    return KL_SCALE * kl_w * (ij_loss + gaussian_loss) + reconstruction


# ------------------------------------------------------------------------------------------------ the model

class RPCLPix2SeqH(model.RPCLPix2Seq):
    """RPCL-pix2seq with the two-level latent hierarchy in `gmm` (a LatentHierarchy with I = num_layer_i groups and
    J = num_layer_j Gaussians; I must equal J). Training, validation (z = mu, masked pen loss) and checkpoints as
    RPCL-pix2seq; `eval_step`'s winners and `gaussian_index` are level-k labels under the stored parameters.

    `semi_percent` and `semi_balanced` are accepted and change nothing: the original builds a label mask from them
    but never feeds it to the model (docs/model.md#semi-supervision-flags), so the released method is fully
    unsupervised."""

    def make_prior(self, hps):
        """The hierarchy: I = num_layer_i groups over J = num_layer_j Gaussians (I must equal J)."""
        return LatentHierarchy(hps.num_layer_i, hps.num_layer_j, hps.z_size)

    def mixture_weights(self):
        """q(j) = sum_i q(j|i) q(i), [J]."""
        return tf.matmul(self.gmm.de_ij, self.gmm.de_i)[:, 0]

    def group_weights(self):
        """(q(i) [I], q(j|i) [J, I])."""
        return self.gmm.de_i[:, 0], self.gmm.de_ij

    def labels(self, z, mu, sigma2, transient=False):
        """{'i_label': group, 'j_label': Gaussian} of codes z [N, D]: argmax p(i|z) and argmax p(j|z) under the stored
        parameters, or with transient=True after one EM update on this batch as the original's sampling does (Q14,
        docs/model.md#hierarchy-labels; mu and sigma2 are the encoder outputs of the codes' images and only matter then;
        nothing is stored)."""
        if transient:
            posteriors, _ = hierarchy_update(z, mu, sigma2, self.gmm.params(), tf.constant(False))
            return {'i_label': tf.argmax(posteriors['p_i'], axis=1), 'j_label': tf.argmax(posteriors['p_j'], axis=1)}
        de_mu, de_sigma2, q_i, q_ji = self.gmm.params()
        density = scaled_density(z, de_mu, de_sigma2)
        p_i = level_l_posterior(density, q_i, q_ji)
        return {'i_label': tf.argmax(p_i, axis=1),
                'j_label': tf.argmax(level_k_posterior(density, tf.matmul(q_ji, q_i)), axis=1)}

    def responsibilities(self, z):
        """Level-k posterior p(j|z) ∝ q(j) p(z|j) [N, J] under the stored parameters (gaussian_index is its
        argmax)."""
        de_mu, de_sigma2, q_i, q_ji = self.gmm.params()
        return level_k_posterior(scaled_density(z, de_mu, de_sigma2), tf.matmul(q_ji, q_i))

    def group_responsibilities(self, z):
        """Level-l posterior p(i|z) [N, I] under the stored parameters."""
        de_mu, de_sigma2, q_i, q_ji = self.gmm.params()
        return level_l_posterior(scaled_density(z, de_mu, de_sigma2), q_i, q_ji)

    def losses(self, strokes, images, step, training, seed=None):
        """One forward pass with the hierarchy update inside: (losses, new hierarchy parameters, p(j|y) under the
        stored parameters). Training samples z; validation uses z = mu and masks the pen loss."""
        z_seed, decoder_seed = model.draw_seeds(seed, 2)
        mu, sigma2 = self.encoder(images)
        z = model.reparameterise(mu, tf.sqrt(sigma2), z_seed) if training else mu
        rpcl = model.is_rpcl_step(step, HIERARCHY_RPCL_START)
        posteriors, new_params = hierarchy_update(z, mu, sigma2, self.gmm.params(), rpcl, self.batch)
        de_mu, de_sigma2, q_i, q_ji = [tf.stop_gradient(p) for p in new_params]
        params = self.decoder(strokes[:, :-1], z, training, decoder_seed)
        out = dict(ij_loss=ij_kl(posteriors['p_j'], posteriors['p_ji'], q_i, q_ji),
                   gaussian_loss=model.gaussian_kl(posteriors['p_j'], mu, sigma2, de_mu, de_sigma2),
                   lil_loss=model.reconstruction_loss(params, strokes[:, 1:], mask_pen=not training),
                   de_loss=model.image_loss(images, self.image_decoder(z), kind='absolute'),
                   kl_weight=model.kl_weight(step, self.hps.kl_weight_max))
        out['loss'] = total_loss(step, out['kl_weight'], out['ij_loss'], out['gaussian_loss'], out['lil_loss'],
                                 out['de_loss'])
        return out, new_params, posteriors['r']
