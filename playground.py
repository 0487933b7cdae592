"""What serve.py's page does with a trained model, as library functions (docs/serve.md): turn a sketch drawn on a
canvas into the dataset's stroke-3 form, encode it, read its place in the latent mixture, redraw it, draw from one
Gaussian, interpolate between two codes, redraw a real test sketch, and heal a damaged sketch (SP-gra2seq).

A `Playground` holds one model, loaded and compiled once; its methods take plain Python values (the decoded JSON of
a request) and return plain values. Bad input raises `RequestError` with a one-line message and the HTTP status the
server answers with. Model calls are serialised by one lock per model, so concurrent requests never re-enter it.
"""
import os
import threading

import numpy as np
import tensorflow as tf

import control
import dataset
import family
import raster
import sampling
import sketch_healing
import spgra_data

CANVAS_SIDE = 255.0     # QuickDraw's sketch-rnn files: each drawing scaled so its longer side is 255 units...
RDP_EPSILON = 2.0       # ...and simplified by Ramer-Douglas-Peucker with epsilon 2 (the papers' npz form)
MAX_STROKES = 300       # bounds of a drawn sketch
MAX_POINTS = 20000
MAX_COUNT = 16          # sketches per request (redrawings, Gaussian samples)
MAX_STEPS = 12          # codes along an interpolation
MAX_TEMPERATURE = 2.0
MAX_SEED = 2 ** 31 - 1
COORDINATE_LIMIT = 1e6  # canvas coordinates beyond this are refused


