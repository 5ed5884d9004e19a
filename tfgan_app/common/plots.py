"""Small raster plots for TensorBoard and PNG files, drawn with Pillow (no matplotlib needed).

Two kinds: points over a heat map (2-D toy data over D's decision surface) and curves over one
axis (1-D densities, D and D*). Both return uint8 RGB arrays [H, W, 3].
"""

from typing import Optional, Sequence, Tuple

import numpy as np
from PIL import Image
from PIL import ImageDraw

Colour = Tuple[int, int, int]

RED = (220, 40, 40)
GREEN = (20, 150, 60)
BLUE = (40, 80, 220)
ORANGE = (240, 140, 0)
BLACK = (0, 0, 0)
GREY = (130, 130, 130)
WHITE = (255, 255, 255)

_MARGIN = 6
_HEADER = 30  # Pixels above the plot area for the title and the legend.


def heat_colours(values: np.ndarray) -> np.ndarray:
  """Values in [0, 1] -> uint8 RGB: 0 dark blue, 0.5 white, 1 dark orange (diverging)."""
  values = np.clip(np.asarray(values, np.float64), 0.0, 1.0)[..., None]
  low, middle, high = (np.array(c, np.float64) for c in ((40, 60, 150), WHITE, (190, 90, 0)))
  below = middle + (low - middle) * (1.0 - 2.0 * values)
  above = middle + (high - middle) * (2.0 * values - 1.0)
  return np.where(values < 0.5, below, above).round().astype(np.uint8)


def _header(draw: ImageDraw.ImageDraw, title: str, legend: Sequence[Tuple[str, Colour]]):
  draw.text((_MARGIN, 2), title, fill=BLACK)
  x = _MARGIN
  for label, colour in legend:
    draw.rectangle([x, 18, x + 8, 26], fill=colour)
    draw.text((x + 11, 16), label, fill=BLACK)
    x += 11 + int(draw.textlength(label)) + 12


def points_over_heatmap(heat: np.ndarray, extent: Sequence[float],
                        point_sets: Sequence[Tuple[np.ndarray, Colour, str]],
                        title: str = "", heat_label: str = "") -> np.ndarray:
  """Scatter plots of 2-D points over a heat map.

  Args:
    heat: [rows, columns] values in [0, 1]; row 0 is the bottom of the plot (y = extent[2]).
    extent: (x_min, x_max, y_min, y_max) that the heat map covers; points outside are dropped.
    point_sets: (points [N, 2], colour, legend label), drawn in order (later on top).
    title: text above the plot.
    heat_label: legend text for the heat map's colours.

  Returns:
    uint8 [H, W, 3] with H = rows + header, W = columns + margins.
  """
  rows, columns = heat.shape
  x_min, x_max, y_min, y_max = extent
  canvas = Image.new("RGB", (columns + 2 * _MARGIN, rows + _HEADER + _MARGIN), WHITE)
  # Image rows grow downwards, y upwards.
  canvas.paste(Image.fromarray(heat_colours(heat[::-1])), (_MARGIN, _HEADER))
  draw = ImageDraw.Draw(canvas)
  legend = [(heat_label, (190, 90, 0))] if heat_label else []
  for points, colour, label in point_sets:
    points = np.asarray(points, np.float64).reshape(-1, 2)
    column = (points[:, 0] - x_min) / (x_max - x_min) * columns
    row = (y_max - points[:, 1]) / (y_max - y_min) * rows
    inside = (column >= 0) & (column < columns) & (row >= 0) & (row < rows)
    for c, r in zip(column[inside] + _MARGIN, row[inside] + _HEADER):
      draw.rectangle([c - 1, r - 1, c + 1, r + 1], fill=colour)
    legend.append((label, colour))
  draw.rectangle([_MARGIN - 1, _HEADER - 1, _MARGIN + columns, _HEADER + rows], outline=BLACK)
  _header(draw, title, legend)
  return np.asarray(canvas)


def curves(x: np.ndarray, series: Sequence[Tuple[np.ndarray, Colour, str]], title: str = "",
           y_range: Optional[Tuple[float, float]] = None, width: int = 512,
           height: int = 320) -> np.ndarray:
  """Line plots of several series over one x axis.

  Args:
    x: [N] increasing x values.
    series: (y [N], colour, legend label); NaNs break the line.
    title: text above the plot.
    y_range: (low, high) of the plot; default: the range of all series, from min(0, low).
    width, height: size of the plot area in pixels.

  Returns:
    uint8 [height + header + margin, width + margins, 3].
  """
  x = np.asarray(x, np.float64)
  values = np.concatenate([np.asarray(y, np.float64) for y, _, _ in series])
  if y_range is None:
    finite = values[np.isfinite(values)]
    y_range = (min(0.0, finite.min()), finite.max()) if finite.size else (0.0, 1.0)
  low, high = y_range
  high = high if high > low else low + 1.0
  canvas = Image.new("RGB", (width + 2 * _MARGIN, height + _HEADER + _MARGIN), WHITE)
  draw = ImageDraw.Draw(canvas)
  if low < 0.0 < high:
    zero = _HEADER + (high - 0.0) / (high - low) * height
    draw.line([(_MARGIN, zero), (_MARGIN + width, zero)], fill=GREY)
  columns = _MARGIN + (x - x[0]) / (x[-1] - x[0]) * (width - 1)
  for y, colour, _ in series:
    rows = _HEADER + (high - np.asarray(y, np.float64)) / (high - low) * (height - 1)
    rows = np.clip(rows, _HEADER - 1, _HEADER + height)
    finite = np.isfinite(rows)
    segment = []
    for column, row, ok in zip(columns, rows, finite):
      if ok:
        segment.append((float(column), float(row)))
      elif segment:
        draw.line(segment, fill=colour, width=2)
        segment = []
    if len(segment) > 1:
      draw.line(segment, fill=colour, width=2)
  draw.rectangle([_MARGIN - 1, _HEADER - 1, _MARGIN + width, _HEADER + height], outline=BLACK)
  _header(draw, title, [(label, colour) for _, colour, label in series])
  return np.asarray(canvas)
