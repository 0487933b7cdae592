"""Sketch data: sketch-rnn .npz files, stroke-3/stroke-5 formats and normalisation, stroke and image augmentation,
batches and the split loaders (docs/model.md#data).

Formats: stroke-3 rows are (dx, dy, p) with p = 1 on the last point of every stroke; stroke-5 rows are
(dx, dy, p1, p2, p3) = (pen down, pen up, end of sketch). No TensorFlow here.
"""
import collections
import math
import os

import cv2
import numpy as np

from utils import UserError

SPLITS = ('train', 'valid', 'test')


# ----------------------------------------------------------------------------------------------------------------
# Loading sketch-rnn .npz files (docs/model.md#stroke-formats, #loading)
# ----------------------------------------------------------------------------------------------------------------

def category_npz_path(data_dir, c):
    return os.path.join(data_dir, f'{c}.npz')


def category_png_path(data_dir, c):
    return os.path.join(data_dir, f'{c}_png.npz')


def available_categories(data_dir):
    """Names c of the <c>.npz stroke files in data_dir (sorted; image files <c>_png.npz excluded)."""
    if not os.path.isdir(data_dir):
        return []
    return sorted(name[:-4] for name in os.listdir(data_dir)
                  if name.endswith('.npz') and not name.endswith('_png.npz'))


def _open_npz(path, keys):
    """Load the arrays `keys` of an .npz file, with a UserError naming the file for every problem."""
    if not os.path.isfile(path):
        found = available_categories(os.path.dirname(path) or '.')
        raise UserError(f'missing file {path}' + (f" (found categories: {', '.join(found)})" if found else ''))
    try:
        with np.load(path, allow_pickle=True, encoding='latin1') as data:
            missing = [key for key in keys if key not in data.files]
            if missing:
                raise UserError(f"{path} has no key(s) {', '.join(missing)} (found: {', '.join(data.files)})")
            return {key: data[key] for key in keys}
    except UserError:
        raise
    except Exception as e:  # a damaged or foreign file: zip, pickle and format errors of all kinds
        raise UserError(f'cannot read {path}: {e}') from None


def _check_sketch(path, split, i, sketch):
    """A (L, 3) numeric array with L >= 1 and finite values, or a UserError naming the sketch."""
    where = f'{path}: {split}[{i}]'
    try:
        sketch = np.asarray(sketch)
    except (ValueError, TypeError):
        raise UserError(f'{where} is not an array of (L, 3) stroke-3 rows') from None
    if sketch.ndim != 2 or sketch.shape[1] != 3:
        raise UserError(f'{where} has shape {sketch.shape}, expected (L, 3) stroke-3 rows')
    if not (np.issubdtype(sketch.dtype, np.integer) or np.issubdtype(sketch.dtype, np.floating)):
        raise UserError(f'{where} has dtype {sketch.dtype}, expected integers or floats')
    if len(sketch) == 0:
        raise UserError(f'{where} is an empty sketch')
    if not np.isfinite(sketch).all():
        raise UserError(f'{where} contains NaN or infinite values')
    if not np.isin(sketch[:, 2], (0, 1)).all():
        raise UserError(f'{where} has pen values other than 0 and 1 in its third column')
    return sketch


def load_strokes_npz(path):
    """{'train', 'valid', 'test'} -> list of stroke-3 arrays (L, 3), dtype as stored (int16 or float)."""
    data = _open_npz(path, SPLITS)
    for split in SPLITS:
        if data[split].ndim == 0:
            raise UserError(f'{path}: {split} is a single value, expected a list of (L, 3) sketches')
    return {split: [_check_sketch(path, split, i, sketch) for i, sketch in enumerate(data[split])]
            for split in SPLITS}


def load_png_npz(path, width):
    """{'train', 'valid', 'test'} -> uint8 images [N, width, width] as written by seq2png.py."""
    data = _open_npz(path, SPLITS)
    for split, images in data.items():
        if images.dtype != np.uint8 or images.shape[1:] != (width, width):
            raise UserError(f'{path}: {split} holds {images.dtype} images of shape {images.shape[1:]}, expected '
                            f'uint8 {width}x{width} (re-run seq2png.py with --png_width={width})')
    return data


