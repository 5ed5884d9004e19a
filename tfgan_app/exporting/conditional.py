"""The serving signatures of a class-conditional generator (the contract's
`CONDITIONAL_SIGNATURE_INPUTS`): every signature takes a class, and `class_names` lists them.

  serving_default  latents float32 [N, latent_dim], labels int32 [N]  -> images uint8 [N,H,W,C]
  sample           num_samples int32 [], seed int64 [], label int32 [] -> images, png_bytes [N]
  sample_seeds     seeds int64 [N], labels int32 [N]                    -> images, png_bytes
  interpolate      seed_a int64 [], seed_b int64 [], num_steps int32 [], label int32 []
                                                                        -> images, png_bytes
  class_names      (no inputs)                                          -> class_names string [K]

The generator is called as `generator(latents, labels=labels, training=False)`. Row `i` of
`sample(num_samples, seed, label)` is the image of seed `seed + i` and class `label`, or, for
`label` = -1, of the class drawn from seed `seed + i` (`graph_ops.labels_from_seeds`: the
stateless uniform class of stream [seed + i, 1]); so it equals `sample_seeds(seeds=[seed + i],
labels=[that class])`, and a request split into chunks of consecutive seeds gives the same rows.
`interpolate` keeps one class along the whole path. Classes outside [0, num_classes) (and -1
anywhere but `sample`) fail an in-graph assert: INVALID_ARGUMENT under TF Serving, before the
generator runs.
"""

from typing import Sequence

import tensorflow as tf

from tfgan_app.exporting import graph_ops
from tfgan_app.exporting.contract import (  # pylint: disable=g-multiple-import
    CLASS_NAMES, CLASS_NAMES_SIGNATURE, INTERPOLATE_SIGNATURE, LABEL, LABELS, LATENTS,
    NUM_SAMPLES, NUM_STEPS, RANDOM_LABEL, SAMPLE_SEEDS_SIGNATURE, SAMPLE_SIGNATURE, SEED, SEED_A,
    SEED_B, SEEDS, SERVING_SIGNATURE)


def num_classes_of(generator) -> int:
  """The classes `generator` is conditioned on: its `num_classes` attribute, 0 if it has none."""
  value = getattr(generator, "num_classes", 0) or 0
  return int(value)


