"""RPCL-pix2seq in native TensorFlow 2 (docs/model.md#rpcl-pix2seq, #implementation-notes, #shapes).

Reads top to bottom: initialisers and layers, the CNN encoder q(z|x), the deconv regulariser, the stroke decoder
with its mixture density output, the reconstruction loss, the latent Gaussian mixture (E-step, EM and RPCL
M-steps, the smoothed update, KL terms), the schedules, and the model that ties them together. What every model
type shares beyond these parts (the interface, the training step, Adam) is in sketch_model.py.

Everything is a `tf.Module` holding plain `tf.Variable`s, so one `tf.train.Checkpoint` saves the weights, the
non-trainable latent GMM (`de_alpha`, `de_mu`, `de_sigma2`) and the optimiser slots together.
"""
import math

import numpy as np
import tensorflow as tf

import rnn
import sketch_model

NUM_MDN = 20            # M: components of the stroke decoder's mixture density output (hparam mdn_components)
ETA = 0.05              # smoothing rate of every latent-GMM update: p <- (1 - ETA) p + ETA p_hat
DELEARN = 1e-4          # RPCL de-learning rate of the rival
RPCL_START = 500        # RPCL steps only when s > RPCL_START and s % RPCL_EVERY == 0
RPCL_EVERY = 3
GAMMA_FLOOR = 1e-5      # responsibilities are clipped to [GAMMA_FLOOR, 1]
ORIGINAL_PI = 3.1416    # the original's constant in the Gaussian normaliser


# ------------------------------------------------------------------------------------------------ layers

def conv_stddev(kernel_shape, init):
    """Std of a conv kernel: 'original' sqrt(2 / kernel_shape[0]) (Q6: the kernel height), 'he' sqrt(2 / fan_in)."""
    if init == 'original':
        return math.sqrt(2.0 / kernel_shape[0])
    fan_in = kernel_shape[0] * kernel_shape[1] * kernel_shape[2]
    return math.sqrt(2.0 / fan_in)


class Dense(tf.Module):
    """y = x W + b. init 'normal': W ~ Normal(0, stddev), b = 0 (RPCL-pix2seq); 'glorot': TF1's default,
    W ~ glorot-uniform and b ~ U(+-sqrt(3 / fan_out)) (sketch-rnn's output layer)."""

    def __init__(self, fan_in, fan_out, stddev=None, use_bias=True, init='normal', name=None):
        super().__init__(name=name)
        if init == 'glorot':
            limit = math.sqrt(3.0 / fan_out)
            w, b = rnn.glorot_uniform([fan_in, fan_out]), tf.random.uniform([fan_out], -limit, limit)
        else:
            w, b = tf.random.normal([fan_in, fan_out], stddev=stddev), tf.zeros([fan_out])
        self.w = tf.Variable(w, name='w')
        self.b = tf.Variable(b, name='b') if use_bias else None

    def __call__(self, x):
        y = tf.matmul(x, self.w)
        return y + self.b if self.b is not None else y


class InstanceNorm(tf.Module):
    """Per sample and channel over (H, W): gamma (a - mean) / sqrt(var + 1e-6) + beta."""

    def __init__(self, channels, name=None):
        super().__init__(name=name)
        self.gamma = tf.Variable(tf.ones([channels]), name='gamma')
        self.beta = tf.Variable(tf.zeros([channels]), name='beta')

    def __call__(self, x):
        mean, var = tf.nn.moments(x, axes=[1, 2], keepdims=True)
        return self.gamma * (x - mean) * tf.math.rsqrt(var + 1e-6) + self.beta


