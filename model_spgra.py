"""SP-gra2seq: a sketch as a graph of patches -> patch CNN -> GCN -> z -> sketch-rnn decoder
(docs/model.md#graph-encoder, #sp-gra2seq-losses).

Node 0 is the whole sketch, nodes 1..G-1 its patches (spgra_data.py builds them). A bias-free CNN of 2x2 stride-2
convolutions embeds every node (e, 512 numbers). Patches are linked by *synonymous proximity*: each patch links to
its three most cosine-similar patches with weights 1, 0.5, 0.2 (normally itself first) and to the whole sketch with
0.5; the rows are normalised and two GCN layers mix the nodes, whose sum gives q(z|x). Patch embeddings are also
hard-clustered to N_c centroids (non-trainable, `latent_centroids`), updated C <- 0.75 C + 0.25 C_hat every step
and pulling the embeddings with a clustering loss. Total loss = reconstruction + 0.25 clustering; there is no KL.

Differences from RPCL-pix2seq, all the original's: Adam beta1 = 0.9, lr decays per step (no /3), gradients are
clipped by norm per tensor, every FC layer is bias-free, the LSTM decoder's FCs use SP's initialisers, and
validation samples z. Batch norm keeps TF1's moving averages (decay 0.9) for evaluation and sampling.
"""
import math

import tensorflow as tf

import model
import model_sketch_rnn
import sketch_model
import spgra_data
import utils

CONV_CHANNELS = (8, 32, 64, 128, 256, 512, 512)  # the patch CNN at P = 256; a smaller P keeps the last log2(P) - 1
EMBED = 512                                       # node embedding size (the last conv's channels)
NEIGHBOUR_WEIGHTS = (1.0, 0.5, 0.2)               # a patch's links to its 1st, 2nd and 3rd most similar patches
WHOLE_WEIGHT = 0.5                                # a valid patch's link to the whole-sketch node
CENTROID_RATE = 0.25                              # C <- (1 - 0.25) C + 0.25 C_hat
CLUSTER_WEIGHT = 0.25                             # loss = lil + 0.25 clustering
BN_DECAY, BN_EPSILON = 0.9, 1e-5
COS_EPS = 1e-30                                   # cos = a.b / (|a| |b| + 1e-30)


# ------------------------------------------------------------------------------------------------ layers

class PatchCNN(tf.Module):
    """log2(P) - 1 bias-free 2x2 stride-2 convs (ReLU but the last; kernels Normal(0, sqrt(k / (4 C_in))), k = 2,
    last 1), then a 2x2 max-pool: uint8 nodes [N, P, P] -> raw embeddings e [N, 512]."""

    def __init__(self, patch, name='patch_cnn'):
        super().__init__(name=name)
        channels = CONV_CHANNELS[-(int(math.log2(patch)) - 1):]
        self.kernels = []
        for i, (c_in, c_out) in enumerate(zip((1,) + channels[:-1], channels)):
            gain = 1.0 if i == len(channels) - 1 else 2.0
            self.kernels.append(tf.Variable(tf.random.normal([2, 2, c_in, c_out], stddev=math.sqrt(gain / (4 * c_in))),
                                            name=f'conv{i + 1}'))

    def __call__(self, nodes):
        x = tf.cast(nodes, tf.float32)[..., None] / 255.0 * 2.0 - 1.0  # background -1, ink +1
        for kernel in self.kernels[:-1]:
            x = tf.nn.relu(tf.nn.conv2d(x, kernel, strides=2, padding='VALID'))
        x = tf.nn.conv2d(x, self.kernels[-1], strides=2, padding='VALID')
        return tf.reshape(tf.nn.max_pool2d(x, 2, 2, 'VALID'), [-1, EMBED])