def warmup_examples(latent_dim: int, num_classes: int) -> dict:
  """{signature: {input: numpy value}}: one small valid request per conditional signature."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  last = num_classes - 1
  return {
      SERVING_SIGNATURE: {LATENTS: np.zeros([2, latent_dim], np.float32),
                          LABELS: np.array([0, last], np.int32)},
      SAMPLE_SIGNATURE: {NUM_SAMPLES: np.int32(2), SEED: np.int64(0),
                         LABEL: np.int32(RANDOM_LABEL)},
      SAMPLE_SEEDS_SIGNATURE: {SEEDS: np.array([0, 1], np.int64),
                               LABELS: np.array([0, last], np.int32)},
      INTERPOLATE_SIGNATURE: {SEED_A: np.int64(0), SEED_B: np.int64(1),
                              NUM_STEPS: np.int32(3), LABEL: np.int32(last)},
      CLASS_NAMES_SIGNATURE: {},
  }


class ConditionalExportModule(tf.Module):
  """A `tf.Module` with a conditional generator's serving signatures (module docstring).

  Like the unconditional module, it tracks only the raw variables and reaches the Keras model
  through a closure (saved_model's module docstring says why).
  """

  def __init__(self, generator, latent_dim: int, num_classes: int,
               class_names: Sequence[str], max_samples_per_request: int, points: bool):
    super().__init__(name="conditional_generator_export")
    self._weights = [v.value for v in generator.variables]

    def generate(latents, labels):
      return generator(latents, labels=labels, training=False)

    self._generate = generate
    self.latent_dim = int(latent_dim)
    self.num_classes = int(num_classes)
    self.names = [str(name) for name in class_names]
    self.points = points
    self.max_samples_per_request = int(max_samples_per_request)
    int32, int64 = tf.int32, tf.int64
    self.serve = tf.function(self._serve, input_signature=[
        tf.TensorSpec([None, latent_dim], tf.float32, name=LATENTS),
        tf.TensorSpec([None], int32, name=LABELS)])
    self.sample = tf.function(self._sample, input_signature=[
        tf.TensorSpec([], int32, name=NUM_SAMPLES), tf.TensorSpec([], int64, name=SEED),
        tf.TensorSpec([], int32, name=LABEL)])
    self.sample_seeds = tf.function(self._sample_seeds, input_signature=[
        tf.TensorSpec([None], int64, name=SEEDS), tf.TensorSpec([None], int32, name=LABELS)])
    self.interpolate = tf.function(self._interpolate, input_signature=[
        tf.TensorSpec([], int64, name=SEED_A), tf.TensorSpec([], int64, name=SEED_B),
        tf.TensorSpec([], int32, name=NUM_STEPS), tf.TensorSpec([], int32, name=LABEL)])
    self.class_names = tf.function(self._class_names, input_signature=[])

  def _rows_match(self, labels, rows, what):
    return tf.debugging.assert_equal(
        tf.size(labels), rows, message=f"{LABELS} must have one class per row of {what}")

  def _checked_rows(self, rows_of, labels, what):
    """(rows_of, labels) behind the checks of a batched request: 1 to max_samples_per_request
    rows of `what`, one label per row, each label a class."""
    rows = tf.shape(rows_of)[0]
    checks = graph_ops.check_count(rows, 1, self.max_samples_per_request,
                                   f"the number of {what}")
    checks += [self._rows_match(labels, rows, what)]
    checks += graph_ops.check_labels(labels, self.num_classes, LABELS)
    with tf.control_dependencies(checks):
      return tf.identity(rows_of), tf.identity(labels)

  def _serve(self, latents, labels):
    latents, labels = self._checked_rows(latents, labels, LATENTS)
    return graph_ops.served(self._generate(latents, labels), self.points)

  def _sample(self, num_samples, seed, label):
    checks = graph_ops.check_count(num_samples, 1, self.max_samples_per_request, NUM_SAMPLES)
    checks += graph_ops.check_labels(label, self.num_classes, LABEL, lowest=RANDOM_LABEL)
    with tf.control_dependencies(checks):
      seeds = seed + tf.range(tf.cast(num_samples, tf.int64), dtype=tf.int64)  # [N]
    labels = tf.where(label == RANDOM_LABEL, graph_ops.labels_from_seeds(seeds, self.num_classes),
                      tf.fill([num_samples], label))  # [N]
    return graph_ops.with_pngs(
        self._generate(graph_ops.latents_from_seeds(seeds, self.latent_dim), labels),
        self.points)

  def _sample_seeds(self, seeds, labels):
    seeds, labels = self._checked_rows(seeds, labels, SEEDS)
    return graph_ops.with_pngs(
        self._generate(graph_ops.latents_from_seeds(seeds, self.latent_dim), labels),
        self.points)

  def _interpolate(self, seed_a, seed_b, num_steps, label):
    checks = graph_ops.check_count(num_steps, 2, self.max_samples_per_request, NUM_STEPS)
    checks += graph_ops.check_labels(label, self.num_classes, LABEL)
    with tf.control_dependencies(checks):
      ends = graph_ops.latents_from_seeds(tf.stack([seed_a, seed_b]), self.latent_dim)  # [2, D]
    latents = graph_ops.slerp(ends[0], ends[1], num_steps)
    return graph_ops.with_pngs(self._generate(latents, tf.fill([num_steps], label)),
                               self.points)

  def _class_names(self):
    return {CLASS_NAMES: tf.constant(self.names, tf.string)}  # [K]

  def signatures(self):
    return {SERVING_SIGNATURE: self.serve.get_concrete_function(),
            SAMPLE_SIGNATURE: self.sample.get_concrete_function(),
            SAMPLE_SEEDS_SIGNATURE: self.sample_seeds.get_concrete_function(),
            INTERPOLATE_SIGNATURE: self.interpolate.get_concrete_function(),
            CLASS_NAMES_SIGNATURE: self.class_names.get_concrete_function()}
