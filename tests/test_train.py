"""train.py on bundled real data with a tiny config: losses fall, resume is exact, rollback counts strikes, CLI
errors."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import family
import hyperparams
import training
import utils

HPARAMS = ('categories=[bee,bus], dec_rnn_size=32, dec_model=lstm, z_size=16, batch_size=32, num_mixture=2, '
           'num_sub=2, num_per_category=96')


def run(log_root, data_dir, max_epochs, resume=False, hparams=HPARAMS):
    hps, *sets = training.prepare_run(str(log_root), data_dir, hparams, resume=resume)
    return training.train_and_evaluate(hps, sets, str(log_root), seed=3, max_epochs=max_epochs, resume=resume)


def snapshot(net):
    return {v.name + str(i): v.numpy() for i, v in enumerate(net.variables)}


def test_losses_fall_and_run_dir(tmp_path, png_data_dir):
    tf.random.set_seed(0)
    result = run(tmp_path, png_data_dir, max_epochs=3)
    history = result['history']
    assert len(history) == 3 and result['step'] > 0
    for record in history:
        assert all(np.isfinite(v) for v in record['train'].values())
    assert history[-1]['train']['loss'] < history[0]['train']['loss']
    hps = hyperparams.load_hparams_json(os.path.join(tmp_path, 'model_config.json'))
    assert hps.max_seq_len > 0 and hps.dec_rnn_size == 32
    assert tf.train.latest_checkpoint(str(tmp_path)) is not None
    assert any(name.startswith('events.out.tfevents') for name in os.listdir(tmp_path))


def test_resume_continues_with_identical_state(tmp_path, png_data_dir):
    tf.random.set_seed(0)
    first = run(tmp_path, png_data_dir, max_epochs=1)
    saved = snapshot(first['model'])
    steps_per_epoch = first['step']
    resumed = run(tmp_path, png_data_dir, max_epochs=1, resume=True)   # restores, then nothing left to do
    assert resumed['step'] == steps_per_epoch
    restored = snapshot(resumed['model'])
    assert saved.keys() == restored.keys()
    for key in saved:
        np.testing.assert_array_equal(saved[key], restored[key], err_msg=key)
    more = run(tmp_path, png_data_dir, max_epochs=2, resume=True)
    assert more['history'][0]['step'] == 2 * steps_per_epoch   # validated after one more epoch (kept or rolled back)


def script_validation(monkeypatch, valid_set, losses):
    """Make training.evaluate report these validation lil losses, one per epoch."""
    losses, real_evaluate = iter(losses), training.evaluate

    def scripted_evaluate(eval_step, loader, step, run_seed=0):
        values, winners = real_evaluate(eval_step, loader, step, run_seed)
        if loader is valid_set:
            values['lil_loss'] = next(losses)
        return values, winners

    monkeypatch.setattr(training, 'evaluate', scripted_evaluate)


def test_non_improving_epoch_rolls_back_and_strikes(tmp_path, png_data_dir, monkeypatch):
    tf.random.set_seed(0)
    hps, *sets = training.prepare_run(str(tmp_path), png_data_dir, HPARAMS, resume=False)
    script_validation(monkeypatch, sets[1], [10.0, 20.0, 30.0])    # epoch 1 improves, epochs 2 and 3 do not
    result = training.train_and_evaluate(hps, sets, str(tmp_path), seed=3, max_epochs=1)
    best = snapshot(result['model'])
    best_gmm = result['model'].gmm.de_mu.numpy()
    steps = result['step']
    result = training.train_and_evaluate(hps, sets, str(tmp_path), seed=3, max_epochs=3, resume=True)
    assert [r['improved'] for r in result['history']] == [False, False]
    assert result['strikes'] == 2
    assert result['step'] == steps                    # the step counter rewinds with the rollback
    np.testing.assert_array_equal(result['model'].gmm.de_mu.numpy(), best_gmm)
    for key, value in snapshot(result['model']).items():
        np.testing.assert_array_equal(value, best[key], err_msg=key)


def test_without_rollback_a_non_improving_epoch_keeps_training(tmp_path, png_data_dir, monkeypatch):
    """rollback=false: strikes count, the step counter and the weights go on, and only the improving epoch saved."""
    hps, *sets = training.prepare_run(str(tmp_path), png_data_dir, HPARAMS + ', rollback=false', resume=False)
    script_validation(monkeypatch, sets[1], [10.0, 20.0, 30.0])    # epoch 1 improves, epochs 2 and 3 do not
    result = training.train_and_evaluate(hps, sets, str(tmp_path), seed=3, max_epochs=3)
    spe = sets[0].num_batches
    assert [r['improved'] for r in result['history']] == [True, False, False]
    assert result['strikes'] == 2 and result['step'] == 3 * spe
    assert os.path.basename(tf.train.latest_checkpoint(str(tmp_path))) == 'vector-1'
    best, _ = family.restore_model(str(tmp_path))
    assert any(not np.array_equal(mine.numpy(), saved.numpy())
               for mine, saved in zip(result['model'].trainable_variables, best.trainable_variables))


def test_a_resumed_run_reports_and_keeps_its_stored_seed(tmp_path, png_data_dir, capsys):
    hps, *sets = training.prepare_run(str(tmp_path), png_data_dir, HPARAMS, resume=False)
    training.train_and_evaluate(hps, sets, str(tmp_path), seed=3, max_epochs=1)
    capsys.readouterr()
    training.train_and_evaluate(hps, sets, str(tmp_path), seed=99, max_epochs=1, resume=True)
    assert re.search(r'resumed \S+: step \d+, epoch \d+, strikes \d+, seed 3\n', capsys.readouterr().out)


@pytest.mark.parametrize('max_strikes, epochs_run', [(2, 3), (0, 5)])
def test_max_strikes_stops_early_or_never(tmp_path, png_data_dir, monkeypatch, max_strikes, epochs_run):
    hps, *sets = training.prepare_run(str(tmp_path), png_data_dir, HPARAMS, resume=False)
    script_validation(monkeypatch, sets[1], [10.0, 20.0, 30.0, 40.0, 50.0])   # only epoch 1 improves
    result = training.train_and_evaluate(hps, sets, str(tmp_path), seed=3, max_epochs=5, max_strikes=max_strikes)
    assert len(result['history']) == epochs_run and result['strikes'] == epochs_run - 1


def test_the_last_epoch_is_validated_even_between_save_every_epochs(tmp_path, png_data_dir):
    """save_every=2 with max_epochs=3: validations after epochs 2 and 3, so the run's final steps are scored."""
    hps, *sets = training.prepare_run(str(tmp_path), png_data_dir, HPARAMS + ', save_every=2', resume=False)
    result = training.train_and_evaluate(hps, sets, str(tmp_path), seed=3, max_epochs=3, max_strikes=0)
    steps = [entry['step'] for entry in result['history']]
    assert len(steps) == 2 and steps[1] - steps[0] in (0, steps[0] // 2)   # one more epoch (kept, or rolled back)


def test_num_steps_ends_the_run_even_when_its_last_epoch_rolls_back(tmp_path, png_data_dir, monkeypatch):
    """The validation at num_steps rolls back (step counter below num_steps again); the run still ends there."""
    hps, *sets = training.prepare_run(str(tmp_path), png_data_dir, HPARAMS, resume=False)
    hps = hps.replace(num_steps=2 * sets[0].num_batches)
    script_validation(monkeypatch, sets[1], [10.0, 20.0, 30.0, 40.0])   # epoch 2 does not improve
    result = training.train_and_evaluate(hps, sets, str(tmp_path), seed=3, max_epochs=4, max_strikes=0)
    spe = sets[0].num_batches
    assert [entry['step'] for entry in result['history']] == [spe, 2 * spe]   # the steps each validation scored
    assert result['step'] == spe and result['strikes'] == 1                   # rolled back, and stopped


@pytest.mark.parametrize('args,message', [
    (['--hparams=batch_sise=3'], 'batch_sise'),
    (['--hparams=categories=[bee,unicorn]'], 'unicorn'),
    (['--data_dir=/nonexistent/dir'], '/nonexistent/dir'),
])
def test_cli_errors_are_one_line(tmp_path, png_data_dir, repo_dir, args, message):
    cmd = [sys.executable, os.path.join(repo_dir, 'train.py'), f'--log_root={tmp_path}',
           f'--data_dir={png_data_dir}'] + args
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.startswith('error:')]
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert 'Traceback' not in proc.stderr


