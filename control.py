"""Controllable synthesis with a trained latent-mixture model: galleries of the Gaussians and latent calculators.

The learned mixture is the model's control panel: pick a Gaussian and decode draws from it to get that
Gaussian's category and style; move a code along a direction in latent space to change one property (the
RPCL-pix2seqH papers' "sketch analogy"). visualization.py's --mode=gallery|direction|analogy run these, and
--mode=pairs draws test sketches beside the model's reconstructions of them.

Galleries. A component is a Gaussian k (weight alpha_k; RPCL-pix2seqH: q(j)) or, for RPCL-pix2seqH, a group i
(weight q(i), codes z ~ sum_j q(j|i) N(m_j, diag v_j)). A component is alive when its weight exceeds 1/(10K) among
its K siblings (train.py's Alive_Gaussians_Alpha). Every alive component gets a grid of sketches decoded from
draws of its own distribution, and each kind an overview with one row per alive component, labelled with its
weight and the categories of the test sketches it wins (the label of z = encoder mean, as sample.py's
gau_idx / j_label / i_label).

Latent points (the calculators' arguments, one string each):
  gaussian:K            the mean m_K of Gaussian K
  group:I               RPCL-pix2seqH: the mean code of group I, sum_j q(j|I) m_j
  CAT:3,7,9 | CAT       encoder means of test sketches 3, 7 and 9 of category CAT (the indices of
                        sample.py --mode=interpolate) | all of CAT's test sketches
  A+B                   the points of A and of B together, e.g. bee:0,1+cat:4
A direction is mean(TO) - mean(FROM); applied to the points of a third argument, each row decodes
z + s * direction for every scale s. The analogy A : B :: C : ? decodes z_C + (z_B - z_A).

Every column of a grid is decoded as one batch with the same seed, so the columns of a row differ only through
their codes (common random numbers): the s = 0 column is exactly the plain decode of the codes.
"""
import collections
import os
import re

import numpy as np

import metrics
import raster
import sampling
import sketch_healing
import utils
from model import ALIVE_FRACTION, is_alive
from tile_grids import labelled_grid, tile_grid, write_png

KINDS = ('gaussian', 'group')
BATCH = 256           # codes encoded or decoded at once
MAX_MIX = 3           # categories named in an overview label

Component = collections.namedtuple('Component', 'kind index weight alive')
LatentPoint = collections.namedtuple('LatentPoint', 'label code image')
LatentPoint.__doc__ = 'A named code [D]; `image` is the real sketch rendered (uint8 [W, W]) or None for a mean.'


# ------------------------------------------------------------------------------------------------ the mixture

def group_weights(net):
    """(q(i) [I], q(j|i) [J, I]) as numpy of a model with a two-level latent hierarchy, or None."""
    groups = net.group_weights()
    return None if groups is None else tuple(np.asarray(w) for w in groups)


def check_mixture(net):
    if net.mixture_weights() is None:
        raise utils.UserError(f'a {net.hps.model_type} model has no latent mixture: no galleries and no gaussian:K '
                              f'points (directions and analogies between sketches work)')


def components(net):
    """Every Gaussian and (RPCL-pix2seqH) every group of the model, with its weight and whether it is alive."""
    check_mixture(net)
    weights, _, _ = sampling.latent_gaussians(net)
    found = [Component('gaussian', k, float(w), bool(a)) for k, (w, a) in enumerate(zip(weights, is_alive(weights)))]
    groups = group_weights(net)
    if groups is not None:
        q_i = groups[0]
        found += [Component('group', i, float(w), bool(a)) for i, (w, a) in enumerate(zip(q_i, is_alive(q_i)))]
    return found


def check_component(net, kind, index):
    """UserError unless the model has component `index` of `kind`."""
    if kind == 'group' and group_weights(net) is None:
        raise utils.UserError(f'a {net.hps.model_type} model has no groups (only a latent hierarchy has; '
                              f'use gaussian:K)')
    count = sum(c.kind == kind for c in components(net))
    if not 0 <= index < count:
        raise utils.UserError(f'{kind}:{index} is out of range: the model has {count} {kind}s (0..{count - 1})')


