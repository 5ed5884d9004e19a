"""Spectral normalisation (models/spectral_norm.py): the power iteration against numpy and the
SVD, W / sigma in the forward pass, gradients into the raw kernel through the fast convolutions,
u stored only in training, checkpointed, exact resume, one replica against two, the flag."""

import json
import os

from absl import flags
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfgan_app.common import config as config_lib
from tfgan_app.gan import build as gan_build
from tfgan_app.models import registry
from tfgan_app.models import spectral_norm
from tfgan_app.performance import flops
from tfgan_app.runs import checkpoints
from tfgan_app.runs import workdir as workdir_lib
from tfgan_app.training import flags as app_flags
from tfgan_app.training import loop as train
from conftest import (checkpoint_values, run_script_ok, straight_and_resumed_checkpoints,
                      tiny_config)


def _numpy_power_iteration(matrix, u, iterations):
  """Miyato et al. 2018, Algorithm 1, in float64: returns (sigma, u) after `iterations` steps."""
  matrix, u = matrix.astype(np.float64), u.astype(np.float64)
  sigma = None
  for _ in range(iterations):
    v = u @ matrix.T
    v /= np.linalg.norm(v)
    u = v @ matrix
    u /= np.linalg.norm(u)
    sigma = float((v @ matrix @ u.T)[0, 0])
  return sigma, u


def _built(layer, input_shape):
  layer(tf.zeros([1, *input_shape]))
  layer.example_shape = tuple(input_shape)
  return layer


LAYERS = {
    "dense": lambda: _built(spectral_norm.SpectralDense(6, name="dense"), [10]),
    # The single-channel image layer runs over its stride phases (phase_conv).
    "phase_conv": lambda: _built(spectral_norm.SpectralPhaseConv2D(
        5, 4, strides=2, padding="same", name="phase"), [8, 8, 1]),
    # Its kernel gradient is a custom gradient (strided_conv).
    "strided_conv": lambda: _built(spectral_norm.SpectralStridedConv2D(
        5, 3, strides=2, padding="same", name="strided"), [8, 8, 4]),
}


@pytest.mark.parametrize("kind", ["dense", "strided_conv"])
def test_power_iteration_matches_numpy_and_converges_to_the_largest_singular_value(kind):
  layer = LAYERS[kind]()
  kernel = layer.kernel.numpy()
  matrix = kernel.reshape(-1, kernel.shape[-1])  # [fan_in, units]
  u0 = layer.spectral_u.numpy()
  # Three training passes store u_3; sigma() is one more iteration from it.
  for _ in range(3):
    layer.normalized_kernel(training=True)
  expected_sigma, _ = _numpy_power_iteration(matrix, u0, 4)
  _, u3 = _numpy_power_iteration(matrix, u0, 3)
  np.testing.assert_allclose(layer.spectral_u.numpy(), u3, rtol=1e-5, atol=1e-6)
  assert float(layer.sigma()) == pytest.approx(expected_sigma, rel=1e-5)
  # Many iterations: the largest singular value.
  u = tf.constant(u0)
  for _ in range(300):
    _, sigma, u = spectral_norm.power_iteration(tf.constant(kernel), u)
  largest = np.linalg.svd(matrix.astype(np.float64), compute_uv=False)[0]
  assert float(sigma) == pytest.approx(largest, rel=1e-4)
  assert _numpy_power_iteration(matrix, u0, 300)[0] == pytest.approx(largest, rel=1e-6)


