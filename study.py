"""The reproduction study as library functions (docs/results.md): the chain of the project's programs run as
subprocesses, the scores of every run (Rec, Ret, code 5-NN, alive Gaussians), the table and the figures.
"""
import glob
import json
import os
import shlex
import subprocess
import sys
import time

import matplotlib

matplotlib.use('Agg')

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image  # noqa: E402

import dataset  # noqa: E402
import family  # noqa: E402
import latent_map  # noqa: E402
import metrics  # noqa: E402
import model as model_lib  # noqa: E402
import sampling  # noqa: E402
import utils  # noqa: E402

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




TABLE_FILE = 'results_table.md'   # the score table; docs/results.md includes its numbers with the discussion
FIGURES = ('repro_training.png', 'repro_grid.png', 'repro_tsne.png', 'repro_tsne_thumbnails.jpg')


TRAINING_TAGS = dict(alive_win='Alive_Gaussians_Win', alive_alpha='Alive_Gaussians_Alpha',
                     valid_lil='Valid_Reconstr_Cost', train_lil='Train_Reconstr_Cost')


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
        copy_atomically(source, dataset.category_npz_path(target, c))
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


# ------------------------------------------------------------------------------------------------ measuring a run

def training_curves(model_dir):
    """{key: [(wall_time, step, value)] in time order} of TRAINING_TAGS from a run's TensorBoard events; the
    validation scalars come once per epoch run (rolled-back epochs included)."""
    wanted = {tag: key for key, tag in TRAINING_TAGS.items()}
    curves = {key: [] for key in TRAINING_TAGS}
    for path in sorted(glob.glob(os.path.join(model_dir, 'events.out.tfevents.*'))):
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                if value.tag in wanted:
                    number = float(tf.make_ndarray(value.tensor)) if value.HasField('tensor') else value.simple_value
                    curves[wanted[value.tag]].append((event.wall_time, event.step, number))
    return {key: sorted(points) for key, points in curves.items()}


def score_run(run_dir, classifier_model, classifier_categories, seed):
    """Rec, Ret@k, the training budget, the alive Gaussians at the kept checkpoint, the best validation NLL per
    step, latent-space scores and the t-SNE maps of visualization.py (in <run>/tsne) of one run."""
    model_dir, sample_dir = os.path.join(run_dir, 'model'), os.path.join(run_dir, 'sample')
    net, hps = family.restore_model(model_dir)
    samples = metrics.load_sample_dir(sample_dir, hps.categories)
    ret = metrics.ret_scores(samples.codes, metrics.encode_generated(net, samples, sample_dir))
    rec, rec_by_category = metrics.rec_score(classifier_model, classifier_categories, samples.images,
                                               samples.category_ids, hps.categories)
    curves = training_curves(model_dir)
    valid = [value for _, _, value in curves['valid_lil']]
    best = int(np.argmin(valid))              # the validation whose checkpoint restore_model loaded
    nll_divisor = 1 if hps.model_type == 'sketch_rnn' else hps.max_seq_len   # magenta's r_cost = lil_loss / T
    steps_per_validation = curves['valid_lil'][0][1]   # a rollback rewinds the step counter, so the first one
    result = dict(model_type=hps.model_type, rec=rec, rec_by_category=rec_by_category,
                  ret={str(k): v for k, v in ret.items()}, num_sketches=len(samples.names),
                  validations=len(valid), steps_trained=len(valid) * steps_per_validation,
                  steps_kept=curves['valid_lil'][best][1],
                  rolled_back=len(valid) - sum(epoch_improved(valid)),
                  best_valid_nll_per_step=valid[best] / nll_divisor, nll_divisor=nll_divisor,
                  code_knn=metrics.knn_accuracy(samples.codes, samples.category_ids), curves=curves,
                  references=sampling.read_config(sample_dir)['references'])
    weights = net.mixture_weights()
    if weights is not None:
        winners = samples.gaussian_labels.get('j_label', samples.gaussian_labels.get('gau_idx'))
        result.update(gaussians=int(weights.shape[0]),
                      alive_alpha_end=int(model_lib.is_alive(weights.numpy()).sum()),
                      alive_win_end=int(curves['alive_win'][best][2]),
                      purity=metrics.purity(winners, samples.category_ids))
    means = latent_map.gaussian_means(net)
    latent_map.visualise(samples, means, os.path.join(run_dir, 'tsne'), fast=True, seed=seed)
    result['tsne'] = tsne_map(samples, means, seed)
    return result


def tsne_map(samples, means, seed):
    """2-D t-SNE positions (in [0, 1]) of the reference codes and the Gaussian means, with category labels."""
    points = samples.codes if means is None else np.concatenate([samples.codes, means])
    unit = latent_map.normalise(latent_map.tsne_embedding(points, fast=True, seed=seed))
    n = len(samples.codes)
    return dict(codes=unit[:n].tolist(), means=unit[n:].tolist() if means is not None else None,
                category_ids=samples.category_ids.tolist())