def component_mean(net, kind, index):
    """m_k of Gaussian k, or the group mean code sum_j q(j|i) m_j of group i; float32 [D]."""
    check_component(net, kind, index)
    _, means, _ = sampling.latent_gaussians(net)
    if kind == 'gaussian':
        return means[index].astype(np.float32)
    _, q_ji = group_weights(net)
    return (q_ji[:, index] @ means).astype(np.float32)


def component_codes(net, component, n, rng):
    """n draws from a Gaussian, N(m_k, diag v_k), or from a group, sum_j q(j|i) N(m_j, diag v_j); float32 [n, D]."""
    weights, means, variances = sampling.latent_gaussians(net)
    if component.kind == 'gaussian':
        return sampling.gmm_codes(n, weights, means, variances, rng, component.index)
    _, q_ji = group_weights(net)
    return sampling.gmm_codes(n, q_ji[:, component.index], means, variances, rng)


# ------------------------------------------------------------------------------------------------ decoding

class Drawer:
    """Decodes codes into tiles rendered at tile_width with one compiled decoder (stopping at end-of-sketch):
    tiles(z [N, D], seed) -> uint8 [N, W, W]."""

    def __init__(self, net, temperature=0.24, tile_width=96):
        self.decode = sampling.compile_decoder(net, stop_at_eos=True)
        self.num_steps = net.hps.max_seq_len
        self.temperature = temperature
        self.tile_width = tile_width

    def tiles(self, z, seed):
        images = []
        for start in range(0, len(z), BATCH):
            _, rendered = sampling.draw(self.decode, z[start:start + BATCH], self.num_steps, self.temperature,
                                          sampling.derive_seed(seed, start), 1.0, self.tile_width)
            images.append(rendered)
        return np.concatenate(images)

    def real(self, strokes):
        """Renders of real stroke-3 sketches at the tile width."""
        return raster.render_fast(strokes, self.tile_width, workers=1)


def check_decoder(net):
    if not net.decoder.conditional:
        raise utils.UserError('a decoder-only model has no latent code to control')


# ------------------------------------------------------------------------------------------------ galleries

def winning_labels(net, test_set):
    """{kind: label [N] of every test sketch's encoder mean} (gaussian: argmax gamma, or rpclh's j_label; group:
    rpclh's i_label), as sampling.gaussian_labels."""
    mu, sigma2 = sampling.reference_encodings(net, test_set, np.arange(len(test_set.strokes)), BATCH)
    labels = sampling.gaussian_labels(net, mu, mu, sigma2)
    if 'i_label' in labels:
        return {'gaussian': labels['j_label'], 'group': labels['i_label']}
    return {'gaussian': labels['gau_idx']}


def category_mix(wins, categories):
    """{category: number of test sketches won} of the test sketches with labels `wins` (category indices)."""
    counts = np.bincount(wins, minlength=len(categories))
    return {c: int(n) for c, n in zip(categories, counts)}


def mix_label(component, mix):
    """'gaussian 3  w=0.412  wins 57: bee 80%, bus 12%, cat 8%' (the MAX_MIX most frequent categories)."""
    total = sum(mix.values())
    text = f'{component.kind} {component.index}  w={component.weight:.3f}  wins {total}'
    top = [(c, n) for c, n in sorted(mix.items(), key=lambda item: -item[1]) if n][:MAX_MIX]
    return text + (': ' + ', '.join(f'{c} {100 * n / total:.0f}%' for c, n in top) if top else '')


def kind_code(kind):
    return KINDS.index(kind)


