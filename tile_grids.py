"""Pictures of sketch tiles: rows of equal-size grey tiles with a label left of every row and above every column,
written as PNG files (the galleries, grids and pairs of control.py).
"""
import functools

import numpy as np
from PIL import Image, ImageDraw, ImageFont

import sampling
import utils

FONT_SIZE = 14
GAP = 2               # pixels between tiles
MARGIN = 6            # pixels around a label


@functools.cache
def font():
    return ImageFont.load_default(size=FONT_SIZE)


def text_width(text):
    left, _, right, _ = font().getbbox(text)
    return right - left


def tile_grid(images, columns):
    """Rows of `columns` tiles (the last row padded with white tiles) for sampling.strip_image."""
    white = np.full_like(images[0], 255)
    tiles = list(images) + [white] * (-len(images) % columns)
    return [tiles[start:start + columns] for start in range(0, len(tiles), columns)]


def labelled_grid(rows, row_labels=None, column_labels=None):
    """RGB uint8 picture of rows of equal-size uint8 [W, W] tiles with a label left of every row and above every
    column (either may be None)."""
    width = rows[0][0].shape[0]
    grid = sampling.strip_image(rows, GAP)
    left = max(map(text_width, row_labels)) + 2 * MARGIN if row_labels else 0
    top = FONT_SIZE + 2 * MARGIN if column_labels else 0
    canvas = Image.new('RGB', (left + grid.shape[1], top + grid.shape[0]), 'white')
    canvas.paste(Image.fromarray(grid, 'L').convert('RGB'), (left, top))
    draw = ImageDraw.Draw(canvas)
    for r, label in enumerate(row_labels or ()):
        draw.text((MARGIN, top + r * (width + GAP) + width // 2), label, fill='black', font=font(), anchor='lm')
    for c, label in enumerate(column_labels or ()):
        draw.text((left + c * (width + GAP) + width // 2, top // 2), label, fill='black', font=font(), anchor='mm')
    return np.asarray(canvas)


def write_png(path, pixels):
    utils.atomic_write_bytes(path, sampling.png_bytes(pixels))
    return path