# ----------------------------------------------------------------------------------------------------------------
# Stroke formats and normalisation (docs/model.md#stroke-formats, #normalisation)
# ----------------------------------------------------------------------------------------------------------------

def to_stroke5(seq3_list, max_len):
    """Batch of stroke-3 sketches -> float32 [B, max_len+1, 5]: row 0 = S0 = (0,0,1,0,0), rows 1..L = (dx, dy,
    1-p, p, 0), rows L+1..max_len = (0,0,0,0,1). Decoder input = rows 0..T-1, target = rows 1..T."""
    lengths = np.array([len(seq) for seq in seq3_list], dtype=np.int64)
    if (lengths > max_len).any():
        raise UserError(f'a sketch of length {lengths.max()} is longer than max_seq_len={max_len}')
    batch = np.zeros((len(seq3_list), max_len + 1, 5), np.float32)
    if lengths.sum():
        rows = np.concatenate(seq3_list).astype(np.float64)
        sketch = np.repeat(np.arange(len(lengths)), lengths)
        step = 1 + np.arange(len(rows)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        batch[sketch, step, 0:2] = rows[:, 0:2]
        batch[sketch, step, 2] = 1 - rows[:, 2]
        batch[sketch, step, 3] = rows[:, 2]
    batch[:, :, 4] = np.arange(max_len + 1)[None, :] > lengths[:, None]
    batch[:, 0, 2] = 1
    return batch


def stroke5_to_stroke3(seq5):
    """Inverse of one to_stroke5 row block (e.g. generated output): keep the rows before the first p3 > 0 (all rows
    if none) as (dx, dy, p2). Q22 (docs/model.md#stroke-formats): p3 already set in row 0 gives an empty sketch."""
    seq5 = np.asarray(seq5)
    ends = np.flatnonzero(seq5[:, 4] > 0)
    length = ends[0] if ends.size else len(seq5)
    return np.stack([seq5[:length, 0], seq5[:length, 1], seq5[:length, 3]], axis=1)


def scale_factor(seq3_list):
    """sigma_data: population std (ddof 0) of all dx and dy values pooled together."""
    if not seq3_list:
        raise UserError('no training sketches to compute the normalising scale factor from')
    offsets = np.concatenate([np.asarray(seq, np.float64)[:, 0:2] for seq in seq3_list])
    sigma = float(np.std(offsets))
    if sigma == 0:
        raise UserError('all training offsets are zero: cannot normalise the sketches')
    return sigma


# ----------------------------------------------------------------------------------------------------------------
# Sequence augmentation (docs/model.md#stroke-augmentation; training loader only)
# ----------------------------------------------------------------------------------------------------------------

def random_scale(seq3, factor, rng):
    """Stretch dx by (u-0.5)*2*factor + 1 and dy by an independent factor drawn the same way (u ~ U[0,1))."""
    x_factor = (rng.random() - 0.5) * 2 * factor + 1.0
    y_factor = (rng.random() - 0.5) * 2 * factor + 1.0
    seq3 = np.asarray(seq3)
    result = seq3.astype(np.promote_types(seq3.dtype, np.float32))  # a float copy
    result[:, 0] *= x_factor
    result[:, 1] *= y_factor
    return result


def augment_strokes(seq3, prob, rng):
    """Point dropping (magenta logic), one uniform per point drawn up front. Point i is dropped iff p_i = 0,
    p_{i-1} = 0, it is at least the 3rd such point in a row, and u_i < prob; its (dx, dy) is added to the last kept
    point, so the drawing keeps its total displacement. Stroke ends are never dropped."""
    seq3 = np.asarray(seq3)
    uniform = rng.random(len(seq3))
    pen = seq3[:, 2]
    previous_pen = np.concatenate([[1], pen[:-1]])
    inner = (pen == 0) & (previous_pen == 0)
    # count_i = length of the run of inner points ending at i (0 when i is not inner)
    run = np.cumsum(inner)
    count = run - np.maximum.accumulate(np.where(inner, 0, run))
    keep = ~(inner & (count > 2) & (uniform < prob))
    kept = np.flatnonzero(keep)
    result = seq3[kept].copy()
    result[:, 0:2] = np.add.reduceat(seq3[:, 0:2], kept, axis=0)  # each kept point absorbs the drops after it
    return result


# ----------------------------------------------------------------------------------------------------------------
# Image augmentation (docs/model.md#image-augmentation; training loader only; float images in [-1, 1], white = +1)
# ----------------------------------------------------------------------------------------------------------------

def pixels_to_unit(pixels):
    """uint8 greyscale -> float32 x = pixel/255*2 - 1 (white +1, ink -1)."""
    return (np.asarray(pixels) / 255.0 * 2.0 - 1.0).astype(np.float32)


def rescale_image(image, ratio, centred=False):
    """Shrink by `ratio` onto a white canvas. Default = the original (Q4): side int(W*ratio) (always 47 for
    W=48 and ratio in [0.98, 1)), area resize, pasted at offset int((W - side)/2) (= 0: top-left).
    centred=True (hparam fix_png_rescale): continuous scale about the image centre, bilinear."""
    h, w = image.shape
    if centred:
        centre = (np.array([w, h]) - 1) / 2
        matrix = np.float32([[ratio, 0, (1 - ratio) * centre[0]], [0, ratio, (1 - ratio) * centre[1]]])
        return cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderValue=1.0)
    h2, w2 = int(h * ratio), int(w * ratio)
    top, left = int((h - h2) / 2), int((w - w2) / 2)
    result = np.ones_like(image)
    result[top:top + h2, left:left + w2] = cv2.resize(image, (w2, h2), interpolation=cv2.INTER_AREA)
    return result


