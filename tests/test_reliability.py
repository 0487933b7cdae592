"""Reliability: a table of bad inputs to every program, kill -9 at random moments of training with resumes,
NaN faults (in the data and in a gradient) and their recovery, and repeatable runs with --seed."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from conftest import TINY_HPARAMS
from PIL import Image

import dataset
import family
import hyperparams
import raster
import training
import utils

# ------------------------------------------------------------------------------------------------ bad inputs

TINY_TRAIN = dict(item.split('=', 1) for item in re.split(r',\s*(?![^\[]*\])', TINY_HPARAMS))


def tiny(**changes):
    """TINY_HPARAMS with some values changed, as one --hparams text."""
    return '--hparams=' + ', '.join(f'{k}={v}' for k, v in {**TINY_TRAIN, **changes}.items())


def train_args(log_root, data, *more):
    """train.py flags; --max_epochs=1 bounds the run should a check be missing."""
    return [f'--log_root={log_root}', f'--data_dir={data}', '--max_epochs=1', *more]


# (case, program, arguments, text the one error line must hold); {tmp}: the table's directory of bad files,
# {data}: the bundled data with images, {model}: the tiny trained model. All error lines start with 'error: '
# except absl's own flag errors, which start with 'FATAL Flags parsing error: '.
BAD_INPUTS = [
    ('missing input directory', 'seq2png.py', ['--input_dir={tmp}/nowhere'],
     'no <category>.npz files in {tmp}/nowhere'),
    ('unknown category (seq2png)', 'seq2png.py',
     ['--input_dir={data}', '--output_dir={tmp}/out', '--categories=unicorn'],
     'missing category file {data}/unicorn.npz'),
    ('npz without the split keys', 'seq2png.py', ['--input_dir={tmp}/no_keys', '--output_dir={tmp}/out'],
     'bee.npz has no key(s) valid, test (found: train)'),
    ('truncated npz (interrupted copy)', 'seq2png.py', ['--input_dir={tmp}/truncated', '--output_dir={tmp}/out'],
     'cannot read {tmp}/truncated/bee.npz'),
    ('text file named .npz', 'seq2png.py', ['--input_dir={tmp}/text', '--output_dir={tmp}/out'],
     'cannot read {tmp}/text/bee.npz'),
    ('sketch of strings', 'seq2png.py', ['--input_dir={tmp}/strings', '--output_dir={tmp}/out'],
     'train[2] has dtype <U1, expected integers or floats'),
    ('sketch of shape (L, 2)', 'seq2png.py', ['--input_dir={tmp}/two_columns', '--output_dir={tmp}/out'],
     'train[2] has shape (4, 2), expected (L, 3) stroke-3 rows'),
    ('empty sketch', 'seq2png.py', ['--input_dir={tmp}/empty_sketch', '--output_dir={tmp}/out'],
     'train[2] is an empty sketch'),
    ('NaN in a sketch', 'seq2png.py', ['--input_dir={tmp}/nan', '--output_dir={tmp}/out'],
     'train[2] contains NaN or infinite values'),
    ('pen value 2', 'seq2png.py', ['--input_dir={tmp}/pen', '--output_dir={tmp}/out'],
     'train[2] has pen values other than 0 and 1'),
    ('split that is one number', 'seq2png.py', ['--input_dir={tmp}/scalar', '--output_dir={tmp}/out'],
     'train is a single value, expected a list of (L, 3) sketches'),
    ('--output_dir is a file', 'seq2png.py', ['--input_dir={data}', '--categories=bee', '--output_dir={tmp}/a_file'],
     'cannot create --output_dir {tmp}/a_file'),
    ('malformed --hparams', 'train.py', train_args('{tmp}/run', '{data}', tiny(batch_size='[16')),
     'unbalanced brackets'),
    ('unknown hparam', 'train.py', train_args('{tmp}/run', '{data}', '--hparams=batch_sise=16'),
     "unknown hparam 'batch_sise' (did you mean 'batch_size'?)"),
    ('hparam of the wrong type', 'train.py', train_args('{tmp}/run', '{data}', tiny(batch_size='sixteen')),
     "hparam batch_size expects an integer, got 'sixteen'"),
    ('batch_size=0', 'train.py', train_args('{tmp}/run', '{data}', tiny(batch_size=0)),
     'hparam batch_size=0 must be positive'),
    ('keep probability 1.5', 'train.py', train_args('{tmp}/run', '{data}', tiny(recurrent_dropout_prob=1.5)),
     'hparam recurrent_dropout_prob=1.5 must be in (0, 1]'),
    ('unknown category (train)', 'train.py', train_args('{tmp}/run', '{data}', tiny(categories='[bee,unicorn]')),
     'missing category file {data}/unicorn.npz (found: bee, bus, car, cat, flower)'),
    ('strokes without images', 'train.py', train_args('{tmp}/run', '{tmp}/no_png', tiny(categories='[bee]')),
     'missing {tmp}/no_png/bee_png.npz; make them with: python3 seq2png.py'),
    ('image/sequence count mismatch', 'train.py', train_args('{tmp}/run', '{tmp}/count', tiny(categories='[bee]')),
     '{tmp}/count/bee_png.npz has 339 train images but {tmp}/count/bee.npz has 340 sketches'),
    ('images of another width', 'train.py', train_args('{tmp}/run', '{data}', tiny(png_width=32)),
     'holds uint8 images of shape (48, 48), expected uint8 32x32'),
    ('batch larger than the split', 'train.py', train_args('{tmp}/run', '{data}', tiny(batch_size=100)),
     'batch_size=100 is larger than the validation or training split (60 / 96 sketches)'),
    ('negative --seed', 'train.py', train_args('{tmp}/run', '{data}', '--seed=-1', tiny()), '--seed=-1'),
    ('--log_root is a file', 'train.py', train_args('{tmp}/a_file', '{data}', tiny()),
     '--log_root {tmp}/a_file is a file, not a directory'),
    ('resume without checkpoints', 'train.py', train_args('{tmp}/config_only', '{data}', '--resume_training'),
     '--resume_training: no checkpoint in {tmp}/config_only'),
    ('resume as another model type', 'train.py',
     train_args('{tmp}/model_copy', '{data}', '--resume_training', '--hparams=model_type=ia'),
     '--resume_training: {tmp}/model_copy holds a model_type=rpcl model, not ia'),
    ('resume with a config of another model type', 'train.py',
     train_args('{tmp}/foreign_config', '{data}', '--resume_training'), 'does not fit the model of model_config.json'),
    ('resume with a config that is not JSON', 'train.py',
     train_args('{tmp}/broken_config', '{data}', '--resume_training'), 'config is not valid JSON'),
    ('resume from a damaged checkpoint', 'train.py',
     train_args('{tmp}/damaged_checkpoint', '{data}', '--resume_training'), 'unreadable checkpoint {tmp}/damaged'),
    ('--model_dir without model_config.json', 'sample.py',
     ['--model_dir={data}', '--data_dir={data}', '--output_dir={tmp}/samples'], 'no model_config.json in {data}'),
    ('checkpoint directory without checkpoints', 'sample.py',
     ['--model_dir={tmp}/config_only', '--data_dir={data}', '--output_dir={tmp}/samples'],
     'no checkpoint in {tmp}/config_only'),
    ('model_config.json of another model type', 'sample.py',
     ['--model_dir={tmp}/foreign_config', '--data_dir={data}', '--output_dir={tmp}/samples'], 'does not match'),
    ('num_per_category above the test split', 'sample.py',
     ['--model_dir={model}', '--data_dir={data}', '--output_dir={tmp}/samples', '--num_per_category=31'],
     '--num_per_category=31 is larger than the test split (30 sketches per category)'),
    ("data without the model's categories", 'sample.py',
     ['--model_dir={model}', '--data_dir={tmp}/empty', '--output_dir={tmp}/samples'],
     'missing category file {tmp}/empty/bee.npz'),
    ('empty sample directory (retrieval)', 'retrieval.py', ['--model_dir={model}', '--sample_dir={tmp}/empty'],
     'no generated sketches (<category>_<n>.png for bee, bus) in {tmp}/empty'),
    ('unreadable PNG', 'retrieval.py', ['--model_dir={model}', '--sample_dir={tmp}/bad_png'],
     'cannot read image {tmp}/bad_png/bee_0.png'),
    ('sketch without its code', 'retrieval.py', ['--model_dir={model}', '--sample_dir={tmp}/no_code'],
     'missing {tmp}/no_code/code_bee_0.npy'),
    ('empty sample directory (visualization)', 'visualization.py',
     ['--model_dir={model}', '--sample_dir={tmp}/empty', '--output_dir={tmp}/maps'], 'no generated sketches'),
    ('codes of another model', 'visualization.py',
     ['--model_dir={model}', '--sample_dir={tmp}/other_codes', '--output_dir={tmp}/maps'],
     'have 3 dimensions but the model has z_size=16'),
    ('no classifier', 'classifier.py', ['--mode=eval', '--model_dir={tmp}/empty', '--data_dir={data}'],
     'no classifier in {tmp}/empty'),
    ('unknown split', 'classifier.py', ['--mode=eval', '--model_dir={tmp}/empty', '--split=training'],
     "unknown split 'training' (train, valid or test)"),
    ('category without images (classifier)', 'classifier.py',
     ['--mode=train', '--data_dir={data}', '--categories=bee,unicorn', '--output_dir={tmp}/classifier'],
     'no images for unicorn'),
    ('healing picture of an image model', 'visualization.py',
     ['--mode=healing', '--model_dir={model}', '--data_dir={data}', '--sample_dir={tmp}/empty'],
     '--mode=healing needs as --model_dir the SP-gra2seq model'),
] + [(f'stray argument ({program})', program, [*needed, 'oops', 'more'], 'unexpected arguments: oops more')
     for program, needed in [   # every program refuses arguments it does not know what to do with (program.py)
         ('seq2png.py', []), ('train.py', ['--log_root={tmp}/stray']), ('sample.py', []), ('retrieval.py', []),
         ('visualization.py', []), ('classifier.py', []), ('reproduce.py', []),
         ('pack_model.py', ['--model_dir={model}', '--output_dir={tmp}/packed']),
         ('export.py', ['--model_dir={model}', '--export_dir={tmp}/exported']),
         ('serve.py', ['--model_dir={model}']),
         ('convert_tf1_checkpoint.py', ['--tf1_checkpoint=x', '--config=y', '--output_dir={tmp}/converted'])]]


def object_array(sketches):
    split = np.empty(len(sketches), dtype=object)
    split[:] = [np.asarray(sketch) for sketch in sketches]
    return split


def bee_sketches(data, count):
    """The first `count` bundled bee sketches of every split: {split: [stroke-3 arrays]}."""
    with np.load(os.path.join(data, 'bee.npz'), allow_pickle=True, encoding='latin1') as bee:
        return {split: list(bee[split][:count]) for split in dataset.SPLITS}


def bad_category(directory, data, third_sketch=None, **arrays):
    """<directory>/bee.npz: five bundled bee sketches per split with train[2] replaced, or exactly `arrays`."""
    os.makedirs(directory)
    splits = bee_sketches(data, 5)
    if third_sketch is not None:
        splits['train'][2] = third_sketch
    np.savez(os.path.join(directory, 'bee.npz'), **(arrays or {k: object_array(v) for k, v in splits.items()}))


def model_copy(model_dir, directory, config=None):
    """A copy of a train.py --log_root, optionally with model_config.json replaced by `config` (text)."""
    shutil.copytree(model_dir, directory)
    if config is not None:
        with open(os.path.join(directory, 'model_config.json'), 'w') as f:
            f.write(config)


def make_bad_files(tmp, data, model):
    """Every broken file and directory the table names, under tmp."""
    bee = os.path.join(data, 'bee.npz')
    bad_category(f'{tmp}/no_keys', data, train=object_array([np.zeros((2, 3))]))
    os.makedirs(f'{tmp}/truncated')
    with open(bee, 'rb') as f:
        whole = f.read()
    with open(f'{tmp}/truncated/bee.npz', 'wb') as f:
        f.write(whole[:len(whole) // 2])
    os.makedirs(f'{tmp}/text')
    with open(f'{tmp}/text/bee.npz', 'w') as f:
        f.write('dx,dy,pen\n1,2,0\n')
    bad_category(f'{tmp}/strings', data, np.array([['a', 'b', 'c']]))
    bad_category(f'{tmp}/two_columns', data, np.ones((4, 2)))
    bad_category(f'{tmp}/empty_sketch', data, np.zeros((0, 3)))
    bad_category(f'{tmp}/nan', data, np.array([[1.0, np.nan, 0.0], [2.0, 3.0, 1.0]]))
    bad_category(f'{tmp}/pen', data, np.array([[1, 5, 0], [3, 4, 2]]))
    bad_category(f'{tmp}/scalar', data, train=np.array(5), valid=np.array(5), test=np.array(5))
    with open(f'{tmp}/a_file', 'w') as f:
        f.write('not a directory\n')
    os.makedirs(f'{tmp}/no_png')
    shutil.copy(bee, f'{tmp}/no_png')
    os.makedirs(f'{tmp}/count')
    shutil.copy(bee, f'{tmp}/count')
    with np.load(dataset.category_png_path(data, 'bee')) as images:
        np.savez(f'{tmp}/count/bee_png.npz', train=images['train'][:-1], valid=images['valid'],
                 test=images['test'])
    os.makedirs(f'{tmp}/empty')
    os.makedirs(f'{tmp}/config_only')
    shutil.copy(os.path.join(model, 'model_config.json'), f'{tmp}/config_only')
    model_copy(model, f'{tmp}/model_copy')
    config = json.loads(open(os.path.join(model, 'model_config.json')).read())
    model_copy(model, f'{tmp}/foreign_config', json.dumps({**config, 'model_type': 'rpclh', 'num_layer_i': 4,
                                                           'num_layer_j': 4}))
    model_copy(model, f'{tmp}/broken_config', '{"model_type": "rpcl",')
    model_copy(model, f'{tmp}/damaged_checkpoint')
    index = tf.train.latest_checkpoint(f'{tmp}/damaged_checkpoint') + '.index'
    with open(index, 'r+b') as f:
        f.truncate(os.path.getsize(index) // 2)
    os.makedirs(f'{tmp}/bad_png')
    with open(f'{tmp}/bad_png/bee_0.png', 'wb') as f:
        f.write(b'\x89PNG but not really')
    np.save(f'{tmp}/bad_png/code_bee_0.npy', np.zeros((1, 16), np.float32))
    os.makedirs(f'{tmp}/no_code')
    shutil.copy(f'{tmp}/bad_png/code_bee_0.npy', f'{tmp}/no_code/code_bee_1.npy')
    white = raster.render_fast([np.array([[0, 0, 1]])])[0]
    Image.fromarray(white).save(f'{tmp}/no_code/bee_0.png')
    os.makedirs(f'{tmp}/other_codes')
    for n in range(3):
        Image.fromarray(white).save(f'{tmp}/other_codes/bee_{n}.png')
        np.save(f'{tmp}/other_codes/code_bee_{n}.npy', np.zeros((1, 3), np.float32))


@pytest.fixture(scope='module')
def bad_input_runs(tmp_path_factory, png_data_dir, trained_model_dir, repo_dir):
    """Every BAD_INPUTS command, run by tests/cli_inprocess.py in one process: case -> (exit code, stderr, text)."""
    tmp = str(tmp_path_factory.mktemp('bad_inputs'))
    make_bad_files(tmp, png_data_dir, trained_model_dir)
    names = dict(tmp=tmp, data=png_data_dir, model=trained_model_dir)
    commands = [[program, [arg.format(**names) for arg in args]] for _, program, args, _ in BAD_INPUTS]
    with open(os.path.join(tmp, 'cases.json'), 'w') as f:
        json.dump(commands, f)
    subprocess.run([sys.executable, os.path.join(repo_dir, 'tests', 'cli_inprocess.py'),
                    os.path.join(tmp, 'cases.json'), os.path.join(tmp, 'results.json')],
                   cwd=repo_dir, check=True, timeout=600, capture_output=True)
    with open(os.path.join(tmp, 'results.json')) as f:
        results = json.load(f)
    return {case: (result['code'], result['stderr'], text.format(**names))
            for (case, _, _, text), result in zip(BAD_INPUTS, results)}


def test_the_table_has_at_least_25_distinct_bad_inputs_for_every_program():
    assert len({case for case, *_ in BAD_INPUTS}) == len(BAD_INPUTS) >= 25
    assert {program for _, program, _, _ in BAD_INPUTS} == {
        'seq2png.py', 'train.py', 'sample.py', 'retrieval.py', 'visualization.py', 'classifier.py', 'reproduce.py',
        'pack_model.py', 'export.py', 'serve.py', 'convert_tf1_checkpoint.py'}


@pytest.mark.parametrize('case', [case for case, *_ in BAD_INPUTS])
def test_bad_input_gives_one_error_line_and_exit_1(bad_input_runs, case):
    code, stderr, text = bad_input_runs[case]
    assert 'Traceback' not in stderr, stderr
    assert code == 1, stderr
    errors = [line for line in stderr.splitlines() if line.startswith(('error: ', 'FATAL Flags parsing error: '))]
    assert len(errors) == 1 and text in errors[0], stderr


def test_one_point_sketches_and_huge_offsets_are_drawn_and_clipped_as_the_original(tmp_path, data_dir):
    """Not errors: a one-point sketch and an offset of 1e9 are valid stroke-3. seq2png draws them with the spec's
    geometry (the reference renderer's pixels); training clips offsets to +-1000 (the original's limit) and keeps
    the one-point sketch."""
    splits = bee_sketches(data_dir, 20)
    one_point, huge = np.array([[3.0, 4.0, 1.0]]), np.array([[1e9, 5.0, 0.0], [3.0, 4.0, 1.0]])
    splits['train'][:2] = [one_point, huge]
    np.savez(tmp_path / 'bee.npz', **{k: object_array(v) for k, v in splits.items()})
    raster.write_png_npz(str(tmp_path), str(tmp_path), 'bee', workers=1)
    with np.load(tmp_path / 'bee_png.npz') as images:
        np.testing.assert_array_equal(images['train'][:2], raster.render_reference([one_point, huge]))
    hps = hyperparams.get_default_hparams().replace(categories=['bee'], batch_size=4, num_per_category=20)
    train_set, _, _, _ = dataset.load_dataset(str(tmp_path), hps)
    sigma = train_set.scale_factor
    np.testing.assert_allclose(train_set.strokes[0], one_point / [sigma, sigma, 1], rtol=1e-6)
    np.testing.assert_allclose(train_set.strokes[1], [[1000 / sigma, 5 / sigma, 0], [3 / sigma, 4 / sigma, 1]],
                               rtol=1e-6)


# ------------------------------------------------------------------------------------------------ numerical faults

@tf.custom_gradient
def nan_gradient(x):
    """The identity, whose gradient is NaN."""
    return tf.identity(x), lambda dy: dy * np.nan


def poison_gradients(monkeypatch, is_faulty):
    """Make train.py build models whose loss has a NaN gradient (the loss itself stays finite) on the training
    steps whose call number n (0, 1, ... over the run, skipped steps included) has is_faulty(n) true."""
    build_model = family.build_model

    def build_poisoned(hps):
        net = build_model(hps)
        losses, calls = net.losses, tf.Variable(-1, dtype=tf.int64, trainable=False)

        def poisoned(strokes, images, step, training, seed=None):
            out, state, posterior = losses(strokes, images, step, training, seed)
            if training:
                out['loss'] = tf.cond(is_faulty(calls.assign_add(1)), lambda: nan_gradient(out['loss']),
                                      lambda: out['loss'])
            return out, state, posterior

        net.losses = poisoned
        return net

    monkeypatch.setattr(family, 'build_model', build_poisoned)


def poison_batch(monkeypatch, loader, number):
    """Put a NaN offset into the `number`-th batch the loader makes (the load-time checks would refuse it)."""
    make_batch, count = loader.batch_from_indices, [0]

    def poisoned(idx, rng=None):
        batch = make_batch(idx, rng)
        count[0] += 1
        if count[0] == number:
            batch.strokes[0, 1, 0] = np.nan
        return batch

    monkeypatch.setattr(loader, 'batch_from_indices', poisoned)


def assert_saved_states_finite(log_root):
    for directory in (log_root, os.path.join(log_root, 'last')):
        state = tf.train.get_checkpoint_state(directory)
        for path in state.all_model_checkpoint_paths if state else []:
            reader = tf.train.load_checkpoint(path)
            for name, dtype in reader.get_variable_to_dtype_map().items():
                if dtype.is_floating:
                    assert np.isfinite(reader.get_tensor(name)).all(), (path, name)


def test_nan_in_data_is_skipped_and_nan_gradients_roll_back_to_the_best_checkpoint(tmp_path, png_data_dir,
                                                                                   monkeypatch, capsys):
    """Epoch 1: its 3rd batch holds a NaN offset: that step is skipped, the others train and vector-1 is saved.
    Epoch 2: every gradient is NaN: after FAULT_PATIENCE skipped steps in a row the run rolls back to vector-1
    (its step counter too) and goes on: epoch 3 trains normally."""
    hps, *sets = training.prepare_run(str(tmp_path), png_data_dir, TINY_HPARAMS, resume=False)
    per_epoch = sets[0].num_batches
    assert per_epoch == training.FAULT_PATIENCE == 5
    poison_batch(monkeypatch, sets[0], 3)
    poison_gradients(monkeypatch, lambda n: (n >= per_epoch) & (n < 2 * per_epoch))
    tf.random.set_seed(0)
    result = training.train_and_evaluate(hps, sets, str(tmp_path), seed=3, max_epochs=3, checkpoint_minutes=0)
    out = capsys.readouterr().out
    assert 'step 2: non-finite lil_loss, loss; step skipped (1 in a row' in out, out
    for n in range(1, 6):
        assert f'step 4: non-finite gradient or latent-mixture update; step skipped ({n} in a row' in out
    assert (f'5 training steps in a row had non-finite values (up to step 4): restored {tmp_path}/vector-1 '
            f'(step 4), rollback 1/3') in out
    first, third = result['history']
    assert first['step'] == per_epoch - 1 and first['improved']          # one step of epoch 1 skipped
    assert third['step'] == 2 * per_epoch - 1                             # epoch 3 trained from step 4 on
    assert all(np.isfinite(value) for value in third['train'].values())
    assert all(np.isfinite(v.numpy()).all() for v in result['model'].variables)
    assert_saved_states_finite(str(tmp_path))


def test_repeated_faults_stop_the_run_with_a_clear_message(tmp_path, png_data_dir, monkeypatch, capsys):
    """NaN gradients from epoch 2 on: three rollbacks to vector-1, then a UserError; nothing non-finite saved."""
    hps, *sets = training.prepare_run(str(tmp_path), png_data_dir, TINY_HPARAMS, resume=False)
    poison_gradients(monkeypatch, lambda n: n >= sets[0].num_batches)
    tf.random.set_seed(0)
    with pytest.raises(utils.UserError, match=r'^5 training steps in a row had non-finite values \(up to step 5\); '
                                              r'stopping: 3 rollbacks to the best checkpoint did not help'):
        training.train_and_evaluate(hps, sets, str(tmp_path), seed=3, max_epochs=20, checkpoint_minutes=0)
    out = capsys.readouterr().out
    assert [int(n) for n in re.findall(r'\(step 5\), rollback (\d)/3', out)] == [1, 2, 3]
    assert_saved_states_finite(str(tmp_path))


def test_a_non_finite_variable_is_never_saved(tmp_path, png_data_dir):
    hps, *_ = training.prepare_run(str(tmp_path), png_data_dir, TINY_HPARAMS, resume=False)
    net, state = family.build_model(hps), training.TrainState()
    checkpoints = training.Checkpoints(str(tmp_path), net, state)
    net.gmm.de_mu.assign(tf.fill(net.gmm.de_mu.shape, np.inf))
    with pytest.raises(training.NumericalFault, match='de_mu.* holds NaN or inf at step 0; not saved'):
        checkpoints.save_last()
    assert tf.train.latest_checkpoint(str(tmp_path / 'last')) is None


def test_checkpoint_minutes_counts_across_epochs(tmp_path, png_data_dir, monkeypatch):
    """Epochs shorter than --checkpoint_minutes still get their periodic last/ saves: the interval runs from the
    newest save, not from the start of each epoch. A fake clock moves 10 s per reading, one reading per step; the
    first validation, which saves vector-1, comes after the 4th epoch."""
    hps, *sets = training.prepare_run(str(tmp_path), png_data_dir, TINY_HPARAMS, resume=False)
    hps = hps.replace(save_every=4)
    per_epoch = sets[0].num_batches
    readings = iter(range(0, 10 ** 6, 10))
    monkeypatch.setattr(training, 'monotonic', lambda: next(readings))
    periodic = []
    save_last_if_due = training.Checkpoints.save_last_if_due

    def spy(self, minutes):
        path = save_last_if_due(self, minutes)
        if path:
            periodic.append(int(self.state.step))
        return path

    monkeypatch.setattr(training.Checkpoints, 'save_last_if_due', spy)
    minutes = (per_epoch + 2) * 10 / 60   # longer than an epoch of readings
    tf.random.set_seed(0)
    training.train_and_evaluate(hps, sets, str(tmp_path), seed=3, max_epochs=4, checkpoint_minutes=minutes)
    assert len(periodic) >= 2, periodic
    assert any(step % per_epoch for step in periodic), periodic   # mid-epoch saves, not only at epoch ends


# ------------------------------------------------------------------------------------------------ kill -9

KILL_HPARAMS = ('categories=[bee,bus], dec_rnn_size=16, dec_model=lstm, z_size=8, batch_size=16, num_mixture=2, '
                'num_sub=1, num_per_category=48')
KILLS = 10
PHASES = ('step', 'checkpoint', 'validation')
CHECKPOINT_NAMES = re.compile(r'(checkpoint|model_config\.json|events\.out\.tfevents\..*|last|'
                              r'(vector|last)-\d+\.(index|data-\d{5}-of-\d{5}))$')
TEMP_NAMES = re.compile(r'(\..*\.tmp|.*_temp.*|.*\.tmp[0-9a-f]*)$')  # utils._atomic_write's and TensorFlow's


def start_training(log_root, data_dir, repo_dir, phase_log, output, resume, max_epochs=1000, hparams=KILL_HPARAMS):
    """train.py (through tests/train_phases.py) on a tiny config that saves last/ after every step."""
    argv = [sys.executable, os.path.join(repo_dir, 'tests', 'train_phases.py'), f'--log_root={log_root}',
            f'--data_dir={data_dir}', '--seed=11', f'--max_epochs={max_epochs}', '--checkpoint_minutes=1e-9',
            '--log_every=1', f'--hparams={hparams}'] + (['--resume_training'] if resume else [])
    env = dict(os.environ, TRAIN_PHASE_LOG=str(phase_log), PYTHONUNBUFFERED='1')
    return subprocess.Popen(argv, cwd=repo_dir, env=env, stdout=open(output, 'w'), stderr=subprocess.STDOUT)


def kill_during(process, phase_log, phase, occurrence, delay):
    """SIGKILL the process `delay` s after its `occurrence`-th 'begin <phase>'; the phase it died in (the last
    unfinished one in its log, 'between' if none)."""
    while not (os.path.exists(phase_log) and open(phase_log).read().count(f'begin {phase}\n') >= occurrence):
        assert process.poll() is None, f'training ended before the kill during {phase}'
        time.sleep(0.002)
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=60) == -signal.SIGKILL
    last = open(phase_log).read().splitlines()[-1]
    return last.split()[1] if last.startswith('begin ') else 'between'


def saved_states(log_root):
    """{path: (serial, step, strikes)} of the checkpoints the two state files list, after reading every tensor of
    every complete checkpoint (listed or not) in the run directory; asserts every other file has a temp name."""
    states, temps = {}, 0
    for directory in (log_root, os.path.join(log_root, 'last')):
        for name in os.listdir(directory):
            if TEMP_NAMES.match(name):
                temps += 1
            else:
                assert CHECKPOINT_NAMES.match(name), f'unexpected file {directory}/{name}'
            if name.endswith('.index') and not TEMP_NAMES.match(name):
                reader = tf.train.load_checkpoint(os.path.join(directory, name[:-len('.index')]))
                for key in reader.get_variable_to_shape_map():
                    reader.get_tensor(key)
        listed = tf.train.get_checkpoint_state(directory)
        for path in listed.all_model_checkpoint_paths if listed else []:
            reader = tf.train.load_checkpoint(path)
            states[path] = tuple(int(reader.get_tensor(f'state/{key}/.ATTRIBUTES/VARIABLE_VALUE'))
                                 for key in ('serial', 'step', 'strikes'))
    hyperparams.load_hparams_json(os.path.join(log_root, 'model_config.json'))
    return states, temps


def test_kill_9_at_random_moments_then_resume_loses_nothing(tmp_path, png_data_dir, repo_dir, capsys):
    """KILLS kills at seeded random moments (during a step, a checkpoint write or validation), a resume after
    each; after every kill all checkpoints read back whole and only temp-named files are incomplete; every
    resume starts from the newest save; saved step counters never go back except by a rollback (a strike); the
    last resume finishes the run with one more epoch."""
    rng = np.random.default_rng(8)
    targets = rng.permutation(np.resize(PHASES, KILLS))
    log_root = tmp_path / 'run'
    history, states_before, died_in, redone, temps = {}, {}, [], 0, 0
    for life, target in enumerate(targets):
        phase_log, output = tmp_path / f'phases_{life}.log', tmp_path / f'out_{life}.txt'
        process = start_training(log_root, png_data_dir, repo_dir, phase_log, output, resume=life > 0)
        died_in.append(kill_during(process, phase_log, target, occurrence=int(rng.integers(1, 3)),
                                   delay=float(rng.uniform(0, 0.02))))
        log = open(phase_log).read()
        redone += log[log.rfind('end checkpoint'):].count('end step')     # steps after the last complete save
        states, leftover = saved_states(str(log_root))
        temps += leftover
        if life > 0:
            newest = max(states_before, key=lambda path: states_before[path][0])
            resumed = re.search(r'resumed (\S+): step (\d+)', open(output).read())
            assert resumed and resumed[1] == newest and int(resumed[2]) == states_before[newest][1]
        history.update(states)
        states_before = states
    newest = max(states_before, key=lambda path: states_before[path][0])
    epochs = int(tf.train.load_variable(newest, 'state/epochs_run/.ATTRIBUTES/VARIABLE_VALUE')) + 1
    process = start_training(log_root, png_data_dir, repo_dir, tmp_path / 'phases_last.log', tmp_path / 'out.txt',
                             resume=True, max_epochs=epochs)
    assert process.wait(timeout=600) == 0, open(tmp_path / 'out.txt').read()
    assert re.search(r'^done: step \d+', open(tmp_path / 'out.txt').read(), re.M)
    final, _ = saved_states(str(log_root))
    history.update(final)
    newest = max(final, key=lambda path: final[path][0])
    assert tf.train.load_variable(newest, 'state/epochs_run/.ATTRIBUTES/VARIABLE_VALUE') == epochs
    saves = sorted(history.values())
    for (_, step, strikes), (_, next_step, next_strikes) in zip(saves, saves[1:]):
        assert next_step >= step or next_strikes == strikes + 1, saves
    assert set(died_in) >= set(PHASES), died_in
    with capsys.disabled():
        phases = ', '.join(f'{phase} {died_in.count(phase)}' for phase in sorted(set(died_in)))
        print(f'\nkill -9: {KILLS} kills (died in: {phases}), {KILLS} resumes, {len(saves)} distinct saves seen, '
              f'all complete; {redone} steps redone after kills, {temps} temp-named leftovers')


# ------------------------------------------------------------------------------------------------ determinism

def train_losses(log_root):
    """{step: Train_Cost} from the TensorBoard events of a run."""
    losses = {}
    for name in os.listdir(log_root):
        if name.startswith('events.out.tfevents'):
            for event in tf.compat.v1.train.summary_iterator(os.path.join(log_root, name)):
                for value in event.summary.value:
                    if value.tag == 'Train_Cost':
                        losses[event.step] = tf.make_ndarray(value.tensor).item()
    return losses


def test_two_seeded_runs_give_identical_losses_and_weights(tmp_path, png_data_dir, repo_dir):
    """train.py --seed=5 twice, three steps each on the CPU, recurrent dropout on: the same loss at every step, the
    same checkpoint (rnn.py draws all the dropout masks of an unroll before its time loop)."""
    runs = [tmp_path / 'first', tmp_path / 'second']
    for log_root in runs:
        subprocess.run([sys.executable, os.path.join(repo_dir, 'train.py'), f'--log_root={log_root}',
                        f'--data_dir={png_data_dir}', '--seed=5', '--log_every=1', '--max_epochs=1',
                        tiny(num_steps=3, use_recurrent_dropout='true')], cwd=repo_dir, check=True,
                       capture_output=True, timeout=600)
    first, second = (train_losses(str(log_root)) for log_root in runs)
    assert sorted(first) == [0, 1, 2] and first == second
    readers = [tf.train.load_checkpoint(str(log_root / 'vector-1')) for log_root in runs]
    names = readers[0].get_variable_to_shape_map()
    assert names == readers[1].get_variable_to_shape_map()
    for name in names:
        np.testing.assert_array_equal(readers[0].get_tensor(name), readers[1].get_tensor(name), err_msg=name)


def newest_checkpoint(log_root):
    """The path of the run's most recent save (highest serial) of either kind."""
    paths = [tf.train.latest_checkpoint(directory) for directory in (log_root, os.path.join(log_root, 'last'))]
    return max((p for p in paths if p), key=lambda p: tf.train.load_variable(
        p, 'state/serial/.ATTRIBUTES/VARIABLE_VALUE'))


