"""A new user's first runs: one error line when the system library cairo is missing, and no TensorFlow start-up
notice that reads like a failure."""
import os
import subprocess
import sys

import pytest

import raster
import utils

# Start-up lines that quiet_tensorflow_startup keeps off stderr on a machine without a GPU
TENSORFLOW_NOISE = ('failed call to cuInit', 'cpu_feature_guard', 'This TensorFlow binary is optimized')
SWITCHES = ('TF_CPP_MIN_LOG_LEVEL', 'TF_ENABLED_DEVICE_TYPES')


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
    utils.quiet_tensorflow_startup()
    assert os.environ['TF_CPP_MIN_LOG_LEVEL'] == '2'
    assert os.environ.get('TF_ENABLED_DEVICE_TYPES') == device_types
