"""Is the fast renderer much faster than the original path, for the same images?

Renders the same bundled real sketches with `original` (what the original seq2png.py does: one SVG file per
sketch written to disk, cairosvg converts each file to a PNG file, the PNG paths are put in order by the original's
O(n^2) pairwise sort and read back with PIL one by one into a growing array; one process),
`reference` (the same svgwrite -> cairosvg -> PIL path, in memory) and `fast` (cairo, one thread and one per
core). The renderers take turns, run after run, so that a change in the machine's load hits them alike. Prints
sketches/s and CPU seconds (medians of --runs after a warm-up), the speed-ups over `original` and `reference`
measured in the same run, and the largest pixel difference to the reference images. On a shared machine the
kernel's autogroup scheduler gives each session an equal share of the cores, so one thread per core only beats
one thread when the cores are idle enough; the CPU seconds show the cost per renderer whatever the load.

  python3 bench/seq2png_bench.py [--num_sketches=2000 --runs=3]
  python3 bench/seq2png_bench.py --num_sketches=10000 --runs=1   # the original's O(n^2) parts start to show
"""
import glob
import os
import re
import statistics
import sys
import tempfile
import time

import cairosvg
import numpy as np
from absl import flags
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import dataset  # noqa: E402
import program  # noqa: E402
import raster  # noqa: E402


def define_flags():
    flags.DEFINE_string('data_dir', 'data', 'Directory with the <category>.npz files.')
    flags.DEFINE_list('categories', ['bee', 'bus', 'car', 'cat', 'flower'], 'Categories to take sketches from.')
    flags.DEFINE_integer('num_sketches', 2000, 'Sketches per run: the bundled ones in order, repeated beyond 2,000.',
                         lower_bound=1)
    flags.DEFINE_integer('runs', 3, 'Timed runs per renderer, after one warm-up run on a few sketches.', lower_bound=1)
    flags.DEFINE_integer('png_width', 48, 'Image side in pixels.', lower_bound=1)


def bundled_sketches(data_dir, categories, count):
    sketches = []
    for c in categories:
        strokes = dataset.load_strokes_npz(dataset.category_npz_path(data_dir, c))
        sketches += strokes['train'] + strokes['valid'] + strokes['test']
    picks = np.arange(count) % len(sketches)   # beyond the 2,000 bundled sketches, they repeat
    return [sketches[i] for i in picks]


def sort_by_trailing_number(paths):
    """The original's path sort: the index is the last integer in the path, ordered by pairwise swaps (O(n^2))."""
    paths = list(paths)
    keys = [int(re.findall(r'\d+', p)[-1]) for p in paths]
    for i in range(len(keys)):
        for j in range(i + 1, len(keys)):
            if keys[i] > keys[j]:
                keys[i], keys[j] = keys[j], keys[i]
                paths[i], paths[j] = paths[j], paths[i]
    return paths


def render_original(sketches, width):
    """What the original seq2png.py does: svg/<i>.svg files -> cairosvg -> png/<i>.png files, glob, the O(n^2) path
    sort, then PIL 'L' images appended one by one with np.concatenate (O(n^2) copying)."""
    with tempfile.TemporaryDirectory() as tmp:
        for i, sketch in enumerate(sketches):
            svg_path = os.path.join(tmp, f'{i}.svg')
            with open(svg_path, 'w') as f:
                f.write(raster.strokes_to_svg(sketch, width))
            cairosvg.svg2png(url=svg_path, write_to=os.path.join(tmp, f'{i}.png'))
        images = None
        for path in sort_by_trailing_number(glob.glob(os.path.join(tmp, '*.png'))):
            image = np.asarray(Image.open(path).convert('L'))[None]
            images = image if images is None else np.concatenate([images, image])
        return images


def timed_runs(renders, sketches, runs):
    """Median wall and CPU seconds of each renderer, the renderers taking turns; and each one's last images."""
    for render in renders:
        render(sketches[:20])  # warm-up: imports, caches
    walls, cpus, images = [[] for _ in renders], [[] for _ in renders], [None] * len(renders)
    for _ in range(runs):
        for k, render in enumerate(renders):
            wall, cpu = time.perf_counter(), time.process_time()
            images[k] = render(sketches)
            walls[k].append(time.perf_counter() - wall)
            cpus[k].append(time.process_time() - cpu)
    return [statistics.median(t) for t in walls], [statistics.median(t) for t in cpus], images


def main(cfg):
    sketches = bundled_sketches(cfg.data_dir, cfg.categories, cfg.num_sketches)
    width, cores = cfg.png_width, os.cpu_count() or 1
    configs = [('original', 1, lambda s: render_original(s, width)),
               ('reference', 1, lambda s: raster.render_reference(s, width)),
               ('fast', 1, lambda s: raster.render_fast(s, width, workers=1)),
               ('fast', cores, lambda s: raster.render_fast(s, width, workers=cores))]
    print(f'{len(sketches)} real sketches ({", ".join(cfg.categories)}), {width}x{width}, '
          f'median of {cfg.runs} runs, {cores} cores, load average {os.getloadavg()[0]:.1f} before the runs')
    walls, cpus, images = timed_runs([render for _, _, render in configs], sketches, cfg.runs)
    print(f'{"renderer":<10} {"threads":>7} {"median s":>9} {"sketches/s":>11} {"vs original":>12} '
          f'{"vs reference":>13} {"CPU s":>7} {"CPU vs original":>16} {"max |diff|":>10}')
    for (name, threads, _), wall, cpu, image in zip(configs, walls, cpus, images):
        diff = np.abs(image.astype(int) - images[1]).max()
        print(f'{name:<10} {threads:>7} {wall:>9.3f} {len(sketches) / wall:>11.1f} {walls[0] / wall:>11.1f}x '
              f'{walls[1] / wall:>12.1f}x {cpu:>7.3f} {cpus[0] / cpu:>15.1f}x {diff:>10}')
    print(f'load average {os.getloadavg()[0]:.1f} after the runs')


if __name__ == '__main__':
    program.run(main, define_flags)