@pytest.mark.parametrize('autojit', [True, False])
def test_autojit_flag_reaches_tensorflow(tmp_path, png_data_dir, repo_dir, autojit):
    """--autojit clusters element-wise ops for XLA, --autojit=false (the default) leaves the graphs to TensorFlow:
    seen in the graphs TensorFlow's clustering pass dumps (--tf_xla_clustering_debug)."""
    dumps = tmp_path / 'graphs'
    env = dict(os.environ, TF_XLA_FLAGS='--tf_xla_clustering_debug', TF_DUMP_GRAPH_PREFIX=str(dumps))
    cmd = [sys.executable, os.path.join(repo_dir, 'train.py'), f'--log_root={tmp_path / "run"}',
           f'--data_dir={png_data_dir}', f'--hparams={HPARAMS}', '--max_epochs=1', '--seed=1',
           f'--autojit={str(autojit).lower()}']
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    names = sorted(os.listdir(dumps)) if dumps.exists() else []
    clustered = [name for name in names if name.startswith('mark_for_compilation_annotated')]
    assert bool(clustered) == autojit, names


@pytest.mark.parametrize('flag', ['--seed=-1', '--autojit=maybe', '--flagfile=/nonexistent/flags'])
def test_bad_flag_values_are_absl_errors_not_tracebacks(tmp_path, repo_dir, flag):
    """Run as a program: the early parse of --autojit (before app.run) leaves bad values to absl's one-line error."""
    proc = subprocess.run([sys.executable, os.path.join(repo_dir, 'train.py'), f'--log_root={tmp_path}', flag],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr, proc.stderr
    assert 'FATAL Flags parsing error' in proc.stderr, proc.stderr


def test_a_finished_run_saves_where_it_stopped_and_packs_it(trained_model_dir, tmp_path, repo_dir):
    """A run that ends (here: max_epochs) leaves last/ at its final step, so --resume_training with a larger budget
    continues from there; pack_model.py --checkpoint=last packs those weights, --checkpoint=best the best epoch's."""
    last = tf.train.latest_checkpoint(os.path.join(trained_model_dir, 'last'))
    assert last is not None
    assert tf.train.load_variable(last, 'state/step/.ATTRIBUTES/VARIABLE_VALUE') > 0
    proc = subprocess.run([sys.executable, os.path.join(repo_dir, 'pack_model.py'), f'--model_dir={trained_model_dir}',
                           f'--output_dir={tmp_path / "now"}', '--checkpoint=last'],
                          capture_output=True, text=True, cwd=repo_dir, timeout=300)
    assert proc.returncode == 0, proc.stderr
    packed, _ = family.restore_model(str(tmp_path / 'now'))
    stopped, _ = family.restore_model(trained_model_dir, 'last')
    assert len(packed.variables) == len(stopped.variables) > 0
    for mine, theirs in zip(stopped.variables, packed.variables):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy(), err_msg=mine.name)
    assert tf.train.latest_checkpoint(str(tmp_path / 'now')).endswith('vector-' + last.rsplit('-', 1)[1])
    empty = tmp_path / 'no_last'
    empty.mkdir()
    with pytest.raises(utils.UserError, match='no last/ checkpoint'):
        family.checkpoint_path(str(empty), 'last')


def test_packed_model_holds_the_weights_without_adam_and_restores_equal(trained_model_dir, tmp_path, repo_dir):
    path = family.save_for_inference(trained_model_dir, str(tmp_path / 'packed'))
    assert os.path.basename(path) == os.path.basename(tf.train.latest_checkpoint(trained_model_dir))
    keys = [key for key, _ in tf.train.list_variables(path)]
    assert keys and not any('optimizer' in key for key in keys)
    full, _ = family.restore_model(trained_model_dir)
    packed, hps = family.restore_model(str(tmp_path / 'packed'))
    assert hps == hyperparams.load_hparams_json(os.path.join(trained_model_dir, 'model_config.json'))
    assert len(full.variables) == len(packed.variables) > 0
    for mine, theirs in zip(full.variables, packed.variables):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy(), err_msg=mine.name)
    same = subprocess.run([sys.executable, os.path.join(repo_dir, 'pack_model.py'), f'--model_dir={tmp_path}',
                           f'--output_dir={tmp_path}'], capture_output=True, text=True, cwd=repo_dir)
    assert same.returncode == 1 and same.stderr.strip().splitlines()[-1] == \
        'error: --output_dir must differ from --model_dir'
