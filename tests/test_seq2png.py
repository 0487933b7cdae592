"""Rasterisation (docs/model.md#rasterisation): geometry by hand, fast == reference on real sketches, seq2png end to end
and its CLI."""
import os
import subprocess
import sys

import numpy as np
import pytest

import dataset
import hyperparams
import raster

CATEGORIES = ('bee', 'bus', 'car', 'cat', 'flower')


def _svg_path(svg):
    return svg[svg.index(' d="') + 4:svg.index('" fill="none"')]


def test_geometry_fits_and_centres_hand_checked():
    wide = np.array([[0, 0, 0], [10, 0, 0], [0, 5, 1]])  # w = 10 > h = 5: scale 45/10, centred vertically
    assert raster.drawing_geometry(wide) == (1.5, 2.5 * 4.5 + 1.5, 4.5)
    assert _svg_path(raster.strokes_to_svg(wide)) == 'M1.5,12.75 m0.0,0.0 l45.0,0.0 0.0,22.5 '
    away = np.array([[5, 5, 0], [5, 5, 1]])  # the bounding box includes the origin (pen start)
    assert _svg_path(raster.strokes_to_svg(away)) == 'M1.5,1.5 m22.5,22.5 l22.5,22.5 '
    line = np.array([[0, 0, 0], [1, 0, 0], [1, 0, 0], [1, 0, 1]])  # the original's l, implicit, l letters
    assert _svg_path(raster.strokes_to_svg(line)) == 'M1.5,24.0 m0.0,0.0 l15.0,0.0 15.0,0.0 l15.0,0.0 '
    two_strokes = np.array([[0, 0, 0], [4, 0, 1], [0, 4, 0], [-4, 0, 1]])  # a pen-up point starts an 'm'
    assert _svg_path(raster.strokes_to_svg(two_strokes)) == 'M1.5,1.5 m0.0,0.0 l45.0,0.0 m0.0,45.0 l-45.0,0.0 '
    svg = raster.strokes_to_svg(wide)
    assert 'width="48"' in svg and '<rect fill="white" height="48" width="48" x="0" y="0" />' in svg
    assert 'stroke="black" stroke-width="1"' in svg


@pytest.mark.parametrize('render', [raster.render_fast, raster.render_reference])
def test_horizontal_line_pixels_hand_checked(render):
    # y = 24.0 from x = 1.5 to 46.5, width 1: rows 23 and 24 half covered, end columns a quarter covered.
    image = render([np.array([[0, 0, 0], [10, 0, 1]])])[0]
    assert image.dtype == np.uint8 and image.shape == (48, 48)
    assert (image[23:25, 2:46] == 127).all()
    assert (image[23:25, [1, 46]] == 191).all()
    assert (np.delete(image, [23, 24], axis=0) == 255).all() and (image[:, [0, 47]] == 255).all()


def test_fast_matches_reference_on_real_sketches(data_dir):
    sketches = []
    for c in CATEGORIES:
        strokes = dataset.load_strokes_npz(dataset.category_npz_path(data_dir, c))
        sketches += (strokes['train'] + strokes['valid'] + strokes['test'])[::6]
    assert len(sketches) >= 300
    reference = raster.render_reference(sketches)
    fast = raster.render_fast(sketches, workers=2)
    np.testing.assert_array_equal(fast, reference)
    assert (fast < 128).any(axis=(1, 2)).all()  # every sketch left ink


def _awkward_sketches():
    rng = np.random.default_rng(0)
    return [np.array([[3, 4, 1]]),  # a single point: white
            np.zeros((5, 3)),  # zero extent
            np.c_[rng.integers(-20, 21, (1500, 2)), rng.random(1500) < 0.05],  # long: rounding drift, miter spikes
            np.c_[rng.normal(0, 0.3, (120, 2)).astype(np.float32), rng.random(120) < 0.1],  # float, like samples
            np.array([[0, 0, 0], [10, 3, 0], [-10, 3, 0], [10, 3, 0], [0, -40, 0], [1, 40, 0], [1, -40, 1]]),
            np.array([[5, -5, 0], [0, 0, 1], [-3, 2, 0], [3, 2, 0]])]  # last point keeps the pen down


@pytest.mark.parametrize('width', [48, 50])  # A8 rows of 50 pixels are padded to 52 bytes in cairo
def test_fast_matches_reference_on_awkward_sketches(width):
    sketches = _awkward_sketches()
    np.testing.assert_array_equal(raster.render_fast(sketches, width, workers=3),
                                  raster.render_reference(sketches, width))


def spec_geometry(seq3, width=48, margin=1.5):
    """docs/model.md#geometry walked point by point as the original's get_bounds / draw_strokes."""
    min_x = max_x = min_y = max_y = x = y = 0.0
    for dx, dy, _ in seq3:
        x, y = x + float(dx), y + float(dy)
        min_x, max_x, min_y, max_y = min(min_x, x), max(max_x, x), min(min_y, y), max(max_y, y)
    w, h = max_x - min_x, max_y - min_y
    border_x, border_y, norm = ((0.0, (w - h) * 0.5, w) if w > h else ((h - w) * 0.5, 0.0, h))
    scale = (width - 2 * margin) / max(norm, 1e-5)
    return (-min_x + border_x) * scale + margin, (-min_y + border_y) * scale + margin, scale


