"""A new user's first runs: one error line when the system library cairo is missing, and no TensorFlow start-up
notice that reads like a failure."""
import os
import subprocess
import sys

import pytest

import raster
import utils

# Start-up lines that tensorflow_startup keeps off stderr on a machine without a GPU
TENSORFLOW_NOISE = ('failed call to cuInit', 'cpu_feature_guard', 'This TensorFlow binary is optimized')
SWITCHES = ('TF_CPP_MIN_LOG_LEVEL', 'TF_ENABLED_DEVICE_TYPES', 'TF_ENABLE_ONEDNN_OPTS')


def error_lines(stderr):
    return [line for line in stderr.splitlines() if line.startswith('error:')]


def test_missing_cairo_is_one_error_line(tmp_path, repo_dir, data_dir):
    """seq2png.py beside a cairocffi that fails to import as the real one does without the library (an OSError
    listing every name it tried): exit 1 with one `error:` line saying what to install, no traceback."""
    fake = tmp_path / 'no_cairo' / 'cairocffi'
    fake.mkdir(parents=True)
    (fake / '__init__.py').write_text(
        "raise OSError('no library called \"cairo-2\" was found\\n'\n"
        "              \"cannot load library 'libcairo.so.2': libcairo.so.2: cannot open shared object file\")\n")
    env = dict(os.environ, PYTHONPATH=str(fake.parent))
    proc = subprocess.run([sys.executable, 'seq2png.py', f'--input_dir={data_dir}', f'--output_dir={tmp_path}',
                           '--categories=bee'], cwd=repo_dir, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr, proc.stderr
    assert error_lines(proc.stderr) == [f'error: {raster.CAIRO_MISSING}'], proc.stderr


def test_tensorflow_start_up_notices_stay_off_stderr(tmp_path, repo_dir):
    """train.py, set going from an environment without the switches, up to a UserError raised after TensorFlow has
    set up its devices (a mirrored strategy over two CPU devices): the error line shows, the notices do not."""
    env = {name: value for name, value in os.environ.items() if name not in SWITCHES}
    proc = subprocess.run([sys.executable, os.path.join(repo_dir, 'train.py'), f'--log_root={tmp_path}',
                           '--strategy=mirrored', '--devices=/cpu:0,/cpu:1', '--jit_compile'],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert error_lines(proc.stderr) == ['error: --jit_compile compiles the single-device step only: drop it with '
                                        '--strategy'], proc.stderr
    assert not [noise for noise in TENSORFLOW_NOISE if noise in proc.stderr], proc.stderr


@pytest.mark.parametrize('driver, preset, device_types', [
    (False, {}, 'CPU'),                                  # no CUDA driver: no GPU probe
    (True, {}, None),                                    # a GPU machine keeps its GPUs
    (False, {'TF_ENABLED_DEVICE_TYPES': ''}, ''),        # the user's own value wins
])
def test_gpu_probe_is_skipped_only_without_the_driver(monkeypatch, driver, preset, device_types):
    for name in SWITCHES:
        monkeypatch.delenv(name, raising=False)
    for name, value in preset.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(sys, 'platform', 'linux')
    monkeypatch.setattr(utils, 'cuda_driver_present', lambda: driver)
    utils.tensorflow_startup()
    assert os.environ['TF_CPP_MIN_LOG_LEVEL'] == '2'
    assert os.environ.get('TF_ENABLED_DEVICE_TYPES') == device_types


@pytest.mark.parametrize('preset, expected', [(None, '1'), ('0', '0'), ('1', '1')])
def test_onednn_is_on_unless_the_user_says_otherwise(monkeypatch, preset, expected):
    monkeypatch.delenv('TF_ENABLE_ONEDNN_OPTS', raising=False)
    if preset is not None:
        monkeypatch.setenv('TF_ENABLE_ONEDNN_OPTS', preset)
    utils.tensorflow_startup()
    assert os.environ['TF_ENABLE_ONEDNN_OPTS'] == expected


IMAGE_MODEL_STEPS = """
import math, sys
import numpy as np
import tensorflow as tf
import family, hyperparams, model, sketch_model
for model_type in ('rpcl', 'rpclh', 'ia'):
    hps = hyperparams.get_default_hparams().parse(
        f'model_type={model_type}, dec_model=lstm, dec_rnn_size=16, z_size=8, batch_size=4, num_mixture=2, '
        'num_sub=2, num_layer_i=2, num_layer_j=2, max_seq_len=12')
    net = family.build_model(hps)
    train_step, _ = sketch_model.compile_steps(net, hps.batch_size, hps.max_seq_len, hps.png_width)
    rng = np.random.default_rng(0)
    strokes = np.zeros((hps.batch_size, hps.max_seq_len + 1, 5), np.float32)
    strokes[:, :, :2] = rng.normal(size=(hps.batch_size, hps.max_seq_len + 1, 2))
    strokes[:, :, 2] = 1.0
    images = rng.uniform(-1, 1, (hps.batch_size, hps.png_width, hps.png_width)).astype(np.float32)
    for step in (0, 1):   # step 0 is an image-only step for rpclh (its schedule); step 1 trains everything
        out = train_step(tf.constant(strokes), tf.constant(images), tf.constant(step, tf.int64),
                         tf.constant([0, step], tf.int64))
        assert math.isfinite(float(out['loss'])), (model_type, step)
    print('trained', model_type)
"""


@pytest.mark.parametrize('onednn', ['0', '1'])
def test_image_models_train_with_onednn_on_and_off(repo_dir, onednn):
    """Compiled training steps of each image model in a process with TensorFlow's oneDNN kernels forced on or off:
    without oneDNN a CPU build has no gradient kernel for a dilated convolution, so the encoder's dilated blocks
    must not ask for one (docs/speed.md#dilated-convolutions), whatever CPU runs the test."""
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS=onednn, PYTHONPATH=repo_dir)
    proc = subprocess.run([sys.executable, '-c', IMAGE_MODEL_STEPS], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ['trained', 'rpcl', 'trained', 'rpclh', 'trained', 'ia'], proc.stdout
