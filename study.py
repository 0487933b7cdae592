"""The reproduction study (docs/results.md), running part: the chain of the project's programs run as subprocesses
for every model and seed, each run scored once (study_scores.py); reproduce.py then writes the table and the figures
(study_report.py).
"""
import glob
import json
import os
import shlex
import subprocess
import sys
import time

import dataset
import study_scores
import utils

HERE = os.path.dirname(os.path.abspath(__file__))


MODELS = ('sketch_rnn', 'rpcl', 'ia', 'rpclh')


LABELS = dict(sketch_rnn='sketch-rnn', rpcl='RPCL-pix2seq', ia='IA-pix2seq', rpclh='RPCL-pix2seqH')


# Every model gets the recipe of the shipped quickdraw3 models (pretrained/*/README.md): an LSTM 256 decoder (a
# HyperLSTM 256 step costs 3x as much here), z 64, batch 64, the centred image rescale, length buckets of 16 and a
# validation every 5 epochs; the latent mixtures start with K = 6 Gaussians for 3 categories (rpclh: I = J = 6).
STUDY = dict(
    categories='alarm clock,face,radio', seeds='1,2', epochs=20, classifier_epochs=30,
    hparams='dec_model=lstm, dec_rnn_size=256, z_size=64, batch_size=64, num_mixture=3, num_sub=2, '
            'num_layer_i=6, num_layer_j=6, fix_png_rescale=true, bucket_width=16, save_every=5')


TINY = dict(
    categories='bee,bus', seeds='1', epochs=1, classifier_epochs=1,
    hparams='dec_model=lstm, dec_rnn_size=32, enc_rnn_size=32, z_size=8, batch_size=16, num_mixture=2, '
            'num_sub=2, num_layer_i=3, num_layer_j=3, num_per_category=24')


# ------------------------------------------------------------------------------------------------ running programs

class Chain:
    """Runs the project's programs as subprocesses, logging each command to commands.sh and its output beside."""

    def __init__(self, output_dir):
        utils.make_output_dir(output_dir, '--output_dir')
        self.output_dir = output_dir
        self.log_dir = os.path.join(output_dir, 'logs')
        os.makedirs(self.log_dir, exist_ok=True)
        with open(os.path.join(output_dir, 'commands.sh'), 'a', encoding='utf-8') as f:
            f.write(f"# {time.strftime('%Y-%m-%d %H:%M:%S')}: python3 reproduce.py {' '.join(sys.argv[1:])}\n")

    def run(self, name, program, **flag_values):
        """Run `python3 <program> --flag=value ...`; returns its wall time in seconds. UserError naming the program
        and the last line it printed when it fails."""
        command = [sys.executable, os.path.join(HERE, program)] + [f'--{k}={v}' for k, v in flag_values.items()]
        shown = ' '.join(shlex.quote(part) for part in ['python3', program] + command[2:])
        with open(os.path.join(self.output_dir, 'commands.sh'), 'a', encoding='utf-8') as f:
            f.write(shown + '\n')
        print(f'$ {shown}', flush=True)
        log_path = os.path.join(self.log_dir, f'{name}.log')
        start = time.time()
        with open(log_path, 'w', encoding='utf-8') as log:
            code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT)   # paths relative to this cwd
        seconds = time.time() - start
        if code != 0:
            raise utils.UserError(f'{program} failed (exit {code}): {last_line(log_path)} (log: {log_path})')
        return seconds


def last_line(path):
    """The last non-empty line of a text file (progress-bar carriage returns split lines too)."""
    with open(path, encoding='utf-8', errors='replace') as f:
        lines = [line.strip() for line in f.read().replace('\r', '\n').splitlines() if line.strip()]
    return lines[-1] if lines else '(no output)'


def prepare_data(chain, data_dir, categories):
    """<output_dir>/data with a copy of every <c>.npz and its <c>_png.npz from seq2png.py; returns its path."""
    target = os.path.join(chain.output_dir, 'data')
    os.makedirs(target, exist_ok=True)
    for c in categories:
        source = dataset.category_npz_path(data_dir, c)
        if not os.path.isfile(source):
            raise utils.UserError(f'no {source}: --data_dir must hold <category>.npz for every category')
        utils.copy_atomically(source, dataset.category_npz_path(target, c))
    chain.run('seq2png', 'seq2png.py', input_dir=target, output_dir=target, categories=','.join(categories))
    return target


def train_and_sample(chain, run_dir, data, model_type, seed, hparams, epochs):
    """Train one model (resuming an interrupted run) and sample one sketch per test sketch, each unless the run's
    timing.json records it done; returns that record, {train_seconds, sample_seconds}."""
    timing_path = os.path.join(run_dir, 'timing.json')
    timing = {}
    if os.path.isfile(timing_path):
        with open(timing_path, encoding='utf-8') as f:
            timing = json.load(f)
    model_dir = os.path.join(run_dir, 'model')
    if 'train_seconds' not in timing:
        train_flags = dict(log_root=model_dir, data_dir=data, hparams=f'{hparams}, model_type={model_type}',
                           seed=seed, max_epochs=epochs, max_strikes=0)   # every model trains all its epochs
        if glob.glob(os.path.join(model_dir, '**', 'checkpoint'), recursive=True):
            train_flags['resume_training'] = True
        timing['train_seconds'] = chain.run(f'train-{model_type}-seed{seed}', 'train.py', **train_flags)
        utils.atomic_write_json(timing_path, timing)
    if 'sample_seconds' not in timing:
        timing['sample_seconds'] = chain.run(f'sample-{model_type}-seed{seed}', 'sample.py', data_dir=data,
                                             model_dir=model_dir, output_dir=os.path.join(run_dir, 'sample'),
                                             seed=seed)
        utils.atomic_write_json(timing_path, timing)
    return timing


# ------------------------------------------------------------------------------------------------ one run

def run_once(chain, data, model_type, seed, hparams, epochs, classifier_model, classifier_categories):
    """One model and seed: trained, sampled and scored; what was done before is kept (its result.json, or its
    timing.json: then only the scores are computed again)."""
    run_dir = os.path.join(chain.output_dir, f'{model_type}-seed{seed}')
    result_path = os.path.join(run_dir, 'result.json')
    if os.path.isfile(result_path):
        with open(result_path, encoding='utf-8') as f:
            print(f'kept {result_path}', flush=True)
            return json.load(f)
    seconds = train_and_sample(chain, run_dir, data, model_type, seed, hparams, epochs)
    scores = study_scores.score_run(run_dir, classifier_model, classifier_categories, seed)
    result = dict(scores, seed=seed, run_dir=run_dir, **seconds)
    utils.atomic_write_json(result_path, result)
    print(f"{model_type} seed {seed}: Rec {result['rec']:.3f}, Ret@1/10/50 "
          f"{', '.join(f'{v:.3f}' for v in result['ret'].values())}", flush=True)
    return result
