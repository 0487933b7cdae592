"""Ret and Rec of generated sketches (SPEC.md §8).

    python3 retrieval.py --sample_dir=sample --model_dir=model [--classifier_dir=classifier]

Ret (SPEC §8.1, as the original): every generated sketch n (`<c>_<n>.png`, read as RGB, red channel, x =
pixel/255*2-1) is re-encoded to y'_n = mu; the real codes y_m are the saved `code_<c>_<n>.npy` (the encoder mean of
the reference test sketch in conditional sampling). All N real codes are ranked by the mean squared distance
d(n, m) = mean_d (y_m - y'_n)^2, ties going to the lower index as the original's repeated argmin; Ret@k is the
fraction of n whose own y_n is among the k nearest, for k = 1, 10, 50. The original takes 10 chunks of floor(N/10)
and silently skips the remainder while still dividing by N; here every n counts. Distances come from chunked
matrix products (|a - b|^2 = |a|^2 + |b|^2 - 2 a.b, float64) so memory stays at chunk x N, not N x N x D.
sketch_rnn models re-encode the saved strokes (`strokes_<c>_<n>.npy`, divided by the scale factor that
sample.py recorded in sample_config.json) instead of the images; spgra models encode the patch graph of those
strokes (healed sketches, sketch_healing.py, SPEC §6.5).

Rec (SPEC §8.2): with --classifier_dir (a classifier.py model), the accuracy of the classifier on the generated
PNGs, each labelled with the category of its reference (the <c> of its name).

The original's flag is --output_dir (its README says --sample_dir); both are accepted.
"""
import os

import utils

utils.quiet_tensorflow_startup()   # before TensorFlow is imported: it reads these switches as it starts

import collections  # noqa: E402
import re  # noqa: E402

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402
from PIL import Image  # noqa: E402

import model as model_lib  # noqa: E402
import sample as sample_lib  # noqa: E402

def define_flags():
    """The command-line flags, defined only when run as a program (importing this module defines none)."""
    flags.DEFINE_string('sample_dir', None, 'Directory written by sample.py (default: sample).')
    flags.DEFINE_string('output_dir', None, "The original's name for --sample_dir.")
    flags.DEFINE_string('model_dir', 'model', 'train.py --log_root of the model that made the samples.')
    flags.DEFINE_string('classifier_dir', None, 'A classifier.py --output_dir: also print Rec.')
    flags.DEFINE_integer('batch_size', 256, 'Sketches encoded at once.')
    flags.DEFINE_integer('chunk', 256, 'Generated codes ranked at once (memory: chunk x N float64).')


FLAGS = flags.FLAGS

KS = (1, 10, 50)
LABEL_PREFIXES = ('gau_idx', 'i_label', 'j_label')

Samples = collections.namedtuple('Samples', 'names category_ids images codes strokes gaussian_labels')
Samples.__doc__ = """The contents of a sample directory in category order, sketches sorted by their number n:
names ['<c>_<n>'], category_ids int64 [N] (index of c in the categories), images uint8 [N, W, W] (the red
channel of each PNG), codes float32 [N, D], strokes (list of stroke-3 arrays, or None if any is missing) and
gaussian_labels {prefix: int64 [N]} for the label files present for every sketch (gau_idx, i_label, j_label)."""


# ------------------------------------------------------------------------------------------------ reading samples

def sketch_numbers(sample_dir, category):
    """The sorted numbers n of the files <category>_<n>.png in sample_dir."""
    pattern = re.compile(rf'{re.escape(category)}_(\d+)\.png')
    return sorted(int(m.group(1)) for m in map(pattern.fullmatch, os.listdir(sample_dir)) if m)


