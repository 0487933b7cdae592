"""Shared library: hyper-parameters, sketch data (SPEC §1), rasterisation (SPEC §2) and safe file writing.

Formats: stroke-3 rows are (dx, dy, p) with p = 1 on the last point of every stroke; stroke-5 rows are
(dx, dy, p1, p2, p3) = (pen down, pen up, end of sketch). No TensorFlow here, so this module imports fast and
worker processes can fork safely.
"""
import collections
import concurrent.futures
import contextlib
import ctypes
import difflib
import functools
import io
import json
import math
import os
import sys
import tempfile

import cv2
import numpy as np
import svgwrite
import tqdm
from PIL import Image

SPLITS = ('train', 'valid', 'test')


# ----------------------------------------------------------------------------------------------------------------
# User-facing errors
# ----------------------------------------------------------------------------------------------------------------

class UserError(Exception):
    """A problem with the user's input; CLIs print 'error: <msg>' and exit 1."""


def cli_main(main):
    """Decorate an absl `main(argv)` so that a UserError ends the program with `error: <msg>` and exit code 1."""
    @functools.wraps(main)
    def wrapper(argv):
        try:
            return main(argv)
        except UserError as e:
            sys.exit(f'error: {e}')
    return wrapper


def resolve_seed(seed):
    """A --seed flag's value, or a fresh random seed in [0, 2^31) when it is None (the programs print it)."""
    return seed if seed is not None else int(np.random.SeedSequence().entropy % (2 ** 31))


def quiet_tensorflow_startup():
    """Keep TensorFlow's start-up notices off stderr: call it before TensorFlow is imported, which reads these
    switches as it starts (values already in the environment win). TF_CPP_MIN_LOG_LEVEL=2 drops its C++ INFO and
    WARNING lines and keeps its errors. Without the CUDA driver no GPU can be used, and TensorFlow's GPU probe
    would only log 'failed call to cuInit' as an error: TF_ENABLED_DEVICE_TYPES=CPU skips the probe there. The
    lines TensorFlow logs while its libraries load, before its log level applies, remain (README, Install)."""
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    if sys.platform.startswith('linux') and not cuda_driver_present():
        os.environ.setdefault('TF_ENABLED_DEVICE_TYPES', 'CPU')


def cuda_driver_present():
    """Whether the CUDA driver library loads here, under the name TensorFlow loads it by (libcuda.so.1)."""
    try:
        ctypes.CDLL('libcuda.so.1')
    except OSError:
        return False
    return True


# XLA auto-clustering of the element-wise ops only: each step's chains of them fuse, the matmuls stay TensorFlow's
AUTOJIT_XLA_FLAGS = ('--tf_xla_auto_jit=2', '--tf_xla_cpu_global_jit', '--tf_xla_ops_to_cluster=FUSIBLE')


def configure_runtime(autojit=False):
    """Set TensorFlow's process-wide switches of train.py (bench/train_bench.py): host tensors from TensorFlow's
    pooling BFC allocator (TF_CPU_ALLOCATOR_USE_BFC) instead of one malloc each, and with autojit the XLA
    auto-clustering of the element-wise ops (TF_XLA_FLAGS). TensorFlow may read both as soon as it is imported,
    so call this before importing it (or, in a program that imports it at the top, before absl's app.run);
    switches already in the environment are kept."""
    os.environ.setdefault('TF_CPU_ALLOCATOR_USE_BFC', 'true')
    xla_flags = os.environ.get('TF_XLA_FLAGS', '')
    if autojit and '--tf_xla_auto_jit' not in xla_flags:
        os.environ['TF_XLA_FLAGS'] = ' '.join([xla_flags, *AUTOJIT_XLA_FLAGS]).strip()


# ----------------------------------------------------------------------------------------------------------------
# Hyper-parameters: the one table of names, defaults and meanings (SPEC §3.11, §4, §5, §15.1)
# ----------------------------------------------------------------------------------------------------------------