def gallery(net, test_set, output_dir, num_per_component=16, columns=8, temperature=0.24, seed=0, tile_width=96):
    """Write, for every alive component, gallery_<kind>_<index>.png (num_per_component sketches decoded from its
    own draws, `columns` per row), one overview gallery_<kind>s.png per kind (a row of the first `columns`
    sketches of every alive component, labelled with its weight and the category mix of the test sketches it
    wins) and gallery.json (every component: kind, index, weight, alive, wins per category, file).
    Returns the paths written."""
    check_decoder(net)
    if num_per_component < 1 or columns < 1:
        raise utils.UserError(f'--num_per_component={num_per_component} and --columns={columns} must be positive')
    found = components(net)
    labels = winning_labels(net, test_set)
    drawer = Drawer(net, temperature, tile_width)
    os.makedirs(output_dir, exist_ok=True)
    paths, rows, summary = [], collections.defaultdict(list), []
    for component in found:
        wins = test_set.labels[labels[component.kind] == component.index]
        mix = category_mix(wins, net.hps.categories)
        entry = dict(kind=component.kind, index=component.index, weight=component.weight, alive=component.alive,
                     wins=mix, file=None)
        summary.append(entry)
        if not component.alive:
            continue
        key = (kind_code(component.kind), component.index)
        z = component_codes(net, component, num_per_component, np.random.default_rng([seed, *key]))
        tiles = drawer.tiles(z, sampling.derive_seed(seed, *key))
        entry['file'] = f'gallery_{component.kind}_{component.index}.png'
        paths.append(write_png(os.path.join(output_dir, entry['file']), labelled_grid(tile_grid(tiles, columns))))
        rows[component.kind].append((mix_label(component, mix), tile_grid(tiles[:columns], columns)[0]))
    for kind, labelled_rows in rows.items():
        picture = labelled_grid([tiles for _, tiles in labelled_rows], [label for label, _ in labelled_rows])
        paths.append(write_png(os.path.join(output_dir, f'gallery_{kind}s.png'), picture))
    settings = dict(temperature=temperature, seed=seed, num_per_component=num_per_component,
                    alive_rule=f'weight > {ALIVE_FRACTION} / K', test_sketches=len(test_set.strokes))
    summary_path = os.path.join(output_dir, 'gallery.json')
    paths.append(utils.atomic_write_json(summary_path, dict(settings=settings, components=summary)))
    return paths


# ------------------------------------------------------------------------------------------------ reconstructions

