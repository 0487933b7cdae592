"""Sketch healing with SP-gra2seq (docs/model.md#sketch-healing): blank random patches of each test sketch, encode the
corrupted patch graph, and let the decoder redraw the whole sketch from that code. An image model heals the same
masks on the sketch's image, the baseline of docs/spgra.md#healing-with-an-image-model (sample.py --mask_model_dir).

    python3 sample.py --data_dir=data --model_dir=runs/sp --output_dir=runs/sp_heal --prob=0.3
    python3 retrieval.py --model_dir=runs/sp --sample_dir=runs/sp_heal --classifier_dir=runs/classifier

Every test sketch n of category c, in file order (the first --num_per_category, 0 = all), gives in --output_dir:
  <c>_<n>.svg, <c>_<n>.png   the healed sketch (black, png_width, the seq2png geometry, as sample.py's)
  strokes_<c>_<n>.npy        its stroke-3, float32, dx and dy times the test split's scale factor
  code_<c>_<n>.npy           mu of the graph of the *unmasked* test sketch: the real code that Ret ranks against
  masked_code_<c>_<n>.npy    mu of the masked graph: the z that was decoded (with prob 0, the same as code_)
  mask_<c>_<n>.npy           int64 indices of the masked patches (patch k is graph node k + 1)
  masked_<c>_<n>.png         the corrupted input: graph node 0 (the whole masked canvas, P x P), black on white
  random_seed.npy            the mask uniforms of the run, in order: reusable with --mask_seed_file
  sample_config.json         the settings (mode heal, prob, the mask seed source, ...); retrieval.py reads it

Masks: patch k of a sketch is blanked when its uniform u < prob. The uniforms are consumed one per patch, in order
over sketches and categories, as the original does with its random_seed.npy. That file is in none of the authors'
repositories, so by default the uniforms are the project's own stream np.random.default_rng(20230715).random(n)
(spgra_data.MASK_SEED); --mask_seed_file takes any .npy of uniforms instead (the authors' file, or a run's
random_seed.npy). The same seeds, model and --prob give the same masks; the decoding is seeded by --seed.

Ret (retrieval.py, docs/model.md#sketch-healing): the generated code of each healed sketch is mu of the unmasked graph
built from its strokes; the real codes are the code_ files. Rec: the classifier on the PNGs, as for the other models.
"""
import os

import numpy as np
import tensorflow as tf
import tqdm

import dataset
import raster
import sampling
import spgra_data
import utils

SEED_FILE = 'random_seed.npy'


def compile_graph_encoder(net):
    """net.encode over graph batches: (nodes uint8 [N, G, P, P], validity [N, G-1, G-1]) -> (mu, sigma2)."""
    g, p = net.hps.graph_number, net.hps.graph_picture_size
    spec = (tf.TensorSpec([None, g, p, p], tf.uint8), tf.TensorSpec([None, g - 1, g - 1], tf.float32))
    encode = tf.function(lambda nodes, validity: net.encode(None, (nodes, validity)), input_signature=spec)
    return lambda graphs: encode(tf.constant(graphs.nodes), tf.constant(graphs.validity))[0].numpy()


def healing_rows(test_set, num_categories, num_per_category):
    """Per category, the indices of its first num_per_category test sketches in file order (0: all)."""
    rows = []
    for i in range(num_categories):
        own = sampling.category_rows(test_set, i)
        sampling.check_num_per_category(num_per_category, len(own))
        rows.append(own[:num_per_category or len(own)])
    return rows


def healing_files(name, seq3, image, real_code, picture, masked, code):
    """{filename: bytes} of healed sketch `name`: sample.py's files (with the real code) and the healing extras: the
    decoded code, the masked patches' indices and the masked input as the model saw it (`picture`, uint8)."""
    files = sampling.sketch_files(name, seq3, image, real_code, {})
    files[f'masked_code_{name}.npy'] = sampling.npy_bytes(code.reshape(1, -1).astype(np.float32))
    files[f'mask_{name}.npy'] = sampling.npy_bytes(np.array(masked, np.int64))
    files[f'masked_{name}.png'] = sampling.png_bytes(picture)
    return files