class BatchNorm(tf.Module):
    """TF1 batch_norm over all axes but the last (centre, scale, eps 1e-5). Training normalises with the batch moments
    and returns the new moving averages m <- 0.9 m + 0.1 mean, v <- 0.9 v + 0.1 var n / (n - 1) (the fused kernel's
    unbiased variance [I]); evaluation normalises with the moving averages."""

    def __init__(self, channels, name=None):
        super().__init__(name=name)
        self.gamma = tf.Variable(tf.ones([channels]), name='gamma')
        self.beta = tf.Variable(tf.zeros([channels]), name='beta')
        self.moving_mean = tf.Variable(tf.zeros([channels]), trainable=False, name='moving_mean')
        self.moving_variance = tf.Variable(tf.ones([channels]), trainable=False, name='moving_variance')

    def __call__(self, x, training, batch=sketch_model.LOCAL_BATCH):
        """(normalised x, [(variable, new value)] updates for training)."""
        if not training:
            return tf.nn.batch_normalization(x, self.moving_mean, self.moving_variance, self.beta, self.gamma,
                                             BN_EPSILON), []
        rows = tf.reshape(x, [-1, x.shape[-1]])
        mean = batch.mean(rows)
        var = batch.mean(tf.square(rows - mean))
        n = batch.size(rows)
        unbiased = var * n / tf.maximum(n - 1.0, 1.0)
        updates = [(self.moving_mean, BN_DECAY * self.moving_mean + (1 - BN_DECAY) * mean),
                   (self.moving_variance, BN_DECAY * self.moving_variance + (1 - BN_DECAY) * unbiased)]
        return tf.nn.batch_normalization(x, mean, var, self.beta, self.gamma, BN_EPSILON), updates


def sp_dense(fan_in, fan_out, gain, name=None):
    """SP's bias-free FC layer, W ~ Normal(0, sqrt(gain / fan_in)) (gain 2 ReLU, 5/3 tanh, 1 linear)."""
    return model.Dense(fan_in, fan_out, math.sqrt(gain / fan_in), use_bias=False, name=name)


class SPStrokeDecoder(model.StrokeDecoder):
    """The shared stroke decoder with SP's bias-free FCs: initial state tanh(z W), W ~ Normal(0, sqrt(5/3 / D));
    output W ~ Normal(0, sqrt(1 / H))."""

    def __init__(self, hps, name='stroke_decoder'):
        super().__init__(hps, hps.z_size, name=name)
        with self.name_scope:
            self.init_fc = sp_dense(hps.z_size, self.cell.state_size, 5.0 / 3.0, name='init_fc')
            self.out_fc = sp_dense(hps.dec_rnn_size, 3 + 6 * hps.mdn_components, 1.0, name='out_fc')


# ------------------------------------------------------------------------------------------------ graph maths

def cosine_similarity(a, b):
    """cos_ij = a_i . b_j / (|a_i| |b_j| + 1e-30): a [.., N, F], b [.., M, F] -> [.., N, M]."""
    norms = tf.norm(a, axis=-1)[..., :, None] * tf.norm(b, axis=-1)[..., None, :]
    return tf.matmul(a, b, transpose_b=True) / (norms + COS_EPS)


def neighbour_weights(similarity):
    """A_ij = S_ij (w1_ij + 0.5 w2_ij + 0.2 w3_ij): w1 = one-hot argmax_j S_ij; w2 the argmax of S - S w1 (the first
    winner's entry zeroed), w3 of S - S (w1 + w2). As the original: a row whose remaining entries are all negative
    picks an earlier winner again (its zeroed entry is the largest)."""
    size = similarity.shape[-1]
    first, second, third = NEIGHBOUR_WEIGHTS
    w1 = tf.one_hot(tf.argmax(similarity, axis=-1), size)
    w2 = tf.one_hot(tf.argmax(similarity - similarity * w1, axis=-1), size)
    w3 = tf.one_hot(tf.argmax(similarity - similarity * (w1 + w2), axis=-1), size)
    return similarity * (first * w1 + second * w2 + third * w3)


def adjacency(patches, validity):
    """Row-normalised adjacency [B, G, G] from raw patch embeddings [B, G-1, F] and the validity mask [B, G-1, G-1].

    Row 0 = (1, 0, ..., 0): the whole-sketch node sees itself only. Row i >= 1 = (0.5 v_i, A_i . * valid_i .), with
    A = neighbour_weights(cos(patches, patches)) and v_i = valid_i0 (Q16: if patch 0 is masked no patch links to
    the whole sketch). Each row is divided by its sum + 1e-10."""
    links = neighbour_weights(cosine_similarity(patches, patches)) * validity
    count = tf.shape(patches)[0]
    top = tf.concat([tf.ones([count, 1, 1]), tf.zeros([count, 1, patches.shape[1]])], axis=2)
    rows = tf.concat([WHOLE_WEIGHT * validity[:, :, 0:1], links], axis=2)
    full = tf.concat([top, rows], axis=1)
    return full / (tf.reduce_sum(full, axis=2, keepdims=True) + 1e-10)