def rotate_image(image, angle):
    """Rotate by `angle` degrees without cropping (canvas nw = |sin|h + |cos|w, nh = |cos|h + |sin|w, Lanczos-4,
    white border), then area-resize back to the input size (so the content shrinks)."""
    h, w = image.shape
    rad = np.deg2rad(angle)
    nw = abs(np.sin(rad) * h) + abs(np.cos(rad) * w)
    nh = abs(np.cos(rad) * h) + abs(np.sin(rad) * w)
    matrix = cv2.getRotationMatrix2D((nw / 2, nh / 2), angle, 1)
    matrix[:, 2] += matrix @ np.array([(nw - w) / 2, (nh - h) / 2, 0])  # keep the image centre at the new centre
    rotated = cv2.warpAffine(image, matrix, (int(math.ceil(nw)), int(math.ceil(nh))), flags=cv2.INTER_LANCZOS4,
                             borderValue=1.0)
    return cv2.resize(rotated, (w, h), interpolation=cv2.INTER_AREA)


def translate_image(image, dx, dy):
    """Shift by (dx, dy) pixels (sub-pixel, bilinear), white border."""
    h, w = image.shape
    return cv2.warpAffine(image, np.float32([[1, 0, dx], [0, 1, dy]]), (w, h), borderValue=1.0)


def augment_image(img_float, hps, rng):
    """Random rescale (ratio ~ U[png_scale_ratio, 1]), rotation (~ U[-a, a] degrees) and shift (~ U[-t, t] each
    axis), in this order. A zero angle or shift is skipped: it is an identity."""
    ratio = rng.uniform(hps.png_scale_ratio, 1.0)
    angle = rng.uniform(-hps.png_rotate_angle, hps.png_rotate_angle)
    dx, dy = rng.uniform(-hps.png_translate_dist, hps.png_translate_dist, size=2)
    image = rescale_image(img_float, ratio, centred=hps.fix_png_rescale)
    if angle:
        image = rotate_image(image, angle)
    if dx or dy:
        image = translate_image(image, dx, dy)
    return image


# ----------------------------------------------------------------------------------------------------------------
# Batches (docs/model.md#stroke-augmentation, #batches-and-epochs) and dataset loading (docs/model.md#loading,
# #normalisation)
# ----------------------------------------------------------------------------------------------------------------

class Batch(collections.namedtuple('Batch', 'strokes lengths images labels graphs', defaults=(None,))):
    """strokes float32 [B, T+1, 5]; lengths int32 [B] (stroke-3 lengths after augmentation); images float32
    [B, W, W] in [-1, 1] or None; labels int32 [B] (category index); graphs (nodes uint8 [B, G, P, P], validity
    float32 [B, G-1, G-1]) for SP-gra2seq, else None."""
    __slots__ = ()

    @property
    def encoder_inputs(self):
        """The second input of the compiled steps: the patch graphs when the batch has them, else the images."""
        return self.images if self.graphs is None else self.graphs


