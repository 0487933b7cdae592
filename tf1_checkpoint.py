"""Checkpoints of the original TF1 code read into this project's models (docs/tf1_checkpoints.md).

Two originals: CMACH508/RPCL-pix2seq (`model_type` rpcl, variable scope `RPCL-pix2seq`) and magenta sketch-rnn
(`model_type` sketch_rnn, scope `vector_rnn`), each with an lstm, layer_norm or hyper decoder. `variable_map` names,
for every variable of the model (weights, the latent GMM, Adam's moments), the checkpoint tensors it is made of;
`convert` reads a checkpoint with tf.train.load_checkpoint (no TF1 graph is built), fills a model built from the
original's model_config.json and writes an ordinary run directory (model_config.json and a `vector-<epoch>`
checkpoint) that sample.py, retrieval.py, visualization.py and train.py --resume_training read.
"""
import collections
import json
import math
import os

import numpy as np
import tensorflow as tf

import family
import hyperparams
import rnn
import utils

SCOPES = {'rpcl': 'RPCL-pix2seq', 'sketch_rnn': 'vector_rnn'}
CELL_SCOPES = {rnn.LSTMCell: 'LSTMCell', rnn.LayerNormLSTMCell: 'LayerNormLSTMCell',
               rnn.HyperLSTMCell: 'HyperLSTMCell'}
CELL_MODELS = {'LSTMCell': 'lstm', 'LayerNormLSTMCell': 'layer_norm', 'HyperLSTMCell': 'hyper'}
# the HyperLSTM's modulators in the order of the fused Z_alpha / b_alpha / A_alpha and Z_beta / A_beta (rnn.py)
ALPHA_MODULATORS = ('ix', 'jx', 'fx', 'ox', 'ih', 'jh', 'fh', 'oh')
BETA_MODULATORS = ('ih', 'jh', 'fh', 'oh')
ADAM_SLOTS = ('Adam', 'Adam_1')   # TF1 AdamOptimizer's m and v, named <scope>/<variable>/Adam(_1)
# magenta's get_default_hparams (sketch_rnn/model.py), in the order its trainer writes them to model_config.json
MAGENTA_DEFAULTS = dict(
    data_set=['aaron_sheep.npz'], num_steps=10000000, save_every=500, max_seq_len=250, dec_rnn_size=512,
    dec_model='lstm', enc_rnn_size=256, enc_model='lstm', z_size=128, kl_weight=0.5, kl_weight_start=0.01,
    kl_tolerance=0.2, batch_size=100, grad_clip=1.0, num_mixture=20, learning_rate=0.001, decay_rate=0.9999,
    kl_decay_rate=0.99995, min_learning_rate=0.00001, use_recurrent_dropout=True, recurrent_dropout_prob=0.90,
    use_input_dropout=False, input_dropout_prob=0.90, use_output_dropout=False, output_dropout_prob=0.90,
    random_scale_factor=0.15, augment_stroke_prob=0.10, conditional=True, is_training=True)
# magenta name -> ours where they differ; save_every counts steps there and epochs here, so it is not carried over
MAGENTA_RENAMES = {'data_set': 'categories', 'num_mixture': 'mdn_components', 'save_every': None}
PARA_FILE = 'para.npz'      # RPCL-pix2seq's training counters beside its checkpoints (best_valid_loss, epoch, count)

Entry = collections.namedtuple('Entry', 'variable names combine')
Entry.__doc__ = """One model variable and the checkpoint tensors `names` it is made of: combine(list of arrays)."""


def single(arrays):
    """The one tensor of an entry."""
    return arrays[0]


def concat_columns(arrays):
    """Tensors side by side along their last axis."""
    return np.concatenate(arrays, axis=-1)


def stack_arrays(arrays):
    """Tensors stacked along a new first axis."""
    return np.stack(arrays)


# ------------------------------------------------------------------------------------------------ the variable map

def one(variable, name):
    """A variable copied from one tensor."""
    return Entry(variable, (name,), single)