def assign_clusters(patches, centroids):
    """One-hot a_pk = [k = argmax_k cos(e_p, C_k)]: patches [N, F], centroids [K, F] -> [N, K]."""
    return tf.one_hot(tf.argmax(cosine_similarity(patches, centroids), axis=1), centroids.shape[0])


def update_centroids(patches, assign, valid, centroids, batch=sketch_model.LOCAL_BATCH):
    """C' = 0.75 C + 0.25 C_hat, C_hat_k = sum_p a_pk v_p e_p / (sum_p a_pk v_p + 1e-10) over the valid patches
    (v_p = 1); a cluster without valid patches is pulled toward 0."""
    weights = assign * valid[:, None]
    c_hat = (batch.total(tf.matmul(weights, patches, transpose_a=True))
             / (batch.total(tf.reduce_sum(weights, axis=0))[:, None] + 1e-10))
    return (1.0 - CENTROID_RATE) * centroids + CENTROID_RATE * c_hat


def clustering_loss(patches, assign, valid, centroids, batch=sketch_model.LOCAL_BATCH):
    """sum_p v_p 1/2 |e_p - C_a(p)|^2 / sum_p v_p (0 when no patch is valid, where the original divides by zero)."""
    distance = 0.5 * tf.reduce_sum(tf.square(patches - tf.matmul(assign, centroids)), axis=1)
    return tf.math.divide_no_nan(batch.total(tf.reduce_sum(valid * distance)), batch.total(tf.reduce_sum(valid)))


# ------------------------------------------------------------------------------------------------ encoder

class GraphEncoder(tf.Module):
    """Patch CNN -> X = BN(ReLU(e)) -> H0 = A X, H1 = ReLU(H0 W1), H2 = ReLU(H1 W2) -> g = sum_nodes (H0 + H2) ->
    tanh(BN(g)) -> mu, log-variance (bias-free FCs)."""

    def __init__(self, hps, name='graph_encoder'):
        super().__init__(name=name)
        self.graph_number = hps.graph_number
        self.cnn = PatchCNN(hps.graph_picture_size)
        self.node_norm = BatchNorm(EMBED, name='node_norm')
        self.w1 = tf.Variable(tf.random.normal([EMBED, EMBED], stddev=math.sqrt(2.0 / EMBED)), name='gcn_weight_1')
        self.w2 = tf.Variable(tf.random.normal([EMBED, EMBED], stddev=math.sqrt(2.0 / EMBED)), name='gcn_weight_2')
        self.graph_norm = BatchNorm(EMBED, name='graph_norm')
        self.fc_mu = sp_dense(EMBED, hps.z_size, 1.0, name='fc_mu')
        self.fc_logvar = sp_dense(EMBED, hps.z_size, 1.0, name='fc_logvar')

    def __call__(self, nodes, validity, training, batch=sketch_model.LOCAL_BATCH):
        """nodes uint8 [B, G, P, P], validity [B, G-1, G-1] -> (mu, logvar, raw patch embeddings [B, G-1, 512],
        batch-norm updates)."""
        size = nodes.shape[-1]
        e = tf.reshape(self.cnn(tf.reshape(nodes, [-1, size, size])), [-1, self.graph_number, EMBED])
        x, node_updates = self.node_norm(tf.nn.relu(e), training, batch)
        h0 = tf.matmul(adjacency(e[:, 1:], validity), x)
        h2 = tf.nn.relu(tf.matmul(tf.nn.relu(tf.matmul(h0, self.w1)), self.w2))
        g, graph_updates = self.graph_norm(tf.reduce_sum(h0 + h2, axis=1), training, batch)
        g = tf.tanh(g)
        return self.fc_mu(g), self.fc_logvar(g), e[:, 1:], node_updates + graph_updates


# ------------------------------------------------------------------------------------------------ the model

