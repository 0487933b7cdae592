"""t-SNE pictures of generated sketches and the latent Gaussians (SPEC.md §9, from RPCL-pix2seqH).

    python3 visualization.py --sample_dir=sample --model_dir=model --output_dir=.

t-SNE (scikit-learn, 2-D, learning rate 150, perplexity min(30, n - 1), random initialisation as the original's
scikit-learn, Barnes-Hut with angle 0 as the original, which is near-exact and slow; --fast uses the default
angle 0.5) of the stacked [generated codes; Gaussian means]. Writes in --output_dir:
  result.jpg    every generated PNG at its min-max-normalised t-SNE position on a white 2000x1500 canvas
                (overlaps keep the darker pixel, so no sketch hides another)
  level_k.jpg   the codes coloured by their Gaussian (gau_idx, or rpclh's level-k j_label), means as crosses
  level_l.jpg   rpclh only: the codes coloured by their group (i_label)
The original names the scatter files j.jpg / i.jpg (its README: level_k.jpg / level_l.jpg) and draws only
clusters with more than one point; here every code is drawn. Headless (matplotlib Agg).
"""
import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import io  # noqa: E402

import matplotlib  # noqa: E402

matplotlib.use('Agg')

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402
from PIL import Image  # noqa: E402
from sklearn.manifold import TSNE  # noqa: E402

import model as model_lib  # noqa: E402
import retrieval  # noqa: E402
import sample as sample_lib  # noqa: E402
import utils  # noqa: E402


def define_flags():
    """The command-line flags, defined only when run as a program (importing this module defines none)."""
    flags.DEFINE_string('sample_dir', './sample', 'Directory written by sample.py.')
    flags.DEFINE_string('model_dir', './model', 'train.py --log_root of the model (for the Gaussian means).')
    flags.DEFINE_string('output_dir', '.', 'Where result.jpg, level_k.jpg and level_l.jpg are written.')
    flags.DEFINE_boolean('fast', False, 'Barnes-Hut t-SNE with the default angle 0.5 instead of the slow angle 0.')
    flags.DEFINE_integer('seed', None, 'Seed of the t-SNE initialisation (default: random, as the original).')


FLAGS = flags.FLAGS

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


def jpeg_bytes_of_figure(figure):
    buffer = io.BytesIO()
    figure.savefig(buffer, format='jpg')
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
    return sample_lib.latent_gaussians(net)[1]


def visualise(samples, means, output_dir, fast=False, seed=None):
    """Write result.jpg and the level scatters for the Samples of retrieval.load_sample_dir and the Gaussian
    means [K, D] (or None); returns the paths written."""
    points = samples.codes if means is None else np.concatenate([samples.codes, means])
    unit = normalise(tsne_embedding(points, fast, seed))
    codes_2d, means_2d = unit[:len(samples.codes)], (unit[len(samples.codes):] if means is not None else None)
    os.makedirs(output_dir, exist_ok=True)
    written = {'result.jpg': jpeg_bytes(thumbnail_canvas(samples.images, codes_2d))}
    level_k = samples.gaussian_labels.get('j_label', samples.gaussian_labels.get('gau_idx'))
    if level_k is not None:
        figure = scatter_figure(codes_2d, level_k, means_2d, 'level k: Gaussians')
        written['level_k.jpg'] = jpeg_bytes_of_figure(figure)
    if 'i_label' in samples.gaussian_labels:
        figure = scatter_figure(codes_2d, samples.gaussian_labels['i_label'], title='level l: groups')
        written['level_l.jpg'] = jpeg_bytes_of_figure(figure)
    paths = []
    for name, data in written.items():
        paths.append(os.path.join(output_dir, name))
        utils.atomic_write_bytes(paths[-1], data)
    return paths


@utils.cli_main
def main(argv):
    if len(argv) > 1:
        raise utils.UserError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not os.path.isdir(FLAGS.model_dir):
        raise utils.UserError(f'--model_dir {FLAGS.model_dir} does not exist')
    net, hps = model_lib.restore_model(FLAGS.model_dir)
    samples = retrieval.load_sample_dir(FLAGS.sample_dir, hps.categories)
    means = gaussian_means(net)
    print(f't-SNE of {len(samples.codes)} codes and {0 if means is None else len(means)} Gaussian means'
          f"{'' if FLAGS.fast else ' (angle 0: slow for many points; --fast is quicker)'}")
    for path in visualise(samples, means, FLAGS.output_dir, FLAGS.fast, FLAGS.seed):
        print(f'wrote {path}')


if __name__ == '__main__':
    define_flags()
    app.run(main)
