"""Raster plots: sizes, where the colours land, and the heat map's colour scale."""

import numpy as np

from tfgan_app.common import plots


def test_heat_colours_run_from_blue_through_white_to_orange():
  colours = plots.heat_colours(np.array([0.0, 0.5, 1.0, -3.0, 7.0]))
  assert colours.dtype == np.uint8 and colours.shape == (5, 3)
  assert tuple(colours[1]) == plots.WHITE
  assert colours[0, 2] > colours[0, 0] and colours[2, 0] > colours[2, 2]  # Blue / orange.
  np.testing.assert_array_equal(colours[3], colours[0])  # Clipped to [0, 1].
  np.testing.assert_array_equal(colours[4], colours[2])


def test_points_land_where_their_coordinates_say():
  heat = np.zeros((100, 200))
  heat[:50] = 1.0  # Bottom half (row 0 is y = y_min): D = 1.
  picture = plots.points_over_heatmap(
      heat, (0.0, 2.0, 0.0, 1.0), [(np.array([[0.5, 0.75], [5.0, 5.0]]), plots.RED, "red")],
      title="t", heat_label="D")
  assert picture.dtype == np.uint8 and picture.shape == (100 + 30 + 6, 200 + 12, 3)
  plot_area = picture[30:130, 6:206]
  # The bottom half is orange (D = 1), the top half blue (D = 0).
  assert plot_area[75, 150, 0] > plot_area[75, 150, 2]
  assert plot_area[25, 150, 2] > plot_area[25, 150, 0]
  # (0.5, 0.75) -> column 50, row 25 from the top; the point outside the extent is dropped.
  np.testing.assert_array_equal(plot_area[25, 50], plots.RED)
  assert np.sum(np.all(plot_area == plots.RED, axis=-1)) == 9  # One 3x3 marker.


def test_curves_draw_each_series_in_its_colour():
  x = np.linspace(0.0, 1.0, 50)
  picture = plots.curves(x, [(x, plots.BLUE, "rising"), (np.full(50, np.nan), plots.RED, "nan")],
                         title="line", y_range=(0.0, 1.0), width=200, height=100)
  assert picture.shape == (100 + 30 + 6, 200 + 12, 3)
  blue = np.argwhere(np.all(picture[30:130] == plots.BLUE, axis=-1))
  assert len(blue) > 100
  # A rising line: pixels further right sit higher (smaller row).
  left, right = blue[blue[:, 1] < 60], blue[blue[:, 1] > 150]
  assert left[:, 0].mean() > right[:, 0].mean()
  # The all-NaN series draws nothing in the plot area (its legend swatch is in the header).
  assert not np.any(np.all(picture[30:130] == plots.RED, axis=-1))
