"""Image grids and PNG files for sample images."""

import math
import os

import numpy as np
import tensorflow as tf

from tfgan_app.common import atomic


def grid(images: np.ndarray, columns: int = 0) -> np.ndarray:
  """Tiles uint8 images [N, H, W, C] into one image [rows*H, columns*W, C] (1px gaps).

  Args:
    images: uint8 [N, H, W, C].
    columns: images per row; 0 means a near-square grid.
  """
  images = np.asarray(images)
  count, height, width, channels = images.shape
  columns = columns or math.ceil(math.sqrt(count))
  rows = math.ceil(count / columns)
  canvas = np.zeros(((height + 1) * rows - 1, (width + 1) * columns - 1, channels), np.uint8)
  for index, image in enumerate(images):
    row, column = divmod(index, columns)
    canvas[row * (height + 1):row * (height + 1) + height,
           column * (width + 1):column * (width + 1) + width] = image
  return canvas


def write_png(path: str, image: np.ndarray) -> None:
  """Writes uint8 [H, W, C] as a PNG, atomically (no half-written file under `path`)."""
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  with atomic.replacing(path) as staging:
    tf.io.write_file(staging, tf.io.encode_png(image))