def dilated_conv2d(x, kernel, rate):
    """'SAME' 3x3 conv with dilation `rate`, stride 1 (docs/speed.md#dilated-convolutions). With a GPU visible, the
    native dilated kernel (cuDNN has it forward and backward); otherwise the space-to-batch form of the atrous
    convolution (tf.nn.convolution: pad, space_to_batch by rate, plain conv, batch_to_space), the same sum, since a
    CPU build without oneDNN has no gradient kernel for a dilated Conv2D."""
    if tf.config.list_logical_devices('GPU'):
        return tf.nn.conv2d(x, kernel, strides=1, padding='SAME', dilations=rate)
    return tf.nn.convolution(x, kernel, padding='SAME', dilations=rate)


class Conv(tf.Module):
    """Bias-free 3x3 conv ('SAME', given stride or dilation) followed by instance norm."""

    def __init__(self, c_in, c_out, init, stride=1, dilation=1, name=None):
        super().__init__(name=name)
        shape = [3, 3, c_in, c_out]
        self.kernel = tf.Variable(tf.random.normal(shape, stddev=conv_stddev(shape, init)), name='kernel')
        self.norm = InstanceNorm(c_out)
        self.stride, self.dilation = stride, dilation

    def __call__(self, x):
        if self.dilation == 1:
            y = tf.nn.conv2d(x, self.kernel, strides=self.stride, padding='SAME')
        else:
            y = dilated_conv2d(x, self.kernel, self.dilation)
        return self.norm(y)


class Deconv(tf.Module):
    """Bias-free 3x3 transposed conv, stride 2 (output exactly twice the input size), then instance norm."""

    def __init__(self, c_in, c_out, init, name=None):
        super().__init__(name=name)
        shape = [3, 3, c_out, c_in]
        std = conv_stddev(shape, init) if init == 'original' else math.sqrt(2.0 / (9 * c_in))
        self.kernel = tf.Variable(tf.random.normal(shape, stddev=std), name='kernel')
        self.norm = InstanceNorm(c_out)
        self.c_out = c_out

    def __call__(self, x):
        b, h, w = tf.shape(x)[0], x.shape[1], x.shape[2]
        y = tf.nn.conv2d_transpose(x, self.kernel, [b, 2 * h, 2 * w, self.c_out], strides=2, padding='SAME')
        return self.norm(y)


class DilatedBlock(tf.Module):
    """relu(IN(conv_r1 x) + IN(conv_r2 x) + IN(conv_r5 x)), then relu(IN(conv 3x3 stride 2))."""

    def __init__(self, c_in, depth, init, name=None):
        super().__init__(name=name)
        self.branches = [Conv(c_in, depth, init, dilation=r) for r in (1, 2, 5)]
        self.down = Conv(depth, depth, init, stride=2)

    def __call__(self, x):
        y = tf.nn.relu(tf.add_n([branch(x) for branch in self.branches]))
        return tf.nn.relu(self.down(y))


# ------------------------------------------------------------------------------------------------ encoder, decoders

