"""What every model type shares (docs/model_interface.md): the `SketchModel` interface with its training and
validation steps, the statistics over the batch those steps take, TF1's Adam, and the compiled steps.

A model type (model.py, model_rpclh.py, model_ia.py, model_sketch_rnn.py, model_spgra.py) subclasses SketchModel
and defines its abstract methods; the programs and library functions ask a model only through this interface.
"""
import abc

import tensorflow as tf

import dataset

# ------------------------------------------------------------------------------------------------ batch statistics

class LocalBatch:
    """Sums and means over the batch when the whole batch is on one device: the partial sums are the totals, so the
    single-device step has no extra ops."""

    def total(self, partial):
        """The global batch's sum of a quantity whose sum over this device's rows is `partial`."""
        return partial

    def mean(self, x, axis=0):
        """Mean of x over the batch axis 0 (axis=None: over every element)."""
        return tf.reduce_mean(x, axis=axis)

    def size(self, x):
        """B, the number of rows of the (global) batch, in x's dtype."""
        return tf.cast(tf.shape(x)[0], x.dtype)

    def average(self, grads):
        """Gradients of the global batch's mean loss from this device's gradients."""
        return grads

    def shard_seed(self, seed):
        """The stateless seed of this device's shard of the step's noise: the step seed itself."""
        return seed


LOCAL_BATCH = LocalBatch()


# ------------------------------------------------------------------------------------------------ optimiser

class Adam(tf.Module):
    """Adam as TF1's AdamOptimizer: lr_t = lr sqrt(1 - b2^t) / (1 - b1^t); var -= lr_t m / (sqrt(v) + eps)."""

    def __init__(self, variables, beta_1=0.5, beta_2=0.999, epsilon=1e-8, name='adam'):
        super().__init__(name=name)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False, name='iterations')
        self.m = [tf.Variable(tf.zeros_like(v), trainable=False, name='m') for v in variables]
        self.v = [tf.Variable(tf.zeros_like(v), trainable=False, name='v') for v in variables]

    def apply(self, grads, variables, lr):
        t = tf.cast(self.iterations + 1, tf.float32)
        lr_t = lr * tf.sqrt(1.0 - tf.pow(self.beta_2, t)) / (1.0 - tf.pow(self.beta_1, t))
        for g, var, m, v in zip(grads, variables, self.m, self.v):
            m.assign(self.beta_1 * m + (1.0 - self.beta_1) * g)
            v.assign(self.beta_2 * v + (1.0 - self.beta_2) * tf.square(g))
            var.assign_sub(lr_t * m / (tf.sqrt(v) + self.epsilon))
        self.iterations.assign_add(1)


# ------------------------------------------------------------------------------------------------ the interface