def dense_entries(layer, scope, w='super_linear_w', b='super_linear_b'):
    """A Dense layer: w and b (RPCL-pix2seq's `linear` names them fc_w, fc_b; magenta's super_linear as default)."""
    return [one(layer.w, f'{scope}/{w}'), one(layer.b, f'{scope}/{b}')]


def conv_entries(conv, scope):
    """A Conv or Deconv with its instance norm: `filter`, InstanceNorm/gamma, InstanceNorm/beta."""
    return [one(conv.kernel, f'{scope}/filter'), one(conv.norm.gamma, f'{scope}/InstanceNorm/gamma'),
            one(conv.norm.beta, f'{scope}/InstanceNorm/beta')]


def layer_norm_entries(cell, scope):
    """LayerNormLSTMCell (magenta rnn.py): W_xh, W_hh and the ln_all / ln_c layer-norm gains and biases."""
    return [one(cell.W_xh, f'{scope}/W_xh'), one(cell.W_hh, f'{scope}/W_hh'),
            one(cell.ln_gamma, f'{scope}/ln_all/ln_gamma'), one(cell.ln_beta, f'{scope}/ln_all/ln_beta'),
            one(cell.ln_c_gamma, f'{scope}/ln_c/ln_gamma'), one(cell.ln_c_beta, f'{scope}/ln_c/ln_beta')]


def hyper_entries(cell, scope):
    """HyperLSTMCell (magenta rnn.py): the hyper LayerNormLSTMCell, W_xh, W_hh, bias, layer norms, and the twelve
    hyper_<g> modulators fused as rnn.HyperLSTMCell stores them: Z_alpha = [zw_ix | .. | zw_oh] (columns), b_alpha
    likewise from the zw biases, A_alpha = stack(alpha_ix .. alpha_oh), Z_beta = [zb_ih | .. | zb_oh], A_beta =
    stack(beta_ih .. beta_oh)."""
    def modulators(names, part):
        return tuple(f'{scope}/hyper_{g}/{part}' for g in names)

    entries = layer_norm_entries(cell.hyper_cell, f'{scope}/LayerNormLSTMCell')
    entries += [one(cell.W_xh, f'{scope}/W_xh'), one(cell.W_hh, f'{scope}/W_hh'), one(cell.bias, f'{scope}/bias'),
                one(cell.ln_gamma, f'{scope}/ln_all/ln_gamma'), one(cell.ln_beta, f'{scope}/ln_all/ln_beta'),
                one(cell.ln_c_gamma, f'{scope}/ln_c/ln_gamma'), one(cell.ln_c_beta, f'{scope}/ln_c/ln_beta')]
    return entries + [
        Entry(cell.Z_alpha, modulators(ALPHA_MODULATORS, 'zw/super_linear_w'), concat_columns),
        Entry(cell.b_alpha, modulators(ALPHA_MODULATORS, 'zw/super_linear_b'), concat_columns),
        Entry(cell.A_alpha, modulators(ALPHA_MODULATORS, 'alpha/super_linear_w'), stack_arrays),
        Entry(cell.Z_beta, modulators(BETA_MODULATORS, 'zb/super_linear_w'), concat_columns),
        Entry(cell.A_beta, modulators(BETA_MODULATORS, 'beta/super_linear_w'), stack_arrays)]


def cell_entries(cell, scope):
    """A recurrent cell under `scope`/<its TF1 class name>."""
    scope = f'{scope}/{CELL_SCOPES[type(cell)]}'
    if isinstance(cell, rnn.HyperLSTMCell):
        return hyper_entries(cell, scope)
    if isinstance(cell, rnn.LayerNormLSTMCell):
        return layer_norm_entries(cell, scope)
    return [one(cell.W_xh, f'{scope}/W_xh'), one(cell.W_hh, f'{scope}/W_hh'), one(cell.bias, f'{scope}/bias')]