def read_red_channel(path):
    """Red channel of an image file, uint8 [H, W] (the original reads RGB and keeps R, SPEC §8.1)."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert('RGB'))[..., 0]
    except OSError as e:
        raise utils.UserError(f'cannot read image {path}: {e}') from None


def read_npy(path):
    if not os.path.isfile(path):
        raise utils.UserError(f'missing {path} (written by sample.py next to each sketch)')
    try:
        return np.load(path)
    except (OSError, ValueError) as e:
        raise utils.UserError(f'cannot read {path}: {e}') from None


def load_sample_dir(sample_dir, categories):
    """Samples of the categories found in sample_dir (see Samples); UserError if there are none."""
    if not os.path.isdir(sample_dir):
        raise utils.UserError(f'sample directory {sample_dir} does not exist')
    names, ids = [], []
    for i, c in enumerate(categories):
        numbers = sketch_numbers(sample_dir, c)
        names += [f'{c}_{n}' for n in numbers]
        ids += [i] * len(numbers)
    if not names:
        raise utils.UserError(f"no generated sketches (<category>_<n>.png for {', '.join(categories)}) in "
                              f'{sample_dir}; make them with sample.py')

    def path(filename):
        return os.path.join(sample_dir, filename)

    images = [read_red_channel(path(f'{name}.png')) for name in names]
    sizes = sorted({image.shape for image in images})
    if len(sizes) > 1:
        raise utils.UserError(f'the sketches in {sample_dir} have different sizes {sizes}: mixed sample runs?')
    codes = np.concatenate([read_npy(path(f'code_{name}.npy')).reshape(1, -1) for name in names]).astype(np.float32)
    strokes = None
    if all(os.path.isfile(path(f'strokes_{name}.npy')) for name in names):
        strokes = [read_npy(path(f'strokes_{name}.npy')) for name in names]
    labels = {prefix: np.array([read_npy(path(f'{prefix}_{name}.npy')) for name in names], np.int64)
              for prefix in LABEL_PREFIXES if all(os.path.isfile(path(f'{prefix}_{name}.npy')) for name in names)}
    return Samples(names, np.array(ids, np.int64), np.stack(images), codes, strokes, labels)


# ------------------------------------------------------------------------------------------------ metrics

def ret_scores(real_codes, gen_codes, ks=KS, chunk=256):
    """{k: Ret@k}: the fraction of generated codes y'_n whose own real code y_n is among the k real codes nearest
    in mean squared distance d(n, m) = (|y'_n|^2 + |y_m|^2 - 2 y'_n . y_m) / D, ties going to the lower index m.
    Row n is paired with row n; all N rows count. Memory: chunk x N float64."""
    real = np.asarray(real_codes, np.float64)
    gen = np.asarray(gen_codes, np.float64)
    if real.ndim != 2 or real.shape != gen.shape:
        raise utils.UserError(f'real and generated codes must be paired [N, D] arrays, got {real.shape} and '
                              f'{gen.shape}')
    n, dims = real.shape
    real_sq = np.einsum('md,md->m', real, real)
    hits = np.zeros(len(ks), np.int64)
    for start in range(0, n, chunk):
        rows = np.arange(start, min(start + chunk, n))
        g = gen[rows]
        dist = (np.einsum('nd,nd->n', g, g)[:, None] + real_sq[None, :] - 2.0 * g @ real.T) / dims
        own = dist[np.arange(len(rows)), rows][:, None]
        # rank = #{m: d < own} + #{m < n: d == own}: the position of y_n in the original's argmin order
        rank = (dist < own).sum(axis=1) + ((dist == own) & (np.arange(n)[None, :] < rows[:, None])).sum(axis=1)
        hits += (rank[:, None] < np.asarray(ks)[None, :]).sum(axis=0)
    return {k: float(hit) / n for k, hit in zip(ks, hits)}


def rec_score(classifier_model, classifier_categories, images, category_ids, categories):
    """Rec: (accuracy, {category: accuracy}) of the classifier on generated uint8 images [N, W, W],
    sketch n labelled with categories[category_ids[n]], the category of its reference."""
    import classifier  # Keras loads only when Rec is asked for
    unknown = sorted(set(categories[i] for i in category_ids) - set(classifier_categories))
    if unknown:
        raise utils.UserError(f"the classifier does not know {', '.join(unknown)} (it has "
                              f"{', '.join(classifier_categories)})")
    labels = np.array([classifier_categories.index(categories[i]) for i in category_ids])
    predicted = classifier.predict(classifier_model, images)
    return classifier.accuracy_by_category(labels, predicted, classifier_categories)


# ------------------------------------------------------------------------------------------------ re-encoding

def generated_strokes5(samples, sample_dir, max_seq_len):
    """The saved strokes, normalised by sample_config.json's scale factor, as stroke-5 [N, T+1, 5]."""
    scale = sample_lib.read_config(sample_dir).get('scale_factor')
    if samples.strokes is None or scale is None:
        raise utils.UserError(f'sketch_rnn re-encodes strokes: {sample_dir} needs strokes_<c>_<n>.npy files and '
                              f'{sample_lib.CONFIG_FILE} with the scale factor (written by sample.py)')
    normalised = [np.asarray(seq, np.float32) / np.float32([scale, scale, 1]) for seq in samples.strokes]
    return utils.to_stroke5(normalised, max(max_seq_len, max(len(seq) for seq in normalised)))