@pytest.mark.parametrize("kind", ["dense", "phase_conv", "strided_conv"])
def test_forward_pass_uses_w_over_sigma_and_gradients_reach_the_raw_kernel(kind):
  layer = LAYERS[kind]()
  layer.bias.assign(tf.random.stateless_normal(layer.bias.shape, seed=[1, 2]))
  shape = [3, *layer.example_shape]
  inputs = tf.random.stateless_normal(shape, seed=[3, 4])
  kernel = layer.kernel.numpy()
  matrix = kernel.reshape(-1, kernel.shape[-1])
  u0 = layer.spectral_u.numpy()
  v = u0 @ matrix.T
  v /= np.linalg.norm(v)
  u1 = v @ matrix
  u1 /= np.linalg.norm(u1)

  def reference(raw_kernel):
    # Plain TensorFlow ops, u and v the constants of this pass.
    sigma = tf.reshape(tf.constant(v) @ tf.reshape(raw_kernel, matrix.shape)
                       @ tf.constant(u1.T), [])
    normalized = raw_kernel / sigma
    if kind == "dense":
      linear = inputs @ normalized
    else:
      linear = tf.nn.conv2d(inputs, normalized, 2, "SAME")
    return linear + layer.bias

  with tf.GradientTape() as tape:
    outputs = layer(inputs, training=True)
    loss = tf.reduce_sum(outputs ** 2)
  got_gradient = tape.gradient(loss, layer.kernel)
  raw = tf.constant(kernel)
  with tf.GradientTape() as tape:
    tape.watch(raw)
    expected = reference(raw)
    expected_loss = tf.reduce_sum(expected ** 2)
  np.testing.assert_allclose(outputs.numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(got_gradient.numpy(), tape.gradient(expected_loss, raw).numpy(),
                             rtol=1e-4, atol=1e-5)
  sigma = float((v @ matrix @ u1.T)[0, 0])
  # W / sigma has spectral norm ~1 (sigma is the 1-step estimate, at most the true one).
  assert np.linalg.svd(matrix / sigma, compute_uv=False)[0] >= 1.0 - 1e-6
  np.testing.assert_allclose(layer.spectral_u.numpy(), u1, rtol=1e-5, atol=1e-6)


def test_the_gradient_through_sigma_matches_finite_differences():
  rng = np.random.default_rng(0)
  inputs = rng.normal(size=(4, 5))
  kernel = rng.normal(size=(5, 3))
  u = rng.normal(size=(1, 3))
  v = u @ kernel.T
  v /= np.linalg.norm(v)
  u1 = v @ kernel
  u1 /= np.linalg.norm(u1)

  def loss(w):  # u and v held constant, as the stop_gradient makes them
    return np.sum((inputs @ (w / float((v @ w @ u1.T)[0, 0]))) ** 2)

  step = 1e-6
  numeric = np.zeros_like(kernel)
  for index in np.ndindex(*kernel.shape):
    delta = np.zeros_like(kernel)
    delta[index] = step
    numeric[index] = (loss(kernel + delta) - loss(kernel - delta)) / (2 * step)
  raw = tf.constant(kernel, tf.float64)
  with tf.GradientTape() as tape:
    tape.watch(raw)
    normalized, _, _ = spectral_norm.power_iteration(raw, tf.constant(u, tf.float64))
    value = tf.reduce_sum((tf.constant(inputs) @ normalized) ** 2)
  np.testing.assert_allclose(tape.gradient(value, raw).numpy(), numeric, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("architecture, shape, kernel_size", [
    ("dcgan", (28, 28, 1), 4), ("mlp", (28, 28, 1), 4), ("tf_tutorial", (28, 28, 1), 5)])
def test_u_is_stored_only_in_training_and_the_raw_kernels_stay_trainable(architecture, shape,
                                                                         kernel_size):
  plain = registry.build_discriminator(architecture, shape, 8, kernel_size=kernel_size,
                                       hidden_units=(16, 16))
  d = registry.build_discriminator(architecture, shape, 8, kernel_size=kernel_size,
                                   hidden_units=(16, 16), spectral_norm=True)
  normalized = [layer for layer in d.layers if hasattr(layer, "spectral_u")]
  assert len(normalized) == 3  # Two hidden layers and the logit layer.
  assert not any(layer.spectral_u.trainable for layer in normalized)
  assert {v.path.split("/")[-1] for v in d.trainable_variables} == {"kernel", "bias"}
  assert len(d.trainable_variables) == 6
  if architecture == "dcgan":  # SNGAN's D: no BatchNorm, a bias on every convolution.
    assert any("bn" in v.path for v in plain.variables)
    assert not any("bn" in v.path for v in d.variables)
  images = tf.random.stateless_uniform([4, *shape], seed=[5, 6], minval=-1, maxval=1)
  before = [layer.spectral_u.numpy() for layer in normalized]
  d(images)
  d(images, training=False)
  for layer, value in zip(normalized, before):
    np.testing.assert_array_equal(layer.spectral_u.numpy(), value)
  d(images, training=True)
  after = [layer.spectral_u.numpy() for layer in normalized]
  assert all(not np.array_equal(a, b) for a, b in zip(after, before))
  # features() (feature matching) reaches the layers' training mode too.
  d.features(images, training=True)
  assert not np.array_equal(normalized[0].spectral_u.numpy(), after[0])
  # FLOPs are counted as for the plain D (the power iteration is per batch, like Adam).
  assert (flops.model_flops(d, shape).layer_flops
          == flops.model_flops(plain, shape).layer_flops)


def test_mixed_bfloat16_normalises_in_float32():
  keras.mixed_precision.set_global_policy("mixed_bfloat16")
  try:
    layer = _built(spectral_norm.SpectralStridedConv2D(5, 3, strides=2, padding="same",
                                                       name="mixed"), [8, 8, 4])
    u0 = layer.spectral_u.numpy()
    outputs = layer(tf.ones([2, 8, 8, 4]), training=True)
  finally:
    keras.mixed_precision.set_global_policy("float32")
  assert outputs.dtype == tf.bfloat16
  assert layer.kernel.dtype == "float32" and layer.spectral_u.dtype == "float32"
  # float32 agrees with float64 to ~1e-7; a bfloat16 kernel would be off by ~1e-3.
  _, u1 = _numpy_power_iteration(layer.kernel.numpy().reshape(-1, 5), u0, 1)
  np.testing.assert_allclose(layer.spectral_u.numpy(), u1, rtol=1e-5, atol=1e-6)


def test_resume_with_spectral_norm_is_exact_and_u_is_in_the_checkpoint(tmp_path, data_dir):
  straight = tiny_config(tmp_path / "straight", data_dir, spectral_norm=True, loss="hinge",
                         export=False)
  expected, got = straight_and_resumed_checkpoints(straight)
  u_names = [name for name in expected if "spectral_u" in name]
  assert len(u_names) == 3 and all(name.startswith("discriminator/") for name in u_names)
  assert set(expected) == set(got)
  for name in expected:
    np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
  # u moved from its start (the fixed-seed vector a fresh model starts from).
  keras.utils.set_random_seed(0)
  fresh = gan_build.build_gan(straight, (28, 28, 1))
  fresh_u = checkpoints.make_checkpoint(fresh).save(str(tmp_path / "fresh" / "ckpt"))
  start = checkpoint_values(fresh_u)
  for name in u_names:
    assert not np.allclose(start[name], expected[name]), name


def test_two_replicas_store_the_u_and_weights_of_one():
  # A short run with R1 (D's double backpropagation updates u too), then a layer updating u
  # inside tf.cond in replica context, as lazy R1 would call D.
  script = """
import os, sys, tempfile
sys.path.insert(0, "tests")
import numpy as np, tensorflow as tf
from tfgan_app.hardware import distribute
strategy = distribute.build_strategy("mirrored", num_cpu_replicas=2)
from tfgan_app.models import spectral_norm
from tfgan_app.training import loop as train
from conftest import checkpoint_values, tfds_data_dir, tiny_config
root = tempfile.mkdtemp()
values = {}
for name, extra in (("one", dict(strategy="default")),
                    ("two", dict(strategy="mirrored", num_cpu_replicas=2))):
  # G's BatchNorm over the global batch, as one replica sees it.
  config = tiny_config(os.path.join(root, name), tfds_data_dir(), spectral_norm=True,
                       sync_batchnorm=True, loss="hinge", r1_gamma=1.0, train_steps=3,
                       checkpoint_every=3, log_every=1, sample_every=3, export=False, **extra)
  train.train_and_export(config)
  path = tf.train.latest_checkpoint(os.path.join(config.workdir, "checkpoints"))
  # Everything: u, weights (saved under the optimizers' tracked variables), Adam's slots.
  values[name] = checkpoint_values(path)
one, two = values["one"], values["two"]
assert set(one) == set(two) and sum("spectral_u" in key for key in one) == 3, sorted(one)
for key in one:
  relative = np.linalg.norm(two[key] - one[key]) / (np.linalg.norm(one[key]) or 1.0)
  assert relative <= 1e-5, (key, relative)

with strategy.scope():
  layer = spectral_norm.SpectralStridedConv2D(4, 3, strides=2, padding="same", name="c")
  layer(tf.zeros([1, 8, 8, 3]))
u0 = layer.spectral_u.numpy()

@tf.function
def step(images, flag):
  def replica_fn(images):
    return tf.cond(flag, lambda: tf.reduce_sum(layer(images, training=True)),
                   lambda: tf.constant(0.0))
  return strategy.run(replica_fn, args=(images,))

step(tf.ones([2, 8, 8, 3]), tf.constant(True))
expected = spectral_norm.power_iteration(tf.constant(layer.kernel.numpy()), tf.constant(u0))[2]
for local in strategy.experimental_local_results(layer.spectral_u.value):
  np.testing.assert_allclose(local.numpy(), expected.numpy(), rtol=1e-6)
saved = tf.train.Checkpoint(layer=layer).save(os.path.join(root, "layer", "ckpt"))
np.testing.assert_allclose(checkpoint_values(saved)["layer/spectral_u/.ATTRIBUTES/VARIABLE_VALUE"],
                           expected.numpy(), rtol=1e-6)
print("ok")
"""
  run_script_ok(script)


def test_flag_parses_into_the_config_and_old_flagfiles_mean_off(tmp_path):
  flags.FLAGS.unparse_flags()
  try:
    flags.FLAGS(["train", "--spectral_norm"])
    assert app_flags.config_from_flags().spectral_norm is True
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["train"])
    assert app_flags.config_from_flags().spectral_norm is False
  finally:
    flags.FLAGS.unparse_flags()
  config = config_lib.TrainConfig(spectral_norm=True)
  path = tmp_path / "flags.cfg"
  path.write_text(config.to_flagfile())
  assert "--spectral_norm" in path.read_text().splitlines()
  assert config_lib.TrainConfig.from_flagfile(str(path)).spectral_norm is True
  path.write_text("--train_steps=3\n")  # A flags.cfg from before the flag.
  assert config_lib.TrainConfig.from_flagfile(str(path)).spectral_norm is False


def test_resume_with_another_setting_is_refused_and_old_workdirs_resume(tmp_path):
  plain = tiny_config(tmp_path, None)
  spec = workdir_lib.run_spec(plain, (28, 28, 1))
  assert spec["spectral_norm"] is False
  old = {key: value for key, value in spec.items() if key != "spectral_norm"}
  (tmp_path / workdir_lib.RUN_SPEC).write_text(json.dumps(old))  # a run from before the flag
  workdir_lib.check_workdir(plain, spec)
  normalized = plain.with_updates(spectral_norm=True)
  with pytest.raises(workdir_lib.ConfigError,
                     match=r"different model \(spectral_norm: checkpoint False, flags True\)"):
    workdir_lib.check_workdir(normalized, workdir_lib.run_spec(normalized, (28, 28, 1)))


def test_resnet_discriminator_normalises_every_convolution_and_the_logit():
  shape = (32, 32, 3)
  d = registry.build_discriminator("resnet", shape, 4, spectral_norm=True)
  plain = registry.build_discriminator("resnet", shape, 4)
  normalized = [layer for layer in d._flatten_layers() if hasattr(layer, "spectral_u")]
  kernels = [v for v in plain.trainable_variables if v.path.endswith("kernel")]
  assert len(normalized) == len(kernels)  # Every layer with a kernel: SNGAN's D.
  assert len(d.trainable_variables) == len(plain.trainable_variables)
  images = tf.random.stateless_uniform([2, *shape], seed=[1, 2], minval=-1, maxval=1)
  before = [layer.spectral_u.numpy() for layer in normalized]
  d(images, training=False)
  assert all(np.array_equal(layer.spectral_u.numpy(), value)
             for layer, value in zip(normalized, before))
  d(images, training=True)
  assert all(not np.array_equal(layer.spectral_u.numpy(), value)
             for layer, value in zip(normalized, before))
  # Each normalised layer computes with W / sigma(W): its kernel's largest singular value is
  # about 1 after many power iterations from its u.
  layer = normalized[1]
  for _ in range(100):
    layer.normalized_kernel(training=True)
  matrix = np.reshape(layer.normalized_kernel().numpy(), [-1, layer.kernel.shape[-1]])
  assert np.linalg.svd(matrix, compute_uv=False)[0] == pytest.approx(1.0, rel=1e-3)