def test_geometry_matches_the_spec_walk_bit_for_bit(data_dir):
    sketches = dataset.load_strokes_npz(dataset.category_npz_path(data_dir, 'flower'))['train'][:50]
    sketches += _awkward_sketches() + [np.zeros((0, 3))]
    lengths = np.array([len(s) for s in sketches])
    batched = raster._drawing_geometries(np.concatenate(sketches, dtype=np.float64), lengths, 48)
    np.testing.assert_array_equal(batched, [spec_geometry(s) for s in sketches])  # exact, not close
    assert raster.drawing_geometry(sketches[0]) == spec_geometry(sketches[0])


def test_c_pointer_is_the_object_cairo_draws_on():
    """The one read of cairocffi's private `_pointer`: the C surface and context that cairo's own calls accept."""
    cairocffi, _ = raster.import_cairo()
    surface = cairocffi.ImageSurface(cairocffi.FORMAT_A8, 4, 4)
    context = cairocffi.Context(surface)
    assert cairocffi.ffi.typeof(raster.c_pointer(surface)) is cairocffi.ffi.typeof('cairo_surface_t *')
    assert cairocffi.ffi.typeof(raster.c_pointer(context)) is cairocffi.ffi.typeof('cairo_t *')
    assert cairocffi.cairo.cairo_image_surface_get_width(raster.c_pointer(surface)) == 4


def test_render_fast_edge_cases(data_dir):
    sketch = dataset.load_strokes_npz(dataset.category_npz_path(data_dir, 'cat'))['test'][3]
    bigger = sketch.astype(np.float32) * [4, 4, 1]
    images = raster.render_fast([np.zeros((0, 3)), np.zeros((2, 3)), bigger], workers=1)
    assert (images[0] == 255).all() and (images[1] == 255).all()
    np.testing.assert_array_equal(images[2], raster.render_fast([sketch], workers=1)[0])  # fitted to the box
    assert raster.render_fast([], workers=2).shape == (0, 48, 48)
    sketches = [np.zeros((0, 3))] * 3 + [sketch] * 5
    np.testing.assert_array_equal(raster.render_fast(sketches, workers=3), raster.render_fast(sketches, workers=1))


def test_write_png_npz_keeps_order_and_writes_atomically(tmp_path, data_dir):
    path = raster.write_png_npz(data_dir, str(tmp_path), 'bus', width=32, workers=2)
    assert path == str(tmp_path / 'bus_png.npz') and os.listdir(tmp_path) == ['bus_png.npz']
    strokes = dataset.load_strokes_npz(dataset.category_npz_path(data_dir, 'bus'))
    with np.load(path) as images:
        assert sorted(images.files) == ['test', 'train', 'valid']
        assert [images[s].shape for s in dataset.SPLITS] == [(340, 32, 32), (30, 32, 32), (30, 32, 32)]
        assert images['train'].dtype == np.uint8
        for split, i in (('train', 0), ('train', 339), ('valid', 7), ('test', 29)):
            np.testing.assert_array_equal(images[split][i], raster.render_fast([strokes[split][i]], 32, workers=1)[0])


def test_parse_categories_spellings():
    values = ['bee,bus', "{'car','cat'}", "['flower', bee]", ' The Eiffel Tower ']
    assert hyperparams.parse_categories(values) == ['bee', 'bus', 'car', 'cat', 'flower', 'The Eiffel Tower']


def _seq2png(repo_dir, *args):
    return subprocess.run([sys.executable, 'seq2png.py', *args], cwd=repo_dir, capture_output=True, text=True,
                          timeout=300)


def test_cli_repeated_comma_and_brace_categories(tmp_path, repo_dir, data_dir):
    run = _seq2png(repo_dir, f'--input_dir={data_dir}', f'--output_dir={tmp_path / "out"}', '--categories=bee,bus',
                   "--categories={'car'}")
    assert run.returncode == 0, run.stderr
    assert sorted(os.listdir(tmp_path / 'out')) == ['bee_png.npz', 'bus_png.npz', 'car_png.npz']
    assert 'wrote' in run.stdout


def test_cli_reference_renderer_writes_next_to_the_input(tmp_path, repo_dir, data_dir, write_category):
    strokes = dataset.load_strokes_npz(dataset.category_npz_path(data_dir, 'flower'))
    write_category(tmp_path, 'tiny', *(strokes[split][:4] for split in dataset.SPLITS))
    run = _seq2png(repo_dir, f'--input_dir={tmp_path}', '--renderer=reference')
    assert run.returncode == 0, run.stderr
    with np.load(tmp_path / 'tiny_png.npz') as images:
        np.testing.assert_array_equal(images['valid'], raster.render_fast(strokes['valid'][:4], workers=1))


@pytest.mark.parametrize('args, message', [
    (['--categories=unicorn'], 'error: missing category file data/unicorn.npz'),
    (['--input_dir=/nonexistent'], 'error: no <category>.npz files in /nonexistent; pass --input_dir or --categories'),
    (['--categories=bee', 'extra'], 'error: unexpected arguments: extra'),
])
def test_cli_errors_are_one_line(repo_dir, args, message):
    run = _seq2png(repo_dir, *args)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [message]
