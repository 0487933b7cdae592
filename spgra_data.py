"""SP-gra2seq data: a sketch as a graph of patches, built in the data pipeline (docs/model.md#sp-gra2seq-data,
#patch-graph).

The sketch is redrawn with thick white lines on a black canvas about 640 px wide; at every 4th drawn point of each
stroke the pen position is a patch centre (at most G-1). Masking blanks the P x P square around chosen centres
before anything is cropped, so a masked region never leaks into a neighbouring crop. Node 0 is the whole (masked)
canvas resized to P x P; nodes 1..n are the P x P crops at the centres; unused nodes stay black.

Nodes travel as uint8 (0 = background, 255 = ink; the model maps them to x = v/255*2 - 1, ink +1), a quarter of the
original's float64 tensors. One call to cv2.polylines draws all strokes of a sketch and the crops are one fancy-index
gather; sketches are built by a thread pool (OpenCV releases the GIL), and a training epoch builds the next batch in
a background thread while the current one trains. No TensorFlow here.
"""
import collections
import concurrent.futures
import os

import cv2
import numpy as np

import dataset
import utils

CANVAS = 640                     # the drawing is scaled so that its longer (truncated) extent becomes 640 px
THICKNESS = int(CANVAS * 0.025)  # 16: line width in px, white on black, 8-connected, no anti-aliasing
MARGIN = THICKNESS + 1           # 17: black border around the drawing
PATCH_EVERY = 4                  # a patch centre at every 4th drawn point of a stroke (counted from its first)
MAX_PATCH = 256                  # the patch CNN has log2(P) - 1 layers of the original's 7 (P = 256)
MASK_SEED = 20230715             # the project's healing mask stream: default_rng(MASK_SEED).random(n)

Graphs = collections.namedtuple('Graphs', 'nodes validity counts masked')
Graphs.__doc__ = """A batch of patch graphs: nodes uint8 [N, G, P, P]; validity float32 [N, G-1, G-1] (the original's
adjacency mask); counts int64 [N] (patches n of each sketch); masked [N lists] (indices of the masked patches)."""


def check_graph_hparams(hps):
    """UserError unless graph_picture_size is a power of two in [4, 256], graph_number >= 2 and mask_prob in [0, 1]."""
    size = hps.graph_picture_size
    if not 4 <= size <= MAX_PATCH or size & (size - 1):
        raise utils.UserError(f'hparam graph_picture_size={size} must be a power of two from 4 to {MAX_PATCH}')
    if hps.graph_number < 2:
        raise utils.UserError(f'hparam graph_number={hps.graph_number} must be at least 2 (the whole sketch + a patch)')
    if not 0.0 <= hps.mask_prob <= 1.0:
        raise utils.UserError(f'hparam mask_prob={hps.mask_prob} must be in [0, 1]')


# ------------------------------------------------------------------------------------------------ one sketch

def _extent(seq):
    """(xmin, ymin, w, h) of the cumulative positions of all points but the first (the original's canvas size)."""
    positions = np.cumsum(seq[1:, 0:2], axis=0) if len(seq) > 1 else np.zeros((1, 2))
    low, high = positions.min(axis=0), positions.max(axis=0)
    return low[0], low[1], high[0] - low[0], high[1] - low[1]


def canvas_scaled(seq3):
    """The sketch scaled so that its truncated longer extent int(max(w, h)) becomes 640, offsets truncated to int16
    one by one (Q16: the truncations drift). The extent is summed in the sketch's own dtype (float32 from the
    loaders, as the original), the scaling is float64. A zero extent counts as 1 (the original divides by zero)."""
    seq = np.asarray(seq3)
    _, _, w, h = _extent(seq)
    longer = max(int(w), int(h), 1)
    return (seq / np.array([longer, longer, 1.0]) * np.array([CANVAS, CANVAS, 1.0])).astype(np.int16)


def pen_events(pen):
    """(drawn [L] bool, centre [L] bool). Point i only moves the pen (drawn False) when the previous point was drawn
    and ended its stroke (p != 0); a drawn point is a patch centre when it is the 0th, 4th, 8th ... drawn point of its
    stroke (the counter restarts after every stroke end)."""
    drawn = np.ones(len(pen), bool)
    centre = np.zeros(len(pen), bool)
    move_next, count = False, 0
    for i, p in enumerate(pen.tolist()):
        if move_next:
            drawn[i], move_next = False, False
            continue
        centre[i] = count % PATCH_EVERY == 0
        count += 1
        if p != 0:
            count, move_next = 0, True
    return drawn, centre


Layout = collections.namedtuple('Layout', 'side points drawn centres')


