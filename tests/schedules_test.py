"""The learning-rate schedule's values."""

import pytest

from tfgan_app.gan import schedules


def test_linear_decay_to_zero_golden_values():
  schedule = schedules.LinearDecayToZero(2e-4, total_steps=100, decay_start=0.5)
  values = [float(schedule(step)) for step in (0, 50, 75, 100, 120)]
  assert values == pytest.approx([2e-4, 2e-4, 1e-4, 0.0, 0.0])


def test_config_round_trip():
  schedule = schedules.LinearDecayToZero(1e-3, 10, 0.2)
  rebuilt = schedules.LinearDecayToZero(**schedule.get_config())
  assert float(rebuilt(5)) == pytest.approx(float(schedule(5)))