def test_a_killed_and_resumed_run_equals_an_uninterrupted_one_bit_for_bit(tmp_path, png_data_dir, repo_dir):
    """Two epochs with recurrent dropout and length buckets, once straight through and once killed (SIGKILL) in the
    middle of the first epoch and resumed: every training loss and every variable of the final save are equal bit
    for bit (only the save counter differs), because each step's z and dropout masks come from (seed, step) and each
    epoch's order and augmentation from (seed, epoch), not from the process."""
    hparams = KILL_HPARAMS + ', use_recurrent_dropout=true, bucket_width=8'
    runs = {}
    for name in ('straight', 'killed'):
        log_root = tmp_path / name
        if name == 'killed':
            process = start_training(log_root, png_data_dir, repo_dir, tmp_path / 'phases_killed_0.log',
                                     tmp_path / 'killed_0.txt', resume=False, max_epochs=2, hparams=hparams)
            kill_during(process, tmp_path / 'phases_killed_0.log', 'step', occurrence=3, delay=0.0)
        process = start_training(log_root, png_data_dir, repo_dir, tmp_path / f'phases_{name}.log',
                                 tmp_path / f'{name}.txt', resume=name == 'killed', max_epochs=2, hparams=hparams)
        assert process.wait(timeout=600) == 0, open(tmp_path / f'{name}.txt').read()
        runs[name] = (train_losses(str(log_root)), tf.train.load_checkpoint(newest_checkpoint(str(log_root))))
    (straight_losses, straight), (killed_losses, killed) = runs['straight'], runs['killed']
    assert len(straight_losses) > 6 and killed_losses == straight_losses
    names = straight.get_variable_to_shape_map()
    assert names == killed.get_variable_to_shape_map()
    for name in names:
        if not name.startswith('state/serial'):
            np.testing.assert_array_equal(straight.get_tensor(name), killed.get_tensor(name), err_msg=name)
