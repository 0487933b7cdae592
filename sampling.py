"""What sample.py does, as library functions: encode test sketches, draw codes (conditional, prior, from the latent
mixture), decode them in batches, render and write the sketch files, and interpolate between two codes
(docs/model.md#sampling). The file names and formats are those sample.py's docstring lists."""
import concurrent.futures
import io
import json
import os

import numpy as np
import tensorflow as tf
import tqdm
from PIL import Image

import dataset
import raster
import utils

LATENTS = ('conditional', 'prior', 'gmm')
CONFIG_FILE = 'sample_config.json'
SLERP_EPS = 1e-6  # slerp falls back to lerp when sin(omega) is below this (parallel or opposite codes)
WRITERS = 8  # threads writing the output files


# ------------------------------------------------------------------------------------------------ codes

def derive_seed(*keys):
    """A 63-bit seed determined by the integers `keys` (distinct tuples give independent streams)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def check_num_per_category(num, num_test):
    """UserError when --num_per_category=num exceeds the num_test sketches per category of the test split."""
    if num > num_test:
        raise utils.UserError(f'--num_per_category={num} is larger than the test split ({num_test} sketches per '
                              f'category); use at most {num_test}, or 0 for all')


def choose_references(num_test, num, rng):
    """Indices of the first `num` entries of a random permutation of range(num_test) (num = 0: all of them)."""
    check_num_per_category(num, num_test)
    return rng.permutation(num_test)[:num or num_test]


def compile_encoder(net, rows):
    """net.encode as one tf.function over any number of sketches: (strokes [N, rows, 5], images [N, W, W]) ->
    (mu, sigma2); a stroke encoder's loop needs the static length `rows`."""
    width = net.hps.png_width
    return tf.function(net.encode, input_signature=[tf.TensorSpec([None, rows, 5], tf.float32),
                                                    tf.TensorSpec([None, width, width], tf.float32)])


def encode_batched(net, strokes, images, batch_size):
    """(mu, sigma2) as float32 numpy [N, D] of net.encode over chunks of batch_size (one compiled function).
    `strokes` [N, T+1, 5] feed stroke encoders, `images` [N, W, W] in [-1, 1] image encoders; None for the unused."""
    n = len(images if images is not None else strokes)
    width = net.hps.png_width
    encode = compile_encoder(net, strokes.shape[1] if strokes is not None else 1)
    mus, sigma2s = [], []
    for start in range(0, n, batch_size):
        size = min(batch_size, n - start)
        chunk_strokes = strokes[start:start + size] if strokes is not None else np.zeros((size, 1, 5), np.float32)
        chunk_images = (images[start:start + size] if images is not None
                        else np.zeros((size, width, width), np.float32))
        mu, sigma2 = encode(tf.constant(chunk_strokes, tf.float32), tf.constant(chunk_images, tf.float32))
        mus.append(mu.numpy())
        sigma2s.append(sigma2.numpy())
    return np.concatenate(mus), np.concatenate(sigma2s)


def prior_codes(n, z_size, rng):
    """z ~ N(0, I), float32 [n, D] (the original's unconditional mode)."""
    return rng.standard_normal((n, z_size)).astype(np.float32)


def latent_gaussians(net):
    """(weights [K], means [K, D], variances [K, D]) of the model's latent mixture as numpy (rpclh: q(j), m_j, v_j)."""
    weights = net.mixture_weights()
    if weights is None:
        raise utils.UserError(f'a {net.hps.model_type} model has no latent mixture (use --latent=conditional or prior)')
    return weights.numpy(), net.gmm.de_mu.numpy(), net.gmm.de_sigma2.numpy()


def gmm_codes(n, weights, means, variances, rng, component=None):
    """z ~ sum_k alpha_k N(m_k, diag v_k), or z ~ N(m_c, diag v_c) for one component c; float32 [n, D]."""
    if component is None:
        k = rng.choice(len(weights), size=n, p=weights / weights.sum())
    else:
        k = np.full(n, component)
    noise = rng.standard_normal((n, means.shape[1]))
    return (means[k] + np.sqrt(variances[k]) * noise).astype(np.float32)