def epoch_improved(valid):
    """For each validation loss in time order: is it below every earlier one (the epoch is kept, else rolled
    back)?"""
    return [value < min(valid[:i], default=np.inf) for i, value in enumerate(valid)]


# ------------------------------------------------------------------------------------------------ the table

def mean_and_spread(values):
    """'m' for one value, 'm ± h' (h = half the range) for several."""
    values = np.asarray(values, np.float64)
    if len(values) == 1:
        return f'{values[0]:.3f}'
    return f'{values.mean():.3f} ± {(values.max() - values.min()) / 2:.3f}'


def summarise(results, models):
    """Rows of the table, one per model over its seeds: (label, {column: text})."""
    rows = []
    for model_type in models:
        runs = [r for r in results if r['model_type'] == model_type]
        if not runs:
            continue
        row = {
            'steps trained (validations)': f"{runs[0]['steps_trained']:,} ({runs[0]['validations']})",
            'steps at scored checkpoint': ', '.join(f"{r['steps_kept']:,}" for r in runs),
            'train min': mean_and_spread([r['train_seconds'] / 60 for r in runs]),
            'Rec': mean_and_spread([r['rec'] for r in runs]),
            **{f'Ret@{k}': mean_and_spread([r['ret'][k] for r in runs]) for k in ('1', '10', '50')},
            'valid NLL/step': mean_and_spread([r['best_valid_nll_per_step'] for r in runs]),
            f'code {metrics.KNN}-NN acc': mean_and_spread([r['code_knn'] for r in runs]),
            'Gaussian purity': mean_and_spread([r['purity'] for r in runs]) if 'purity' in runs[0] else 'n/a',
            'alive start -> end (win / alpha)': (
                f"{runs[0]['gaussians']} -> " + ', '.join(f"{r['alive_win_end']} / {r['alive_alpha_end']}"
                                                         for r in runs) if 'gaussians' in runs[0] else 'n/a'),
            'rolled back': ', '.join(str(r['rolled_back']) for r in runs),
        }
        rows.append((LABELS[model_type], row))
    return rows


def markdown_table(rows, seeds, ceiling, num_sketches):
    """The results table in Markdown, with a line on chance levels and the classifier ceiling."""
    columns = list(rows[0][1])
    lines = ['| model | ' + ' | '.join(columns) + ' |', '|' + '---|' * (len(columns) + 1)]
    lines += [f'| {label} | ' + ' | '.join(row[c] for c in columns) + ' |' for label, row in rows]
    k = len(ceiling[1])
    seeds_text = f'Seeds {", ".join(seeds)}: mean ± half the range' if len(seeds) > 1 else f'Seed {seeds[0]}'
    lines += ['', f'{seeds_text}; per-seed values where a column lists them. '
              f'{num_sketches} generated sketches per run, one per test sketch. Chance: Rec {1 / k:.3f}, '
              f'Ret@k = k/{num_sketches} ({1 / num_sketches:.3f}, {10 / num_sketches:.3f}, '
              f'{min(50 / num_sketches, 1):.3f}). Rec ceiling (the classifier on the real test images): '
              f'{ceiling[0]:.3f}.']
    return '\n'.join(lines) + '\n'


# ------------------------------------------------------------------------------------------------ the figures

