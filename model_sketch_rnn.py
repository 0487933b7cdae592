"""sketch-rnn (Ha & Eck 2017) as magenta defines it: the family's baseline (docs/model.md#sketch-rnn).

Conditional (default): a bi-directional RNN reads the real rows of the sketch, its final h states give
mu and the log-variance presig of q(z|x) = N(mu, exp(presig)), and z initialises and conditions the stroke decoder.
Unconditional (`conditional=False`): no encoder; the decoder starts from a zero state and reads the stroke-5 rows
only. Shared with RPCL-pix2seq: the cells, the stroke decoder, the mixture density loss and Adam (model.py).

Differences from RPCL-pix2seq, all magenta's: the reconstruction loss is averaged over B·T (not summed over T), the
KL to N(0, I) is floored at kl_tolerance and annealed from kl_weight_start to kl_weight, lr decays per step (no /3),
Adam beta1 = 0.9, and the decoder's FC layers use magenta's initialisers.

Validation is magenta's trainer's (faithful, Q25): z is sampled, the pen loss is not masked and the KL is
weighted by kl_weight_start (0.01), the never-fed weight of magenta's eval model. `loss` is then magenta's
Valid_Cost and `lil_loss` its reconstruction part r_cost.
"""

import tensorflow as tf

import model
import rnn
import sketch_model


def kl_divergence(mu, presig, batch=sketch_model.LOCAL_BATCH):
    """KL(N(mu, exp(presig)) || N(0, I)) averaged over batch and dimensions: -1/2 mean(1 + presig - mu^2 - e^presig),
    over the global batch under tf.distribute (`batch`)."""
    return -0.5 * batch.mean(1.0 + presig - tf.square(mu) - tf.exp(presig), axis=None)


def kl_with_tolerance(mu, presig, kl_tolerance, batch=sketch_model.LOCAL_BATCH):
    """KL_used = max(KL, kl_tolerance): no KL gradient while KL < kl_tolerance (the global batch's KL: the floor is
    not linear in the batch)."""
    return tf.maximum(kl_divergence(mu, presig, batch), kl_tolerance)


def power(rate, step):
    """rate^s in float64, as magenta's host-side schedules (float32 would be 1e-4 off at s = 10^4)."""
    return tf.pow(tf.constant(rate, tf.float64), tf.cast(step, tf.float64))


def annealed_kl_weight(step, hps):
    """kl_w(s) = kl_weight - (kl_weight - kl_weight_start) * kl_decay_rate^s."""
    weight = hps.kl_weight - (hps.kl_weight - hps.kl_weight_start) * power(hps.kl_decay_rate, step)
    return tf.cast(weight, tf.float32)


def learning_rate(step, hps):
    """lr(s) = (lr0 - lr_min) * decay^s + lr_min (per step: RPCL-pix2seq's exponent is s / 3)."""
    lr = (hps.learning_rate - hps.min_learning_rate) * power(hps.decay_rate, step) + hps.min_learning_rate
    return tf.cast(lr, tf.float32)


def sequence_lengths(strokes):
    """L_b = number of real rows of each padded stroke-5 sketch [B, T+1, 5]: sum over rows 1..T of (1 - p3)."""
    return tf.cast(tf.reduce_sum(1.0 - strokes[:, 1:, 4], axis=1), tf.int32)