_HPARAMS = (
    ('categories', ['bee', 'bus'], 'sketch categories: <c>.npz and <c>_png.npz in the data directory'),
    ('num_steps', 1000001, 'unused; kept so that original configs load'),
    ('save_every', 1, 'training epochs between validations (each a save, or a rollback and strike)'),
    ('dec_rnn_size', 2048, 'decoder RNN size H'),
    ('dec_model', 'hyper', 'decoder cell: lstm | layer_norm | hyper'),
    ('max_seq_len', -1, 'T = longest sketch over train+valid+test; computed by load_dataset'),
    ('train_size', -1, 'number of training sketches over all categories; computed by load_dataset'),
    ('z_size', 128, 'latent size D'),
    ('batch_size', 128, 'minibatch size B (original README 128; original code 200)'),
    ('num_mixture', 5, 'latent Gaussians per sub-group: K = num_mixture * num_sub (the MDN: mdn_components)'),
    ('num_sub', 2, 'latent sub-components per mixture entry: K = num_mixture * num_sub'),
    ('mdn_components', 20, "M: components of the stroke decoder's mixture density output (RPCL-pix2seq hard-codes "
                           "20; magenta sketch-rnn's num_mixture, default 20)"),
    ('learning_rate', 0.001, 'initial learning rate'),
    ('decay_rate', 0.9999, 'learning-rate decay factor per step'),
    ('min_learning_rate', 0.00001, 'learning-rate floor'),
    ('grad_clip', 1.0, 'element-wise gradient clipping value'),
    ('de_weight', 0.5, 'weight of the CNN deconvolution (image reconstruction) loss'),
    ('use_recurrent_dropout', True, 'recurrent dropout in the decoder cell'),
    ('recurrent_dropout_prob', 0.9, 'keep probability of recurrent dropout'),
    ('use_input_dropout', False, 'dropout on the decoder inputs'),
    ('input_dropout_prob', 0.9, 'keep probability of input dropout'),
    ('use_output_dropout', False, 'dropout on the decoder outputs'),
    ('output_dropout_prob', 0.9, 'keep probability of output dropout'),
    ('random_scale_factor', 0.1, 'sequence augmentation: dx and dy stretched by factors in [1-r, 1+r]'),
    ('augment_stroke_prob', 0.1, 'sequence augmentation: probability of dropping an inner stroke point'),
    ('png_scale_ratio', 0.98, 'image augmentation: minimum rescale ratio (see fix_png_rescale)'),
    ('png_rotate_angle', 0.0, 'image augmentation: maximum |rotation| in degrees'),
    ('png_translate_dist', 0.0, 'image augmentation: maximum |shift| in pixels'),
    ('png_width', 48, 'image side W in pixels'),
    ('num_per_category', 70000, 'sketches taken from the start of every split of every category'),
    ('is_training', True, 'training mode (evaluation copies set False)'),
    ('model_type', 'rpcl', 'model family member: rpcl | rpclh | ia | sketch_rnn | spgra'),
    ('stable_estep', False, 'log-sum-exp E-step (fixes the underflow quirk, SPEC §11 #7)'),
    ('init', 'original', 'conv init: original (std sqrt(2/kernel_height), quirk #6) | he'),
    ('bucket_width', 0, 'length-bucketed training batches padded to the next multiple of this many steps, '
                        'not to T (0: off, as the original; docs/training.md#bucketing)'),
    ('fix_png_rescale', False, 'continuous centred image rescale instead of the 47-px top-left quirk (#4)'),
    ('hyper_num_units', 256, 'HyperLSTM: size of the small hyper cell'),
    ('hyper_embedding_size', 32, 'HyperLSTM: size of the modulation embedding'),
    ('enc_model', 'lstm', 'sketch_rnn encoder cell: lstm | layer_norm | hyper'),
    ('enc_rnn_size', 256, 'sketch_rnn encoder size per direction'),
    ('kl_weight', 0.5, 'sketch_rnn: final KL weight'),
    ('kl_weight_start', 0.01, 'sketch_rnn: KL weight at step 0'),
    ('kl_tolerance', 0.2, 'sketch_rnn: KL floor below which the KL gets no gradient'),
    ('kl_decay_rate', 0.99995, 'sketch_rnn: KL weight annealing factor per step'),
    ('conditional', True, 'sketch_rnn: encoder + z (False: decoder-only model)'),
    ('num_layer_i', 16, 'rpclh: number of groups I (must equal num_layer_j)'),
    ('num_layer_j', 16, 'rpclh: number of Gaussians J'),
    ('semi_percent', 0.0, 'rpclh/ia: unused by the released code (SPEC §4.7)'),
    ('semi_balanced', False, 'rpclh/ia: unused by the released code (SPEC §4.7)'),
    ('repeat', 1, 'ia: EM/harmony updates per step'),
    ('graph_number', 21, 'spgra: graph nodes G = the whole sketch + at most G-1 patches'),
    ('graph_picture_size', 256, 'spgra: patch side P in pixels (a power of two; the CNN has log2(P)-1 layers)'),
    ('mask_prob', 0.1, 'spgra: probability that a training patch is masked (blanked) before cropping'),
    ('num_clusters', 50, "spgra: synonymous-proximity centroids N_c (the original's num_mixture; README 30)"),
    ('fix_sp_scale', False, 'spgra: divide every split by the training std of dx, dy (quirk #16: own std per '
                            'split, pen column included)'),
    ('fix_graph_validity', False, 'spgra: valid patch block n x n (quirk #16: (n+1) x (n+1))'),
)
_DEFAULTS = {name: default for name, default, _ in _HPARAMS}
_CHOICES = {
    'dec_model': ('lstm', 'layer_norm', 'hyper'),
    'enc_model': ('lstm', 'layer_norm', 'hyper'),
    'model_type': ('rpcl', 'rpclh', 'ia', 'sketch_rnn', 'spgra'),
    'init': ('original', 'he'),
}
# numeric hparams with a valid range: name -> (test, description)
_RANGES = {
    **{name: (lambda v: v > 0, 'positive') for name in (
        'batch_size', 'dec_rnn_size', 'z_size', 'num_mixture', 'num_sub', 'mdn_components', 'png_width',
        'num_per_category', 'hyper_num_units', 'hyper_embedding_size', 'enc_rnn_size', 'num_layer_i', 'num_layer_j',
        'repeat', 'save_every', 'learning_rate', 'grad_clip')},
    **{name: (lambda v: 0 < v <= 1, 'in (0, 1]') for name in (
        'recurrent_dropout_prob', 'input_dropout_prob', 'output_dropout_prob', 'decay_rate', 'png_scale_ratio')},
    **{name: (lambda v: v >= 0, 'at least 0') for name in (
        'min_learning_rate', 'de_weight', 'png_rotate_angle', 'png_translate_dist', 'bucket_width')},
    'augment_stroke_prob': (lambda v: 0 <= v <= 1, 'in [0, 1]'),
    'random_scale_factor': (lambda v: 0 <= v < 1, 'in [0, 1)'),
}
_TYPE_NAMES = {bool: 'a boolean (true/false)', int: 'an integer', float: 'a number', str: 'a string',
               list: 'a list of names'}


