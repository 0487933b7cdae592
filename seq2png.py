"""Rasterise sketch-rnn stroke-3 data into <category>_png.npz (uint8 greyscale W x W images,
docs/model.md#rasterisation).

  python3 seq2png.py --input_dir=data --output_dir=data --categories=bee,bus
"""
import program  # first: it sets TensorFlow's start-up switches

# isort: split
import os

from absl import flags

import dataset
import hyperparams
import raster
import utils


def define_flags():
    flags.DEFINE_string('input_dir', 'data', 'Directory holding the stroke-3 files <category>.npz.')
    flags.DEFINE_string('output_dir', None, 'Directory for <category>_png.npz (default: --input_dir, where train.py '
                        'looks for them).')
    flags.DEFINE_integer('png_width', 48, 'Side of the square output images in pixels.', lower_bound=1)
    flags.DEFINE_multi_string('categories', None, "Categories to convert: repeat the flag, or give bee,bus or "
                              "{'bee','bus'} (default: every <category>.npz in --input_dir).")
    flags.DEFINE_enum('renderer', 'fast', ['fast', 'reference'], 'fast: cairo, all cores; reference: the original '
                      'svgwrite -> cairosvg -> PIL path (same images, 20-50x slower).')
    flags.DEFINE_integer('workers', 0, 'Threads of the fast renderer (0: one per core).', lower_bound=0)


def main(cfg):
    categories = (hyperparams.parse_categories(cfg.categories) if cfg.categories
                  else dataset.available_categories(cfg.input_dir))
    if not categories:
        raise utils.UserError(f'no <category>.npz files in {cfg.input_dir}; pass --input_dir or --categories')
    for c in categories:
        if not os.path.isfile(dataset.category_npz_path(cfg.input_dir, c)):
            raise utils.UserError(f'missing category file {dataset.category_npz_path(cfg.input_dir, c)}')
    output_dir = cfg.output_dir or cfg.input_dir
    utils.make_output_dir(output_dir, '--output_dir')
    for c in categories:
        path = raster.write_png_npz(cfg.input_dir, output_dir, c, width=cfg.png_width, renderer=cfg.renderer,
                                   workers=cfg.workers or None, progress=True)
        print(f'wrote {path}')


if __name__ == '__main__':
    program.run(main, define_flags)