def reconstruction_pairs(net, test_set, output_dir, pairs_per_category=4, temperature=0.24, seed=0, tile_width=96):
    """Write pairs.png: one row per category of `pairs_per_category` random test sketches, each real sketch (left)
    beside the sketch the model draws from its code (right; z = encoder mean, as sample.py's conditional
    sampling). Returns (path, {category: test indices shown})."""
    check_decoder(net)
    if pairs_per_category < 1:
        raise utils.UserError(f'--pairs_per_category={pairs_per_category} must be positive')
    drawer = Drawer(net, temperature, tile_width)
    rng = np.random.default_rng(seed)
    rows, shown = [], {}
    for index, category in enumerate(net.hps.categories):
        members = sampling.category_rows(test_set, index)
        picked = np.sort(rng.choice(len(members), min(pairs_per_category, len(members)), replace=False))
        mu, _ = sampling.reference_encodings(net, test_set, members[picked], BATCH)
        drawn = drawer.tiles(mu.astype(np.float32), sampling.derive_seed(seed, index))
        real = drawer.real([test_set.strokes[i] for i in members[picked]])
        rows.append([tile for pair in zip(real, drawn) for tile in pair])
        shown[category] = picked.tolist()
    labels = ['real', 'drawn'] * max(len(row) // 2 for row in rows)
    width = max(len(row) for row in rows)
    rows = [row + [np.full_like(row[0], 255)] * (width - len(row)) for row in rows]
    os.makedirs(output_dir, exist_ok=True)
    path = write_png(os.path.join(output_dir, 'pairs.png'), labelled_grid(rows, list(net.hps.categories), labels))
    return path, shown


def healing_triplets(sample_dir, mask_hps, mask_set, output_dir, per_category=4, tile_width=96):
    """Write healing.png for a directory of healed sketches (sample.py --prob, by SP-gra2seq or by an image model
    with --mask_model_dir): one row per category of its first `per_category` sketches, each as original | masked |
    healed: the test sketch, the same render with its masked patches (mask_<c>_<n>.npy) whitened as the image-model
    baseline sees them (sketch_healing.whiten_masked_squares), and the healed sketch (strokes_<c>_<n>.npy). mask_hps,
    mask_set: the SP-gra2seq model that drew the masks and its test split. Returns the path."""
    if per_category < 1:
        raise utils.UserError(f'--pairs_per_category={per_category} must be positive')
    check_healing_dir(sample_dir, mask_hps)
    rows = []
    for index, category in enumerate(mask_hps.categories):
        members = sampling.category_rows(mask_set, index)[:per_category]
        originals = [mask_set.strokes[i] for i in members]
        masks = [metrics.read_npy(os.path.join(sample_dir, f'mask_{category}_{n}.npy')) for n in range(len(members))]
        healed = [metrics.read_npy(os.path.join(sample_dir, f'strokes_{category}_{n}.npy'))
                  for n in range(len(members))]
        real = raster.render_fast(originals, tile_width, workers=1)
        masked = [sketch_healing.whiten_masked_squares(image, seq, mask_hps, mask.tolist())
                  for image, seq, mask in zip(real, originals, masks)]
        drawn = raster.render_fast(healed, tile_width, workers=1)
        rows.append([tile for triplet in zip(real, masked, drawn) for tile in triplet])
    labels = ['original', 'masked', 'healed'] * max(len(row) // 3 for row in rows)
    width = max(len(row) for row in rows)
    rows = [row + [np.full((tile_width, tile_width), 255, np.uint8)] * (width - len(row)) for row in rows]
    os.makedirs(output_dir, exist_ok=True)
    return write_png(os.path.join(output_dir, 'healing.png'), labelled_grid(rows, list(mask_hps.categories), labels))


def check_healing_dir(sample_dir, mask_hps):
    """UserError unless sample_dir holds sketches healed with the masks of the SP-gra2seq model of mask_hps: its
    sample_config.json says mode heal, the same categories and the same graph settings (other settings would place
    other squares for the same mask indices)."""
    config = sampling.read_config(sample_dir)
    if config.get('mode') != 'heal':
        raise utils.UserError(f'{sample_dir} is not a healing directory (sample.py --prob writes one)')
    settings = dict(categories=list(mask_hps.categories), mask_graph=sketch_healing.mask_graph(mask_hps))
    if {key: config.get(key) for key in settings} != settings:
        raise utils.UserError(f"{sample_dir} was healed with the masks of {config.get('mask_graph')} on "
                              f"{config.get('categories')}, not with those of --model_dir ({settings['mask_graph']} "
                              f"on {settings['categories']})")


# ------------------------------------------------------------------------------------------------ latent points

SKETCHES = re.compile(r'^(?P<category>[^:]+)(:(?P<indices>\d+(,\d+)*))?$')
COMPONENT = re.compile(r'^(?P<kind>gaussian|group):(?P<index>\d+)$')


def encoded_sketches(net, test_set, category, indices, drawer):
    """LatentPoints of test sketches `indices` of `category` (None: all of them): encoder means and renders."""
    categories = net.hps.categories
    if category not in categories:
        raise utils.UserError(f"'{category}' is not one of the model's categories ({', '.join(categories)}), nor "
                              f'gaussian:K or group:I')
    rows = sampling.category_rows(test_set, categories.index(category))
    indices = range(len(rows)) if indices is None else indices
    for index in indices:
        if not 0 <= index < len(rows):
            raise utils.UserError(f'{category}:{index} is out of range: {category} has {len(rows)} test sketches '
                                  f'(0..{len(rows) - 1})')
    chosen = rows[list(indices)]
    mu, _ = sampling.reference_encodings(net, test_set, chosen, BATCH)
    images = drawer.real([test_set.strokes[r] for r in chosen])
    return [LatentPoint(f'{category}:{i}', code, image) for i, code, image in zip(indices, mu, images)]


def parse_points(spec, net, test_set, drawer):
    """The LatentPoints named by a spec (see the module docstring), in order."""
    points = []
    for part in spec.split('+'):
        part = part.strip()
        component, sketches = COMPONENT.match(part), SKETCHES.match(part)
        if component:
            kind, index = component['kind'], int(component['index'])
            points.append(LatentPoint(part, component_mean(net, kind, index), None))
        elif sketches:
            indices = None if sketches['indices'] is None else [int(i) for i in sketches['indices'].split(',')]
            points += encoded_sketches(net, test_set, sketches['category'], indices, drawer)
        else:
            raise utils.UserError(f"cannot read the latent point '{part}' (gaussian:K, group:I, CAT or CAT:i,j,..)")
    return points


def mean_code(points):
    """The mean of the points' codes, [D]."""
    return np.mean([p.code for p in points], axis=0).astype(np.float32)


def latent_direction(source, target):
    """direction = mean(target codes) - mean(source codes), [D]."""
    return mean_code(target) - mean_code(source)


def shifted_codes(codes, direction, scales):
    """z + s * direction for every code (rows) and scale (columns): float32 [N, S, D]."""
    return (codes[:, None, :] + np.asarray(scales, np.float32)[None, :, None] * direction[None, None, :]).astype(
        np.float32)


def decode_columns(drawer, codes, seed):
    """Tiles [N][S] of codes [N, S, D], every column decoded as one batch with the same seed."""
    columns = [drawer.tiles(codes[:, s], seed) for s in range(codes.shape[1])]
    return [[column[n] for column in columns] for n in range(codes.shape[0])]


def real_tile(point, width):
    """The point's real sketch, or a white tile for a mean code."""
    return point.image if point.image is not None else np.full((width, width), 255, np.uint8)


def slug(text):
    """A file-name fragment of a spec: runs of characters other than letters, digits, '.', '-' become '-'."""
    return re.sub(r'[^A-Za-z0-9.\-]+', '-', text).strip('-')


def check_scales(scales):
    if not scales:
        raise utils.UserError('--scales is empty: give at least one scale, e.g. 0,0.5,1')


def direction_grid(net, test_set, output_dir, source, target, apply_to, scales, temperature=0.24, seed=0,
                   tile_width=96):
    """Decode z + s * (mean(target) - mean(source)) for every point z of `apply_to` (rows; the first column is
    its real sketch) and every s in `scales` (columns). Writes direction_<source>_<target>.png and .npz (codes
    [N, S, D], scales, direction, row labels); returns (png path, codes)."""
    check_decoder(net)
    check_scales(scales)
    drawer = Drawer(net, temperature, tile_width)
    source_points, target_points = (parse_points(spec, net, test_set, drawer) for spec in (source, target))
    rows = parse_points(apply_to, net, test_set, drawer)
    direction = latent_direction(source_points, target_points)
    codes = shifted_codes(np.stack([p.code for p in rows]), direction, scales)
    tiles = decode_columns(drawer, codes, seed)
    picture = labelled_grid([[real_tile(p, tile_width), *row] for p, row in zip(rows, tiles)],
                            [p.label for p in rows], ['real'] + [f's={s:g}' for s in scales])
    os.makedirs(output_dir, exist_ok=True)
    stem = os.path.join(output_dir, f'direction_{slug(source)}_{slug(target)}')
    utils.atomic_savez(stem + '.npz', codes=codes, scales=np.float32(scales), direction=direction,
                       rows=np.array([p.label for p in rows]))
    return write_png(stem + '.png', picture), codes


def single_point(spec, net, test_set, drawer):
    points = parse_points(spec, net, test_set, drawer)
    if len(points) != 1:
        raise utils.UserError(f"an analogy term is one point (CAT:i, gaussian:K or group:I), got '{spec}'")
    return points[0]


def analogy_terms(text, net, test_set, drawer):
    """The three LatentPoints of 'A,B,C'."""
    terms = [term.strip() for term in text.split(',')]
    if len(terms) != 3:
        raise utils.UserError(f"--analogy='{text}' needs three points A,B,C (e.g. bee:0,bus:3,cat:5)")
    return [single_point(term, net, test_set, drawer) for term in terms]


def analogy_grid(net, test_set, output_dir, analogies, temperature=0.24, seed=0, tile_width=96):
    """A : B :: C : ?, one row per 'A,B,C' in `analogies`: the real A, B, C, their decodes and the decode of
    z_D = z_C + (z_B - z_A). Writes analogy.png and analogy.npz (codes [R, 4, D]: z_A, z_B, z_C, z_D); returns
    (png path, codes)."""
    check_decoder(net)
    if not analogies:
        raise utils.UserError('give at least one --analogy=A,B,C')
    drawer = Drawer(net, temperature, tile_width)
    terms = [analogy_terms(text, net, test_set, drawer) for text in analogies]
    codes = np.stack([[a.code, b.code, c.code, c.code + (b.code - a.code)] for a, b, c in terms]).astype(np.float32)
    tiles = decode_columns(drawer, codes, seed)
    picture = labelled_grid([[real_tile(p, tile_width) for p in row] + decoded for row, decoded in zip(terms, tiles)],
                            [f'{a.label} : {b.label} :: {c.label}' for a, b, c in terms],
                            ['A', 'B', 'C', 'dec A', 'dec B', 'dec C', 'C + B - A'])
    os.makedirs(output_dir, exist_ok=True)
    utils.atomic_savez(os.path.join(output_dir, 'analogy.npz'), codes=codes, rows=np.array(analogies))
    return write_png(os.path.join(output_dir, 'analogy.png'), picture), codes
