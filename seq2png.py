"""Rasterise sketch-rnn stroke-3 data into <category>_png.npz (uint8 greyscale W x W images,
docs/model.md#rasterisation).

  python3 seq2png.py --input_dir=data --output_dir=data --categories=bee,bus
"""
import os

from absl import app, flags

import dataset
import hyperparams
import raster
import utils


def define_flags():
    """The command-line flags, defined only when run as a program, so that tests and other programs can import
    this module beside theirs."""
    flags.DEFINE_string('input_dir', 'data', 'Directory holding the stroke-3 files <category>.npz.')
    flags.DEFINE_string('output_dir', None, 'Directory for <category>_png.npz (default: --input_dir, where train.py '
                        'looks for them).')
    flags.DEFINE_integer('png_width', 48, 'Side of the square output images in pixels.', lower_bound=1)
    flags.DEFINE_multi_string('categories', None, "Categories to convert: repeat the flag, or give bee,bus or "
                              "{'bee','bus'} (default: every <category>.npz in --input_dir).")
    flags.DEFINE_enum('renderer', 'fast', ['fast', 'reference'], 'fast: cairo, all cores; reference: the original '
                      'svgwrite -> cairosvg -> PIL path (same images, 20-50x slower).')
    flags.DEFINE_integer('workers', 0, 'Threads of the fast renderer (0: one per core).', lower_bound=0)


FLAGS = flags.FLAGS


@utils.cli_main
def main(argv):
    if len(argv) > 1:
        raise utils.UserError(f"unexpected arguments: {' '.join(argv[1:])}")
    categories = (hyperparams.parse_categories(FLAGS.categories) if FLAGS.categories
                  else dataset.available_categories(FLAGS.input_dir))
    if not categories:
        raise utils.UserError(f'no <category>.npz files in {FLAGS.input_dir}; pass --input_dir or --categories')
    for c in categories:
        if not os.path.isfile(dataset.category_npz_path(FLAGS.input_dir, c)):
            raise utils.UserError(f'missing category file {dataset.category_npz_path(FLAGS.input_dir, c)}')
    output_dir = FLAGS.output_dir or FLAGS.input_dir
    utils.make_output_dir(output_dir, '--output_dir')
    for c in categories:
        path = raster.write_png_npz(FLAGS.input_dir, output_dir, c, FLAGS.png_width, FLAGS.renderer,
                                   workers=FLAGS.workers or None, progress=True)
        print(f'wrote {path}')


if __name__ == '__main__':
    define_flags()
    app.run(main)