class RequestError(Exception):
    """A bad request: `status` (4xx) and a one-line message."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


# ------------------------------------------------------------------------------------------------ request values

def require(condition, message, status=400):
    if not condition:
        raise RequestError(message, status)


def number(body, key, default, low, high, integer=False):
    """body[key] (or `default`) as a number in [low, high]; RequestError naming the key otherwise."""
    value = body.get(key, default)
    kind = int if integer else (int, float)
    require(isinstance(value, kind) and not isinstance(value, bool) and np.isfinite(value),
            f'"{key}" must be {"an integer" if integer else "a number"}')
    require(low <= value <= high, f'"{key}" must be between {low} and {high} (got {value})')
    return value


def parse_strokes(value):
    """Canvas strokes [[[x, y], ...], ...] (absolute positions, y down) as a list of float64 [n, 2] arrays; strokes
    of a single point are kept (a dot). RequestError for anything else, an empty sketch or one over the bounds."""
    require(isinstance(value, list), '"strokes" must be a list of strokes, each a list of [x, y] points')
    require(len(value) <= MAX_STROKES, f'too many strokes: {len(value)} (at most {MAX_STROKES})', 413)
    strokes, total = [], 0
    for stroke in value:
        require(isinstance(stroke, list), 'each stroke must be a list of [x, y] points')
        total += len(stroke)
        require(total <= MAX_POINTS, f'too many points: more than {MAX_POINTS}', 413)
        if not stroke:
            continue
        require(all(isinstance(p, list) and len(p) == 2 and all(isinstance(c, (int, float))
                                                                 and not isinstance(c, bool) for c in p)
                    for p in stroke), 'each point must be [x, y] with two numbers')
        points = np.asarray(stroke, np.float64)
        require(np.isfinite(points).all() and np.abs(points).max() <= COORDINATE_LIMIT,
                f'coordinates must be finite and within +-{COORDINATE_LIMIT:g}')
        strokes.append(points)
    require(strokes, 'the sketch is empty: draw something first')
    return strokes


def rdp(points, epsilon):
    """Ramer-Douglas-Peucker: the points of a polyline [n, 2] kept so that no dropped point lies farther than
    epsilon from the simplified line (its end points are always kept)."""
    keep = np.zeros(len(points), bool)
    keep[[0, -1]] = True
    spans = [(0, len(points) - 1)]
    while spans:
        first, last = spans.pop()
        if last - first < 2:
            continue
        a, b = points[first], points[last]
        inner = points[first + 1:last]
        direction = b - a
        length = np.hypot(*direction)
        if length == 0:
            distances = np.hypot(*(inner - a).T)
        else:
            distances = np.abs(direction[0] * (inner[:, 1] - a[1]) - direction[1] * (inner[:, 0] - a[0])) / length
        worst = int(np.argmax(distances))
        if distances[worst] > epsilon:
            middle = first + 1 + worst
            keep[middle] = True
            spans += [(first, middle), (middle, last)]
    return points[keep]


def canvas_to_stroke3(strokes):
    """Canvas strokes -> stroke-3 [n, 3] float32 in the units of QuickDraw's sketch-rnn files: the drawing moved
    to the origin and scaled so its longer side is CANVAS_SIDE, each stroke simplified by RDP (RDP_EPSILON), then
    offsets from the previous point with pen state 1 on each stroke's last point; the first point is the origin and
    has no row of its own, as in those files."""
    everything = np.concatenate(strokes)
    low = everything.min(axis=0)
    side = float((everything.max(axis=0) - low).max())
    scale = CANVAS_SIDE / side if side > 0 else 1.0
    rows = []
    for stroke in strokes:
        points = rdp((stroke - low) * scale, RDP_EPSILON)
        pen = np.zeros(len(points))
        pen[-1] = 1.0
        rows.append(np.column_stack([points, pen]))
    absolute = np.concatenate(rows)
    offsets = absolute.copy()
    offsets[1:, :2] = absolute[1:, :2] - absolute[:-1, :2]
    result = offsets[1:] if len(offsets) > 1 else np.float64([[0.0, 0.0, 1.0]])
    return np.round(result).astype(np.float32)


def stroke3_json(seq3):
    """A stroke-3 sketch as a JSON-ready list of [dx, dy, pen] rows (offsets to 2 decimals)."""
    rows = np.asarray(seq3, np.float64)
    return [[round(dx, 2), round(dy, 2), int(pen)] for dx, dy, pen in rows.tolist()]


# ------------------------------------------------------------------------------------------------ one model

class Playground:
    """One trained model (a --model_dir), loaded and compiled once, with the test split of --data_dir if given."""

    def __init__(self, name, model_dir, data_dir=None):
        self.name = name
        self.net, self.hps = family.restore_model(model_dir)
        self.test_set = None
        if data_dir is not None:   # the test sketches are re-rendered from their strokes: no _png.npz needed
            if self.net.encoder_input == 'image':
                _, _, self.test_set, self.hps = dataset.load_dataset(data_dir, self.hps, png_required=False)
            else:
                _, _, self.test_set, self.hps = family.load_splits(data_dir, self.hps)
        self.lock = threading.Lock()
        self.decode = sampling.compile_decoder(self.net)
        self.encode_fn = self.compile_encoder()

    # -------------------------------------------------------------------------------------------- what it can do

    @property
    def conditional(self):
        return self.net.decoder.conditional

    def capabilities(self):
        """{step: None if the model can do it, else why not} for every step of the page."""
        has_mixture = self.net.mixture_weights() is not None
        no_code = None if self.conditional else 'a decoder-only model has no latent code'
        no_data = None if self.test_set is not None else 'serve.py was started without --data_dir'
        return {
            'encode': no_code,
            'gaussians': None if has_mixture else f'a {self.hps.model_type} model has no latent mixture',
            'interpolate': no_code,
            'compare': no_code or no_data,
            'heal': None if self.hps.model_type == 'spgra' else 'only an SP-gra2seq model (spgra) heals sketches',
        }

    def describe(self):
        """The model's name, type, categories, Gaussians and groups (weights, alive) and capabilities."""
        info = dict(name=self.name, model_type=self.hps.model_type, categories=list(self.hps.categories),
                    dec_model=self.hps.dec_model, dec_rnn_size=self.hps.dec_rnn_size, z_size=self.hps.z_size,
                    capabilities=self.capabilities(), gaussians=[], groups=[],
                    test_sketches=0 if self.test_set is None else len(self.test_set.strokes))
        if self.capabilities()['gaussians'] is None:
            for c in control.components(self.net):
                info[f'{c.kind}s'].append(dict(index=c.index, weight=c.weight, alive=c.alive))
        return info

    def check(self, step):
        """RequestError (409) when the model cannot do `step`."""
        reason = self.capabilities()[step]
        require(reason is None, f'model "{self.name}" cannot {step}: {reason}', 409)

    # -------------------------------------------------------------------------------------------- codes

    def compile_encoder(self):
        """One compiled encoder of what the model reads, returning mu: patch graphs (SP-gra2seq,
        sketch_healing.compile_graph_encoder) or (strokes padded to max_seq_len, images) (sampling.compile_encoder);
        None for a decoder-only model."""
        if not self.conditional:
            return None
        if self.net.encoder_input == 'graph':
            return sketch_healing.compile_graph_encoder(self.net)
        encode = sampling.compile_encoder(self.net, self.hps.max_seq_len + 1)
        return lambda strokes, images: encode(tf.constant(strokes), tf.constant(images))[0].numpy()

    def scale_factor(self, seq3):
        """The divisor of the model's stroke inputs: the training split's, or without --data_dir the sketch's own
        offset std (the same statistic, dataset.scale_factor)."""
        return self.test_set.scale_factor if self.test_set is not None else dataset.scale_factor([seq3])

    def graphs(self, seq3, prob=0.0, seed=0):
        """The patch graph of one stroke-3 sketch (dataset units), patches masked with probability `prob`."""
        normalised = seq3.copy()
        normalised[:, :2] /= self.scale_factor(seq3)
        uniforms = np.random.default_rng(seed).random(spgra_data.patch_count(normalised, self.hps.graph_number))
        return spgra_data.hps_graphs([normalised], self.hps, prob, [uniforms])

    def encode_stroke3(self, seq3):
        """mu [1, D] of one stroke-3 sketch in dataset units, read in the model's own input form."""
        hps = self.hps
        if self.net.encoder_input == 'graph':
            return self.encode_fn(self.graphs(seq3))
        normalised = seq3.copy()
        normalised[:, :2] /= self.scale_factor(seq3)
        if len(normalised) > hps.max_seq_len:
            require(self.net.encoder_input == 'image', f'the sketch has {len(normalised)} points after '
                    f'simplification; this model reads at most {hps.max_seq_len}', 413)
            strokes = np.zeros((1, hps.max_seq_len + 1, 5), np.float32)
        else:
            strokes = dataset.to_stroke5([normalised], hps.max_seq_len)
        return self.encode_fn(strokes, dataset.pixels_to_unit(raster.render_fast([seq3], hps.png_width, workers=1)))

    def placement(self, z):
        """{'gaussian', 'responsibilities'[, 'group', 'group_responsibilities']} of one code z [1, D]."""
        if self.net.mixture_weights() is None:
            return {}
        gamma = self.net.responsibilities(tf.constant(z)).numpy()[0]
        found = dict(gaussian=int(np.argmax(gamma)), responsibilities=gamma.astype(float).tolist())
        groups = self.net.group_responsibilities(tf.constant(z))
        if groups is not None:
            groups = groups.numpy()[0]
            found.update(group=int(np.argmax(groups)), group_responsibilities=groups.astype(float).tolist())
        return found

    def redraw(self, z, temperature, seed):
        """Decode codes z [N, D]: a list of stroke-3 sketches as JSON rows."""
        sketches = sampling.decode_strokes(self.decode, np.asarray(z, np.float32), self.hps.max_seq_len,
                                           temperature, seed, 1.0)
        return [stroke3_json(seq3) for seq3 in sketches]

    def test_sketch(self, index):
        """Test sketch `index` (across categories) in dataset units, with its category."""
        require(self.test_set is not None, 'serve.py was started without --data_dir: no test sketches', 409)
        count = len(self.test_set.strokes)
        require(0 <= index < count, f'test sketch {index} is out of range (0..{count - 1})', 404)
        seq3 = self.test_set.strokes[index].copy()
        seq3[:, :2] *= self.test_set.scale_factor
        return seq3, self.hps.categories[int(self.test_set.labels[index])]

    def source_code(self, source, key):
        """The code of an interpolation end: {"strokes": canvas strokes} or {"test": index}."""
        require(isinstance(source, dict) and len(source) == 1 and ('strokes' in source or 'test' in source),
                f'"{key}" must be {{"strokes": [...]}} or {{"test": index}}')
        if 'strokes' in source:
            seq3 = canvas_to_stroke3(parse_strokes(source['strokes']))
        else:
            seq3, _ = self.test_sketch(number(source, 'test', 0, 0, 10 ** 9, integer=True))
        return self.encode_stroke3(seq3)[0], seq3

    # -------------------------------------------------------------------------------------------- the page's steps

    def encode(self, body):
        """The drawn sketch's place in the latent mixture and `count` redrawings from its code."""
        self.check('encode')
        seq3 = canvas_to_stroke3(parse_strokes(body.get('strokes')))
        temperature = number(body, 'temperature', 0.24, 0.01, MAX_TEMPERATURE)
        count = number(body, 'count', 4, 1, MAX_COUNT, integer=True)
        seed = number(body, 'seed', 0, 0, MAX_SEED, integer=True)
        with self.lock:
            mu = self.encode_stroke3(seq3)
            result = dict(input=stroke3_json(seq3), **self.placement(mu))
            result['redrawings'] = self.redraw(np.repeat(mu, count, axis=0), temperature, seed)
        return result

    def gaussian(self, body):
        """`count` sketches drawn from one Gaussian (kind 'gaussian') or one group (kind 'group')."""
        self.check('gaussians')
        kind = body.get('kind', 'gaussian')
        require(kind in control.KINDS, f'"kind" must be one of {", ".join(control.KINDS)}')
        found = [c for c in control.components(self.net) if c.kind == kind]
        require(found, f'model "{self.name}" has no {kind}s', 404)
        index = number(body, 'index', 0, -10 ** 9, 10 ** 9, integer=True)
        require(0 <= index < len(found), f'{kind} {index} does not exist: the model has {len(found)} {kind}s '
                f'(0..{len(found) - 1})', 404)
        temperature = number(body, 'temperature', 0.24, 0.01, MAX_TEMPERATURE)
        count = number(body, 'count', 8, 1, MAX_COUNT, integer=True)
        seed = number(body, 'seed', 0, 0, MAX_SEED, integer=True)
        with self.lock:
            z = control.component_codes(self.net, found[index], count, np.random.default_rng(seed))
            sketches = self.redraw(z, temperature, seed)
        return dict(kind=kind, index=index, weight=found[index].weight, alive=found[index].alive, sketches=sketches)

    def interpolate(self, body):
        """Sketches decoded along the line between the codes of two ends ("a", "b")."""
        self.check('interpolate')
        steps = number(body, 'steps', 7, 2, MAX_STEPS, integer=True)
        temperature = number(body, 'temperature', 0.24, 0.01, MAX_TEMPERATURE)
        seed = number(body, 'seed', 0, 0, MAX_SEED, integer=True)
        mode = body.get('mode', 'slerp')
        require(mode in ('lerp', 'slerp'), '"mode" must be lerp or slerp')
        blend = sampling.slerp if mode == 'slerp' else sampling.lerp
        with self.lock:
            (code_a, seq_a), (code_b, seq_b) = (self.source_code(body.get(k), k) for k in ('a', 'b'))
            z = np.stack([blend(code_a, code_b, t) for t in np.linspace(0.0, 1.0, steps)])
            sketches = self.redraw(z, temperature, seed)
        return dict(a=stroke3_json(seq_a), b=stroke3_json(seq_b), sketches=sketches)

    def compare(self, body):
        """A real test sketch (random, or "index") and its redrawing from its code."""
        self.check('compare')
        seed = number(body, 'seed', 0, 0, MAX_SEED, integer=True)
        count = len(self.test_set.strokes)
        index = number(body, 'index', int(np.random.default_rng(seed).integers(count)), 0, count - 1, integer=True)
        temperature = number(body, 'temperature', 0.24, 0.01, MAX_TEMPERATURE)
        seq3, category = self.test_sketch(index)
        with self.lock:
            mu = self.encode_stroke3(seq3)
            result = dict(index=index, category=category, real=stroke3_json(seq3), **self.placement(mu))
            result['redrawing'] = self.redraw(mu, temperature, seed)[0]
        return result

    def heal(self, body):
        """SP-gra2seq: the sketch's patches masked with probability "prob" (after any erasing done on the page),
        the masked input as the graph's whole-canvas node, and the healed redrawings."""
        self.check('heal')
        seq3 = canvas_to_stroke3(parse_strokes(body.get('strokes')))
        prob = number(body, 'prob', 0.0, 0.0, 1.0)
        temperature = number(body, 'temperature', 0.24, 0.01, MAX_TEMPERATURE)
        count = number(body, 'count', 4, 1, MAX_COUNT, integer=True)
        seed = number(body, 'seed', 0, 0, MAX_SEED, integer=True)
        with self.lock:
            graphs = self.graphs(seq3, prob, seed)
            healed = self.redraw(np.repeat(self.encode_fn(graphs), count, axis=0), temperature, seed)
        masked = (255 - graphs.nodes[0, 0]).astype(np.uint8)
        return dict(input=stroke3_json(seq3), masked_patches=[int(k) for k in graphs.masked[0]],
                    masked_image=masked.tolist(), healed=healed)


def load_playgrounds(model_dirs, data_dir=None):
    """{name: Playground} for the given model directories; a model's name is its directory's base name (made unique
    with -2, -3, ...)."""
    playgrounds = {}
    for model_dir in model_dirs:
        base = os.path.basename(os.path.normpath(model_dir))
        name, n = base, 2
        while name in playgrounds:
            name, n = f'{base}-{n}', n + 1
        playgrounds[name] = Playground(name, model_dir, data_dir)
    return playgrounds