def rpcl_entries(net, scope=SCOPES['rpcl']):
    """RPCL-pix2seq (its model.py and Cnn.py): the CNN encoder, the deconv branch, the stroke decoder and the GMM."""
    encoder, image_decoder, decoder = net.encoder, net.image_decoder, net.decoder
    entries = []
    for block, layer in ((encoder.block1, 'layer_1'), (encoder.block2, 'layer_2')):
        for rate_index, conv in enumerate(block.branches, 1):
            entries += conv_entries(conv, f'{scope}/encoder/{layer}/dcn{rate_index}/conv0')
        entries += conv_entries(block.down, f'{scope}/encoder/{layer}/combine/conv0')
    entries += conv_entries(encoder.conv3, f'{scope}/encoder/conv0')
    entries += conv_entries(encoder.conv4, f'{scope}/encoder/conv1')
    entries += dense_entries(encoder.fc_mu, f'{scope}/encoder/fc_mu/linear', 'fc_w', 'fc_b')
    entries += dense_entries(encoder.fc_sigma2, f'{scope}/encoder/fc_sigma2/linear', 'fc_w', 'fc_b')
    entries += dense_entries(image_decoder.fc, f'{scope}/deconv/fc1/linear', 'fc_w', 'fc_b')
    for i, deconv in enumerate(image_decoder.deconvs):
        entries += conv_entries(deconv, f'{scope}/deconv/deconv{i}')
    entries += dense_entries(decoder.init_fc, f'{scope}/init_state/linear', 'fc_w', 'fc_b')
    entries += dense_entries(decoder.out_fc, f'{scope}/decoder/fc/linear', 'fc_w', 'fc_b')
    entries += cell_entries(decoder.cell, f'{scope}/decoder/rnn')
    gmm = net.gmm
    return entries + [one(gmm.de_mu, f'{scope}/latent_mu'), one(gmm.de_sigma2, f'{scope}/latent_sigma2'),
                      one(gmm.de_alpha, f'{scope}/latent_alpha')]


def sketch_rnn_entries(net, scope=SCOPES['sketch_rnn']):
    """magenta sketch_rnn/model.py: the bi-directional encoder (ENC_RNN), mu and presig heads, the initial-state
    layer (`linear`) and the decoder (RNN); an unconditional model has the decoder only."""
    decoder = net.decoder
    entries = []
    if net.hps.conditional:
        entries += cell_entries(net.encoder.fw, f'{scope}/ENC_RNN/fw')
        entries += cell_entries(net.encoder.bw, f'{scope}/ENC_RNN/bw')
        entries += dense_entries(net.fc_mu, f'{scope}/ENC_RNN_mu')
        entries += dense_entries(net.fc_presig, f'{scope}/ENC_RNN_sigma')
        entries += dense_entries(decoder.init_fc, f'{scope}/linear')
    entries += cell_entries(decoder.cell, f'{scope}/RNN')
    return entries + dense_entries(decoder.out_fc, f'{scope}/RNN', 'output_w', 'output_b')


MAPS = {'rpcl': rpcl_entries, 'sketch_rnn': sketch_rnn_entries}


def adam_entries(net, entries):
    """Adam's m and v of every trainable variable, from <scope>/<its tensors>/Adam and /Adam_1 (TF1
    AdamOptimizer's slots), combined as the variable."""
    by_variable = {id(entry.variable): entry for entry in entries}
    scope = SCOPES[net.hps.model_type]
    slots = []
    for variable, m, v in zip(net.trainable_variables, net.optimizer.m, net.optimizer.v):
        entry = by_variable[id(variable)]
        for slot, moment in zip(ADAM_SLOTS, (m, v)):
            slots.append(Entry(moment, tuple(f'{scope}/{name}/{slot}' for name in entry.names), entry.combine))
    return slots


def variable_map(net):
    """(entries of the model's variables, entries of Adam's moments) for an rpcl or sketch_rnn model."""
    entries = MAPS[net.hps.model_type](net)
    return entries, adam_entries(net, entries)


