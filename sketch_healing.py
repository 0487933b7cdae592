"""Sketch healing with SP-gra2seq (docs/model.md#sketch-healing): blank random patches of each test sketch, encode the
corrupted patch graph, and let the decoder redraw the whole sketch from that code.

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


def healing_files(name, seq3, image, real_code, graphs, j, code):
    """{filename: bytes} of healed sketch `name`: sample.py's files (with the real code) and the healing extras of
    graph j of the batch."""
    files = sampling.sketch_files(name, seq3, image, real_code, {})
    files[f'masked_code_{name}.npy'] = sampling.npy_bytes(code.reshape(1, -1).astype(np.float32))
    files[f'mask_{name}.npy'] = sampling.npy_bytes(np.array(graphs.masked[j], np.int64))
    files[f'masked_{name}.png'] = sampling.png_bytes(255 - graphs.nodes[j, 0])
    return files


def heal(net, test_set, output_dir, prob, num_per_category=0, mask_seed_file=None, temperature=0.24, seed=0,
         batch_size=256, stop_at_eos=True, progress=True):
    """Heal the test sketches with masking probability `prob` (files as the module docstring says). Returns
    (sketches written, fraction of patches masked)."""
    if not 0.0 <= prob <= 1.0:
        raise utils.UserError(f'--prob={prob} must be a probability in [0, 1]')
    hps = net.hps
    rows = healing_rows(test_set, len(hps.categories), num_per_category)
    counts = [spgra_data.patch_count(test_set.strokes[r], hps.graph_number) for r in np.concatenate(rows)]
    seeds = spgra_data.mask_seeds(sum(counts), mask_seed_file)
    first_seed = np.cumsum([0] + counts)  # index of the first uniform of every sketch
    os.makedirs(output_dir, exist_ok=True)
    encode, decode = compile_graph_encoder(net), sampling.compile_decoder(net, stop_at_eos)
    bar = tqdm.tqdm(total=len(counts), unit='sketch', desc='healing', disable=not progress, dynamic_ncols=True)
    done, masked = 0, 0
    for i, category in enumerate(hps.categories):
        for start in range(0, len(rows[i]), batch_size):
            sketches = [test_set.strokes[r] for r in rows[i][start:start + batch_size]]
            graphs = spgra_data.healing_graphs(sketches, hps, prob, seeds[first_seed[done]:])
            real, z = encode(spgra_data.hps_graphs(sketches, hps)), encode(graphs)
            healed, images = sampling.draw(decode, z, hps.max_seq_len, temperature,
                                             sampling.derive_seed(seed, i, start), test_set.scale_factor,
                                             hps.png_width)
            files = {}
            for j, n in enumerate(range(start, start + len(sketches))):
                files.update(healing_files(f'{category}_{n}', healed[j], images[j], real[j], graphs, j, z[j]))
            sampling.write_files(output_dir, files)
            done += len(sketches)
            masked += sum(len(m) for m in graphs.masked)
            bar.update(len(sketches))
    bar.close()
    utils.atomic_write_bytes(os.path.join(output_dir, SEED_FILE), sampling.npy_bytes(seeds))
    fraction = masked / max(sum(counts), 1)
    sampling.write_config(output_dir, model_type=hps.model_type, categories=hps.categories, mode='heal', prob=prob,
                            mask_seeds=mask_seed_file or f'np.random.default_rng({spgra_data.MASK_SEED})',
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
