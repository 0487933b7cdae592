"""tf1_checkpoint.py and convert_tf1_checkpoint.py: the variable map against the originals' checkpoint names, the
conversion of every cell and model variant, the original configs, the errors, the training counters, and a converted
checkpoint used by sample.py, retrieval.py, visualization.py, export.py and train.py --resume_training."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from test_tf1_equivalence import FIXTURES, HPARAMS, SKETCH_RNN_HPARAMS, fixture_path

import family
import hyperparams
import tf1_checkpoint
import utils

pytestmark = pytest.mark.skipif(not os.path.isdir(FIXTURES), reason=f'no TF1 fixtures at {FIXTURES}')


def fixture_tensors(name, which='ckpt_init'):
    return tf1_checkpoint.read_checkpoint(tf1_checkpoint.checkpoint_prefix(fixture_path(name, which)))


def write_tf1_checkpoint(prefix, tensors):
    """A TF1-style checkpoint holding `tensors` under their names."""
    names = sorted(tensors)
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[''] * len(names),
                      tensors=[tf.constant(tensors[name]) for name in names])
    return prefix


def write_json(path, value):
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(value, f)
    return str(path)


@pytest.mark.parametrize('name', sorted(HPARAMS))
def test_every_checkpoint_entry_is_mapped_or_deliberately_left_out(name):
    """Each fixture's variables.txt: the map reads every weight, GMM variable and Adam slot; what is left is the
    optimiser's beta powers, the step and schedule variables and the eval model's copies."""
    net, _, _, tensors = tf1_checkpoint.load(fixture_path(name, 'ckpt_init'), fixture_path(name, 'model_config.json'),
                                             HPARAMS[name])
    entries, slots = tf1_checkpoint.variable_map(net)
    used = {n for entry in entries + slots for n in entry.names}
    with open(fixture_path(name, 'variables.txt'), encoding='utf-8') as f:
        listed = {line.split('\t')[0] for line in f if line.strip()}
    assert listed == set(tensors)
    left = listed - used
    assert used <= listed and left and all(tf1_checkpoint.is_unused(n, net.hps.model_type) for n in left)
    trainable = {n for entry in entries if entry.variable.trainable for n in entry.names}
    assert {n for entry in slots for n in entry.names} == {n for n in listed if 'Adam' in n}
    assert len(slots) == 2 * len(net.trainable_variables) and len(trainable) * 2 == sum(len(e.names) for e in slots)


def inverse(entry, value):
    """The TF1 tensors an entry combines into `value` (test-only inverse of Entry.combine)."""
    if len(entry.names) == 1:
        return {entry.names[0]: value}
    parts = np.split(value, len(entry.names), axis=-1) if entry.combine is tf1_checkpoint.concat_columns else value
    return dict(zip(entry.names, parts))


VARIANTS = {
    'rpcl layer_norm': dict(model_type='rpcl', dec_model='layer_norm'),
    'rpcl hyper': dict(model_type='rpcl', dec_model='hyper'),
    'sketch_rnn unconditional': dict(model_type='sketch_rnn', dec_model='lstm', conditional=False),
    'sketch_rnn layer_norm encoder, hyper decoder': dict(model_type='sketch_rnn', dec_model='hyper',
                                                         enc_model='layer_norm'),
}


def original_config(hps):
    """The model_config.json an original trainer would have written for hps."""
    if hps.model_type == 'rpcl':
        names = ('categories', 'dec_rnn_size', 'dec_model', 'max_seq_len', 'z_size', 'batch_size', 'num_mixture',
                 'num_sub', 'png_width')
        return {name: getattr(hps, name) for name in names}
    values = {name: getattr(hps, name) for name in tf1_checkpoint.MAGENTA_DEFAULTS
              if name not in ('data_set', 'num_mixture', 'save_every', 'is_training')}
    return {**values, 'data_set': [f'{c}.npz' for c in hps.categories], 'num_mixture': hps.mdn_components,
            'is_training': True}


@pytest.mark.parametrize('variant', sorted(VARIANTS))
def test_other_cells_and_variants_convert_every_variable(tmp_path, variant):
    """Variants without a fixture: a model with random values is written under the original's names (the map's
    inverse; the cells' names are those of the hyper and layer_norm fixtures) and converted back exactly, Adam's
    moments and update count included."""
    hps = hyperparams.HParams(categories=['bee'], dec_rnn_size=8, enc_rnn_size=4, z_size=4, hyper_num_units=16,
                        hyper_embedding_size=4, num_mixture=2, num_sub=1, mdn_components=3, max_seq_len=20,
                        **VARIANTS[variant])
    net = family.build_model(hps)
    rng = np.random.default_rng(0)
    for variable in net.variables:
        if variable.dtype == tf.float32:
            variable.assign(rng.normal(size=variable.shape).astype(np.float32))
    entries, slots = tf1_checkpoint.variable_map(net)
    tensors = {}
    for entry in entries + slots:
        tensors.update(inverse(entry, entry.variable.numpy()))
    scope = tf1_checkpoint.SCOPES[hps.model_type]
    tensors.update({f'{scope}/beta1_power': np.float32(net.optimizer.beta_1 ** 6),
                    f'{scope}/beta2_power': np.float32(net.optimizer.beta_2 ** 6)})
    cell = 'HyperLSTMCell' if hps.dec_model == 'hyper' else 'LayerNormLSTMCell'
    magenta = fixture_tensors('sketch_rnn_hyper' if hps.dec_model == 'hyper' else 'sketch_rnn_layer_norm')
    decoder_scope = f'{scope}/decoder/rnn' if hps.model_type == 'rpcl' else f'{scope}/RNN'
    if hps.dec_model != 'lstm':
        assert ({n.split(f'{decoder_scope}/{cell}/')[1] for n in tensors if n.startswith(f'{decoder_scope}/{cell}/')}
                == {n.split(f'vector_rnn/RNN/{cell}/')[1] for n in magenta if n.startswith(f'vector_rnn/RNN/{cell}/')})
    prefix = write_tf1_checkpoint(str(tmp_path / 'vector-6'), tensors)
    path, converted_hps, step = tf1_checkpoint.convert(prefix, write_json(tmp_path / 'config.json',
                                                                          original_config(hps)), str(tmp_path / 'out'))
    assert step == 5 and converted_hps.mdn_components == 3
    restored = family.build_model(converted_hps)
    tf.train.Checkpoint(model=restored).restore(path).expect_partial().assert_existing_objects_matched()
    for ours, original in zip(restored.variables, net.variables):
        expected = 5 if original is net.optimizer.iterations else original.numpy()
        np.testing.assert_array_equal(ours.numpy(), expected)


def test_missing_unknown_and_misshaped_variables_are_named_in_one_error(tmp_path):
    tensors = fixture_tensors('sketch_rnn')
    del tensors['vector_rnn/RNN/output_b']
    tensors['vector_rnn/RNN/extra_w'] = np.zeros(3, np.float32)
    tensors['vector_rnn/ENC_RNN_mu/super_linear_b'] = np.zeros(9, np.float32)
    prefix = write_tf1_checkpoint(str(tmp_path / 'vector'), tensors)
    with pytest.raises(utils.UserError) as error:
        tf1_checkpoint.load(prefix, fixture_path('sketch_rnn', 'model_config.json'), SKETCH_RNN_HPARAMS)
    message = str(error.value)
    assert 'missing: vector_rnn/RNN/output_b' in message and 'unknown: vector_rnn/RNN/extra_w' in message
    assert 'mis-shaped: vector_rnn/ENC_RNN_mu/super_linear_b [9] (the model needs [8])' in message
    assert len(message.splitlines()) == 1


def test_a_checkpoint_without_adam_slots_converts_with_a_fresh_optimiser(tmp_path):
    tensors = {n: v for n, v in fixture_tensors('sketch_rnn', 'ckpt_step3').items() if 'Adam' not in n}
    prefix = write_tf1_checkpoint(str(tmp_path / 'vector'), tensors)
    net, _, _, _ = tf1_checkpoint.load(prefix, fixture_path('sketch_rnn', 'model_config.json'), SKETCH_RNN_HPARAMS)
    assert all(not m.numpy().any() for m in net.optimizer.m)


def test_magenta_configs_of_every_vintage_give_the_same_hparams(tmp_path):
    """magenta's model_config.json: the names alone (its trainer since 2020, with the values in --hparams), the
    dict of 2017-2020 (here the fixture's recorded values) and a list of values all give the same hparams."""
    def resolve(config, overrides=''):
        return tf1_checkpoint.resolve_hparams(config, fixture_tensors('sketch_rnn'), 'sketch_rnn', overrides)

    with open(fixture_path('sketch_rnn', 'hparams.json'), encoding='utf-8') as f:
        values = json.load(f)['model_config']
    with open(fixture_path('sketch_rnn', 'model_config.json'), encoding='utf-8') as f:
        names = json.load(f)
    from_names = resolve(names, SKETCH_RNN_HPARAMS)
    assert resolve(values) == from_names == resolve([values[name] for name in names])
    assert from_names.categories == ['bee'] and from_names.mdn_components == 5 and from_names.save_every == 1
    assert from_names.random_scale_factor == 0.15 and from_names.model_type == 'sketch_rnn'
    assert not from_names.use_recurrent_dropout and not from_names.stable_estep


@pytest.mark.parametrize('config, overrides, message', [
    ('sketch_rnn', '', 'the config names no data set'),
    ('rpcl_pix2seq', '', "the config is not magenta's"),
    ('sketch_rnn', 'categories=[bee], dec_rnn_size=64', "the checkpoint's sizes are dec_model=lstm, dec_rnn_size=32"),
])
def test_config_errors(tmp_path, config, overrides, message):
    with pytest.raises(utils.UserError, match=message):
        tf1_checkpoint.convert(fixture_path('sketch_rnn', 'ckpt_init'), fixture_path(config, 'model_config.json'),
                               str(tmp_path / 'out'), overrides)
    assert not os.path.exists(tmp_path / 'out')


def saved_state(path, name):
    return tf.train.load_variable(path, f'state/{name}/.ATTRIBUTES/VARIABLE_VALUE')


def test_training_counters_from_the_adam_powers_or_para_npz(tmp_path):
    """RPCL-pix2seq stores no step: the count comes from Adam's beta powers (3 after 3 steps), or from the
    original's para.npz beside the checkpoint (count, epoch, best_valid_loss), which names the saved epoch."""
    path, _, step = tf1_checkpoint.convert(fixture_path('rpcl_pix2seq', 'ckpt_step3'),
                                           fixture_path('rpcl_pix2seq', 'model_config.json'), str(tmp_path / 'a'))
    assert step == 3 and path.endswith('vector-0') and saved_state(path, 'step') == 3
    assert tf.train.load_variable(path, 'model/optimizer/iterations/.ATTRIBUTES/VARIABLE_VALUE') == 3
    copy = tmp_path / 'original'
    copy.mkdir()
    for file in os.listdir(fixture_path('rpcl_pix2seq', 'ckpt_step3')):
        shutil.copyfile(fixture_path('rpcl_pix2seq', 'ckpt_step3', file), copy / file)
    np.savez(copy / 'para.npz', count=7, epoch=2, best_valid_loss=123.5)
    path, _, step = tf1_checkpoint.convert(str(copy), fixture_path('rpcl_pix2seq', 'model_config.json'),
                                           str(tmp_path / 'b'))
    assert step == 7 and path.endswith('vector-2') and saved_state(path, 'best_valid_loss') == 123.5
    assert tf.train.load_variable(path, 'model/optimizer/iterations/.ATTRIBUTES/VARIABLE_VALUE') == 3


def test_the_saved_state_has_train_py_state_variables():
    import training
    theirs = {name: value.dtype for name, value in vars(training.TrainState()).items()
              if isinstance(value, tf.Variable)}
    ours = tf1_checkpoint.train_state(0, 0, 1.0)
    assert {name: getattr(ours, name).dtype for name in tf1_checkpoint.TRAIN_STATE} == theirs


def run_programs(repo_dir, tmp, commands):
    """[(exit code, stderr)] of `commands` ([program, [args]]) run as programs by tests/cli_inprocess.py."""
    cases = write_json(os.path.join(tmp, 'cases.json'), commands)
    results = os.path.join(tmp, 'results.json')
    subprocess.run([sys.executable, os.path.join(repo_dir, 'tests', 'cli_inprocess.py'), cases, results],
                   cwd=repo_dir, check=True, timeout=600, capture_output=True)
    with open(results, encoding='utf-8') as f:
        return [(result['code'], result['stderr']) for result in json.load(f)]


def test_a_converted_checkpoint_runs_in_every_program(repo_dir, png_data_dir, tmp_path):
    """convert_tf1_checkpoint.py on RPCL-pix2seq's step-3 checkpoint, then sample.py, retrieval.py,
    visualization.py and export.py on the result; a config without values and no categories ends in one error
    line; train.py --resume_training continues the converted run at step 3 with its Adam state."""
    run, samples = str(tmp_path / 'run'), str(tmp_path / 'samples')
    commands = [
        ['convert_tf1_checkpoint.py', [f"--tf1_checkpoint={fixture_path('rpcl_pix2seq', 'ckpt_step3')}",
                                       f"--config={fixture_path('rpcl_pix2seq', 'model_config.json')}",
                                       f'--output_dir={run}']],
        ['sample.py', [f'--model_dir={run}', f'--data_dir={png_data_dir}', f'--output_dir={samples}',
                       '--num_per_category=4', '--seed=1']],
        ['retrieval.py', [f'--model_dir={run}', f'--sample_dir={samples}']],
        ['visualization.py', [f'--model_dir={run}', f'--sample_dir={samples}', f'--output_dir={tmp_path}/tsne',
                              '--fast', '--seed=0']],
        ['export.py', [f'--model_dir={run}', f'--export_dir={tmp_path}/exported']],
        ['convert_tf1_checkpoint.py', [f"--tf1_checkpoint={fixture_path('sketch_rnn', 'ckpt_init')}",
                                       f"--config={fixture_path('sketch_rnn', 'model_config.json')}",
                                       f'--output_dir={tmp_path}/magenta']],
    ]
    results = run_programs(repo_dir, str(tmp_path), commands)
    for (program, _), (code, stderr) in zip(commands[:-1], results):
        assert code == 0, (program, stderr[-2000:])
    code, stderr = results[-1]
    assert code == 1 and stderr.strip().splitlines() == [
        'error: the config names no data set: give the categories with --hparams "categories=[...]"']
    assert os.path.isfile(os.path.join(samples, 'bus_3.png'))
    assert os.path.isfile(tmp_path / 'tsne' / 'level_k.jpg')
    assert os.path.isfile(tmp_path / 'exported' / 'saved_model.pb')

    import training
    hps, *sets = training.prepare_run(run, png_data_dir, 'num_per_category=16', resume=True)
    result = training.train_and_evaluate(hps, sets, run, max_epochs=1, resume=True)
    assert result['step'] == 3 + sets[0].num_batches and int(result['model'].optimizer.iterations) == result['step']