class StrokeEncoder(tf.Module):
    """Bi-directional RNN over the real rows 1..L_b (fw and bw cells of type enc_model, H_e units each, the decoder's
    recurrent dropout); returns the concatenated final h states [B, 2 H_e]. Padding never enters: the fw cell
    keeps its state after row L_b and the bw cell reads the first L_b rows reversed."""

    def __init__(self, hps, name='stroke_encoder'):
        super().__init__(name=name)
        self.fw, self.bw = [rnn.make_cell(hps.enc_model, hps.enc_rnn_size, 5, hps.use_recurrent_dropout,
                                          hps.recurrent_dropout_prob, hyper_num_units=hps.hyper_num_units,
                                          hyper_embedding_size=hps.hyper_embedding_size, name=direction)
                            for direction in ('fw', 'bw')]

    def final_h(self, cell, rows, lengths, training, seed):
        zeros = tf.zeros([tf.shape(rows)[0], cell.state_size])
        _, state = cell.unroll(rows, zeros, training=training, lengths=lengths, seed=seed)
        return cell.output_from_state(state)

    def __call__(self, strokes, training, seed=None):
        rows, lengths = strokes[:, 1:], sequence_lengths(strokes)
        backwards = tf.reverse_sequence(rows, lengths, seq_axis=1, batch_axis=0)
        fw_seed, bw_seed = model.draw_seeds(seed, 2)
        return tf.concat([self.final_h(self.fw, rows, lengths, training, fw_seed),
                          self.final_h(self.bw, backwards, lengths, training, bw_seed)], axis=1)


class SketchRNN(sketch_model.SketchModel):
    """sketch-rnn: stroke encoder -> (mu, presig) -> z -> stroke decoder, trained on r_cost + kl_w(s) KL_used."""

    encoder_input = 'strokes'

    def __init__(self, hps, name='sketch_rnn'):
        super().__init__(name=name)
        self.hps = hps
        if hps.conditional:
            self.encoder = StrokeEncoder(hps)
            width = 2 * hps.enc_rnn_size
            self.fc_mu = model.Dense(width, hps.z_size, 0.001)
            self.fc_presig = model.Dense(width, hps.z_size, 0.001)
        self.decoder = model.StrokeDecoder(hps, hps.z_size, conditional=hps.conditional, init_state_stddev=0.001,
                                           output_init='glorot')
        self.optimizer = sketch_model.Adam(self.trainable_variables, beta_1=0.9)

    def latent(self, strokes, training, seed=None):
        """(mu, presig = log sigma^2) of q(z|x) from the stroke encoder (its training dropout drawn from `seed`)."""
        h_enc = self.encoder(strokes, training, seed)
        return self.fc_mu(h_enc), self.fc_presig(h_enc)

    def encode(self, strokes, images):
        """(mu, sigma2) of q(z|x) read from the strokes (`images` is unused); unconditional: z = 0, so (0, 0)."""
        del images
        if not self.hps.conditional:
            zeros = tf.zeros([tf.shape(strokes)[0], self.hps.z_size])
            return zeros, zeros
        mu, presig = self.latent(strokes, training=False)
        return mu, tf.exp(presig)

    def losses(self, strokes, images, step, training, seed=None):
        """(r_cost (mean over B·T, pen loss unmasked), KL_used, the KL weight and the total cost; no state; a single
        dummy component). z is sampled in training and validation alike; validation weighs the KL by
        kl_weight_start (Q25)."""
        del images
        hps = self.hps
        encoder_seed, z_seed, decoder_seed = model.draw_seeds(seed, 3)
        if hps.conditional:
            mu, presig = self.latent(strokes, training, encoder_seed)
            z = model.reparameterise(mu, tf.exp(presig / 2.0), z_seed)
            kl = kl_with_tolerance(mu, presig, hps.kl_tolerance, self.batch)
        else:
            z, kl = tf.zeros([tf.shape(strokes)[0], hps.z_size]), tf.constant(0.0)
        params = self.decoder(strokes[:, :-1], z, training, decoder_seed)
        steps = tf.cast(tf.shape(strokes)[1] - 1, tf.float32)
        # mean over B·T = (mean_b sum_t) / T
        r_cost = model.reconstruction_loss(params, strokes[:, 1:], mask_pen=False) / steps
        weight = annealed_kl_weight(step, hps) if training else tf.constant(hps.kl_weight_start, tf.float32)
        no_mixture = tf.zeros([tf.shape(strokes)[0], 1])
        return dict(loss=r_cost + weight * kl, lil_loss=r_cost, kl_loss=kl, kl_weight=weight), None, no_mixture

    def learning_rate(self, step):
        return learning_rate(step, self.hps)

    def assign_state(self, state):
        """No non-trainable state."""
        del state
