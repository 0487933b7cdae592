"""bench/device_check.py, which a user runs first on a new machine (docs/install.md#gpu), runs on a CPU."""
import os
import subprocess
import sys


def run_bench(repo_dir, script, *args):
    return subprocess.run([sys.executable, os.path.join(repo_dir, 'bench', script), *args],
                          capture_output=True, text=True, timeout=900)


def test_device_check_reports_devices_placement_and_a_timed_step_on_the_cpu(repo_dir):
    """bench/device_check.py on a machine without a GPU: it names the devices, trains both models on the CPU (tiny
    overrides), prints a step time for each and counts the step's ops placed on the CPU."""
    proc = run_bench(repo_dir, 'device_check.py', '--hparams=dec_rnn_size=16, batch_size=4, z_size=8',
                     '--max_seq_len=60', '--steps=1')   # both models, shrunk
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert 'TensorFlow 2.' in out and 'physical device: /physical_device:CPU:0' in out, out
    assert 'training on /CPU:0' in out, out
    for name, cell in (('paper', 'hyper 16'), ('shipped', 'lstm 16')):
        line = next(line for line in out.splitlines() if line.startswith(f'{name} ('))
        assert f'({cell}, batch 4)' in line and 's/step' in line, out
    counts = [int(line.split(':')[-1]) for line in out.splitlines() if line.strip().startswith('ops on CPU:0:')]
    assert len(counts) == 2 and min(counts) > 100, out


def test_device_check_names_an_unknown_model_in_one_line(repo_dir):
    proc = run_bench(repo_dir, 'device_check.py', '--models=paper,huge')
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr, proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.startswith('error:')] == [
        'error: unknown --models: huge (choose from paper, shipped)'], proc.stderr