def _check_name(name):
    if name not in _DEFAULTS:
        close = difflib.get_close_matches(name, _DEFAULTS, n=1)
        raise UserError(f"unknown hparam '{name}'" + (f" (did you mean '{close[0]}'?)" if close else ''))


def _check_choice(name, value):
    if name in _CHOICES and value not in _CHOICES[name]:
        raise UserError(f"hparam {name}='{value}' is not one of {', '.join(_CHOICES[name])}")


def _check_range(name, value):
    if name in _RANGES and not _RANGES[name][0](value):
        raise UserError(f'hparam {name}={value} must be {_RANGES[name][1]}')


def _type_error(name, value):
    kind = _TYPE_NAMES[type(_DEFAULTS[name])]
    return UserError(f'hparam {name} expects {kind}, got {value!r}')


def _coerce(name, value):
    """Check a Python value (from JSON or code) against the type of the default of `name`."""
    _check_name(name)
    kind = type(_DEFAULTS[name])
    if kind is bool:
        ok = isinstance(value, (bool, np.bool_)) or (isinstance(value, (int, np.integer)) and value in (0, 1))
    elif kind is int:
        ok = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    elif kind is float:
        ok = (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
              and math.isfinite(value))
    elif kind is list:
        value = [value] if isinstance(value, str) else value
        ok = isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value)
    else:
        ok = isinstance(value, str)
    if not ok:
        raise _type_error(name, value)
    value = kind(value)
    _check_choice(name, value)
    _check_range(name, value)
    return value


