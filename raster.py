"""Rasterisation of stroke-3 sketches into W x W greyscale images, as seq2png.py writes them
(docs/model.md#rasterisation): the original SVG -> cairosvg path and a direct cairo path with the same geometry.
"""
import concurrent.futures
import io
import os

import numpy as np
import svgwrite
import tqdm
from PIL import Image

import dataset
from utils import UserError, atomic_savez

# ----------------------------------------------------------------------------------------------------------------
# Rasterisation (docs/model.md#rasterisation): same geometry for the SVG reference path and the direct cairo path
# ----------------------------------------------------------------------------------------------------------------

def drawing_geometry(seq3, width=48, margin=1.5):
    """docs/model.md#geometry: (X0, Y0, scale) of a sketch. The bounding box of the pen positions includes the origin;
    the drawing is fitted to [margin, width - margin]^2 keeping its aspect ratio and centred along its shorter axis."""
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
    """The docs/model.md#geometry geometry of many sketches at once: [N, 3] rows (X0, Y0, scale).

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


def c_pointer(cairo_object):
    """The C pointer (a cffi `cairo_surface_t *` or `cairo_t *`) behind a cairocffi Surface or Context, for the
    direct C calls of _render_chunk. cairocffi keeps it in the private attribute `_pointer` and has no public
    accessor: this is the one place that reads it."""
    return cairo_object._pointer


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
    cairo, surface_pointer, context_pointer = cairocffi.cairo, c_pointer(surface), c_pointer(context)
    frames = np.empty((len(seq3_list), width, width), np.uint8)
    for i, (begin, count) in enumerate(zip(bounds[:-1].tolist(), np.diff(bounds).tolist())):
        coverage[...] = 0
        cairo.cairo_surface_mark_dirty(surface_pointer)
        path.data, path.num_data = first + begin, count
        cairo.cairo_append_path(context_pointer, path)  # one C call instead of one per point
        context.stroke()
        cairo.cairo_surface_flush(surface_pointer)
        frames[i] = coverage
    return 255 - frames


def render_fast(seq3_list, width=48, workers=None, progress=False):
    """Same images as render_reference (docs/model.md#pixels), drawn straight into cairo surfaces by `workers` threads
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


def write_png_npz(input_dir, output_dir, category, width=48, renderer='fast', workers=None, progress=False):
    """Render every sketch of <input_dir>/<category>.npz (raw offsets) and write <output_dir>/<category>_png.npz
    atomically: keys train/valid/test, uint8 [N, W, W], image j = sketch j. Returns the path written."""
    strokes = dataset.load_strokes_npz(dataset.category_npz_path(input_dir, category))
    sketches = strokes['train'] + strokes['valid'] + strokes['test']
    if renderer == 'fast':
        images = render_fast(sketches, width, workers=workers, progress=progress and category)
    elif renderer == 'reference':
        images = render_reference(sketches, width, progress=progress and category)
    else:
        raise UserError(f"unknown renderer '{renderer}' (fast or reference)")
    ends = np.cumsum([len(strokes[split]) for split in dataset.SPLITS])
    train, valid, test = np.split(images, ends[:-1])
    path = dataset.category_png_path(output_dir, category)
    atomic_savez(path, train=train, valid=valid, test=test)
    return path