def encode_generated(net, samples, sample_dir, batch_size=256):
    """y'_n = encoder mean of every generated sketch: its image, or its strokes for sketch_rnn and spgra (the graph of
    the strokes). float32 [N, D]."""
    width = net.hps.png_width
    if samples.images.shape[1:] != (width, width):
        raise utils.UserError(f'the generated images are {samples.images.shape[1]}x{samples.images.shape[2]} but the '
                              f'model reads {width}x{width}')
    if net.hps.model_type == 'spgra':
        import sketch_healing  # spgra re-encodes the strokes' patch graphs (SPEC §6.5)
        return sketch_healing.stroke_codes(net, samples, sample_dir, batch_size)
    if net.hps.model_type != 'sketch_rnn':
        mu, _ = sample_lib.encode_batched(net, None, utils.pixels_to_unit(samples.images), batch_size)
        return mu
    if not net.hps.conditional:
        raise utils.UserError('a decoder-only sketch_rnn model has no encoder: Ret is undefined')
    strokes = generated_strokes5(samples, sample_dir, net.hps.max_seq_len)
    mu, _ = sample_lib.encode_batched(net, strokes, None, batch_size)
    return mu


# ------------------------------------------------------------------------------------------------ command line

def resolve_sample_dir(sample_dir, output_dir):
    """--sample_dir or its original name --output_dir (default 'sample'); both given must agree."""
    if sample_dir and output_dir and os.path.abspath(sample_dir) != os.path.abspath(output_dir):
        raise utils.UserError(f'--sample_dir={sample_dir} and --output_dir={output_dir} disagree: give one')
    return sample_dir or output_dir or 'sample'


@utils.cli_main
def main(argv):
    if len(argv) > 1:
        raise utils.UserError(f"unexpected arguments: {' '.join(argv[1:])}")
    if FLAGS.batch_size < 1 or FLAGS.chunk < 1:
        raise utils.UserError('--batch_size and --chunk must be positive')
    sample_dir = resolve_sample_dir(FLAGS.sample_dir, FLAGS.output_dir)
    if not os.path.isdir(FLAGS.model_dir):
        raise utils.UserError(f'--model_dir {FLAGS.model_dir} does not exist')
    classifier_model = None
    if FLAGS.classifier_dir:
        import classifier
        classifier_model, classifier_categories = classifier.load_classifier(FLAGS.classifier_dir)
    net, hps = model_lib.restore_model(FLAGS.model_dir)
    samples = load_sample_dir(sample_dir, hps.categories)
    print(f'{len(samples.names)} generated sketches in {sample_dir}')
    scores = ret_scores(samples.codes, encode_generated(net, samples, sample_dir, FLAGS.batch_size),
                        chunk=FLAGS.chunk)
    for k, value in scores.items():
        print(f'Top {k} Ret: {value:.4f}')
    if classifier_model is not None:
        accuracy, per_category = rec_score(classifier_model, classifier_categories, samples.images,
                                           samples.category_ids, hps.categories)
        for category, value in per_category.items():
            print(f'Rec {category}: {value:.4f}')
        print(f'Rec: {accuracy:.4f}')


if __name__ == '__main__':
    define_flags()
    app.run(main)