def fit_canvas_to_render(canvas, render):
    """(a, b) of the least-squares map render = a * canvas + b (one scale, a shift per axis) between the pen
    positions [L+1, 2] of a sketch on its patch-graph canvas and on its width x width render."""
    c, r = canvas - canvas.mean(axis=0), render - render.mean(axis=0)
    a = float((c * r).sum() / max((c * c).sum(), 1e-12))
    return a, render.mean(axis=0) - a * canvas.mean(axis=0)


def whiten_masked_squares(image, seq3, graph_hps, masked):
    """The seq2png render `image` (uint8 [W, W]) of a sketch, copied, with the squares of its masked patches whitened:
    each masked patch's P x P square on the patch-graph canvas (spgra_data.layout, graph_hps) is mapped onto the
    render by fit_canvas_to_render, and the pixels whose centres it covers are set to white (255)."""
    image = image.copy()
    if not masked:
        return image
    width = image.shape[0]
    lay = spgra_data.layout(seq3, graph_hps.graph_number)
    x0, y0, scale = raster.drawing_geometry(seq3, width)
    render = np.concatenate([[[0.0, 0.0]], np.cumsum(np.asarray(seq3, np.float64)[:, 0:2], axis=0)]) * scale + [x0, y0]
    a, b = fit_canvas_to_render(lay.points.astype(np.float64), render)
    half = graph_hps.graph_picture_size // 2
    centres = np.arange(width) + 0.5
    for cx, cy in lay.centres[masked].tolist():
        (left, top), (right, bottom) = a * np.array([[cx - half, cy - half], [cx + half, cy + half]]) + b
        cols = (centres >= left) & (centres < right)
        rows = (centres >= top) & (centres < bottom)
        image[np.ix_(rows, cols)] = 255
    return image


class GraphHealing:
    """SP-gra2seq reads the masked patch graph itself: codes of the unmasked and the masked graphs."""

    def __init__(self, net):
        self.hps, self.encode = net.hps, compile_graph_encoder(net)

    def codes(self, sketches, prob, seeds):
        """(real codes, masked codes, masked pictures uint8 [N, P, P] black on white, masked patch lists)."""
        graphs = spgra_data.healing_graphs(sketches, self.hps, prob, seeds)
        real, z = self.encode(spgra_data.hps_graphs(sketches, self.hps)), self.encode(graphs)
        return real, z, 255 - graphs.nodes[:, 0], graphs.masked


class ImageHealing:
    """An image model given the masked sketch's image (the baseline of docs/spgra.md#healing-with-an-image-model):
    the same masks as an SP-gra2seq model with graph settings graph_hps would draw, whitened on the seq2png render."""

    def __init__(self, net, graph_hps):
        self.graph_hps, self.width = graph_hps, net.hps.png_width
        encode = sampling.compile_encoder(net, 1)
        self.encode = lambda images: encode(tf.zeros([len(images), 1, 5]), dataset.pixels_to_unit(images))[0].numpy()

    def codes(self, sketches, prob, seeds):
        masked = spgra_data.healing_graphs(sketches, self.graph_hps, prob, seeds).masked
        full = raster.render_fast(sketches, self.width, workers=1)
        holed = np.stack([whiten_masked_squares(image, seq, self.graph_hps, m)
                          for image, seq, m in zip(full, sketches, masked)])
        return self.encode(full), self.encode(holed), holed, masked


def mask_graph(graph_hps):
    """The graph settings that decide the masks (sample_config.json's `mask_graph` of a healing directory)."""
    return dict(graph_number=graph_hps.graph_number, graph_picture_size=graph_hps.graph_picture_size)