def training_figure(results, models, path):
    """Alive Gaussians (winning a validation code: solid; alpha above 1/(10K): dashed) and validation NLL per step
    at every validation, over the training steps run (rolled-back ones included), every model and seed."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), dpi=100)
    colours = dict(zip(MODELS, plt.get_cmap('tab10').colors))
    for r in results:
        if r['model_type'] not in models:
            continue
        curves, colour = r['curves'], colours[r['model_type']]
        label = f"{LABELS[r['model_type']]} seed {r['seed']}"
        style = '-' if r['seed'] == results[0]['seed'] else ':'
        steps = np.arange(r['validations'] + 1) * (r['steps_trained'] // r['validations'])   # 0, then each validation
        right.plot(steps[1:], [v / r['nll_divisor'] for _, _, v in curves['valid_lil']], '.' + style, color=colour,
                   label=label)
        if 'gaussians' in r:
            left.plot(steps, [r['gaussians']] + [v for _, _, v in curves['alive_win']],
                      style, color=colour, label=f'{label}: winning')
            left.plot(steps, [r['gaussians']] + [v for _, _, v in curves['alive_alpha']],
                      '--', color=colour, alpha=0.5)
    xlabel = 'training steps (rolled-back ones included)'
    left.set(xlabel=xlabel, ylabel='alive Gaussians', title='alive Gaussians (dashed: alpha > 1/(10K))')
    right.set(xlabel=xlabel, ylabel='NLL per time step', title='validation reconstruction loss')
    for axes in (left, right):
        axes.legend(fontsize=7)
        axes.grid(alpha=0.3)
    save_figure(figure, path)


def save_figure(figure, path):
    """Write the figure as a PNG, atomically, and close it."""
    figure.tight_layout()
    utils.atomic_write_bytes(path, latent_map.figure_bytes(figure, 'png'))


def first_seed_runs(results, models):
    """The run of the first seed of every model that has one, in `models` order."""
    return [next(r for r in results if r['model_type'] == m) for m in models
            if any(r['model_type'] == m for r in results)]


def grid_figure(results, models, data, categories, path, per_category=2):
    """For the first seed: the first `per_category` reference test sketches of every category (left column) and
    each model's conditional sample from it."""
    first = first_seed_runs(results, models)
    images = {c: dataset.load_png_npz(dataset.category_png_path(data, c), 48)['test'] for c in categories}
    rows = [(c, n) for c in categories for n in range(per_category)]
    figure, grid = plt.subplots(len(rows), len(first) + 1, figsize=(1.3 * (len(first) + 1), 1.3 * len(rows)),
                                dpi=100, squeeze=False)
    for i, (c, n) in enumerate(rows):
        reference = first[0]['references'][c][n]
        tiles = [images[c][reference]] + [read_gray(os.path.join(r['run_dir'], 'sample', f'{c}_{n}.png'))
                                          for r in first]
        for j, tile in enumerate(tiles):
            grid[i, j].imshow(tile, cmap='gray', vmin=0, vmax=255)
            grid[i, j].set_xticks([])
            grid[i, j].set_yticks([])
        grid[i, 0].set_ylabel(c, fontsize=8)
    for j, title in enumerate(['reference'] + [LABELS[r['model_type']] for r in first]):
        grid[0, j].set_title(title, fontsize=7)
    save_figure(figure, path)


def read_gray(path):
    """A PNG as uint8 [H, W] (its red channel, as retrieval.py reads it)."""
    with Image.open(path) as image:
        return np.asarray(image.convert('RGB'))[:, :, 0]


def tsne_figure(results, models, categories, path):
    """For the first seed, one panel a model: t-SNE of the reference codes coloured by category, Gaussian means as
    black crosses."""
    first = first_seed_runs(results, models)
    figure, panels = plt.subplots(1, len(first), figsize=(4 * len(first), 4), dpi=100, squeeze=False)
    colours = plt.get_cmap('tab10')
    for axes, r in zip(panels[0], first):
        codes, labels = np.asarray(r['tsne']['codes']), np.asarray(r['tsne']['category_ids'])
        for i, c in enumerate(categories):
            axes.scatter(codes[labels == i, 0], -codes[labels == i, 1], s=6, color=colours(i), label=c)
        if r['tsne']['means']:
            means = np.asarray(r['tsne']['means'])
            axes.scatter(means[:, 0], -means[:, 1], marker='x', s=50, color='black', label='Gaussian means')
        axes.set_title(LABELS[r['model_type']], fontsize=9)
        axes.set_xticks([])
        axes.set_yticks([])
    panels[0, 0].legend(fontsize=7, markerscale=2)
    save_figure(figure, path)


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
    result = dict(score_run(run_dir, classifier_model, classifier_categories, seed), seed=seed, run_dir=run_dir,
                  **seconds)
    utils.atomic_write_json(result_path, result)
    print(f"{model_type} seed {seed}: Rec {result['rec']:.3f}, Ret@1/10/50 "
          f"{', '.join(f'{v:.3f}' for v in result['ret'].values())}", flush=True)
    return result


def write_outputs(cfg, results, summary, categories, data):
    """results.json, the table (TABLE_FILE) and the figures in output_dir; the table, the figures and commands.sh
    copied into docs_dir if given."""
    out = cfg.output_dir
    utils.atomic_write_json(os.path.join(out, 'results.json'), summary)
    utils.atomic_write_bytes(os.path.join(out, TABLE_FILE), summary['table'].encode('utf-8'))
    training_figure(results, cfg.models, os.path.join(out, FIGURES[0]))
    grid_figure(results, cfg.models, data, categories, os.path.join(out, FIGURES[1]))
    tsne_figure(results, cfg.models, categories, os.path.join(out, FIGURES[2]))
    thumbnails = next((os.path.join(r['run_dir'], 'tsne', 'result.jpg') for r in results
                       if r['model_type'] == 'rpcl'), None)
    if thumbnails:
        copy_atomically(thumbnails, os.path.join(out, FIGURES[3]))
    if cfg.docs_dir:
        utils.make_output_dir(cfg.docs_dir, '--docs_dir')
        for name in FIGURES + (TABLE_FILE, 'commands.sh'):
            if os.path.isfile(os.path.join(out, name)):
                copy_atomically(os.path.join(out, name), os.path.join(cfg.docs_dir, name))


def copy_atomically(source, target):
    """Copy a file through a temporary name, so that the target is never half-written."""
    with open(source, 'rb') as f:
        utils.atomic_write_bytes(target, f.read())
