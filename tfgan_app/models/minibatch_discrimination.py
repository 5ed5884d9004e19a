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

D(x) for one example x therefore depends on the batch it arrives in. To ask what D makes of x
as it would arrive among real data (the toy runs' picture of D's decision surface), put the
examples to judge first and a real batch after them, and call D inside
`judged_against_last_rows(D, num_rows)`: each example is then compared with the last
`num_rows` rows of the batch only (itself excluded), as if it were one more member of that
real batch, at a cost linear in the number of examples.

Wiring it into a discriminator is one line in its constructor,
`self.minibatch = minibatch_discrimination.layer_or_identity(num_kernels, kernel_dim)`, and
one in its call, `x = self.minibatch(x)` before the logit layer.
"""

import contextlib
from typing import Iterator, Optional

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
    # None: every row of the batch against every other. k: against the batch's last k rows only
    # (see `judged_against_last_rows`); not part of the config, a mode of a call.
    self.reference_rows: Optional[int] = None

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
    num_rows = ops.shape(features)[0]
    reference = projected
    if self.reference_rows is not None:
      reference = projected[num_rows - self.reference_rows:]  # [K, B, C]
    differences = projected[:, None, :, :] - reference[None, :, :, :]  # [N, K, B, C]
    distances = ops.sum(ops.abs(differences), axis=-1)  # [N, K, B]
    num_reference = ops.shape(reference)[0]
    # [N, K]: 0 where row i is reference row j itself (i = j + N - K), else 1.
    others = 1.0 - ops.eye(num_rows, num_reference, k=num_reference - num_rows,
                           dtype=self.compute_dtype)
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


@contextlib.contextmanager
def judged_against_last_rows(model, num_rows: int) -> Iterator[None]:
  """Within the block, every `MinibatchDiscrimination` layer in `model` compares each row of its
  batch with the batch's last `num_rows` rows only (a row among them not with itself).

  For eager calls (a `tf.function` traced inside the block keeps the mode it was traced with).
  A model without such layers, or anything that is not a Keras layer, is called unchanged.
  """
  if num_rows < 1:
    raise ValueError(f"num_rows must be >= 1, got {num_rows}")
  layers = []
  if isinstance(model, keras.layers.Layer):
    layers = [layer for layer in model._flatten_layers()  # pylint: disable=protected-access
              if isinstance(layer, MinibatchDiscrimination)]
  previous = [layer.reference_rows for layer in layers]
  for layer in layers:
    layer.reference_rows = int(num_rows)
  try:
    yield
  finally:
    for layer, rows in zip(layers, previous):
      layer.reference_rows = rows