def _unquote(text):
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] and text[0] in '\'"' else text


def _parse_value(name, text):
    """Parse the text of one `name=value` item, typed by the default of `name`."""
    _check_name(name)
    kind = type(_DEFAULTS[name])
    if text.startswith('[') != text.endswith(']'):
        raise UserError(f"malformed --hparams value {name}={text}: unbalanced brackets")
    if kind is list:
        inner = text[1:-1] if text.startswith('[') else text
        return [_unquote(item.strip()) for item in inner.split(',') if item.strip()]
    if text.startswith('['):
        raise _type_error(name, text)
    if kind is bool:
        lowered = text.lower()
        if lowered not in ('true', 'false', '1', '0'):
            raise _type_error(name, text)
        return lowered in ('true', '1')
    if kind is str:
        value = _unquote(text)
        _check_choice(name, value)
        return value
    try:
        value = kind(text)
    except ValueError:
        raise _type_error(name, text) from None
    if not math.isfinite(value):
        raise _type_error(name, text)
    _check_range(name, value)
    return value


def _split_items(text):
    """Split 'a=1, b=[x, y]' at the commas outside brackets."""
    items, depth, current = [], 0, ''
    for char in text:
        depth += {'[': 1, ']': -1}.get(char, 0)
        if depth < 0:
            raise UserError(f"malformed --hparams '{text}': unbalanced brackets")
        if char == ',' and depth == 0:
            items.append(current)
            current = ''
        else:
            current += char
    if depth:
        raise UserError(f"malformed --hparams '{text}': unbalanced brackets")
    return [item.strip() for item in items + [current] if item.strip()]


class HParams:
    """Hyper-parameters with attribute access; every name, default and meaning is in the table `_HPARAMS`."""

    def __init__(self, **values):
        object.__setattr__(self, '_values', dict(_DEFAULTS))
        for name, value in values.items():
            self._values[name] = _coerce(name, value)

    def __getattr__(self, name):
        if name.startswith('_'):
            raise AttributeError(name)
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f'no hparam named {name!r}') from None

    def __setattr__(self, name, value):
        if name not in _DEFAULTS:
            raise AttributeError(f'no hparam named {name!r}')
        self._values[name] = _coerce(name, value)

    def __eq__(self, other):
        return isinstance(other, HParams) and self._values == other._values

    def __repr__(self):
        return f'HParams({self._values})'

    def values(self):
        """A copy of all name -> value pairs, in table order."""
        return {name: list(value) if isinstance(value, list) else value for name, value in self._values.items()}

    def replace(self, **values):
        """A new HParams with some values changed."""
        return HParams(**{**self._values, **values})

    def parse(self, text):
        """Apply the original `--hparams` grammar, e.g. 'categories=[bee, bus], dec_model=hyper, batch_size=128'.
        All or nothing: on error self is unchanged. Returns self."""
        parsed = {}
        for item in _split_items(text):
            name, equals, raw = item.partition('=')
            name = name.strip()
            if not equals or not name:
                raise UserError(f"malformed --hparams item '{item}': expected name=value")
            if name in parsed:
                raise UserError(f"hparam '{name}' is given twice in --hparams")
            parsed[name] = _parse_value(name, raw.strip())
        self._values.update(parsed)
        return self

    def to_json(self):
        return json.dumps(self.values(), indent=2)

    @classmethod
    def from_dict(cls, values):
        """Values of a saved config; unknown keys are an error, keys missing from older configs take defaults."""
        if not isinstance(values, dict):
            raise UserError(f'a config must be a JSON object of hparams, got {type(values).__name__}')
        unknown = sorted(set(values) - set(_DEFAULTS))
        if unknown:
            raise UserError(f"unknown hparam(s) in config: {', '.join(unknown)}")
        return cls(**values)

    @classmethod
    def from_json(cls, text):
        try:
            values = json.loads(text)
        except json.JSONDecodeError as e:
            raise UserError(f'config is not valid JSON ({e})') from None
        return cls.from_dict(values)