def known_unused(model_type):
    """Checkpoint entries that are read for the step count or left out on purpose: the optimiser's beta powers,
    RPCL-pix2seq's fed step variable num_of_steps, magenta's lr and kl_weight variables (Variable, Variable_1) and
    global_step; the eval model's copies (scope <scope>_1) are left out too."""
    scope = SCOPES[model_type]
    names = {f'{scope}/beta1_power', f'{scope}/beta2_power'}
    if model_type == 'rpcl':
        return names | {f'{scope}/num_of_steps'}
    return names | {f'{scope}/Variable', f'{scope}/Variable_1', f'{scope}/global_step'}


def is_unused(name, model_type):
    """Whether the conversion leaves this checkpoint entry out on purpose (see known_unused)."""
    return name in known_unused(model_type) or name.startswith(SCOPES[model_type] + '_1/')


# ------------------------------------------------------------------------------------------------ reading

def checkpoint_prefix(path):
    """The prefix of a TF1 checkpoint given as a prefix or as a directory holding a `checkpoint` state file."""
    if os.path.isdir(path):
        prefix = tf.train.latest_checkpoint(path)
        if prefix is None:
            raise utils.UserError(f'--tf1_checkpoint {path}: no checkpoint state file in this directory')
        return prefix
    if not tf.io.gfile.exists(path + '.index'):
        raise utils.UserError(f'--tf1_checkpoint {path}: no such checkpoint ({path}.index is missing)')
    return path


def read_checkpoint(prefix):
    """{name: numpy array} of every tensor of the TF1 checkpoint at `prefix`."""
    try:
        reader = tf.train.load_checkpoint(prefix)
        return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}
    except (tf.errors.OpError, ValueError) as err:
        raise utils.UserError(f'cannot read checkpoint {prefix}: {str(err).splitlines()[0]}') from None


def checkpoint_model_type(tensors):
    """'rpcl' or 'sketch_rnn', from the variable scope of the checkpoint's names."""
    for model_type, scope in SCOPES.items():
        if any(name.startswith(scope + '/') for name in tensors):
            return model_type
    sample = ', '.join(sorted(tensors)[:3])
    raise utils.UserError(f'not a checkpoint of RPCL-pix2seq or magenta sketch-rnn: no variable under '
                          f"{' or '.join(s + '/' for s in SCOPES.values())} (found {sample}, ...)")


def cell_class(tensors, scope):
    """The TF1 class name (LSTMCell, LayerNormLSTMCell or HyperLSTMCell) of the single cell under `scope`, or None
    if there is none."""
    depth = scope.count('/') + 1
    found = {parts[depth] for parts in (name.split('/') for name in tensors)
             if len(parts) > depth and '/'.join(parts[:depth]) == scope and parts[depth] in CELL_MODELS}
    if len(found) > 1:
        raise utils.UserError(f"the checkpoint holds several cells under {scope}: {', '.join(sorted(found))}")
    return found.pop() if found else None


def decoder_class(tensors, scope):
    """cell_class of the stroke decoder, which every checkpoint has."""
    found = cell_class(tensors, scope)
    if found is None:
        raise utils.UserError(f"the checkpoint has no decoder cell under {scope}/ (one of {', '.join(CELL_MODELS)})")
    return found


def shape(tensors, name):
    """The shape of a tensor the conversion needs."""
    if name not in tensors:
        raise utils.UserError(f'the checkpoint has no variable {name}')
    return tensors[name].shape


def hyper_sizes(tensors, scope):
    """hyper_num_units and hyper_embedding_size of the HyperLSTMCell under `scope`."""
    return dict(hyper_num_units=shape(tensors, f'{scope}/HyperLSTMCell/LayerNormLSTMCell/W_hh')[0],
                hyper_embedding_size=shape(tensors, f'{scope}/HyperLSTMCell/hyper_ix/zw/super_linear_w')[1])


