"""The papers' two scores of generated sketches, as library functions (docs/model.md#metrics): Ret, retrieving
each generated sketch's reference among all real test codes by its re-encoded code, and Rec, the accuracy of
a separately trained classifier on the generated images; and reading a sample.py output directory.
"""
import collections
import os
import re

import numpy as np
from PIL import Image

import dataset
import model
import sampling
import utils

KS = (1, 10, 50)
KNN = 5   # neighbours of the latent-space category accuracy (code 5-NN)


LABEL_PREFIXES = ('gau_idx', 'i_label', 'j_label')
LABEL_KINDS = {'gau_idx': 'Gaussian', 'j_label': 'Gaussian', 'i_label': 'group'}   # what each label file names


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
    """Red channel of an image file, uint8 [H, W] (the original reads RGB and keeps R, docs/model.md#ret)."""
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


def knn_accuracy(codes, category_ids, k=KNN):
    """Leave-one-out k-nearest-neighbour category accuracy of the codes (squared Euclidean distance, majority vote,
    ties to the lowest category index): how well the latent space separates the categories, for every model."""
    codes = np.asarray(codes, np.float64)
    squared = (codes ** 2).sum(axis=1)
    distances = squared[:, None] + squared[None, :] - 2 * codes @ codes.T   # |a - b|^2 = |a|^2 + |b|^2 - 2 a.b
    np.fill_diagonal(distances, np.inf)
    neighbours = np.argsort(distances, axis=1, kind='stable')[:, :k]
    votes = np.stack([np.bincount(row, minlength=category_ids.max() + 1) for row in category_ids[neighbours]])
    return float((votes.argmax(axis=1) == category_ids).mean())


def purity(labels, category_ids):
    """Category purity of the latent components' clusters: sum_k max_c #{n: label_n = k, category_n = c} / N."""
    counts = np.zeros((labels.max() + 1, category_ids.max() + 1), np.int64)
    np.add.at(counts, (labels, category_ids), 1)
    return float(counts.max(axis=1).sum() / len(labels))


def category_split(labels, category_ids, num_categories):
    """{component k: (n_k, share of each category among the n_k sketches labelled k [C])}, for every k used."""
    split = {}
    for k in np.unique(labels):
        mine = category_ids[labels == k]
        split[int(k)] = (len(mine), np.bincount(mine, minlength=num_categories) / len(mine))
    return split


def mixture_report(net, samples, categories):
    """Lines on the model's latent mixture: how many Gaussians (and groups) are alive (model.is_alive), and per
    label file of the samples (the Gaussian, or rpclh's group, of each sketch's code) the purity and each
    component's split of the categories. No lines for a model without a latent mixture."""
    weights = net.mixture_weights()
    if weights is None:
        return []
    lines = [f'Alive Gaussians: {int(model.is_alive(weights.numpy()).sum())} of {len(weights)} (weight above '
             f'1/(10K))']
    groups = net.group_weights()
    if groups is not None:
        q_i = groups[0].numpy()
        lines.append(f'Alive groups: {int(model.is_alive(q_i).sum())} of {len(q_i)}')
    for prefix in ('i_label', 'j_label', 'gau_idx'):
        labels = samples.gaussian_labels.get(prefix)
        if labels is None:
            continue
        kind = LABEL_KINDS[prefix]
        share = purity(labels, samples.category_ids)
        lines.append(f'{kind[0].upper() + kind[1:]} purity: {share:.4f} (the share of sketches in their {kind}\'s '
                     f'most common category)')
        for k, (count, shares) in category_split(labels, samples.category_ids, len(categories)).items():
            mix = ', '.join(f'{categories[c]} {shares[c]:.0%}' for c in np.argsort(-shares, kind='stable')
                            if shares[c] > 0)
            lines.append(f'  {kind} {k}: {count} sketches: {mix}')
    return lines