def heal(net, test_set, output_dir, prob, num_per_category=0, mask_seed_file=None, temperature=0.24, seed=0,
         batch_size=256, stop_at_eos=True, progress=True, mask_model=None):
    """Heal the test sketches with masking probability `prob` (files as the module docstring says). Returns
    (sketches written, fraction of patches masked).

    An spgra model heals its own patch graphs. An image model heals the masked images of the same masks as the
    spgra model `mask_model` = (its hps, its test split) would draw (the masks depend on that model's graph
    settings and normalisation; its test split must hold the same sketches in the same order)."""
    if not 0.0 <= prob <= 1.0:
        raise utils.UserError(f'--prob={prob} must be a probability in [0, 1]')
    hps = net.hps
    if mask_model is None:
        healer, graph_hps, mask_set = GraphHealing(net), hps, test_set
    else:
        graph_hps, mask_set = mask_model
        if list(graph_hps.categories) != list(hps.categories) or len(mask_set.strokes) != len(test_set.strokes):
            raise utils.UserError(f'the mask model reads {len(mask_set.strokes)} test sketches of '
                                  f'{", ".join(graph_hps.categories)}; this model {len(test_set.strokes)} of '
                                  f'{", ".join(hps.categories)}: they must be the same')
        healer = ImageHealing(net, graph_hps)
    rows = healing_rows(test_set, len(hps.categories), num_per_category)
    counts = [spgra_data.patch_count(mask_set.strokes[r], graph_hps.graph_number) for r in np.concatenate(rows)]
    seeds = spgra_data.mask_seeds(sum(counts), mask_seed_file)
    first_seed = np.cumsum([0] + counts)  # index of the first uniform of every sketch
    os.makedirs(output_dir, exist_ok=True)
    decode = sampling.compile_decoder(net, stop_at_eos)
    bar = tqdm.tqdm(total=len(counts), unit='sketch', desc='healing', disable=not progress, dynamic_ncols=True)
    done, masked = 0, 0
    for i, category in enumerate(hps.categories):
        for start in range(0, len(rows[i]), batch_size):
            sketches = [mask_set.strokes[r] for r in rows[i][start:start + batch_size]]
            real, z, pictures, patches = healer.codes(sketches, prob, seeds[first_seed[done]:])
            healed, images = sampling.draw(decode, z, hps.max_seq_len, temperature,
                                           sampling.derive_seed(seed, i, start), test_set.scale_factor,
                                           hps.png_width)
            files = {}
            for j, n in enumerate(range(start, start + len(sketches))):
                files.update(healing_files(f'{category}_{n}', healed[j], images[j], real[j], pictures[j],
                                           patches[j], z[j]))
            sampling.write_files(output_dir, files)
            done += len(sketches)
            masked += sum(len(m) for m in patches)
            bar.update(len(sketches))
    bar.close()
    utils.atomic_write_bytes(os.path.join(output_dir, SEED_FILE), sampling.npy_bytes(seeds))
    fraction = masked / max(sum(counts), 1)
    sampling.write_config(output_dir, model_type=hps.model_type, categories=hps.categories, mode='heal', prob=prob,
                          mask_seeds=mask_seed_file or f'np.random.default_rng({spgra_data.MASK_SEED})',
                          mask_graph=mask_graph(graph_hps),
                          masked_fraction=fraction, temperature=temperature, seed=seed, batch_size=batch_size,
                          stop_at_eos=stop_at_eos, num_per_category=num_per_category,
                          scale_factor=test_set.scale_factor, max_seq_len=hps.max_seq_len)
    return done, fraction


def stroke_codes(net, samples, sample_dir, batch_size=256):
    """y'_n = mu of the unmasked graph of every generated sketch, from its strokes_<c>_<n>.npy divided by the scale
    factor of sample_config.json (docs/model.md#sketch-healing). float32 [N, D]."""
    scale = sampling.read_config(sample_dir).get('scale_factor')
    if samples.strokes is None or scale is None:
        raise utils.UserError(f'spgra re-encodes strokes: {sample_dir} needs strokes_<c>_<n>.npy files and '
                              f'{sampling.CONFIG_FILE} with the scale factor (written by sample.py)')
    sketches = [np.asarray(seq, np.float32) / np.float32([scale, scale, 1]) for seq in samples.strokes]
    encode = compile_graph_encoder(net)
    return np.concatenate([encode(spgra_data.hps_graphs(sketches[start:start + batch_size], net.hps))
                           for start in range(0, len(sketches), batch_size)])
