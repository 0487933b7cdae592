"""The reproduction study (docs/results.md), reporting part: the table over models and seeds, and the figures
(training curves, sketches beside their references, t-SNE maps), written to the output and docs directories.
"""
import os

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

import dataset
import latent_map
import metrics
import study
import utils

TABLE_FILE = 'results_table.md'   # the score table; docs/results.md includes its numbers with the discussion
FIGURES = ('repro_training.png', 'repro_grid.png', 'repro_tsne.png', 'repro_tsne_thumbnails.jpg')


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
        rows.append((study.LABELS[model_type], row))
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
    colours = dict(zip(study.MODELS, plt.get_cmap('tab10').colors))
    for r in results:
        if r['model_type'] not in models:
            continue
        curves, colour = r['curves'], colours[r['model_type']]
        label = f"{study.LABELS[r['model_type']]} seed {r['seed']}"
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
    for j, title in enumerate(['reference'] + [study.LABELS[r['model_type']] for r in first]):
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
        axes.set_title(study.LABELS[r['model_type']], fontsize=9)
        axes.set_xticks([])
        axes.set_yticks([])
    panels[0, 0].legend(fontsize=7, markerscale=2)
    save_figure(figure, path)


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
        utils.copy_atomically(thumbnails, os.path.join(out, FIGURES[3]))
    if cfg.docs_dir:
        utils.make_output_dir(cfg.docs_dir, '--docs_dir')
        for name in FIGURES + (TABLE_FILE, 'commands.sh'):
            if os.path.isfile(os.path.join(out, name)):
                utils.copy_atomically(os.path.join(out, name), os.path.join(cfg.docs_dir, name))
