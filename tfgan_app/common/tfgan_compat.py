"""The one place that imports TF-GAN.

tensorflow-gan 2.1.0 (2021) is its last release and does not import on TensorFlow >= 2.16:
its package `__init__` imports `tensorflow_gan.python.estimator`, which subclasses
`tf.estimator` / `tf.compat.v1.estimator.tpu` classes at import time, and TF 2.16 removed
`tf.estimator` (tensorflow/gan#55, #59). We use only the estimator-free parts (losses and
evaluation), so before the first import we register an empty module in place of the
estimator subpackage and give `tf` an `estimator` attribute whose names resolve to placeholder
classes. Everything else in tfgan_app imports TF-GAN as
`from tfgan_app.common.tfgan_compat import tfgan`.
"""

import sys
import types

import tensorflow as tf

_ESTIMATOR_MODULE = "tensorflow_gan.python.estimator"


class _PlaceholderClass:
  """Stands in for an estimator class that TF-GAN subclasses but we never use."""

  def __init__(self, *args, **kwargs):
    del args, kwargs
    raise NotImplementedError(
        "tf.estimator was removed in TensorFlow 2.16; TF-GAN's estimator API is unavailable.")


class _PlaceholderNamespace(types.ModuleType):
  """A module whose every attribute is a placeholder class or a nested namespace."""

  def __getattr__(self, name):
    if name.startswith("__"):
      raise AttributeError(name)
    if name[:1].isupper():
      value = type(name, (_PlaceholderClass,), {})
    else:
      value = _PlaceholderNamespace(f"{self.__name__}.{name}")
    setattr(self, name, value)
    return value


def _install_estimator_placeholders():
  if _ESTIMATOR_MODULE not in sys.modules:
    sys.modules[_ESTIMATOR_MODULE] = types.ModuleType(_ESTIMATOR_MODULE)
  if not hasattr(tf, "estimator"):
    tf.estimator = _PlaceholderNamespace("tensorflow.estimator")


_install_estimator_placeholders()

import tensorflow_gan as tfgan  # pylint: disable=g-import-not-at-top,wrong-import-position

__all__ = ["tfgan"]
