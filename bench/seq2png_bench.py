"""Is the fast renderer much faster than the original path, for the same images?

Renders the same bundled real sketches with `original` (what the original seq2png.py does: one SVG file per
sketch written to disk, cairosvg converts each file to a PNG file, PIL reads every PNG back; one process),
`reference` (the same svgwrite -> cairosvg -> PIL path, in memory) and `fast` (cairo, one process and one per
core); prints sketches/s (median of --runs after a warm-up), the speed-up over `original` and over `reference`
measured in the same run, and the largest pixel difference to the reference images.

  python3 bench/seq2png_bench.py [--num_sketches=2000 --runs=3]
"""
import os
import statistics
import sys
import tempfile
import time

import cairosvg
import numpy as np
from PIL import Image
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import utils  # noqa: E402

flags.DEFINE_string('data_dir', 'data', 'Directory with the <category>.npz files.')
flags.DEFINE_list('categories', ['bee', 'bus', 'car', 'cat', 'flower'], 'Categories to take sketches from.')
flags.DEFINE_integer('num_sketches', 2000, 'Sketches per run, spread evenly over all splits and categories.',
                     lower_bound=1)
flags.DEFINE_integer('runs', 3, 'Timed runs per renderer, after one warm-up run on a few sketches.', lower_bound=1)
flags.DEFINE_integer('png_width', 48, 'Image side in pixels.', lower_bound=1)
FLAGS = flags.FLAGS


def bundled_sketches(data_dir, categories, count):
    sketches = []
    for c in categories:
        strokes = utils.load_strokes_npz(utils.category_npz_path(data_dir, c))
        sketches += strokes['train'] + strokes['valid'] + strokes['test']
    picks = np.linspace(0, len(sketches) - 1, min(count, len(sketches))).round().astype(int)
    return [sketches[i] for i in picks]


def render_original(sketches, width):
    """The original pipeline's file round trips: svg/<i>.svg -> cairosvg -> png/<i>.png -> PIL 'L', in index order."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, sketch in enumerate(sketches):
            svg_path, png_path = os.path.join(tmp, f'{i}.svg'), os.path.join(tmp, f'{i}.png')
            with open(svg_path, 'w') as f:
                f.write(utils.strokes_to_svg(sketch, width))
            cairosvg.svg2png(url=svg_path, write_to=png_path)
            paths.append(png_path)
        return np.stack([np.asarray(Image.open(p).convert('L')) for p in paths])


def median_seconds(render, sketches, runs):
    render(sketches[:20])  # warm-up: imports, caches, first pool
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        images = render(sketches)
        times.append(time.perf_counter() - start)
    return statistics.median(times), images


@utils.cli_main
def main(argv):
    del argv
    sketches = bundled_sketches(FLAGS.data_dir, FLAGS.categories, FLAGS.num_sketches)
    width, cores = FLAGS.png_width, os.cpu_count() or 1
    configs = [('original', 1, lambda s: render_original(s, width)),
               ('reference', 1, lambda s: utils.render_reference(s, width)),
               ('fast', 1, lambda s: utils.render_fast(s, width, workers=1)),
               ('fast', cores, lambda s: utils.render_fast(s, width, workers=cores))]
    print(f'{len(sketches)} real sketches ({", ".join(FLAGS.categories)}), {width}x{width}, '
          f'median of {FLAGS.runs} runs, {cores} cores, load average {os.getloadavg()[0]:.1f} before the runs')
    print(f'{"renderer":<10} {"processes":>9} {"median s":>9} {"sketches/s":>11} {"vs original":>12} '
          f'{"vs reference":>13} {"max |diff|":>10}')
    results = [(name, processes, *median_seconds(render, sketches, FLAGS.runs))
               for name, processes, render in configs]
    rate = {name: len(sketches) / seconds for name, _, seconds, _ in reversed(results)}  # first row of each name
    reference_images = results[1][3]
    for name, processes, seconds, images in results:
        diff = np.abs(images.astype(int) - reference_images).max()
        speed = len(sketches) / seconds
        print(f'{name:<10} {processes:>9} {seconds:>9.3f} {speed:>11.1f} {speed / rate["original"]:>11.1f}x '
              f'{speed / rate["reference"]:>12.1f}x {diff:>10}')

if __name__ == '__main__':
    app.run(main)