class DataLoader:
    """One split of all categories: normalised stroke-3 sketches, their uint8 images (or None) and labels."""

    def __init__(self, strokes, images, labels, batch_size, max_seq_len, hps, training: bool, seed=None):
        self.strokes = list(strokes)
        self.images = images
        self.labels = np.asarray(labels, np.int32)
        if len(self.labels) != len(self.strokes) or (images is not None and len(images) != len(self.strokes)):
            raise UserError(f'{len(self.strokes)} sketches but {len(self.labels)} labels and '
                            f'{"no" if images is None else len(images)} images: counts must match')
        self.batch_size = batch_size
        self.max_seq_len = max_seq_len
        self.hps = hps
        self.training = training
        self.rng = np.random.default_rng(seed)
        self.scale_factor = 1.0  # sigma_data the offsets were divided by; load_dataset sets it

    @property
    def num_batches(self):
        """Training: ceil(N/B) - 1 (Q5: the partial batch is dropped, and the last full one too when B | N).
        Evaluation: floor(N/B)."""
        n, b = len(self.strokes), self.batch_size
        return max(-(-n // b) - 1, 0) if self.training else n // b

    def epoch(self, rng=None):
        """Training: a fresh shuffle, consecutive slices of B, augmented; with hparam bucket_width > 0 the same
        sketches regrouped by length (bucket_batches), each batch padded to its bucket's length. Evaluation: the
        sequential batches."""
        if not self.training:
            yield from (self.get_batch(i) for i in range(self.num_batches))
            return
        rng = self.rng if rng is None else rng
        order = rng.permutation(len(self.strokes))[:self.num_batches * self.batch_size]
        width = self.hps.bucket_width
        if not width:
            for i in range(self.num_batches):
                yield self.batch_from_indices(order[i * self.batch_size:(i + 1) * self.batch_size], rng)
            return
        lengths = np.array([len(seq) for seq in self.strokes])
        for idx in bucket_batches(order, lengths, self.batch_size, rng):
            padded = min(-(-lengths[idx].max() // width) * width, self.max_seq_len)
            yield self.batch_from_indices(idx, rng, padded)

    def get_batch(self, i):
        """The i-th sequential batch, without augmentation."""
        if not 0 <= i < self.num_batches:
            raise IndexError(f'batch {i} of a loader with {self.num_batches} batches')
        return self.batch_from_indices(np.arange(i * self.batch_size, (i + 1) * self.batch_size))

    def batch_from_indices(self, idx, rng=None, padded_len=None):
        """The batch of sketches `idx`, padded to padded_len (default max_seq_len) rows after the start row; augmented
        (docs/model.md#stroke-augmentation, #image-augmentation) only if this is a training loader and rng is given. The
        image is always that of the original sketch (Q3)."""
        idx = np.asarray(idx)
        augment = self.training and rng is not None
        sketches = [self.strokes[i] for i in idx]
        if augment:
            sketches = [self._augment_sequence(seq, rng) for seq in sketches]
        images = None
        if self.images is not None:
            images = pixels_to_unit(self.images[idx])
            if augment:
                images = np.stack([augment_image(image, self.hps, rng) for image in images])
        lengths = np.array([len(seq) for seq in sketches], np.int32)
        return Batch(to_stroke5(sketches, padded_len or self.max_seq_len), lengths, images, self.labels[idx])

    def _augment_sequence(self, seq, rng):
        if self.hps.random_scale_factor > 0:
            seq = random_scale(seq, self.hps.random_scale_factor, rng)
        if self.hps.augment_stroke_prob > 0:
            seq = augment_strokes(seq, self.hps.augment_stroke_prob, rng)
        return seq


BUCKET_CHUNK = 20   # batches per chunk of the shuffled epoch that bucket_batches sorts by length


def bucket_batches(order, lengths, batch_size, rng, chunk=BUCKET_CHUNK):
    """Batches of index arrays holding each sketch of `order` once, grouped by length: the shuffled order is cut
    into chunks of `chunk` batches, each chunk sorted by sketch length and cut into batches of `batch_size`, and
    the batches are shuffled. Batches then need little padding, and every sketch still meets random neighbours."""
    span = chunk * batch_size
    batches = []
    for begin in range(0, len(order), span):
        part = order[begin:begin + span]
        part = part[np.argsort(lengths[part], kind='stable')]
        batches += [part[i:i + batch_size] for i in range(0, len(part), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def step_seed(run_seed, *keys):
    """A stateless TensorFlow seed, int64 [2], derived from the run seed and integer keys alone (NumPy's
    SeedSequence), so that a resumed run draws the same noise at the same step as an uninterrupted one."""
    return np.random.SeedSequence([run_seed, *keys]).generate_state(2, np.uint64).astype(np.int64)


def _check_files(data_dir, categories, png_required):
    """Fail before loading anything if a stroke or image file is missing (the latter with the command to make it)."""
    if not categories:
        raise UserError('hparam categories is empty: name at least one category')
    for c in categories:
        if not os.path.isfile(category_npz_path(data_dir, c)):
            found = available_categories(data_dir)
            raise UserError(f'missing category file {category_npz_path(data_dir, c)}'
                            + (f" (found: {', '.join(found)})" if found else ''))
    missing = [c for c in categories if png_required and not os.path.isfile(category_png_path(data_dir, c))]
    if missing:
        raise UserError(f"missing {', '.join(category_png_path(data_dir, c) for c in missing)}; make them with: "
                        f"python3 seq2png.py --input_dir={data_dir} --output_dir={data_dir} "
                        f"--categories={','.join(missing)}")


def _clip(seq3_list):
    """Clip all three columns to [-1000, 1000] (the original's `limit`) and cast to float32 copies."""
    return [np.clip(seq, -1000, 1000).astype(np.float32) for seq in seq3_list]


def load_dataset(data_dir, hps, png_required=True, split_scale=None):
    """Loaders (train, valid, test) over hps.categories and hps with max_seq_len set.

    Per category i: the first num_per_category sketches of every split (docs/model.md#loading), images from <c>_png.npz
    (counts checked), labels i (correct lengths: the original's misaligned valid/test labels, Q2, feed no loss and are
    not reproduced). T = longest sketch over all splits; offsets clipped to +-1000 and divided by the population std of
    the training dx, dy (docs/model.md#normalisation). png_required=False loads no images (Batch.images is None).
    split_scale: a function of one split's clipped sketches giving that split's own divisor (SP-gra2seq,
    docs/model.md#sp-gra2seq-data)."""
    _check_files(data_dir, hps.categories, png_required)
    strokes = {split: [] for split in SPLITS}
    images = {split: [] for split in SPLITS}
    labels = {split: [] for split in SPLITS}
    for i, c in enumerate(hps.categories):
        sketches = load_strokes_npz(category_npz_path(data_dir, c))
        pngs = load_png_npz(category_png_path(data_dir, c), hps.png_width) if png_required else None
        for split in SPLITS:
            if pngs is not None and len(pngs[split]) != len(sketches[split]):
                raise UserError(f'{category_png_path(data_dir, c)} has {len(pngs[split])} {split} images but '
                                f'{category_npz_path(data_dir, c)} has {len(sketches[split])} sketches; re-run '
                                f'python3 seq2png.py --input_dir={data_dir} --output_dir={data_dir} --categories={c}')
            taken = sketches[split][:hps.num_per_category]
            strokes[split] += taken
            labels[split].append(np.full(len(taken), i, np.int32))
            if pngs is not None:
                images[split].append(pngs[split][:hps.num_per_category])
    max_seq_len = max((len(seq) for split in SPLITS for seq in strokes[split]), default=0)
    strokes = {split: _clip(strokes[split]) for split in SPLITS}
    sigma = scale_factor(strokes['train'])
    hps_out = hps.replace(max_seq_len=max_seq_len, train_size=len(strokes['train']))
    loaders = []
    for split in SPLITS:
        divisor = sigma if split_scale is None else split_scale(strokes[split])
        for seq in strokes[split]:
            seq[:, 0:2] /= divisor
        loader = DataLoader(strokes[split],
                            np.concatenate(images[split]) if png_required else None,
                            np.concatenate(labels[split]), hps.batch_size, max_seq_len, hps_out,
                            training=split == 'train')
        loader.scale_factor = divisor
        loaders.append(loader)
    return (*loaders, hps_out)