def gaussian_labels(net, z, mu, sigma2, transient=False):
    """{file prefix: int64 labels [N]} of codes z under the model's latent mixture (mu, sigma2: the encoder outputs
    of the codes' references), as the model's `labels` gives them (docs/model_interface.md); {} without one."""
    labels = net.labels(tf.constant(z), tf.constant(mu), tf.constant(sigma2), transient=transient)
    return {prefix: values.numpy() for prefix, values in labels.items()}


# ------------------------------------------------------------------------------------------------ decoding

def compile_decoder(net, stop_at_eos=True):
    """decoder.generate as one tf.function over any number of codes: (z [N, D], temperature, seed, num_steps)
    -> stroke-5 [N, num_steps, 5]."""
    def decode(z, temperature, seed, num_steps):
        return net.decoder.generate(z, num_steps, temperature, seed, stop_at_eos=stop_at_eos)

    return tf.function(decode, input_signature=[tf.TensorSpec([None, net.hps.z_size], tf.float32),
                                                tf.TensorSpec([], tf.float32), tf.TensorSpec([], tf.int64),
                                                tf.TensorSpec([], tf.int32)])


def decode_strokes(decode, z, num_steps, temperature, seed, scale):
    """Decode codes z [N, D] with a compiled decoder; stroke-3 sketches (float32, dx and dy times `scale`)."""
    rows = decode(tf.constant(z, tf.float32), tf.constant(temperature, tf.float32), tf.constant(seed, tf.int64),
                  tf.constant(num_steps, tf.int32)).numpy()
    return [(dataset.stroke5_to_stroke3(seq5) * np.float32([scale, scale, 1])).astype(np.float32) for seq5 in rows]


# ------------------------------------------------------------------------------------------------ files

def npy_bytes(array):
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def png_bytes(image):
    """PNG of an image with R = G = B = the grey value (uint8 [H, W], or [H, W, 3] already)."""
    pixels = np.repeat(image[..., None], 3, axis=-1) if image.ndim == 2 else image
    buffer = io.BytesIO()
    Image.fromarray(pixels, 'RGB').save(buffer, format='PNG')
    return buffer.getvalue()


def sketch_files(name, seq3, image, code, labels):
    """{filename: bytes} of one sketch `name` = '<c>_<n>': svg, png, strokes, the code (unless None) and one file
    per label {prefix: int}."""
    files = {f'{name}.svg': raster.strokes_to_svg(seq3).encode('utf-8'), f'{name}.png': png_bytes(image),
             f'strokes_{name}.npy': npy_bytes(seq3)}
    if code is not None:
        files[f'code_{name}.npy'] = npy_bytes(code.reshape(1, -1).astype(np.float32))
    for prefix, label in labels.items():
        files[f'{prefix}_{name}.npy'] = npy_bytes(np.int64(label))
    return files


def write_files(output_dir, files):
    """Write {filename: bytes} into output_dir, each file atomically, by WRITERS threads (each write waits for its
    fsync, so overlapping them is about 9x faster than one after the other)."""
    with concurrent.futures.ThreadPoolExecutor(WRITERS) as pool:
        list(pool.map(lambda item: utils.atomic_write_bytes(os.path.join(output_dir, item[0]), item[1]),
                      files.items()))


# ------------------------------------------------------------------------------------------------ sampling

def category_rows(test_set, category_index):
    """Indices of one category's sketches in a loader that concatenates all categories."""
    return np.flatnonzero(test_set.labels == category_index)


def reference_encodings(net, test_set, rows, batch_size):
    """(mu, sigma2) of the test sketches `rows` (None, None for a decoder-only model)."""
    if not net.decoder.conditional:
        return None, None
    batch = test_set.batch_from_indices(rows)
    return encode_batched(net, batch.strokes, batch.encoder_inputs, batch_size)


