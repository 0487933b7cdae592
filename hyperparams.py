"""Hyper-parameters: the one table of names, defaults and meanings, the `--hparams="a=1,b=[x,y]"` grammar and
the model_config.json round trip (docs/hparams.md).
"""
import difflib
import json
import math

import numpy as np

from utils import UserError, atomic_write_bytes

# ----------------------------------------------------------------------------------------------------------------
# Hyper-parameters: the one table of names, defaults and meanings (docs/model.md#hyper-parameters, #rpcl-pix2seqh,
# #ia-pix2seq, #sketch-rnn)
# ----------------------------------------------------------------------------------------------------------------

_HPARAMS = (
    ('categories', ['bee', 'bus'], 'sketch categories: <c>.npz and <c>_png.npz in the data directory'),
    ('num_steps', 1000001, 'training ends after validating the epoch that reaches this step (the original never '
                           'stops on it; docs/training.md)'),
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
    ('kl_weight_max', 1.0, 'rpcl/rpclh/ia: final weight of the KL warm-up kl_w(s) = kl_weight_max (1 - 0.999 * '
                           '0.9999^s) (1.0 as the original; docs/training.md#kl-ceiling)'),
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
    ('model_type', 'rpcl', 'model family member: rpcl | rpclh | ia | sketch_rnn | spgra'),
    ('stable_estep', False, 'log-sum-exp E-step (fixes the underflow quirk, Q7)'),
    ('init', 'original', 'conv init: original (std sqrt(2/kernel_height), Q6) | he'),
    ('bucket_width', 0, 'length-bucketed training batches padded to the next multiple of this many steps, '
                        'not to T (0: off, as the original; docs/training.md#bucketing)'),
    ('rollback', True, 'a non-improving validation restores the best checkpoint (the original); false: training goes '
                       'on from the current weights, only improving validations save (docs/training.md#rollback)'),
    ('fix_png_rescale', False, 'continuous centred image rescale instead of the 47-px top-left quirk (Q4)'),
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
    ('semi_percent', 0.0, 'rpclh/ia: unused by the released code (docs/model.md#semi-supervision-flags)'),
    ('semi_balanced', False, 'rpclh/ia: unused by the released code (docs/model.md#semi-supervision-flags)'),
    ('repeat', 1, 'ia: EM/harmony updates per step'),
    ('graph_number', 21, 'spgra: graph nodes G = the whole sketch + at most G-1 patches'),
    ('graph_picture_size', 256, 'spgra: patch side P in pixels (a power of two; the CNN has log2(P)-1 layers)'),
    ('mask_prob', 0.1, 'spgra: probability that a training patch is masked (blanked) before cropping'),
    ('num_clusters', 50, "spgra: synonymous-proximity centroids N_c (the original's num_mixture; README 30)"),
    ('fix_sp_scale', False, 'spgra: divide every split by the training std of dx, dy (Q16: own std per '
                            'split, pen column included)'),
    ('fix_graph_validity', False, 'spgra: valid patch block n x n (Q16: (n+1) x (n+1))'),
)
_DEFAULTS = {name: default for name, default, _ in _HPARAMS}
# keys of the original's configs that are not hparams here: read and dropped, so that those configs load
IGNORED_KEYS = ('is_training',)   # the original's train/eval switch; each program sets the mode itself
CHOICES = {
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
        'min_learning_rate', 'de_weight', 'png_rotate_angle', 'png_translate_dist', 'bucket_width', 'kl_weight_max')},
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
    if name in CHOICES and value not in CHOICES[name]:
        raise UserError(f"hparam {name}='{value}' is not one of {', '.join(CHOICES[name])}")


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
        unknown = sorted(set(values) - set(_DEFAULTS) - set(IGNORED_KEYS))
        if unknown:
            raise UserError(f"unknown hparam(s) in config: {', '.join(unknown)}")
        return cls(**{name: value for name, value in values.items() if name not in IGNORED_KEYS})

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


def parse_categories(values):
    """Category names from --categories values: repeated flags, 'bee,bus', "{'bee','bus'}" or "[bee, bus]"."""
    names = []
    for value in values:
        for item in value.strip().strip('{}[]').split(','):
            name = _unquote(item.strip()).strip()
            if name and name not in names:
                names.append(name)
    return names