def layout(seq3, graph_number):
    """Where a sketch goes on its canvas: the canvas side, the pen positions [L+1, 2] (x, y; row 0 = the virtual
    start, row i+1 = after point i), drawn flags and the patch centres [n, 2] (the pen before each centre point,
    at most G-1)."""
    seq = canvas_scaled(seq3)
    xmin, ymin, w, h = _extent(seq)
    start = np.array([-xmin - seq[0, 0], -ymin - seq[0, 1]], np.int64) + MARGIN
    points = np.concatenate([start[None], start + np.cumsum(seq[:, 0:2].astype(np.int64), axis=0)])
    drawn, centre = pen_events(seq[:, 2])
    centres = points[:-1][centre][:graph_number - 1]
    return Layout(int(max(w, h)) + 2 * MARGIN, points, drawn, centres)


def draw_canvas(lay):
    """uint8 canvas [side, side]: every drawn point's segment, pen -> pen + offset, white, 16 px. One polyline per
    run of drawn points (the same pixels as one cv2.line per segment: consecutive segments share their round end)."""
    canvas = np.zeros((lay.side, lay.side), np.uint8)
    runs = np.split(np.arange(len(lay.drawn)), np.flatnonzero(~lay.drawn))
    lines = [lay.points[run[0]:run[-1] + 2].astype(np.int32) for run in (r[lay.drawn[r]] for r in runs) if len(run)]
    cv2.polylines(canvas, lines, False, 255, thickness=THICKNESS)
    return canvas


def masked_patches(count, mask_prob, uniforms):
    """Indices k < count with uniforms[k] < mask_prob (one uniform per patch, in order)."""
    if mask_prob <= 0:
        return []
    return np.flatnonzero(np.asarray(uniforms[:count]) < mask_prob).tolist()


def make_graph(seq3, graph_number, patch, mask_prob=0.0, uniforms=()):
    """(nodes uint8 [G, P, P], n, masked indices) of one normalised stroke-3 sketch (docs/model.md#patch-graph).

    The canvas is padded by 1.5 P of black, every masked centre's P x P square is blanked, then node 0 = the unpadded
    masked canvas resized to P x P (bilinear) and node k+1 = the P x P crop centred at centre k. A square that leaves
    the padded canvas (only the virtual start before point 0 can, after a large first offset, as in generated
    sketches) is neither masked nor cropped but still counts as a patch, as in the original."""
    nodes = np.zeros((graph_number, patch, patch), np.uint8)
    if len(seq3) == 0:
        return nodes, 0, []
    lay = layout(seq3, graph_number)
    border = int(patch * 1.5)
    padded = np.pad(draw_canvas(lay), border)
    corners = lay.centres + border - patch // 2  # top-left (x, y) of each centre's square
    inside = ((corners >= 0) & (corners + patch <= len(padded))).all(axis=1)
    masked = [k for k in masked_patches(len(corners), mask_prob, uniforms) if inside[k]]
    for x, y in corners[masked].tolist():
        padded[y:y + patch, x:x + patch] = 0
    nodes[0] = cv2.resize(padded[border:border + lay.side, border:border + lay.side], (patch, patch))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (patch, patch))  # windows[y, x] = the square at (x, y)
    kept = np.flatnonzero(inside)
    nodes[kept + 1] = windows[corners[kept, 1], corners[kept, 0]]
    return nodes, len(corners), masked


def validity_mask(count, masked, graph_number, fix=False):
    """float32 [G-1, G-1]: ones on the top-left block of the valid patches, rows and columns of masked patches zero.
    The block is (n+1) x (n+1) when n < G-1 (Q16: one empty slot counts as valid); fix=True: n x n."""
    size = graph_number - 1
    block = count if fix or count == size else count + 1
    valid = np.zeros((size, size), np.float32)
    valid[:block, :block] = 1.0
    valid[masked, :] = 0.0
    valid[:, masked] = 0.0
    return valid


def patch_count(seq3, graph_number):
    """n, the number of patches of a sketch (without drawing it)."""
    return len(layout(seq3, graph_number).centres) if len(seq3) else 0


# ------------------------------------------------------------------------------------------------ batches

def build_graphs(sketches, graph_number, patch, mask_prob=0.0, uniforms=None, fix_validity=False, workers=None):
    """Graphs of many sketches, `workers` threads (default: one per core). uniforms: one sequence per sketch (its
    patches' masking draws), or None for no masking."""
    n = len(sketches)
    nodes = np.zeros((n, graph_number, patch, patch), np.uint8)
    validity = np.zeros((n, graph_number - 1, graph_number - 1), np.float32)
    counts = np.zeros(n, np.int64)
    masked = [[] for _ in range(n)]

    def build(i):
        draws = () if uniforms is None else uniforms[i]
        nodes[i], counts[i], masked[i] = make_graph(sketches[i], graph_number, patch, mask_prob, draws)
        validity[i] = validity_mask(counts[i], masked[i], graph_number, fix_validity)

    with concurrent.futures.ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:
        list(pool.map(build, range(n)))
    return Graphs(nodes, validity, counts, masked)