def make_codes(latent, mu, n, net, rng, component=None):
    """Codes of one category: encoder means (conditional), N(0, I) draws (prior) or mixture draws (gmm)."""
    if latent == 'conditional':
        return mu
    if latent == 'prior':
        return prior_codes(n, net.hps.z_size, rng)
    return gmm_codes(n, *latent_gaussians(net), rng, component)


def check_latent_name(latent):
    if latent not in LATENTS:
        raise utils.UserError(f"unknown --latent '{latent}' (one of {', '.join(LATENTS)})")


def check_latent(net, latent, component):
    """UserError unless the latent source suits the model."""
    check_latent_name(latent)
    if component is not None and latent != 'gmm':
        raise utils.UserError('--component is only used with --latent=gmm')
    if latent == 'gmm':
        weights, _, _ = latent_gaussians(net)
        if component is not None and not 0 <= component < len(weights):
            raise utils.UserError(f'--component={component} is out of range: the model has {len(weights)} '
                                  f'Gaussians (0..{len(weights) - 1})')


def draw(decode, z, num_steps, temperature, seed, scale, width):
    """(stroke-3 sketches with dx, dy times `scale`, their uint8 [N, W, W] renders) of codes z [N, D]."""
    sketches = decode_strokes(decode, z, num_steps, temperature, seed, scale)
    return sketches, raster.render_fast(sketches, width, workers=1)