class Encoder(tf.Module):
    """CNN q(z|x): two dilated blocks, two stride-2 convs, flatten, then mu and sigma2 = softplus(u) + 1e-10."""

    def __init__(self, z_size, image_size, init, name='encoder'):
        super().__init__(name=name)
        self.block1 = DilatedBlock(1, 32, init)
        self.block2 = DilatedBlock(32, 64, init)
        self.conv3 = Conv(64, 128, init, stride=2)
        self.conv4 = Conv(128, 256, init, stride=2)
        flat = (image_size // 16) ** 2 * 256
        self.fc_mu = Dense(flat, z_size, math.sqrt(2.0 / flat))
        self.fc_sigma2 = Dense(flat, z_size, math.sqrt(2.0 / flat))

    def __call__(self, images):
        x = images[..., None]
        x = self.block2(self.block1(x))
        x = tf.nn.relu(self.conv4(tf.nn.relu(self.conv3(x))))
        x = tf.reshape(x, [tf.shape(x)[0], -1])
        mu = self.fc_mu(x)
        sigma2 = tf.nn.softplus(self.fc_sigma2(x)) + 1e-10
        return mu, sigma2


class ImageDecoder(tf.Module):
    """Deconv regulariser p(x|z): FC + relu to [3,3,256], deconvs 128, 64, 32 (IN, relu), 1 (IN, tanh)."""

    def __init__(self, z_size, image_size, init, name='image_decoder'):
        super().__init__(name=name)
        self.side = image_size // 16
        self.fc = Dense(z_size, self.side * self.side * 256, math.sqrt(2.0 / z_size))
        self.deconvs = [Deconv(256, 128, init), Deconv(128, 64, init), Deconv(64, 32, init), Deconv(32, 1, init)]

    def __call__(self, z):
        x = tf.reshape(tf.nn.relu(self.fc(z)), [-1, self.side, self.side, 256])
        for deconv in self.deconvs[:-1]:
            x = tf.nn.relu(deconv(x))
        return tf.tanh(self.deconvs[-1](x))[..., 0]


class StrokeDecoder(tf.Module):
    """sketch-rnn decoder: state0 = tanh(FC(z)), input_t = [stroke5_t, z], output FC to 3 + 6M MDN parameters."""

    def __init__(self, hps, z_size, conditional=True, init_state_stddev=None, output_init='normal',
                 name='stroke_decoder'):
        """Initialisers: RPCL-pix2seq's by default (init-state FC Normal(0, sqrt(2/D)), output FC Normal(0, sqrt(2/H))
        with zero bias); sketch-rnn passes init_state_stddev=0.001 and output_init='glorot'."""
        super().__init__(name=name)
        self.conditional = conditional
        self.z_size = z_size if conditional else 0
        self.hps = hps
        keep = hps.recurrent_dropout_prob
        self.cell = rnn.make_cell(hps.dec_model, hps.dec_rnn_size, 5 + self.z_size, hps.use_recurrent_dropout, keep,
                                  hyper_num_units=hps.hyper_num_units,
                                  hyper_embedding_size=hps.hyper_embedding_size, name='cell')
        if conditional:
            stddev = math.sqrt(2.0 / z_size) if init_state_stddev is None else init_state_stddev
            self.init_fc = Dense(z_size, self.cell.state_size, stddev)
        size = hps.dec_rnn_size
        self.out_fc = Dense(size, 3 + 6 * hps.mdn_components, math.sqrt(2.0 / size), init=output_init)

    def initial_state(self, z, batch_size):
        """tanh(FC(z)) split by the cell's flat state layout; zeros for the unconditional decoder."""
        if not self.conditional:
            return tf.zeros([batch_size, self.cell.state_size])
        return tf.tanh(self.init_fc(z))

    def step_inputs(self, strokes, z):
        """The input rows [stroke5_t, z] as (per-step part [B, T, in'], per-sketch part z or None): z's share of the
        input projection is then computed once per sketch. Input dropout needs the rows concatenated."""
        if not self.conditional:
            return strokes, None
        if not self.hps.use_input_dropout:
            return strokes, z
        return tf.concat([strokes, tf.tile(z[:, None, :], [1, tf.shape(strokes)[1], 1])], axis=-1), None

    def __call__(self, strokes, z, training, seed=None):
        """Teacher-forced decoding of stroke-5 inputs [B, T, 5] -> MDN parameters [B, T, 3 + 6M]; the training
        dropouts draw from the stateless `seed` (see draw_seeds)."""
        hps = self.hps
        input_seed, recurrent_seed, output_seed = draw_seeds(seed, 3)
        inputs, constant = self.step_inputs(strokes, z)
        if training and hps.use_input_dropout:
            inputs = tf.nn.experimental.stateless_dropout(inputs, 1.0 - hps.input_dropout_prob, input_seed)
        state = self.initial_state(z, tf.shape(strokes)[0])
        outputs, _ = self.cell.unroll(inputs, state, training=training, constant_input=constant, seed=recurrent_seed)
        if training and hps.use_output_dropout:
            outputs = tf.nn.experimental.stateless_dropout(outputs, 1.0 - hps.output_dropout_prob, output_seed)
        return self.out_fc(outputs)

    def generate(self, z, num_steps, temperature, seed, stop_at_eos=True):
        """Sample stroke-5 sequences [N, num_steps, 5] for a batch of codes z [N, D], all sketches at once.

        Each step feeds the sampled row back as the next input (start token (0, 0, 1, 0, 0)). With `stop_at_eos`
        a finished sketch emits (0, 0, 0, 0, 1) rows and the loop ends when every sketch has finished; the
        stroke-3 result (cut at the first end-of-sketch row) is the same as decoding all num_steps rows."""
        n = tf.shape(z)[0]
        state = self.initial_state(z, n)
        row = tf.tile(tf.constant([[0.0, 0.0, 1.0, 0.0, 0.0]]), [n, 1])
        finished = tf.zeros([n], tf.bool)
        done = tf.constant(0)
        rows = tf.TensorArray(tf.float32, size=num_steps, element_shape=[None, 5])
        for t in tf.range(num_steps):
            inputs = tf.concat([row, z], axis=1) if self.conditional else row
            h, state = self.cell(inputs, state, training=False)
            step_seed = tf.stack([tf.cast(seed, tf.int64), 3 * tf.cast(t, tf.int64)])
            row = sample_stroke5(self.out_fc(h), temperature, step_seed)
            if stop_at_eos:
                row = tf.where(finished[:, None], tf.constant([[0.0, 0.0, 0.0, 0.0, 1.0]]), row)
                finished = tf.logical_or(finished, row[:, 4] > 0)
            rows = rows.write(t, row)
            done = t + 1
            if stop_at_eos and tf.reduce_all(finished):
                break
        out = tf.transpose(rows.gather(tf.range(done)), [1, 0, 2])
        padding = tf.tile(tf.constant([[[0.0, 0.0, 0.0, 0.0, 1.0]]]), [n, num_steps - done, 1])
        return tf.concat([out, padding], axis=1)

    def z_dependence(self, strokes, z):
        """How much the teacher-forced decoding of stroke-5 sketches [B, T+1, 5] depends on their codes z (see
        z_dependence below)."""
        return z_dependence(lambda codes: self(strokes[:, :-1], codes, training=False), strokes, z)


# ---------------------------------------------------------------------------------------- mixture density output

def mdn_coefficients(params):
    """Split [.., 3 + 6M]: pen logits, then M-blocks pi-logits, mu_x, mu_y, log sigma_x, log sigma_y, rho-pre."""
    pen_logits = params[..., :3]
    pi_logits, mu_x, mu_y, log_sx, log_sy, rho_pre = tf.split(params[..., 3:], 6, axis=-1)
    return dict(pen_logits=pen_logits, log_pi=tf.nn.log_softmax(pi_logits), mu_x=mu_x, mu_y=mu_y,
                sigma_x=tf.exp(log_sx), sigma_y=tf.exp(log_sy), rho=tf.tanh(rho_pre))


def bivariate_normal(x, y, mu_x, mu_y, sigma_x, sigma_y, rho):
    """N(x, y | mu, sigma, rho) = exp(-Z / (2 (1 - rho^2))) / (2 pi sx sy sqrt(1 - rho^2))."""
    nx, ny = (x - mu_x) / sigma_x, (y - mu_y) / sigma_y
    z = nx * nx + ny * ny - 2.0 * rho * nx * ny
    one_minus = 1.0 - rho * rho
    return tf.exp(-z / (2.0 * one_minus)) / (2.0 * np.pi * sigma_x * sigma_y * tf.sqrt(one_minus))


def reconstruction_loss(params, targets, mask_pen):
    """lil_loss = (1/B) sum_b sum_t [L_s + L_p]; L_s = -log(sum_k pi_k N_k + 1e-6) (1 - p3); L_p = pen CE.

    `mask_pen`: multiply L_p by (1 - p3) too (eval mode); training leaves it unmasked (Q10)."""
    coef = mdn_coefficients(params)
    dx, dy, pen = targets[..., 0:1], targets[..., 1:2], targets[..., 2:5]
    density = bivariate_normal(dx, dy, coef['mu_x'], coef['mu_y'], coef['sigma_x'], coef['sigma_y'], coef['rho'])
    real = 1.0 - pen[..., 2]
    offset_loss = -tf.math.log(tf.reduce_sum(tf.exp(coef['log_pi']) * density, axis=-1) + 1e-6) * real
    pen_loss = tf.nn.softmax_cross_entropy_with_logits(labels=pen, logits=coef['pen_logits'])
    if mask_pen:
        pen_loss = pen_loss * real
    return tf.reduce_mean(tf.reduce_sum(offset_loss + pen_loss, axis=1))


def z_dependence(decode, strokes, z):
    """Reconstruction loss (pen masked, summed over time, mean over sketches) with z rolled by one across the batch
    (every sketch gets another's code) minus the loss with each sketch's own z: about 0 when the decoder ignores z
    (posterior collapse), larger the more it uses it. `decode(z)` gives the MDN parameters of the batch."""
    targets = strokes[:, 1:]
    own = reconstruction_loss(decode(z), targets, mask_pen=True)
    return reconstruction_loss(decode(tf.roll(z, 1, axis=0)), targets, mask_pen=True) - own


def image_loss(images, recon, kind='square'):
    """de_loss = mean_b sum_pixels (x - x_hat)^2 ('square') or |x - x_hat| ('absolute')."""
    diff = images - recon
    per_pixel = tf.square(diff) if kind == 'square' else tf.abs(diff)
    return tf.reduce_mean(tf.reduce_sum(per_pixel, axis=[1, 2]))


# ------------------------------------------------------------------------------------------------ sampling

def sample_stroke5(params, temperature, seed):
    """Draw one stroke-5 row per sketch from MDN parameters [N, 3 + 6M] (docs/model.md#decoding-and-temperature).

    pi and pen probabilities are tempered, p' ∝ exp(log p / tau); the offset is Gaussian with std sigma * tau and
    correlation rho. `seed` is a stateless [2] seed, so a fixed seed reproduces the draw exactly."""
    coef = mdn_coefficients(params)
    normal = tf.random.stateless_normal([tf.shape(params)[0], 2], seed=seed)
    k = tf.random.stateless_categorical(coef['log_pi'] / temperature, 1, seed=seed + [0, 1])[:, 0]

    def pick(a):
        return tf.gather(a, k, axis=1, batch_dims=1)

    mu_x, mu_y, rho = pick(coef['mu_x']), pick(coef['mu_y']), pick(coef['rho'])
    sx, sy = pick(coef['sigma_x']) * temperature, pick(coef['sigma_y']) * temperature
    dx = mu_x + sx * normal[:, 0]
    dy = mu_y + sy * (rho * normal[:, 0] + tf.sqrt(1.0 - rho * rho) * normal[:, 1])
    pen = tf.random.stateless_categorical(coef['pen_logits'] / temperature, 1, seed=seed + [0, 2])[:, 0]
    return tf.concat([tf.stack([dx, dy], axis=1), tf.one_hot(pen, 3)], axis=1)


# ------------------------------------------------------------------------------------------------ random draws

def draw_seeds(seed, count):
    """`count` independent stateless seeds [2] int64 split from `seed` (None: (0, 0)). A training step's noise (z,
    dropout masks) comes from its step seed alone, so a resumed run draws what the uninterrupted one drew."""
    return tf.unstack(tf.random.experimental.stateless_split(rnn.stateless_seed(seed), count))


def reparameterise(mu, std, seed):
    """z = mu + std * eps, eps ~ N(0, I) drawn from the stateless `seed`."""
    return mu + std * tf.random.stateless_normal(tf.shape(mu), seed=seed)


# ------------------------------------------------------------------------------------------------ latent GMM

ALIVE_FRACTION = 0.1


def is_alive(weights):
    """A latent component is alive when its weight exceeds ALIVE_FRACTION / K among its K siblings: w_k > 1/(10K)."""
    weights = np.asarray(weights)
    return weights > ALIVE_FRACTION / len(weights)


class LatentGMM(tf.Module):
    """The top layer: K diagonal Gaussians (de_mu, de_sigma2) with weights de_alpha, updated by assignment only."""

    def __init__(self, num_components, z_size, name='latent_gmm'):
        super().__init__(name=name)
        k = num_components
        self.de_alpha = tf.Variable(tf.fill([k, 1], 1.0 / k), trainable=False, name='de_alpha')
        self.de_mu = tf.Variable(tf.random.uniform([k, z_size], -1.0, 1.0), trainable=False, name='de_mu')
        self.de_sigma2 = tf.Variable(tf.ones([k, z_size]), trainable=False, name='de_sigma2')

    def params(self):
        return self.de_alpha, self.de_mu, self.de_sigma2

    def assign(self, alpha, mu, sigma2):
        self.de_alpha.assign(alpha)
        self.de_mu.assign(mu)
        self.de_sigma2.assign(sigma2)


def log_gaussian(z, de_mu, de_sigma2):
    """log N_bk = -1/2 sum_d (z - m_k)^2 / (v_k + 1e-30) - sum_d log sqrt(v_k + 1e-30) - D/2 log(2 * 3.1416)."""
    v = de_sigma2 + 1e-30
    diff = z[:, None, :] - de_mu[None, :, :]
    dims = tf.cast(tf.shape(z)[-1], z.dtype)
    return (-0.5 * tf.reduce_sum(diff * diff / v, axis=-1) - tf.reduce_sum(tf.math.log(tf.sqrt(v)), axis=-1)[None, :]
            - 0.5 * dims * math.log(2 * ORIGINAL_PI))


def clip_renormalise(gamma, floor=GAMMA_FLOOR):
    """gamma <- clip(gamma, floor, 1) / (sum_k clip(gamma, floor, 1) + 1e-10)."""
    gamma = tf.clip_by_value(gamma, floor, 1.0)
    return gamma / (tf.reduce_sum(gamma, axis=1, keepdims=True) + 1e-10)


def e_step(z, de_alpha, de_mu, de_sigma2, stable=False):
    """gamma_bk = alpha_k N_bk / sum_j alpha_j N_bj, clipped to [1e-5, 1] and renormalised.

    Original (Q7): exp of the float32 log-density in float64, no log-sum-exp, so rows whose log-densities are
    all below about -745 underflow to a uniform gamma. `stable=True` normalises in log space instead."""
    log_n = log_gaussian(z, de_mu, de_sigma2)
    if stable:
        gamma = tf.nn.softmax(log_n + tf.math.log(tf.transpose(de_alpha)), axis=1)
    else:
        weighted = tf.transpose(tf.cast(de_alpha, tf.float64)) * tf.exp(tf.cast(log_n, tf.float64))
        gamma = tf.cast(weighted / (1e-300 + tf.reduce_sum(weighted, axis=1, keepdims=True)), tf.float32)
    return clip_renormalise(gamma)


def rpcl_weights(gamma):
    """w_bk = 1[k = winner_b] - 1e-4 1[k = rival_b]; winner = argmax gamma, rival = second largest."""
    k = gamma.shape[1]
    top2 = tf.math.top_k(gamma, k=2).indices
    return tf.one_hot(top2[:, 0], k) - DELEARN * tf.one_hot(top2[:, 1], k)


def m_step(weights, mu, sigma2, batch=sketch_model.LOCAL_BATCH):
    """Batch estimates: n_k = sum_b w; m_hat = sum_b w y / n; v_hat = sum_b w [(y - m_hat)^2 + s2] / n; a_hat = n / B.

    Every sum over b is `batch.total` of this device's sum: the global batch's under tf.distribute (two rounds, as
    v_hat needs the global m_hat)."""
    n = batch.total(tf.reduce_sum(weights, axis=0))[:, None]
    m_hat = batch.total(tf.matmul(weights, mu, transpose_a=True)) / (n + 1e-10)
    sq = tf.square(mu[:, None, :] - m_hat[None, :, :]) + sigma2[:, None, :]
    v_hat = batch.total(tf.einsum('bk,bkd->kd', weights, sq)) / (n + 1e-10)
    alpha_hat = n / batch.size(mu)
    return alpha_hat, m_hat, v_hat


def ema(old, estimate):
    """old <- (1 - ETA) old + ETA estimate = 0.95 old + 0.05 estimate: the smoothing of every latent-mixture update."""
    return (1 - ETA) * old + ETA * estimate


def smooth_update(old, estimate, alpha_floor=0.0, sigma2_ceiling=1e10):
    """(alpha, mu, sigma2) <- ema(old, estimate); sigma2 clipped to [1e-10, sigma2_ceiling]; alpha clipped to
    [alpha_floor, 1] and normalised. RPCL-pix2seq's bounds are the defaults; IA-pix2seq's are 1e-10 and 1e5."""
    (alpha, mu, sigma2), (alpha_hat, m_hat, v_hat) = old, estimate
    new_sigma2 = tf.clip_by_value(ema(sigma2, v_hat), 1e-10, sigma2_ceiling)
    new_alpha = tf.clip_by_value(ema(alpha, alpha_hat), alpha_floor, 1.0)
    return new_alpha / tf.reduce_sum(new_alpha), ema(mu, m_hat), new_sigma2


def is_rpcl_step(step, start=RPCL_START):
    """RPCL M-step iff s > start (500; RPCL-pix2seqH: 100) and s % 3 == 0; EM otherwise."""
    return tf.logical_and(step > start, tf.math.floormod(step, RPCL_EVERY) == 0)


def gmm_update(gamma, mu, sigma2, gmm_params, step, batch=sketch_model.LOCAL_BATCH):
    """One EM or RPCL update of the latent GMM from the encoder means mu and variances sigma2 (statistics over
    `batch`)."""
    weights = tf.where(is_rpcl_step(step), rpcl_weights(gamma), gamma)
    return smooth_update(gmm_params, m_step(weights, mu, sigma2, batch))


def alpha_kl(gamma, alpha):
    """alpha_loss = sum_k mean_b gamma_bk log(gamma_bk / (alpha_k + 1e-10) + 1e-10) = mean_b KL(gamma_b || alpha)."""
    ratio = gamma / (tf.transpose(alpha) + 1e-10)
    return tf.reduce_sum(tf.reduce_mean(gamma * tf.math.log(ratio + 1e-10), axis=0))


def gaussian_kl(gamma, mu, sigma2, de_mu, de_sigma2):
    """gaussian_loss = mean_b sum_k gamma_bk KL(N(mu_b, s2_b) || N(m_k, v_k)), eps 1e-10 as the original."""
    v = de_sigma2[None, :, :] + 1e-10
    s2 = sigma2[:, None, :]
    kl = 0.5 * tf.reduce_sum(tf.math.log(v) - tf.math.log(s2 + 1e-10)
                             + (s2 + tf.square(mu[:, None, :] - de_mu[None, :, :])) / v - 1.0, axis=-1)
    return tf.reduce_mean(tf.reduce_sum(gamma * kl, axis=1))


# ------------------------------------------------------------------------------------------------ schedules, optimiser

def kl_weight(step, final=1.0):
    """KL warm-up kl_w(s) = final * (1 - 0.999 * 0.9999^s), in float64 and rounded once (the original: final = 1, in
    float32 inside its graph, up to 1.6e-4 relative away: docs/tf1_checkpoints.md). `final` is hparam kl_weight_max
    (docs/training.md#kl-ceiling)."""
    s = tf.cast(step, tf.float64)
    return tf.cast(final * (1.0 - 0.999 * tf.pow(tf.constant(0.9999, tf.float64), s)), tf.float32)


def learning_rate(step, hps):
    """lr(s) = (lr0 - lr_min) * decay^(s / 3) + lr_min."""
    s = tf.cast(step, tf.float64)
    decay = tf.pow(tf.constant(hps.decay_rate, tf.float64), s / 3.0)
    return tf.cast((hps.learning_rate - hps.min_learning_rate) * decay + hps.min_learning_rate, tf.float32)


# ------------------------------------------------------------------------------------------------ the model

class RPCLPix2Seq(sketch_model.SketchModel):
    """Encoder, latent GMM, stroke decoder and deconv regulariser of RPCL-pix2seq."""

    def __init__(self, hps, name='rpcl_pix2seq'):
        super().__init__(name=name)
        self.hps = hps
        self.encoder = Encoder(hps.z_size, hps.png_width, hps.init)
        self.image_decoder = ImageDecoder(hps.z_size, hps.png_width, hps.init)
        self.decoder = StrokeDecoder(hps, hps.z_size)
        self.gmm = self.make_prior(hps)
        self.optimizer = sketch_model.Adam(self.trainable_variables)

    def make_prior(self, hps):
        """The latent mixture: K = num_mixture * num_sub Gaussians."""
        return LatentGMM(hps.num_mixture * hps.num_sub, hps.z_size)

    def encode(self, strokes, images):
        """q(z|x) of the images: (mu, sigma2). `strokes` is unused (the stroke encoder of sketch-rnn reads it)."""
        del strokes
        return self.encoder(images)

    def mixture_weights(self):
        """Prior weights of the latent Gaussians, [K]."""
        return self.gmm.de_alpha[:, 0]

    def responsibilities(self, z):
        """gamma [N, K]: the posterior over the latent Gaussians of codes z [N, D] under the stored GMM."""
        return e_step(z, *self.gmm.params(), stable=self.hps.stable_estep)

    def gaussian_index(self, z):
        """Hard label argmax_k gamma_k(z) under the stored GMM."""
        return tf.argmax(self.responsibilities(z), axis=1)

    def labels(self, z, mu, sigma2, transient=False):
        """{'gau_idx': argmax_k gamma_k(z)} under the stored GMM."""
        del mu, sigma2, transient
        return {'gau_idx': self.gaussian_index(z)}

    def learning_rate(self, step):
        return learning_rate(step, self.hps)

    def assign_state(self, state):
        self.gmm.assign(*state)

    def losses(self, strokes, images, step, training, seed=None):
        """One forward pass: (losses dict, updated GMM, gamma). Training samples z (and dropout) from `seed`; eval
        uses z = mu and masks the pen loss."""
        hps = self.hps
        z_seed, decoder_seed = draw_seeds(seed, 2)
        mu, sigma2 = self.encoder(images)
        z = reparameterise(mu, tf.sqrt(sigma2), z_seed) if training else mu
        gamma = e_step(z, *self.gmm.params(), stable=hps.stable_estep)
        new_gmm = gmm_update(gamma, mu, sigma2, self.gmm.params(), step, self.batch)
        alpha, de_mu, de_sigma2 = [tf.stop_gradient(p) for p in new_gmm]
        params = self.decoder(strokes[:, :-1], z, training, decoder_seed)
        out = dict(alpha_loss=alpha_kl(gamma, alpha),
                   gaussian_loss=gaussian_kl(gamma, mu, sigma2, de_mu, de_sigma2),
                   lil_loss=reconstruction_loss(params, strokes[:, 1:], mask_pen=not training),
                   de_loss=image_loss(images, self.image_decoder(z)),
                   kl_weight=kl_weight(step, hps.kl_weight_max))
        out['loss'] = (out['kl_weight'] * (out['alpha_loss'] + out['gaussian_loss']) + out['lil_loss']
                       + hps.de_weight * out['de_loss'])
        return out, new_gmm, gamma