class SketchModel(tf.Module, metaclass=abc.ABCMeta):
    """The interface every model type implements (docs/model_interface.md); callers ask the model, never its
    model_type. A subclass must define the four abstract methods (Python refuses to construct one that misses any,
    naming them) and set `hps`, `decoder` (a model.StrokeDecoder: `generate` draws sketches from codes) and
    `optimizer` (an Adam) in its constructor; the other methods have defaults for a model without a latent mixture.

    `batch` takes every statistic over the batch (latent-mixture updates, gradients): LOCAL_BATCH on one device,
    a distributed.ReplicaBatch when the steps run as replicas of a tf.distribute strategy."""

    encoder_input = 'image'   # what encode() reads: 'image' (rasterised sketches), 'strokes' or 'graph' (patches)

    batch = LOCAL_BATCH

    def train_step(self, strokes, images, step, seed):
        """Forward, gradients (clipped by clip_gradients), then the optimiser and the new state, both only if the
        loss, every clipped gradient and the new state are finite: out['finite'] is 1.0 for an applied step and
        0.0 for a skipped one, which changes no variable. Every random draw comes from `seed` ([2] int64)."""
        variables = self.trainable_variables
        with tf.GradientTape() as tape:
            out, new_state, _ = self.losses(strokes, images, step, training=True, seed=self.batch.shard_seed(seed))
        grads = self.clip_gradients(self.batch.average(tape.gradient(out['loss'], variables)))
        out['learning_rate'] = self.learning_rate(step)
        out['finite'] = self.all_finite([out['loss'], *grads, *tf.nest.flatten(new_state)])
        tf.cond(out['finite'] > 0, lambda: self.apply_update(grads, variables, out['learning_rate'], new_state),
                lambda: None)
        return out

    def all_finite(self, tensors):
        """1.0 if no element of the tensors (None entries ignored) is NaN or infinite on any replica, else 0.0."""
        bad = tf.add_n([tf.reduce_sum(tf.cast(~tf.math.is_finite(t), tf.float32)) for t in tensors if t is not None])
        return tf.cast(self.batch.total(bad) == 0, tf.float32)

    def apply_update(self, grads, variables, lr, new_state):
        """One optimiser step and the new non-trainable state."""
        self.optimizer.apply(grads, variables, lr)
        self.assign_state(new_state)

    def clip_gradients(self, grads):
        """Element-wise clip of every gradient to [-grad_clip, grad_clip]."""
        clip = self.hps.grad_clip
        return [tf.clip_by_value(g, -clip, clip) for g in grads]

    def image_spec(self, batch_size, image_size):
        """The image input of the compiled steps: float32 [B, W, W] in [-1, 1]."""
        return tf.TensorSpec([batch_size, image_size, image_size], tf.float32)

    @classmethod
    def load_splits(cls, data_dir, hps):
        """(train, valid, test, hps with max_seq_len) loaders of what the model reads: stroke-5 batches, with their
        images when the encoder reads images (docs/model.md#data)."""
        return dataset.load_dataset(data_dir, hps, png_required=cls.encoder_input == 'image')

    @abc.abstractmethod
    def encode(self, strokes, images):
        """q(z|x) of a batch: (mu [B, D], sigma2 [B, D]), read from the input named by `encoder_input`."""

    @abc.abstractmethod
    def losses(self, strokes, images, step, training, seed=None):
        """One forward pass: (losses dict with 'loss', the new non-trainable state or None, the posterior over the
        latent components [B, K]). Training draws its noise from `seed` ([2] int64); no variable changes here."""

    @abc.abstractmethod
    def learning_rate(self, step):
        """The learning rate of training step `step` (float32)."""

    @abc.abstractmethod
    def assign_state(self, state):
        """Store the new non-trainable state that `losses` returned (latent mixture, centroids; None: nothing)."""

    def mixture_weights(self):
        """Prior weights of the latent Gaussians [K], or None for a model without a latent mixture."""
        return None

    def group_weights(self):
        """(q(i) [I], q(j|i) [J, I]) of a two-level latent hierarchy, or None."""
        return None

    def group_responsibilities(self, z):
        """p(i|z) [N, I] over the groups of a two-level latent hierarchy, or None."""
        del z
        return None

    def gaussian_index(self, z):
        """The latent Gaussian of each code z [N, D] (int64 [N]); 0 for every code without a latent mixture."""
        return tf.zeros([tf.shape(z)[0]], tf.int64)

    def labels(self, z, mu, sigma2, transient=False):
        """{sample file prefix: int64 labels [N]} of codes z [N, D] whose references have encoder outputs (mu,
        sigma2); {} without a latent mixture. `transient` only matters for RPCL-pix2seqH."""
        del z, mu, sigma2, transient
        return {}

    def eval_step(self, strokes, images, step, seed):
        """Validation losses (dropout off; models that sample z in validation draw it from `seed`), the
        z-dependence of the decoder, and each code's winning latent component; no state changes."""
        out, _, posterior = self.losses(strokes, images, step, training=False, seed=self.batch.shard_seed(seed))
        mu, _ = self.encode(strokes, images)
        out['z_dependence'] = self.decoder.z_dependence(strokes, mu)
        out['winners'] = tf.argmax(posterior, axis=1)
        return out


def compile_steps(model, batch_size, max_seq_len, image_size, jit_compile=False, bucketed=False):
    """tf.function train and eval steps over (strokes [B, T+1, 5], the model's image_spec ([B, W, W]), an int64
    step, a [2] int64 seed). The shapes are static, so each step compiles once; with `bucketed` (length-bucketed
    training batches, hparam bucket_width) the training step compiles once per batch length instead."""
    signature = [tf.TensorSpec([batch_size, max_seq_len + 1, 5], tf.float32),
                 model.image_spec(batch_size, image_size),
                 tf.TensorSpec([], tf.int64),
                 tf.TensorSpec([2], tf.int64)]
    train = tf.function(model.train_step, input_signature=None if bucketed else signature, jit_compile=jit_compile)
    evaluate = tf.function(model.eval_step, input_signature=signature, jit_compile=jit_compile)
    return train, evaluate