def get_default_hparams():
    return HParams()


def load_hparams_json(path):
    """Read a model_config.json written by save_hparams_json (or by the original code)."""
    try:
        with open(path, encoding='utf-8') as f:
            text = f.read()
    except OSError as e:
        raise UserError(f'cannot read config {path}: {e.strerror}') from None
    try:
        return HParams.from_json(text)
    except UserError as e:
        raise UserError(f'{path}: {e}') from None


def save_hparams_json(hps, path):
    atomic_write_bytes(path, (hps.to_json() + '\n').encode('utf-8'))


# ----------------------------------------------------------------------------------------------------------------
# All-or-nothing file writing
# ----------------------------------------------------------------------------------------------------------------

def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic_write(path, write):
    """Call write(file) on a temporary file next to `path`, fsync it, then os.replace it onto `path`."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp_path = tempfile.mkstemp(dir=directory, prefix=f'.{os.path.basename(path)}.', suffix='.tmp')
    except OSError as e:
        raise UserError(f'cannot write {path}: {e.strerror}') from None
    try:
        with os.fdopen(fd, 'wb') as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_path)
        raise


def atomic_write_bytes(path, data: bytes):
    _atomic_write(path, lambda f: f.write(data))


def make_output_dir(path, flag):
    """os.makedirs(path, exist_ok=True), or one UserError naming the flag (e.g. a file stands at path)."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise UserError(f'cannot create {flag} {path}: {e.strerror}') from None


def atomic_write_json(path, value):
    """Write value as indented JSON, atomically; returns path."""
    atomic_write_bytes(path, (json.dumps(value, indent=2) + '\n').encode('utf-8'))
    return path


def atomic_savez(path, **arrays):
    """np.savez to exactly `path` (no '.npz' appended), all or nothing."""
    _atomic_write(path, lambda f: np.savez(f, **arrays))