def hps_graphs(sketches, hps, mask_prob=0.0, uniforms=None):
    """build_graphs with the graph hparams of hps."""
    return build_graphs(sketches, hps.graph_number, hps.graph_picture_size, mask_prob, uniforms,
                        hps.fix_graph_validity)


class GraphLoader(dataset.DataLoader):
    """A split whose batches carry patch graphs: Batch.graphs = (nodes uint8 [B, G, P, P], validity [B, G-1, G-1]).
    Training batches mask each patch with probability mask_prob (draws from the epoch's rng); evaluation batches are
    unmasked (the original validates with mask_prob 0). No augmentation (docs/model.md#sp-gra2seq-data)."""

    @classmethod
    def from_loader(cls, loader):
        graph_loader = cls(loader.strokes, None, loader.labels, loader.batch_size, loader.max_seq_len, loader.hps,
                           loader.training)
        graph_loader.scale_factor = loader.scale_factor
        return graph_loader

    def batch_from_indices(self, idx, rng=None, padded_len=None):
        """The batch of sketches `idx` with their graphs, padded to padded_len (default max_seq_len) rows after the
        start row (length buckets, hparam bucket_width); training batches masked with draws from rng."""
        idx = np.asarray(idx)
        sketches = [self.strokes[i] for i in idx]
        masking = self.training and rng is not None
        uniforms = rng.random((len(idx), self.hps.graph_number - 1)) if masking else None
        graphs = hps_graphs(sketches, self.hps, self.hps.mask_prob if masking else 0.0, uniforms)
        lengths = np.array([len(seq) for seq in sketches], np.int32)
        return dataset.Batch(dataset.to_stroke5(sketches, padded_len or self.max_seq_len), lengths, None,
                             self.labels[idx], graphs=(graphs.nodes, graphs.validity))

    def epoch(self, rng=None):
        """The base class's batches, each built in a background thread while the previous one is used (the draws
        stay in order, so an epoch is the same as without prefetching)."""
        batches = super().epoch(rng)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            ahead = pool.submit(next, batches, None)
            while True:
                batch = ahead.result()
                if batch is None:
                    return
                ahead = pool.submit(next, batches, None)
                yield batch


def pen_inclusive_std(seq3_list):
    """Q16: the std of every entry of a split's stroke-3 arrays, pen column included (1 for an empty split)."""
    if not seq3_list:
        return 1.0
    sigma = float(np.std(np.concatenate(seq3_list).astype(np.float64)))
    if sigma == 0:
        raise utils.UserError('all stroke values of a split are zero: cannot normalise the sketches')
    return sigma


def load_graph_dataset(data_dir, hps):
    """(train, valid, test) GraphLoaders and hps with max_seq_len set: dataset.load_dataset without images, each split
    divided by its own pen-inclusive std (Q16; fix_sp_scale=true: the training std of dx, dy)."""
    check_graph_hparams(hps)
    *loaders, hps_out = dataset.load_dataset(data_dir, hps, png_required=False,
                                           split_scale=None if hps.fix_sp_scale else pen_inclusive_std)
    return (*[GraphLoader.from_loader(loader) for loader in loaders], hps_out)


# ------------------------------------------------------------------------------------------------ healing masks

def mask_seeds(count, path=None):
    """`count` uniforms in [0, 1) that decide the healing masks, one per patch, consumed in order over the test
    sketches and categories (the original's random_seed.npy, never published). Default: the project's stream
    np.random.default_rng(MASK_SEED).random(count); path: a .npy of such values (e.g. the authors' file)."""
    if path is None:
        return np.random.default_rng(MASK_SEED).random(count)
    try:
        values = np.load(path).astype(np.float64).ravel()
    except (OSError, ValueError, TypeError) as e:
        raise utils.UserError(f'cannot read mask seeds {path}: {e}') from None
    if not np.isfinite(values).all():
        raise utils.UserError(f'mask seeds {path} hold NaN or infinite values')
    if len(values) < count:
        raise utils.UserError(f'mask seeds {path} hold {len(values)} values but this run needs {count} '
                              f'(one per patch of every sketch)')
    return values[:count]


def healing_graphs(sketches, hps, prob, seeds):
    """Graphs of test sketches masked with probability `prob`, patch k of sketch i drawing seeds[start_i + k] where
    start_i = n_0 + ... + n_{i-1} (the original carries its seed index across sketches)."""
    counts = [patch_count(seq, hps.graph_number) for seq in sketches]
    starts = np.cumsum([0] + counts)
    uniforms = [seeds[starts[i]:starts[i + 1]] for i in range(len(sketches))]
    return hps_graphs(sketches, hps, prob, uniforms)