def rec_score(classifier_model, classifier_categories, images, category_ids, categories):
    """Rec: (accuracy, {category: accuracy}) of the classifier on generated uint8 images [N, W, W],
    sketch n labelled with categories[category_ids[n]], the category of its reference."""
    import rec_classifier  # Keras loads only when Rec is asked for
    unknown = sorted(set(categories[i] for i in category_ids) - set(classifier_categories))
    if unknown:
        raise utils.UserError(f"the classifier does not know {', '.join(unknown)} (it has "
                              f"{', '.join(classifier_categories)})")
    labels = np.array([classifier_categories.index(categories[i]) for i in category_ids])
    predicted = rec_classifier.predict(classifier_model, images)
    return rec_classifier.accuracy_by_category(labels, predicted, classifier_categories)


# ------------------------------------------------------------------------------------------------ re-encoding

def generated_strokes5(samples, sample_dir, max_seq_len):
    """The saved strokes, normalised by sample_config.json's scale factor, as stroke-5 [N, T+1, 5]."""
    scale = sampling.read_config(sample_dir).get('scale_factor')
    if samples.strokes is None or scale is None:
        raise utils.UserError(f'sketch_rnn re-encodes strokes: {sample_dir} needs strokes_<c>_<n>.npy files and '
                              f'{sampling.CONFIG_FILE} with the scale factor (written by sample.py)')
    normalised = [np.asarray(seq, np.float32) / np.float32([scale, scale, 1]) for seq in samples.strokes]
    return dataset.to_stroke5(normalised, max(max_seq_len, max(len(seq) for seq in normalised)))


def encode_generated(net, samples, sample_dir, batch_size=256):
    """y'_n = encoder mean of every generated sketch, read as the model's encoder reads (its `encoder_input`): the
    image, the strokes, or the patch graph of the strokes. float32 [N, D]."""
    width = net.hps.png_width
    if samples.images.shape[1:] != (width, width):
        raise utils.UserError(f'the generated images are {samples.images.shape[1]}x{samples.images.shape[2]} but the '
                              f'model reads {width}x{width}')
    if net.encoder_input == 'graph':
        import sketch_healing  # the strokes' patch graphs, re-encoded (docs/model.md#sketch-healing)
        return sketch_healing.stroke_codes(net, samples, sample_dir, batch_size)
    if net.encoder_input == 'image':
        mu, _ = sampling.encode_batched(net, None, dataset.pixels_to_unit(samples.images), batch_size)
        return mu
    if not net.decoder.conditional:
        raise utils.UserError(f'a decoder-only {net.hps.model_type} model has no encoder: Ret is undefined')
    strokes = generated_strokes5(samples, sample_dir, net.hps.max_seq_len)
    mu, _ = sampling.encode_batched(net, strokes, None, batch_size)
    return mu


# ------------------------------------------------------------------------------------------------ every score

def score_samples(net, samples, sample_dir, classifier=None, batch_size=256, chunk=256):
    """Every score of a sample directory written by sample.py (docs/metrics.md), as retrieval.py prints them
    (score_lines) and the reproduction study stores them: {'ret': {k: Ret@k}, 'knn': code 5-NN accuracy,
    'mixture': mixture_report's lines} and, given classifier = (model, its categories), 'rec' and
    'rec_by_category' {category: Rec}. A new metric goes here and in score_lines (docs/layout.md#a-new-metric)."""
    generated = encode_generated(net, samples, sample_dir, batch_size=batch_size)
    scores = dict(ret=ret_scores(samples.codes, generated, chunk=chunk),
                  knn=knn_accuracy(samples.codes, samples.category_ids),
                  mixture=mixture_report(net, samples, net.hps.categories))
    if classifier is not None:
        scores['rec'], scores['rec_by_category'] = rec_score(*classifier, samples.images, samples.category_ids,
                                                             net.hps.categories)
    return scores


def score_lines(scores):
    """The lines retrieval.py prints for score_samples' dict."""
    lines = [f'Top {k} Ret: {value:.4f}' for k, value in scores['ret'].items()]
    lines.append(f"Code {KNN}-NN: {scores['knn']:.4f} (leave-one-out category accuracy of the real test codes)")
    lines += scores['mixture']
    if 'rec' in scores:
        lines += [f'Rec {category}: {value:.4f}' for category, value in scores['rec_by_category'].items()]
        lines.append(f"Rec: {scores['rec']:.4f}")
    return lines