# ----------------------------------------------------------------------------------------------------------------
# Loading sketch-rnn .npz files (SPEC §1.1, §1.3)
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
# Stroke formats and normalisation (SPEC §1.2, §1.4)
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
    if none) as (dx, dy, p2). QUIRK (RPCL, SPEC §1.2): p3 already set in row 0 gives an empty sketch."""
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
# Sequence augmentation (SPEC §1.5; training loader only)
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
# Image augmentation (SPEC §1.6; training loader only; float images in [-1, 1], white = +1)
# ----------------------------------------------------------------------------------------------------------------

def pixels_to_unit(pixels):
    """uint8 greyscale -> float32 x = pixel/255*2 - 1 (white +1, ink -1)."""
    return (np.asarray(pixels) / 255.0 * 2.0 - 1.0).astype(np.float32)


def rescale_image(image, ratio, centred=False):
    """Shrink by `ratio` onto a white canvas. Default = the original (QUIRK #4): side int(W*ratio) (always 47 for
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
# Rasterisation (SPEC §2): same geometry for the SVG reference path and the direct cairo path
# ----------------------------------------------------------------------------------------------------------------

def drawing_geometry(seq3, width=48, margin=1.5):
    """SPEC §2.2: (X0, Y0, scale) of a sketch. The bounding box of the pen positions includes the origin; the
    drawing is fitted to [margin, width - margin]^2 keeping its aspect ratio and centred along its shorter axis."""
    rows = np.asarray(seq3, np.float64)
    return tuple(_drawing_geometries(rows, np.array([len(rows)]), width, margin)[0].tolist())


def strokes_to_svg(seq3, width=48, margin=1.5, color='black'):
    """The original draw_strokes as SVG text (svgwrite): white W x W rectangle and one path, stroke width 1,
    'M X0,Y0' then relative moves 'm' (after a pen-up point) or lines 'l' with the original's letter pattern."""
    x0, y0, scale = drawing_geometry(seq3, width, margin)
    offsets = (np.asarray(seq3, np.float64)[:, 0:2] * scale).tolist()
    path = [f'M{x0},{y0} ']
    lift_pen, command = 1, 'm'
    for (dx, dy), pen in zip(offsets, np.asarray(seq3)[:, 2].tolist()):
        if lift_pen == 1:
            command = 'm'
        elif command != 'l':
            command = 'l'
        else:
            command = ''
        path.append(f'{command}{dx},{dy} ')
        lift_pen = pen
    drawing = svgwrite.Drawing(size=(width, width))
    drawing.add(drawing.rect(insert=(0, 0), size=(width, width), fill='white'))
    drawing.add(drawing.path(''.join(path)).stroke(color, 1).fill('none'))
    return drawing.tostring()


def _progress_bar(total, progress, iterable=None):
    """A tqdm bar over sketches, shown if `progress` is true; a string `progress` is its label."""
    label = progress if isinstance(progress, str) else None
    return tqdm.tqdm(iterable, total=total, desc=label, unit='sketch', disable=not progress)


CAIRO_MISSING = ('the rasteriser needs the system library cairo, which is not installed '
                 '(Debian/Ubuntu: apt-get install libcairo2; macOS: brew install cairo)')


def import_cairo():
    """(cairocffi, cairosvg), imported when first needed: both load the system library cairo, so that without it
    only drawing fails, with a UserError saying what to install, instead of an OSError in every program."""
    try:
        import cairocffi
        import cairosvg
    except OSError as e:   # cairocffi's failed dlopen, one line per library name it tried
        raise UserError(CAIRO_MISSING) from e
    return cairocffi, cairosvg


def render_reference(seq3_list, width=48, progress=False):
    """The original pipeline, in memory: svgwrite SVG -> cairosvg PNG -> PIL greyscale 'L'. uint8 [N, W, W].
    progress: show a tqdm bar (a string is its label)."""
    _, cairosvg = import_cairo()
    images = np.empty((len(seq3_list), width, width), np.uint8)
    for i, seq in enumerate(_progress_bar(len(seq3_list), progress, seq3_list)):
        png = cairosvg.svg2png(bytestring=strokes_to_svg(seq, width).encode('utf-8'))
        images[i] = np.asarray(Image.open(io.BytesIO(png)).convert('L'))
    return images


_CHUNK = 256  # most sketches per task of render_fast


def _drawing_geometries(rows, lengths, width, margin=1.5):
    """The SPEC §2.2 geometry of many sketches at once: [N, 3] rows (X0, Y0, scale).

    rows: the sketches' stroke-3 rows one after another, float64 [sum(lengths), 3]. Each sketch's pen positions
    are summed in order along its own row of a zero-padded [2, N, T] array (sequential float64 sums, as the
    original's); the padding only repeats the last position, so the bounds are unchanged."""
    inside = np.arange(max(lengths.max(initial=0), 1)) < lengths[:, None]  # [N, T]: row t of sketch n exists
    offsets = np.zeros((2,) + inside.shape)
    offsets[:, inside] = rows[:, 0:2].T
    positions = np.cumsum(offsets, axis=2)
    min_x, min_y = positions.min(axis=2, initial=0.0)
    max_x, max_y = positions.max(axis=2, initial=0.0)
    w, h = max_x - min_x, max_y - min_y
    norm = np.maximum(w, h)
    scale = (width - 2 * margin) / np.maximum(norm, 1e-5)
    return np.stack([((norm - w) * 0.5 - min_x) * scale + margin, ((norm - h) * 0.5 - min_y) * scale + margin,
                     scale], axis=1)


def _cairo_path_data(seq3_list, width):
    """All paths of a chunk as one cairo_path_data_t buffer, and each sketch's [begin, end) element range.

    cairo turns every relative move/line offset into 24.8 fixed point (round half to even) and adds it to the
    current point; summing the same rounded offsets here gives absolute points on the 1/256 grid, so the path is
    the one cairosvg builds from the SVG text of strokes_to_svg. A point is a MOVE_TO when the previous point
    lifted the pen (p = 1; initially 1), else a LINE_TO."""
    lengths = np.array([len(seq) for seq in seq3_list], np.int64)
    starts = np.cumsum(lengths) - lengths  # first row of each sketch
    rows = np.concatenate(seq3_list, dtype=np.float64)
    geometry = np.repeat(_drawing_geometries(rows, lengths, width), lengths, axis=0)  # X0, Y0, scale of each row
    steps = np.rint(rows[:, 0:2] * geometry[:, 2:3] * 256.0)  # offsets in 1/256 px: integers, so all sums are exact
    totals = np.concatenate([np.zeros((1, 2)), np.cumsum(steps, axis=0)])  # totals[j] = steps[0] + ... + steps[j-1]
    before = np.repeat(totals[starts], lengths, axis=0)  # the steps of the earlier sketches
    fixed = np.rint(geometry[:, 0:2] * 256.0) + totals[1:] - before  # P_i = P_0 + its sketch's steps 0..i
    previous_pen = np.concatenate([[1.0], rows[:-1, 2]])
    previous_pen[starts[lengths > 0]] = 1.0
    # cairo_path_data_t is a 16-byte union: header {int type, int length} or point {double x, double y};
    # each of our elements is a header followed by its one point.
    cairocffi, _ = import_cairo()
    data = np.zeros((len(rows), 2, 2))
    data[:, 1] = fixed / 256.0
    header = data[:, 0].view(np.int32)
    header[:, 0] = np.where(previous_pen == 1, cairocffi.PATH_MOVE_TO, cairocffi.PATH_LINE_TO)
    header[:, 1] = 2
    return data, 2 * np.append(starts, len(rows))


def _render_chunk(seq3_list, width):
    """Stroke each sketch's path on one reused W x W alpha-only (A8) surface: opaque black (a new context's
    source), width 1, miter limit 4 = SVG's default (cairo's own is 10), butt caps, miter joins, default
    antialias. The surface holds each pixel's ink coverage c; black over white is L = 255 - c, as cairosvg + PIL
    give (R = G = B). Only the few per-sketch cairo calls run in Python; cffi releases the GIL inside them."""
    cairocffi, _ = import_cairo()
    surface = cairocffi.ImageSurface(cairocffi.FORMAT_A8, width, width)
    context = cairocffi.Context(surface)
    context.set_line_width(1)
    context.set_miter_limit(4)
    coverage = np.frombuffer(surface.get_data(), np.uint8).reshape(width, -1)[:, :width]  # rows may be padded
    data, bounds = _cairo_path_data(seq3_list, width)
    first = cairocffi.ffi.cast('cairo_path_data_t *', cairocffi.ffi.from_buffer(data))
    path = cairocffi.ffi.new('cairo_path_t *')
    cairo, surface_pointer = cairocffi.cairo, surface._pointer
    frames = np.empty((len(seq3_list), width, width), np.uint8)
    for i, (begin, count) in enumerate(zip(bounds[:-1].tolist(), np.diff(bounds).tolist())):
        coverage[...] = 0
        cairo.cairo_surface_mark_dirty(surface_pointer)
        path.data, path.num_data = first + begin, count
        cairo.cairo_append_path(context._pointer, path)  # one C call instead of one per point
        context.stroke()
        cairo.cairo_surface_flush(surface_pointer)
        frames[i] = coverage
    return 255 - frames


def render_fast(seq3_list, width=48, workers=None, progress=False):
    """Same images as render_reference (SPEC §2.3), drawn straight into cairo surfaces by `workers` threads
    (default: one per core) over chunks of sketches. uint8 [N, W, W]. progress: as render_reference."""
    workers = workers or os.cpu_count() or 1
    size = max(1, min(_CHUNK, -(-len(seq3_list) // workers)))
    images = np.empty((len(seq3_list), width, width), np.uint8)

    def render(begin):
        chunk = seq3_list[begin:begin + size]
        images[begin:begin + len(chunk)] = _render_chunk(chunk, width)
        return len(chunk)

    with _progress_bar(len(seq3_list), progress) as bar, concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for count in pool.map(render, range(0, len(seq3_list), size)):
            bar.update(count)
    return images


def parse_categories(values):
    """Category names from --categories values: repeated flags, 'bee,bus', "{'bee','bus'}" or "[bee, bus]"."""
    names = []
    for value in values:
        for item in value.strip().strip('{}[]').split(','):
            name = _unquote(item.strip()).strip()
            if name and name not in names:
                names.append(name)
    return names


def write_png_npz(input_dir, output_dir, category, width=48, renderer='fast', workers=None, progress=False):
    """Render every sketch of <input_dir>/<category>.npz (raw offsets) and write <output_dir>/<category>_png.npz
    atomically: keys train/valid/test, uint8 [N, W, W], image j = sketch j. Returns the path written."""
    strokes = load_strokes_npz(category_npz_path(input_dir, category))
    sketches = strokes['train'] + strokes['valid'] + strokes['test']
    if renderer == 'fast':
        images = render_fast(sketches, width, workers=workers, progress=progress and category)
    elif renderer == 'reference':
        images = render_reference(sketches, width, progress=progress and category)
    else:
        raise UserError(f"unknown renderer '{renderer}' (fast or reference)")
    ends = np.cumsum([len(strokes[split]) for split in SPLITS])
    train, valid, test = np.split(images, ends[:-1])
    path = category_png_path(output_dir, category)
    atomic_savez(path, train=train, valid=valid, test=test)
    return path


# ----------------------------------------------------------------------------------------------------------------
# Batches (SPEC §1.5-1.7) and dataset loading (SPEC §1.3-1.4)
# ----------------------------------------------------------------------------------------------------------------

Batch = collections.namedtuple('Batch', 'strokes lengths images labels')
Batch.__doc__ = """strokes float32 [B, T+1, 5]; lengths int32 [B] (stroke-3 lengths after augmentation);
images float32 [B, W, W] in [-1, 1] or None; labels int32 [B] (category index)."""


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
        """Training: ceil(N/B) - 1 (QUIRK #5: the partial batch is dropped, and the last full one too when B | N).
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
        """The batch of sketches `idx`, padded to padded_len (default max_seq_len) rows after the start row;
        augmented (SPEC §1.5, §1.6) only if this is a training loader and rng is given. The image is always that of
        the original sketch (QUIRK #3)."""
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

    Per category i: the first num_per_category sketches of every split (SPEC §1.3), images from <c>_png.npz (counts
    checked), labels i (correct lengths: the original's misaligned valid/test labels, quirk #2, feed no loss and are
    not reproduced). T = longest sketch over all splits; offsets clipped to +-1000 and divided by the population std
    of the training dx, dy (SPEC §1.4). png_required=False loads no images (Batch.images is None).
    split_scale: a function of one split's clipped sketches giving that split's own divisor (SP-gra2seq, SPEC §6.1)."""
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