def sample(net, test_set, output_dir, num_per_category=0, latent='conditional', component=None, temperature=0.24,
           seed=0, batch_size=256, stop_at_eos=True, transient_labels=False, progress=True):
    """Draw num_per_category sketches per category of the model (docs/model.md#sampling) into output_dir with
    sample_config.json; returns the number of sketches written.

    test_set: the test loader of dataset.load_dataset for the model's categories (its scale factor converts the
    strokes back to pixel units). Codes, labels and files as the module docstring says."""
    check_latent(net, latent, component)
    hps = net.hps
    has_code = net.decoder.conditional
    os.makedirs(output_dir, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = [category_rows(test_set, i) for i in range(len(hps.categories))]
    references = [choose_references(len(r), num_per_category, rng) for r in rows]   # sketch n -> test index
    chosen = [r[p] for r, p in zip(rows, references)]
    mu, sigma2 = reference_encodings(net, test_set, np.concatenate(chosen), batch_size)
    ends = np.cumsum([len(c) for c in chosen])
    decode = compile_decoder(net, stop_at_eos)
    bar = tqdm.tqdm(total=int(ends[-1]), unit='sketch', desc='sampling', disable=not progress, dynamic_ncols=True)
    for i, category in enumerate(hps.categories):
        refs = slice(ends[i] - len(chosen[i]), ends[i])
        if has_code:
            z = make_codes(latent, mu[refs], len(chosen[i]), net, rng, component)
            labels = gaussian_labels(net, z, mu[refs], sigma2[refs], transient_labels)
        else:
            z, labels = np.zeros((len(chosen[i]), hps.z_size), np.float32), {}
        for start in range(0, len(z), batch_size):
            sketches, images = draw(decode, z[start:start + batch_size], hps.max_seq_len, temperature,
                                    derive_seed(seed, i, start), test_set.scale_factor, hps.png_width)
            files = {}
            for n, (seq3, image) in enumerate(zip(sketches, images), start):
                files.update(sketch_files(f'{category}_{n}', seq3, image, z[n] if has_code else None,
                                          {prefix: values[n] for prefix, values in labels.items()}))
            write_files(output_dir, files)
            bar.update(len(sketches))
    bar.close()
    write_config(output_dir, model_type=hps.model_type, categories=hps.categories, latent=latent,
                 component=component, temperature=temperature, seed=seed, batch_size=batch_size,
                 stop_at_eos=stop_at_eos, transient_labels=transient_labels, num_per_category=num_per_category,
                 scale_factor=test_set.scale_factor, max_seq_len=hps.max_seq_len,
                 references={c: p.tolist() for c, p in zip(hps.categories, references)})
    return int(ends[-1])


def write_config(output_dir, **settings):
    """sample_config.json: the settings of the run (atomically)."""
    utils.atomic_write_json(os.path.join(output_dir, CONFIG_FILE), settings)


def read_config(sample_dir):
    """The sample_config.json of a sample directory, or {} if there is none."""
    path = os.path.join(sample_dir, CONFIG_FILE)
    if not os.path.isfile(path):
        return {}
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise utils.UserError(f'cannot read {path}: {e}') from None


# ------------------------------------------------------------------------------------------------ interpolation

def lerp(p0, p1, t):
    """(1 - t) p0 + t p1."""
    return (1.0 - t) * p0 + t * p1


def slerp(p0, p1, t):
    """sin((1 - t) w) / sin w p0 + sin(t w) / sin w p1 with w = arccos(<p0/|p0|, p1/|p1|>) (cosine clipped to
    [-1, 1]). Guard the original lacks (NaN there): lerp when sin w < 1e-6 or a code is zero."""
    norms = np.linalg.norm(p0) * np.linalg.norm(p1)
    if norms < SLERP_EPS:
        return lerp(p0, p1, t)
    omega = np.arccos(np.clip(np.dot(p0, p1) / norms, -1.0, 1.0))
    if np.sin(omega) < SLERP_EPS:
        return lerp(p0, p1, t)
    return (np.sin((1.0 - t) * omega) * p0 + np.sin(t * omega) * p1) / np.sin(omega)


def strip_image(rows, gap=1):
    """Tile rows of equal-length lists of uint8 [W, W] images into one image, with light-grey gaps between tiles."""
    width = rows[0][0].shape[0]
    cols = len(rows[0])
    strip = np.full((len(rows) * (width + gap) - gap, cols * (width + gap) - gap), 200, np.uint8)
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            strip[r * (width + gap):r * (width + gap) + width, c * (width + gap):c * (width + gap) + width] = image
    return strip


def interpolate(net, test_set, output_dir, category, index_a, index_b, steps=10, temperature=0.24, seed=0,
                stop_at_eos=True):
    """Decode `steps` codes from the encoder mean of test sketch index_a of `category` to that of index_b, linearly
    (top row) and spherically (bottom row); each row starts and ends with the two real sketches. Writes
    interpolate_<category>_<a>_<b>.png and returns its path."""
    hps = net.hps
    if category not in hps.categories:
        raise utils.UserError(f"--category={category} is not one of the model's categories "
                              f"({', '.join(hps.categories)})")
    if not net.decoder.conditional:
        raise utils.UserError('a decoder-only model has no latent code to interpolate')
    if steps < 2:
        raise utils.UserError(f'--steps={steps}: need at least 2 codes (the two ends)')
    rows = category_rows(test_set, hps.categories.index(category))
    for flag, index in (('index_a', index_a), ('index_b', index_b)):
        if not 0 <= index < len(rows):
            raise utils.UserError(f'--{flag}={index} is out of range: {category} has {len(rows)} test sketches '
                                  f'(0..{len(rows) - 1})')
    pair = rows[[index_a, index_b]]
    mu, _ = reference_encodings(net, test_set, pair, batch_size=2)
    ts = np.linspace(0.0, 1.0, steps)
    z = np.stack([lerp(mu[0], mu[1], t) for t in ts] + [slerp(mu[0], mu[1], t) for t in ts]).astype(np.float32)
    _, images = draw(compile_decoder(net, stop_at_eos), z, hps.max_seq_len, temperature, seed, 1.0, hps.png_width)
    real_a, real_b = raster.render_fast([test_set.strokes[r] for r in pair], hps.png_width, workers=1)
    strip = strip_image([[real_a, *images[:steps], real_b], [real_a, *images[steps:], real_b]])
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, f'interpolate_{category}_{index_a}_{index_b}.png')
    utils.atomic_write_bytes(path, png_bytes(strip))
    return path