class SPGra2Seq(sketch_model.SketchModel):
    """Graph encoder, synonymous-proximity clustering and the LSTM stroke decoder of SP-gra2seq. The image input of
    the steps is the pair (nodes uint8 [B, G, P, P], validity [B, G-1, G-1]) of spgra_data.GraphLoader."""

    encoder_input = 'graph'

    @classmethod
    def load_splits(cls, data_dir, hps):
        """Loaders whose batches carry the patch graphs of the strokes (docs/model.md#sp-gra2seq)."""
        return spgra_data.load_graph_dataset(data_dir, hps)

    def __init__(self, hps, name='sp_gra2seq'):
        super().__init__(name=name)
        spgra_data.check_graph_hparams(hps)
        patches = hps.batch_size * (hps.graph_number - 1)
        if not 1 <= hps.num_clusters <= patches:
            raise utils.UserError(f'hparam num_clusters={hps.num_clusters} must be in [1, batch_size * (graph_number '
                                  f'- 1) = {patches}]: the centroids start as the first batch\'s patch embeddings')
        self.hps = hps
        self.encoder = GraphEncoder(hps)
        self.decoder = SPStrokeDecoder(hps)
        self.latent_centroids = tf.Variable(tf.random.uniform([hps.num_clusters, EMBED], 0.0, 5.0), trainable=False,
                                            name='latent_centroids')
        self.centroids_ready = tf.Variable(False, trainable=False, name='centroids_ready')
        self.optimizer = sketch_model.Adam(self.trainable_variables, beta_1=0.9)

    def image_spec(self, batch_size, image_size):
        """(nodes uint8 [B, G, P, P], validity float32 [B, G-1, G-1]); image_size is unused."""
        del image_size
        g, p = self.hps.graph_number, self.hps.graph_picture_size
        return (tf.TensorSpec([batch_size, g, p, p], tf.uint8), tf.TensorSpec([batch_size, g - 1, g - 1], tf.float32))

    def clip_gradients(self, grads):
        """Each gradient clipped to norm grad_clip (per tensor)."""
        return [tf.clip_by_norm(g, self.hps.grad_clip) for g in grads]

    def learning_rate(self, step):
        return model_sketch_rnn.learning_rate(step, self.hps)

    def encode(self, strokes, images):
        """(mu, sigma2 = exp(logvar)) of q(z|graph), batch norm from its moving averages; `strokes` is unused."""
        del strokes
        mu, logvar, _, _ = self.encoder(*images, training=False)
        return mu, tf.exp(logvar)

    def starting_centroids(self, patches):
        """The stored centroids; before the first training step, the first N_c patch embeddings of the batch (the
        original overwrites its U(0, 5) initial values with them at epoch 0). Under tf.distribute every replica takes
        those of the first replica's shard, the start of the global batch."""
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        is_first = tf.cast(tf.equal(replica, 0), tf.float32)
        first = self.batch.total(tf.stop_gradient(patches[:self.hps.num_clusters]) * is_first)
        return tf.cond(self.centroids_ready, lambda: tf.identity(self.latent_centroids), lambda: first)

    def losses(self, strokes, images, step, training, seed=None):
        """(lil + 0.25 clustering; new centroids and batch-norm averages; a single dummy component). z is sampled in
        training and validation alike; training uses batch moments, validation the moving averages and masks the pen
        loss."""
        del step
        nodes, validity = images
        mu, logvar, patches, norm_updates = self.encoder(nodes, validity, training, self.batch)
        patches = tf.reshape(patches, [-1, EMBED])
        valid = tf.reshape(validity[:, :, 0], [-1])  # v_p = validity of patch p against patch 0
        centroids = self.starting_centroids(patches) if training else self.latent_centroids
        assign = assign_clusters(patches, centroids)
        new_centroids = update_centroids(patches, assign, valid, centroids, self.batch)
        z_seed, decoder_seed = model.draw_seeds(seed, 2)
        z = model.reparameterise(mu, tf.exp(logvar / 2.0), z_seed)
        params = self.decoder(strokes[:, :-1], z, training, decoder_seed)
        out = dict(lil_loss=model.reconstruction_loss(params, strokes[:, 1:], mask_pen=not training),
                   cluster_loss=clustering_loss(patches, assign, valid, tf.stop_gradient(new_centroids), self.batch),
                   kl_weight=tf.constant(0.0))  # no KL term; the training log prints a KL weight
        out['loss'] = out['lil_loss'] + CLUSTER_WEIGHT * out['cluster_loss']
        return out, (new_centroids, norm_updates), tf.zeros([tf.shape(strokes)[0], 1])

    def assign_state(self, state):
        """Store the updated centroids (now initialised) and the batch-norm moving averages."""
        centroids, norm_updates = state
        self.latent_centroids.assign(centroids)
        self.centroids_ready.assign(True)
        for variable, value in norm_updates:
            variable.assign(value)
