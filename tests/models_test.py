"""Shapes, value ranges and DCGAN structure of the generator and discriminator."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfgan_app.models import dcgan
from tfgan_app.models import mlp
from tfgan_app.models import registry as models
from tfgan_app.performance import flops
from tfgan_app.performance import tutorial_baseline


@pytest.mark.parametrize("size,channels", [(28, 1), (32, 3), (64, 3)])
def test_generator_and_discriminator_shapes_and_ranges(size, channels):
  generator, discriminator = models.build_models(
      "dcgan", latent_dim=16, image_shape=(size, size, channels), g_filters=8, d_filters=8)
  latents = tf.random.stateless_normal([5, 16], seed=[1, 2]) * 10.0
  images = generator(latents, training=False)
  assert images.shape == (5, size, size, channels)
  assert images.dtype == tf.float32
  values = images.numpy()
  assert values.min() >= -1.0 and values.max() <= 1.0
  logits = discriminator(images, training=False)
  assert logits.shape == (5, 1)
  # Logits, not probabilities: an unbounded score.
  big = discriminator(tf.fill([2, size, size, channels], 30.0), training=False).numpy()
  assert np.all(np.isfinite(big))


def test_upsampling_plan():
  assert dcgan.upsampling_plan(28) == (7, 2)
  assert dcgan.upsampling_plan(32) == (4, 3)
  assert dcgan.upsampling_plan(64) == (4, 4)
  for bad in (0, -4, 27, 14):
    with pytest.raises(ValueError, match="image_size"):
      dcgan.upsampling_plan(bad)


def test_dcgan_structure():
  generator, discriminator = models.build_models("dcgan", 16, (32, 32, 3), 8, 8)
  # No BatchNorm on G's output layer: the last layer is the image convolution, then tanh.
  assert generator.layers[-1].name == "to_image"
  assert generator.to_image.filters == 3
  assert not any(isinstance(layer, keras.layers.MaxPooling2D)
                 for layer in generator.layers + discriminator.layers)
  # No BatchNorm on D's input layer; strided convolutions everywhere.
  assert not hasattr(discriminator, "down0_bn") and hasattr(discriminator, "down1_bn")
  convs = [getattr(discriminator, f"down{i}") for i in range(discriminator.num_down_blocks)]
  assert all(conv.strides == (2, 2) for conv in convs)
  assert convs[0].filters == 8


def test_refine_blocks_work_at_the_base_resolution():
  plain = models.build_generator("dcgan", 16, (28, 28, 1), filters=8)
  refined = models.build_generator("dcgan", 16, (28, 28, 1), filters=8, refine_blocks=2)
  latents = tf.random.stateless_normal([3, 16], seed=[3, 4])
  assert refined(latents).shape == plain(latents).shape == (3, 28, 28, 1)
  for index in range(2):
    conv = getattr(refined, f"refine{index}")
    assert conv.strides == (1, 1) and conv.filters == 16  # the 7x7 base map's channels
    assert isinstance(getattr(refined, f"refine{index}_bn"), keras.layers.BatchNormalization)
  # Each block: one 4x4 16->16 kernel (no bias) and its BatchNorm (gamma, beta, mean, variance) each.
  extra = len(refined.variables) - len(plain.variables)
  assert extra == 2 * (1 + 4)
  assert dcgan.Generator.from_config(refined.get_config()).refine_blocks == 2


def test_refine_blocks_take_their_own_kernel_size():
  generator = models.build_generator("dcgan", 16, (28, 28, 1), filters=8, kernel_size=5,
                                     refine_blocks=2, refine_kernel_size=3)
  assert [getattr(generator, f"refine{index}").kernel.shape for index in range(2)] == [
      (3, 3, 16, 16)] * 2
  assert generator.up0.kernel.shape[:2] == (5, 5)  # The upsampling layers keep kernel_size.
  assert dcgan.Generator.from_config(generator.get_config()).refine_kernel_size == 3
  # Two 3x3 16->16 blocks at 7x7 cost 9/25 of two 5x5 ones.
  five = models.build_generator("dcgan", 16, (28, 28, 1), filters=8, kernel_size=5,
                                refine_blocks=2)
  saved = flops.model_flops(five, [16]).forward - flops.model_flops(generator, [16]).forward
  assert saved == 2 * 2 * 7 * 7 * 16 * 16 * (25 - 9)
  with pytest.raises(ValueError, match="--g_refine_kernel_size=3 sizes the kernels of the refine "
                                       "blocks, and --g_refine_blocks=0 adds none"):
    models.build_generator("dcgan", 16, (28, 28, 1), filters=8, refine_kernel_size=3)


@pytest.mark.parametrize("size,refine_blocks", [(28, 0), (64, 0), (28, 1)])
def test_checkpoint_holds_every_variable(tmp_path, size, refine_blocks):
  # Layers kept in containers Keras does not track would silently miss from checkpoints.
  generator, discriminator = models.build_models("dcgan", 16, (size, size, 1), 8, 8,
                                                 g_refine_blocks=refine_blocks)
  for model in (generator, discriminator):
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / model.name))
    saved = [name for name, _ in tf.train.list_variables(path)
             if name.startswith("model/")]
    assert len(saved) == len(model.variables), (saved, [v.path for v in model.variables])


def test_get_config_round_trip():
  generator, discriminator = models.build_models("dcgan", 16, (28, 28, 1), 8, 8)
  rebuilt = dcgan.Generator.from_config(generator.get_config())
  assert rebuilt.latent_dim == 16 and rebuilt.image_shape == (28, 28, 1)
  assert dcgan.Discriminator.from_config(discriminator.get_config()).filters == 8


def test_unknown_architecture():
  with pytest.raises(ValueError, match="accepted: dcgan, mlp, resnet, tf_tutorial"):
    models.build_models("stylegan", 16, (28, 28, 1), 8, 8)


@pytest.mark.parametrize("shape", [(2,), (1,), (28, 28, 1)])
def test_mlp_shapes_dtypes_and_output_ranges(shape):
  generator, discriminator = models.build_models(
      "mlp", latent_dim=6, image_shape=shape, g_filters=8, d_filters=8, g_units=(32, 16),
      d_units=(24, 12), d_dropout=0.5)
  latents = tf.random.stateless_normal([5, 6], seed=[1, 2]) * 10.0
  outputs = generator(latents, training=False)
  assert outputs.shape == (5, *shape) and outputs.dtype == tf.float32
  if len(shape) == 3:  # Images through tanh; points are unbounded.
    assert np.abs(outputs.numpy()).max() <= 1.0
  logits = discriminator(outputs, training=False)
  assert logits.shape == (5, 1) and logits.dtype == tf.float32
  features = discriminator.features(outputs, training=False)
  assert features.shape == (5, 12)
  # The logit is the last layer over those features (dropout is off at inference).
  np.testing.assert_allclose(discriminator.to_logit(features).numpy(), logits.numpy(),
                             rtol=1e-5, atol=1e-5)
  assert [generator.hidden0.units, generator.hidden1.units] == [32, 16]


def test_mlp_discriminator_dropout_only_in_training():
  discriminator = models.build_discriminator("mlp", (2,), 8, hidden_units=(64, 64), dropout=0.5)
  points = tf.random.stateless_normal([64, 2], seed=[3, 4])
  inference = discriminator(points, training=False).numpy()
  np.testing.assert_array_equal(inference, discriminator(points, training=False).numpy())
  assert not np.allclose(inference, discriminator(points, training=True).numpy())
  no_dropout = models.build_discriminator("mlp", (2,), 8, hidden_units=(64,), dropout=0.0)
  np.testing.assert_array_equal(no_dropout(points, training=True).numpy(),
                                no_dropout(points, training=False).numpy())


def test_mlp_keeps_point_precision_under_mixed_bfloat16():
  keras.mixed_precision.set_global_policy("mixed_bfloat16")
  try:
    generator, discriminator = models.build_models("mlp", 4, (2,), 8, 8, g_units=(16,),
                                                   d_units=(16,))
  finally:
    keras.mixed_precision.set_global_policy("float32")
  assert generator.to_output.compute_dtype == "float32"
  assert discriminator.hidden0.compute_dtype == "float32"
  assert generator(tf.zeros([1, 4])).dtype == tf.float32


@pytest.mark.parametrize("architecture", ["dcgan", "mlp"])
def test_checkpoint_holds_every_mlp_and_dcgan_variable(tmp_path, architecture):
  shape = (2,) if architecture == "mlp" else (28, 28, 1)
  generator, discriminator = models.build_models(architecture, 4, shape, 8, 8,
                                                 g_units=(8, 8, 8), d_units=(8, 8), d_dropout=0.3)
  for model in (generator, discriminator):
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / model.name))
    saved = [name for name, _ in tf.train.list_variables(path) if name.startswith("model/")]
    # Dropout's RNG states are invisible through the model; random_states() names them, and
    # train.make_checkpoint adds them.
    random_states = getattr(model, "random_states", dict)()
    assert len(saved) + len(random_states) == len(model.variables) > 0
  if architecture == "mlp":
    assert set(discriminator.random_states()) == {"dropout0", "dropout1"}


def test_mlp_get_config_round_trip():
  generator, discriminator = models.build_models("mlp", 4, (2,), 8, 8, g_units=(8, 4),
                                                 d_units=(6,), d_dropout=0.25)
  rebuilt = mlp.Generator.from_config(generator.get_config())
  assert rebuilt.hidden_units == (8, 4) and rebuilt.example_shape == (2,)
  rebuilt_d = mlp.Discriminator.from_config(discriminator.get_config())
  assert rebuilt_d.dropout_rate == 0.25 and rebuilt_d.hidden_units == (6,)


def test_dcgan_refuses_points_and_mlp_refuses_bad_widths():
  with pytest.raises(ValueError, match="dcgan needs images .* use --architecture=mlp"):
    models.check_example_shape("dcgan", (2,))
  models.check_example_shape("mlp", (2,))
  with pytest.raises(ValueError, match="hidden_units must be positive"):
    models.build_generator("mlp", 4, (2,), 8, hidden_units=())


def test_tf_tutorial_models_are_the_tutorials():
  generator, discriminator = models.build_models("tf_tutorial", 100, (28, 28, 1), 64, 64,
                                                 kernel_size=5)
  images = generator(tf.random.stateless_normal([3, 100], seed=[4, 5]) * 10.0, training=False)
  assert images.shape == (3, 28, 28, 1) and images.dtype == tf.float32
  assert -1.0 <= images.numpy().min() and images.numpy().max() <= 1.0
  logits = discriminator(images, training=False)
  assert logits.shape == (3, 1) and logits.dtype == tf.float32
  # Layer for layer the tutorial's (tensorflow.org/tutorials/generative/dcgan).
  assert generator.project.units == 7 * 7 * 256 and not generator.project.use_bias
  assert [(layer.filters, layer.kernel_size, layer.strides) for layer in
          (generator.up0, generator.up1, generator.to_image)] == [
              (128, (5, 5), (1, 1)), (64, (5, 5), (2, 2)), (1, (5, 5), (2, 2))]
  assert [(layer.filters, layer.strides) for layer in
          (discriminator.down0, discriminator.down1)] == [(64, (2, 2)), (128, (2, 2))]
  assert discriminator.dropout0.rate == discriminator.dropout1.rate == 0.3
  # Same weights, variable for variable, as an independent transcription of the tutorial.
  for ours, theirs in ((generator, tutorial_baseline.make_generator_model()),
                       (discriminator, tutorial_baseline.make_discriminator_model())):
    assert (sorted(tuple(v.shape) for v in ours.variables)
            == sorted(tuple(v.shape) for v in theirs.variables))


def test_tf_tutorial_discriminator_features_feed_its_logit():
  _, discriminator = models.build_models("tf_tutorial", 100, (28, 28, 1), 8, 8)
  images = tf.random.stateless_uniform([4, 28, 28, 1], seed=[1, 1], minval=-1, maxval=1)
  features = discriminator.features(images, training=False)
  assert features.shape == (4, 7 * 7 * 16)
  np.testing.assert_allclose(discriminator.to_logit(features).numpy(),
                             discriminator(images, training=False).numpy(), rtol=1e-5)


def test_tf_tutorial_checkpoint_holds_every_variable(tmp_path):
  generator, discriminator = models.build_models("tf_tutorial", 16, (28, 28, 1), 8, 8)
  assert not hasattr(generator, "random_states")
  assert set(discriminator.random_states()) == {"dropout0", "dropout1"}
  for model in (generator, discriminator):
    # Dropout's RNG states are invisible through the model; train.make_checkpoint adds them.
    random_states = getattr(model, "random_states", dict)()
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / model.name))
    saved = [name for name, _ in tf.train.list_variables(path) if name.startswith("model/")]
    assert len(saved) + len(random_states) == len(model.variables)


def test_tf_tutorial_refuses_other_image_sizes():
  with pytest.raises(ValueError, match="makes 28x28 images, got 32x32"):
    models.build_models("tf_tutorial", 16, (32, 32, 1), 8, 8)
  with pytest.raises(ValueError, match="makes 28x28 images"):
    models.check_example_shape("tf_tutorial", (64, 64, 3))
  models.check_example_shape("tf_tutorial", (28, 28, 3))
  with pytest.raises(ValueError, match="no such layers"):
    models.build_models("tf_tutorial", 16, (28, 28, 1), 8, 8, g_refine_blocks=1)


@pytest.mark.parametrize("architecture,size,policy", [
    ("dcgan", 32, "float32"), ("dcgan", 32, "mixed_bfloat16"), ("dcgan", 64, "float32"),
    ("dcgan", 128, "float32"), ("mlp", 32, "float32"), ("mlp", 64, "float32"),
    ("mlp", 128, "float32"), ("tf_tutorial", 28, "float32")])
def test_colour_models_take_a_training_step(architecture, size, policy):
  # RGB at the sizes users train: G makes [B, size, size, 3], D judges it, and every weight of
  # both gets a finite gradient (tf_tutorial makes 28x28 only).
  keras.mixed_precision.set_global_policy(policy)
  try:
    keras.utils.set_random_seed(0)
    generator, discriminator = models.build_models(
        architecture, latent_dim=8, image_shape=(size, size, 3), g_filters=4, d_filters=4,
        g_units=(16,), d_units=(16,))
    latents = tf.random.stateless_normal([4, 8], seed=[3, 4])
    real = tf.random.stateless_uniform([4, size, size, 3], seed=[5, 6], minval=-1, maxval=1)
    with tf.GradientTape(persistent=True) as tape:
      fake = generator(latents, training=True)
      fake_logits = discriminator(fake, training=True)
      real_logits = discriminator(real, training=True)
      d_loss = tf.reduce_mean(tf.nn.softplus(-real_logits) + tf.nn.softplus(fake_logits))
      g_loss = tf.reduce_mean(tf.nn.softplus(-fake_logits))
    assert fake.shape == (4, size, size, 3) and fake.dtype == tf.float32
    assert fake_logits.shape == (4, 1)
    # The channels are distinct outputs, not one channel repeated.
    assert np.abs(fake.numpy()[..., 0] - fake.numpy()[..., 2]).max() > 1e-3
    for loss, model in ((g_loss, generator), (d_loss, discriminator)):
      gradients = tape.gradient(loss, model.trainable_variables)
      assert model.trainable_variables and all(g is not None for g in gradients)
      assert all(np.all(np.isfinite(np.asarray(g, np.float32))) for g in gradients)
      assert any(np.abs(np.asarray(g, np.float32)).max() > 0 for g in gradients)
  finally:
    keras.mixed_precision.set_global_policy("float32")
