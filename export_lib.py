"""A trained model as a TensorFlow SavedModel that needs nothing of this repository (docs/export.md).

`export(model_dir, export_dir)` restores the run's best checkpoint and saves three functions, each also a serving
signature with the same names:

  encode(images | strokes)                 -> {mu, sigma2[, gamma]}
  generate(z, temperature, seed, max_len)  -> {strokes}
  reconstruct(images | strokes, temperature, seed) -> {z, strokes}

Image models (rpcl, rpclh, ia) read images float32 [N, W, W] in [-1, 1] (white +1); sketch_rnn reads stroke-5
sketches float32 [N, T + 1, 5] (T = max_seq_len, offsets divided by the training data's scale factor). gamma
[N, K] is the posterior over the latent Gaussians of z = mu under the stored mixture (models with one). generate
is sample.py's decoding (model.StrokeDecoder.generate, stop at end-of-sketch): the same z, temperature and seed
give the same stroke-5 rows [N, max_len, 5]; reconstruct decodes z = mu for max_seq_len steps. The SavedModel also
holds `config` (the run's model_config.json text), `max_seq_len`, `z_size` and `png_width`.
"""
import os
import shutil
import tempfile

import tensorflow as tf

import family
import utils

EXPORTABLE_INPUTS = ('image', 'strokes')   # encoder inputs an exported function can take (not patch graphs)


def exported_module(net, hps):
    """A tf.Module holding the model's parts (family.restore_model's model has no optimiser), the metadata and the
    three functions."""
    module = tf.Module(name='exported')
    module.parts = {name: part for name, part in vars(net).items() if isinstance(part, (tf.Module, tf.Variable))}
    module.config = tf.Variable(hps.to_json(), trainable=False)
    module.max_seq_len = tf.Variable(hps.max_seq_len, trainable=False)
    module.z_size = tf.Variable(hps.z_size, trainable=False)
    module.png_width = tf.Variable(hps.png_width, trainable=False)
    scalars = [tf.TensorSpec([], tf.float32, name='temperature'), tf.TensorSpec([], tf.int64, name='seed')]

    def encode(inputs):
        """{mu, sigma2} of q(z|x), and gamma [N, K] of z = mu for models with a latent mixture."""
        mu, sigma2 = net.encode(*split_inputs(net, inputs))
        out = {'mu': mu, 'sigma2': sigma2}
        if net.mixture_weights() is not None:
            out['gamma'] = net.responsibilities(mu)
        return out

    def generate(z, temperature, seed, max_len):
        """{strokes}: stroke-5 rows [N, max_len, 5] decoded from z as sample.py does."""
        return {'strokes': net.decoder.generate(z, max_len, temperature, seed)}

    def reconstruct(inputs, temperature, seed):
        """{z = mu, strokes [N, max_seq_len, 5]} of the inputs."""
        z = encode(inputs)['mu']
        return {'z': z, 'strokes': generate(z, temperature, seed, hps.max_seq_len)['strokes']}

    module.generate = tf.function(generate, input_signature=[
        tf.TensorSpec([None, hps.z_size], tf.float32, name='z'), *scalars, tf.TensorSpec([], tf.int32, 'max_len')])
    if net.decoder.conditional:
        module.encode = tf.function(encode, input_signature=[input_spec(net)])
        module.reconstruct = tf.function(reconstruct, input_signature=[input_spec(net), *scalars])
    return module


def input_spec(net):
    """images float32 [N, W, W] for models that encode images, stroke-5 float32 [N, T + 1, 5] for stroke encoders."""
    hps = net.hps
    if net.encoder_input == 'strokes':
        return tf.TensorSpec([None, hps.max_seq_len + 1, 5], tf.float32, name='strokes')
    return tf.TensorSpec([None, hps.png_width, hps.png_width], tf.float32, name='images')


def split_inputs(net, inputs):
    """(strokes, images) for the model's encode from the one input of the exported functions."""
    if net.encoder_input == 'strokes':
        return inputs, None
    return None, inputs


def check_exportable(net):
    if net.encoder_input not in EXPORTABLE_INPUTS:
        raise utils.UserError(f'a {net.hps.model_type} model cannot be exported: its encoder reads '
                              f"{net.encoder_input} inputs (exportable: {', '.join(EXPORTABLE_INPUTS)})")


def export(model_dir, export_dir):
    """Write the SavedModel of the run in model_dir to export_dir (a new directory, written whole or not at all).
    Returns the model's hparams."""
    net, hps = family.restore_model(model_dir)
    check_exportable(net)
    if os.path.exists(export_dir):
        raise utils.UserError(f'--export_dir {export_dir} already exists; choose a new directory')
    parent = os.path.dirname(os.path.abspath(export_dir))
    utils.make_output_dir(parent, '--export_dir')
    module = exported_module(net, hps)
    signatures = {name: getattr(module, name) for name in ('encode', 'generate', 'reconstruct')
                  if hasattr(module, name)}
    staging = tempfile.mkdtemp(dir=parent, prefix=f'.{os.path.basename(export_dir)}.')
    try:
        # inference only: the custom gradients of rnn.py's loop are not saved (they capture loop tensors)
        tf.saved_model.save(module, staging, signatures=signatures,
                            options=tf.saved_model.SaveOptions(experimental_custom_gradients=False))
        os.replace(staging, export_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return hps