def rpcl_architecture(tensors, scope=SCOPES['rpcl']):
    """The size hparams an RPCL-pix2seq checkpoint fixes: decoder cell and size, MDN components, z size, image
    width (from the flattened encoder output, (W/16)^2 * 256)."""
    rnn_scope = f'{scope}/decoder/rnn'
    dec_cell = decoder_class(tensors, rnn_scope)
    out = shape(tensors, f'{scope}/decoder/fc/linear/fc_w')
    flat = shape(tensors, f'{scope}/encoder/fc_mu/linear/fc_w')[0]
    found = dict(dec_model=CELL_MODELS[dec_cell], dec_rnn_size=out[0], mdn_components=(out[1] - 3) // 6,
                 z_size=shape(tensors, f'{scope}/init_state/linear/fc_w')[0], png_width=16 * math.isqrt(flat // 256))
    if dec_cell == 'HyperLSTMCell':
        found.update(hyper_sizes(tensors, rnn_scope))
    return found


def sketch_rnn_architecture(tensors, scope=SCOPES['sketch_rnn']):
    """The size hparams a sketch-rnn checkpoint fixes: cells and sizes of decoder and encoder, MDN components (its
    num_mixture), z size and whether the model is conditional (has an encoder)."""
    dec_cell = decoder_class(tensors, f'{scope}/RNN')
    enc_cell = cell_class(tensors, f'{scope}/ENC_RNN/fw')
    out = shape(tensors, f'{scope}/RNN/output_w')
    found = dict(dec_model=CELL_MODELS[dec_cell], dec_rnn_size=out[0], mdn_components=(out[1] - 3) // 6,
                 conditional=enc_cell is not None)
    if dec_cell == 'HyperLSTMCell':
        found.update(hyper_sizes(tensors, f'{scope}/RNN'))
    if enc_cell is not None:
        found.update(enc_model=CELL_MODELS[enc_cell],
                     enc_rnn_size=shape(tensors, f'{scope}/ENC_RNN/fw/{enc_cell}/W_hh')[0],
                     z_size=shape(tensors, f'{scope}/ENC_RNN_mu/super_linear_w')[1])
        if enc_cell == 'HyperLSTMCell':
            found.update(hyper_sizes(tensors, f'{scope}/ENC_RNN/fw'))
    return found


ARCHITECTURES = {'rpcl': rpcl_architecture, 'sketch_rnn': sketch_rnn_architecture}


# ------------------------------------------------------------------------------------------------ the config

def read_config(path):
    """The JSON value of the original's model_config.json."""
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except OSError as e:
        raise utils.UserError(f'cannot read --config {path}: {e.strerror}') from None
    except ValueError as e:
        raise utils.UserError(f'--config {path} is not valid JSON ({e})') from None


def magenta_values(config):
    """{magenta name: value} written in a magenta model_config.json: a dict (2017-2020), or the bare list its
    trainer has written since, json.dump(list(hps.values())), which holds the values in MAGENTA_DEFAULTS order or,
    as Python 3 writes it, the names alone (then no value is known)."""
    names = list(MAGENTA_DEFAULTS)
    if isinstance(config, dict):
        return config
    if config == names:
        return {}
    if len(config) != len(names):
        raise utils.UserError(f'a magenta model_config.json list holds its {len(names)} hparams, found '
                              f'{len(config)} entries')
    return dict(zip(names, config))


def magenta_to_project(values):
    """Our hparams from magenta's: data_set files <c>.npz become categories, num_mixture is mdn_components,
    save_every (steps there, epochs here) is dropped."""
    out = {}
    for name, value in values.items():
        ours = MAGENTA_RENAMES.get(name, name)
        if ours == 'categories':
            value = [os.path.basename(str(item)).removesuffix('.npz') for item in value]
        if ours is not None:
            out[ours] = value
    return out


def config_values(config, model_type):
    """(defaults, values written in the config) as our hparams: for RPCL-pix2seq our defaults (its names are ours)
    and its JSON object; for magenta sketch-rnn magenta's defaults without the data set, and magenta_values."""
    if model_type == 'sketch_rnn':
        foreign = sorted(set(config) - set(MAGENTA_DEFAULTS)) if isinstance(config, dict) else []
        if not isinstance(config, (dict, list)) or foreign:
            raise utils.UserError("the checkpoint is magenta sketch-rnn's, the config is not magenta's"
                                  + (f" (it has {named(foreign)})" if foreign else ''))
        defaults = {name: value for name, value in MAGENTA_DEFAULTS.items() if name != 'data_set'}
        return magenta_to_project(defaults), magenta_to_project(magenta_values(config))
    if not isinstance(config, dict) or 'data_set' in config:
        raise utils.UserError("the checkpoint is RPCL-pix2seq's, the config is not a JSON object of its hparams")
    return {}, dict(config)


def resolve_hparams(config, tensors, model_type, overrides=''):
    """HParams of the converted model: the original's defaults, the config's values, the sizes the checkpoint
    fixes, then the `overrides` (--hparams grammar). A size written in the config or the overrides that
    contradicts the checkpoint is an error naming it; a config without values (magenta's list of names) needs the
    categories in the overrides."""
    defaults, given = config_values(config, model_type)
    found = ARCHITECTURES[model_type](tensors)
    clash = [f'{name}={given[name]}' for name, value in found.items() if name in given and given[name] != value]
    values = {'categories': [], **defaults, **given, **found, 'model_type': model_type}
    hps = hyperparams.HParams.from_dict(values).parse(overrides)
    if hps.model_type != model_type:
        raise utils.UserError(f'the checkpoint holds a {model_type} model, not model_type={hps.model_type}')
    clash += [f'{name}={getattr(hps, name)}' for name, value in found.items() if getattr(hps, name) != value]
    if clash:
        sizes = ', '.join(f'{name}={value}' for name, value in found.items())
        raise utils.UserError(f"the checkpoint's sizes are {sizes}, not {', '.join(clash)}")
    if not hps.categories:
        raise utils.UserError('the config names no data set: give the categories with --hparams "categories=[...]"')
    if model_type == 'rpcl':
        check_gmm_size(tensors, hps)
    return hps


def check_gmm_size(tensors, hps):
    """UserError unless num_mixture * num_sub equals the checkpoint's number of latent Gaussians."""
    k = shape(tensors, f"{SCOPES['rpcl']}/latent_mu")[0]
    if hps.num_mixture * hps.num_sub != k:
        raise utils.UserError(f'the checkpoint has {k} latent Gaussians, not num_mixture * num_sub = '
                              f'{hps.num_mixture} * {hps.num_sub}')


# ------------------------------------------------------------------------------------------------ converting

MAX_NAMED = 12   # names listed per kind of problem in the error


def named(names):
    """Up to MAX_NAMED names, then how many more."""
    names = list(names)
    more = f' and {len(names) - MAX_NAMED} more' if len(names) > MAX_NAMED else ''
    return ', '.join(names[:MAX_NAMED]) + more


def fill(net, tensors):
    """Assign every variable of variable_map(net) from the checkpoint's `tensors`. A checkpoint without any Adam
    slot (saved without the optimiser) leaves Adam's moments at 0; otherwise every missing, mis-shaped or unknown
    tensor is named in one UserError and nothing is assigned."""
    model_type = net.hps.model_type
    entries, slots = variable_map(net)
    if any(name.endswith('/' + ADAM_SLOTS[0]) for name in tensors):
        entries = entries + slots
    missing, misshaped, used, values = [], [], set(), []
    for entry in entries:
        absent = [name for name in entry.names if name not in tensors]
        missing += absent
        used.update(entry.names)
        if absent:
            continue
        value = entry.combine([tensors[name] for name in entry.names])
        if value.shape != tuple(entry.variable.shape):
            shapes = ' + '.join(str(list(tensors[name].shape)) for name in entry.names)
            misshaped.append(f"{' + '.join(entry.names)} {shapes} (the model needs {entry.variable.shape.as_list()})")
        values.append((entry.variable, value))
    unknown = sorted(name for name in tensors if name not in used and not is_unused(name, model_type))
    problems = [f'{kind} {named(names)}' for kind, names in (('missing:', missing), ('mis-shaped:', misshaped),
                                                            ('unknown:', unknown)) if names]
    if problems:
        raise utils.UserError(f"the checkpoint does not fit a {model_type} model with dec_model={net.hps.dec_model}: "
                              + '; '.join(problems))
    for variable, value in values:
        variable.assign(value)


def adam_updates(tensors, model_type, beta_1, beta_2):
    """Adam updates done so far: magenta's global_step; else from TF1's beta powers, which hold beta^(t+1) after t
    updates (beta1_power is exact while it is a normal float32, then beta2_power is used, to about t * 6e-5 steps);
    0 without them."""
    scope = SCOPES[model_type]
    if f'{scope}/global_step' in tensors:
        return int(tensors[f'{scope}/global_step'])
    for name, beta in (('beta1_power', beta_1), ('beta2_power', beta_2)):
        power = float(tensors.get(f'{scope}/{name}', 0.0))
        if power >= np.finfo(np.float32).tiny:
            return max(round(math.log(power) / math.log(beta)) - 1, 0)
    return 0


def training_counters(prefix, net):
    """(step, kept epochs, best validation loss) to resume at: RPCL-pix2seq's para.npz beside the checkpoint if
    there is one (count, epoch, best_valid_loss); else the Adam updates, 0 and infinity."""
    para = os.path.join(os.path.dirname(prefix), PARA_FILE)
    if os.path.isfile(para):
        with np.load(para) as values:
            return int(values['count']), int(values['epoch']), float(values['best_valid_loss'])
    return int(net.optimizer.iterations), 0, math.inf


# training.TrainState's variables (the `state` of train.py's checkpoints), which --resume_training restores
TRAIN_STATE = ('step', 'epoch', 'batch_in_epoch', 'epochs_run', 'best_valid_loss', 'strikes', 'serial', 'seed',
               'fault_rollbacks')


def train_state(step, epoch, best_valid_loss):
    """The `state` object of a run saved after `epoch` kept epochs at `step`: no strikes, run seed 0."""
    values = dict.fromkeys(TRAIN_STATE, 0)
    values.update(step=step, epoch=epoch, epochs_run=epoch, serial=1)
    state = {name: tf.Variable(value, dtype=tf.int64, trainable=False) for name, value in values.items()}
    state['best_valid_loss'] = tf.Variable(best_valid_loss, dtype=tf.float64, trainable=False)
    return tf.train.Checkpoint(**state)


def write_run(output_dir, net, hps, step, epoch, best_valid_loss):
    """model_config.json and the checkpoint `vector-<epoch>` (model and train state) in a new run directory."""
    utils.make_output_dir(output_dir, '--output_dir')
    config_path = os.path.join(output_dir, 'model_config.json')
    if os.path.exists(config_path) or tf.train.latest_checkpoint(output_dir):
        raise utils.UserError(f'--output_dir {output_dir} already holds a run; choose a new directory')
    checkpoint = tf.train.Checkpoint(model=net, state=train_state(step, epoch, best_valid_loss))
    path = tf.train.CheckpointManager(checkpoint, output_dir, max_to_keep=10,
                                      checkpoint_name='vector').save(checkpoint_number=epoch)
    hyperparams.save_hparams_json(hps, config_path)
    return path


def load(tf1_checkpoint, config_path, overrides=''):
    """(model filled from the TF1 checkpoint, Adam's update count included; its hparams, the checkpoint's prefix
    and tensors)."""
    prefix = checkpoint_prefix(tf1_checkpoint)
    tensors = read_checkpoint(prefix)
    model_type = checkpoint_model_type(tensors)
    hps = resolve_hparams(read_config(config_path), tensors, model_type, overrides)
    net = family.build_model(hps)
    fill(net, tensors)
    optimizer = net.optimizer
    optimizer.iterations.assign(adam_updates(tensors, model_type, optimizer.beta_1, optimizer.beta_2))
    return net, hps, prefix, tensors


def convert(tf1_checkpoint, config_path, output_dir, overrides=''):
    """Convert an original TF1 checkpoint (a prefix or a directory) with the original's model_config.json into the
    run directory output_dir. Returns (checkpoint path, hparams, step)."""
    net, hps, prefix, _ = load(tf1_checkpoint, config_path, overrides)
    step, epoch, best_valid_loss = training_counters(prefix, net)
    return write_run(output_dir, net, hps, step, epoch, best_valid_loss), hps, step
