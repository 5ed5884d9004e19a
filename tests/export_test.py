"""The exported SavedModel: TF Serving's restore path, exact round trip, refusal of NaNs."""

import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfgan_app import export
from tfgan_app import models


@pytest.fixture(scope="module")
def generator():
  keras.utils.set_random_seed(1)
  model = models.build_generator("dcgan", 8, (28, 28, 1), filters=8)
  # Move the BatchNorm statistics off their initial values so the export must carry them.
  model(tf.random.stateless_normal([32, 8], seed=[1, 1]), training=True)
  return model


def _saved_model_cli():
  path = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
  return path if os.path.exists(path) else shutil.which("saved_model_cli")


def test_layout_metadata_and_exact_round_trip(tmp_path, generator):
  path = export.export_generator(generator, 8, str(tmp_path), "dcgan", 120,
                                 {"latent_dim": 8, "step": 120})
  assert path == os.path.join(str(tmp_path), "dcgan", "120")
  assert sorted(os.listdir(tmp_path / "dcgan")) == ["120"]  # No staging directory left.
  assert export.read_metadata(path) == {"latent_dim": 8, "step": 120}
  latents = tf.random.stateless_normal([5, 8], seed=[4, 2])
  loaded = tf.saved_model.load(path).signatures[export.SERVING_SIGNATURE]
  assert set(loaded.structured_outputs) == {export.IMAGES}
  served = loaded(**{export.LATENTS: latents})[export.IMAGES].numpy()
  expected = export.to_uint8(generator(latents, training=False)).numpy()
  assert served.dtype == np.uint8 and served.shape == (5, 28, 28, 1)
  np.testing.assert_array_equal(served, expected)


def test_serving_default_runs_under_the_tf1_loader_tf_serving_uses(tmp_path, generator):
  # saved_model_cli run restores variables through the session-based loader, the path on
  # which Keras 3 attribute-tracked exports fail under TF Serving (shared/notes/stack.md §3).
  path = export.export_generator(generator, 8, str(tmp_path), "dcgan", 1, {})
  latents = np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32)
  np.save(tmp_path / "latents.npy", latents)
  result = subprocess.run(
      [_saved_model_cli(), "run", "--dir", path, "--tag_set", "serve", "--signature_def",
       export.SERVING_SIGNATURE, "--inputs", f"{export.LATENTS}={tmp_path / 'latents.npy'}",
       "--outdir", str(tmp_path / "out")],
      capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr[-3000:]
  served = np.load(tmp_path / "out" / f"{export.IMAGES}.npy")
  expected = export.to_uint8(generator(latents, training=False)).numpy()
  np.testing.assert_array_equal(served, expected)


def test_to_uint8_rounds_and_clips():
  values = tf.constant([-2.0, -1.0, -0.999, 0.0, 1.0, 3.0])
  np.testing.assert_array_equal(export.to_uint8(values).numpy(), [0, 0, 0, 128, 255, 255])


def test_nan_generator_is_refused_and_nothing_is_written(tmp_path):
  broken = models.build_generator("dcgan", 8, (28, 28, 1), filters=8)
  kernel = broken.project.kernel
  kernel.assign(np.full(kernel.shape, np.nan, np.float32))
  with pytest.raises(export.ExportError, match="NaN or Inf"):
    export.export_generator(broken, 8, str(tmp_path), "dcgan", 5, {})
  assert not os.path.exists(tmp_path / "dcgan" / "5")


def test_existing_version_is_never_overwritten(tmp_path, generator):
  path = export.export_generator(generator, 8, str(tmp_path), "dcgan", 7, {"first": True})
  export.export_generator(generator, 8, str(tmp_path), "dcgan", 7, {"first": False})
  assert export.read_metadata(path) == {"first": True}
