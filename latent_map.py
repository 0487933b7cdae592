"""t-SNE maps of the codes of generated sketches, as library functions (docs/model.md#visualisation): the
thumbnail canvas, the scatter plots coloured by latent component, and the figure files.
"""
import io
import os

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image
from sklearn.manifold import TSNE

import sampling
import utils

plt.switch_backend('Agg')   # figures are written to files: no window, no display needed

MIN_TILE = 16  # smallest --tile_width


CANVAS = (2000, 1500)  # result.jpg width, height


LEARNING_RATE = 150.0


MAX_PERPLEXITY = 30.0


def tsne_embedding(points, fast=False, seed=None):
    """2-D t-SNE of points [n, D]: learning rate 150, perplexity min(30, n - 1), angle 0 (or 0.5 with fast)."""
    n = len(points)
    if n < 2:
        raise utils.UserError(f't-SNE needs at least 2 points, got {n}')
    tsne = TSNE(n_components=2, learning_rate=LEARNING_RATE, perplexity=min(MAX_PERPLEXITY, n - 1.0),
                angle=0.5 if fast else 0.0, init='random', random_state=seed)
    return tsne.fit_transform(np.asarray(points, np.float64))


def normalise(positions):
    """Min-max normalise each column to [0, 1] (a constant column maps to 0)."""
    low, high = positions.min(axis=0), positions.max(axis=0)
    return (positions - low) / np.where(high > low, high - low, 1.0)


def thumbnail_canvas(images, unit_positions, size=CANVAS):
    """White RGB canvas (width, height) with each uint8 image [h, w] at ((W - w) tx, (H - h) ty); the darker pixel
    wins where images overlap."""
    width, height = size
    canvas = np.full((height, width), 255, np.uint8)
    for image, (tx, ty) in zip(images, unit_positions):
        h, w = image.shape
        left, top = int((width - w) * tx), int((height - h) * ty)
        np.minimum(canvas[top:top + h, left:left + w], image, out=canvas[top:top + h, left:left + w])
    return np.repeat(canvas[..., None], 3, axis=-1)


def scatter_figure(positions, labels, means=None, title=''):
    """Scatter of 2-D positions coloured by integer label (legend '#k', y axis negated as the original); optional
    mean positions [K, 2] drawn as black crosses labelled k."""
    figure, axes = plt.subplots(figsize=(10, 7.5), dpi=100)
    colours = plt.get_cmap('tab20')
    for i, label in enumerate(np.unique(labels)):
        points = positions[labels == label]
        axes.scatter(points[:, 0], -points[:, 1], s=8, color=colours(i % 20), label=f'#{label}')
    if means is not None:
        axes.scatter(means[:, 0], -means[:, 1], marker='x', s=60, color='black', label='means')
        for k, (x, y) in enumerate(means):
            axes.annotate(str(k), (x, -y), fontsize=8)
    axes.legend(loc='best', fontsize=7, markerscale=2)
    axes.set_title(title)
    return figure


def figure_bytes(figure, format='jpg'):
    """The encoded image of a matplotlib figure (closed afterwards), for utils.atomic_write_bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format=format)
    plt.close(figure)
    return buffer.getvalue()


def jpeg_bytes(pixels):
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format='JPEG', quality=95)
    return buffer.getvalue()


def gaussian_means(net):
    """Means [K, D] of the model's latent Gaussians, or None (sketch_rnn)."""
    if net.mixture_weights() is None:
        return None
    return sampling.latent_gaussians(net)[1]


def visualise(samples, means, output_dir, fast=False, seed=None):
    """Write result.jpg and the level scatters for the Samples of metrics.load_sample_dir and the Gaussian
    means [K, D] (or None); returns the paths written."""
    points = samples.codes if means is None else np.concatenate([samples.codes, means])
    unit = normalise(tsne_embedding(points, fast, seed))
    codes_2d, means_2d = unit[:len(samples.codes)], (unit[len(samples.codes):] if means is not None else None)
    os.makedirs(output_dir, exist_ok=True)
    written = {'result.jpg': jpeg_bytes(thumbnail_canvas(samples.images, codes_2d))}
    level_k = samples.gaussian_labels.get('j_label', samples.gaussian_labels.get('gau_idx'))
    if level_k is not None:
        figure = scatter_figure(codes_2d, level_k, means_2d, 'level k: Gaussians')
        written['level_k.jpg'] = figure_bytes(figure)
    if 'i_label' in samples.gaussian_labels:
        figure = scatter_figure(codes_2d, samples.gaussian_labels['i_label'], title='level l: groups')
        written['level_l.jpg'] = figure_bytes(figure)
    paths = []
    for name, data in written.items():
        paths.append(os.path.join(output_dir, name))
        utils.atomic_write_bytes(paths[-1], data)
    return paths
