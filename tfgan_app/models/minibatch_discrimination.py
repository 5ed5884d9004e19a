"""Minibatch discrimination (Salimans et al. 2016, "Improved Techniques for Training GANs", §3.2).

A generator that collapses onto a few modes makes batches of near-identical samples; a
discriminator that sees one example at a time cannot tell. This layer gives D, for each
example, features measuring how close it is to the other examples of its batch:

  M = f T, reshaped [N, B, C]              (T: [A, B*C], learned; f: D's features [N, A])
  c_b(x_i, x_j) = exp(-||M_{i,b} - M_{j,b}||_1)
  o(x_i)_b = sum_{j != i} c_b(x_i, x_j)
  output = concat(f, o)                    [N, A + B]

The sum leaves out j = i. The paper's formula sums over every j, which adds exactly 1 to each
o_b: a constant that carries no information about the batch (the authors' code removes it too,
by adding 1e6 to the diagonal of the distances). A batch of identical examples therefore gives
o_b = N - 1 for every kernel b, a batch of far-apart examples o_b close to 0.

Under `tf.distribute` the layer sees each replica's batch, not the global one: o counts the
neighbours within the replica's share of the batch. Use per-replica batches of at least a few
dozen examples (the paper used 100).

Wiring it into a discriminator is one line in its constructor,
`self.minibatch = minibatch_discrimination.layer_or_identity(num_kernels, kernel_dim)`, and
one in its call, `x = self.minibatch(x)` before the logit layer.
"""

import keras

DEFAULT_NUM_KERNELS = 100
DEFAULT_KERNEL_DIM = 5


@keras.saving.register_keras_serializable(package="tfgan_app")
class MinibatchDiscrimination(keras.layers.Layer):
  """Appends minibatch features: [N, A] -> [N, A + num_kernels] (see the module docstring)."""

  def __init__(self, num_kernels: int = DEFAULT_NUM_KERNELS,
               kernel_dim: int = DEFAULT_KERNEL_DIM, **kwargs):
    """Creates the layer.

    Args:
      num_kernels: B, the number of minibatch features appended.
      kernel_dim: C, the dimension of the space in which each kernel measures L1 distances.
      **kwargs: keras.layers.Layer arguments (name, ...). The computation runs in float32 even
        under a mixed-precision policy: the features are sums of N exponentials of distances,
        which bfloat16's 8-bit mantissa rounds badly.
    """
    kwargs.setdefault("dtype", "float32")
    super().__init__(**kwargs)
    if num_kernels < 1 or kernel_dim < 1:
      raise ValueError(f"num_kernels and kernel_dim must be >= 1, got {num_kernels}, "
                       f"{kernel_dim}")
    self.num_kernels = int(num_kernels)
    self.kernel_dim = int(kernel_dim)

  def build(self, input_shape):
    # N(0, 0.05) as in the authors' code: small projections keep the L1 distances, and so the
    # exponentials, in a range with useful gradients at the start.
    self.projection = self.add_weight(
        name="projection", shape=(int(input_shape[-1]), self.num_kernels * self.kernel_dim),
        initializer=keras.initializers.RandomNormal(stddev=0.05))

  def call(self, features):
    ops = keras.ops
    projected = ops.reshape(ops.matmul(features, self.projection),
                            (-1, self.num_kernels, self.kernel_dim))  # [N, B, C]
    differences = projected[:, None, :, :] - projected[None, :, :, :]  # [N, N, B, C]
    distances = ops.sum(ops.abs(differences), axis=-1)  # [N, N, B]
    others = 1.0 - ops.eye(ops.shape(features)[0], dtype=self.compute_dtype)  # [N, N]: j != i
    closeness = ops.sum(ops.exp(-distances) * others[:, :, None], axis=1)  # [N, B]
    return ops.concatenate([features, closeness], axis=-1)  # [N, A + B]

  def compute_output_shape(self, input_shape):
    return (*input_shape[:-1], input_shape[-1] + self.num_kernels)

  def get_config(self):
    config = super().get_config()
    config.update(num_kernels=self.num_kernels, kernel_dim=self.kernel_dim)
    return config


def layer_or_identity(num_kernels: int, kernel_dim: int = DEFAULT_KERNEL_DIM,
                      name: str = "minibatch_discrimination") -> keras.layers.Layer:
  """The layer for a discriminator: `MinibatchDiscrimination`, or the identity when
  `num_kernels` is 0 (minibatch discrimination off; no weights, so checkpoints stay as they
  were without it)."""
  if num_kernels == 0:
    return keras.layers.Identity(name=name)
  return MinibatchDiscrimination(num_kernels, kernel_dim, name=name)
