"""Builds the tf.distribute strategy named by `--strategy`, and says who writes files.

Strategies: `auto` (mirrored over all GPUs when there are several, otherwise the default),
`default`, `one_device`, `mirrored` (GPUs, or `--num_cpu_replicas` logical CPUs),
`multi_worker` (MultiWorkerMirroredStrategy, reads TF_CONFIG), `tpu` (TPUStrategy on `--tpu`).
"""

import json
import os
import shutil
import tempfile
from typing import Optional

import tensorflow as tf

STRATEGIES = ("auto", "default", "one_device", "mirrored", "multi_worker", "tpu")


class StrategyError(ValueError):
  """The strategy cannot be built as asked."""


def split_cpu(num_replicas: int) -> None:
  """Splits the CPU into `num_replicas` logical devices (must run before any TF op)."""
  if num_replicas <= 1:
    return
  cpu = tf.config.list_physical_devices("CPU")[0]
  try:
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * num_replicas)
  except RuntimeError as error:
    existing = len(tf.config.list_logical_devices("CPU"))
    if existing != num_replicas:
      raise StrategyError(
          f"--num_cpu_replicas={num_replicas} must be set before TensorFlow starts; this "
          f"process already has {existing} logical CPU(s)") from error


def build_strategy(name: str, num_cpu_replicas: int = 1,
                   tpu: Optional[str] = None) -> tf.distribute.Strategy:
  """Returns the strategy for `--strategy=name`.

  Raises:
    StrategyError: unknown name, or a strategy that cannot run here.
  """
  if name not in STRATEGIES:
    raise StrategyError(f"unknown --strategy={name}; accepted: {', '.join(STRATEGIES)}")
  if name == "multi_worker":
    # Must be created before other TF ops so that collective ops can be configured.
    return tf.distribute.MultiWorkerMirroredStrategy()
  if name == "tpu":
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)
  split_cpu(num_cpu_replicas)
  gpus = tf.config.list_logical_devices("GPU")
  if name == "auto":
    name = "mirrored" if len(gpus) > 1 else "default"
  if name == "default":
    return tf.distribute.get_strategy()
  if name == "one_device":
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
  # mirrored
  if gpus:
    return tf.distribute.MirroredStrategy([gpu.name for gpu in gpus])
  cpus = [device.name for device in tf.config.list_logical_devices("CPU")]
  return tf.distribute.MirroredStrategy(cpus)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """Whether this process writes the run's files (TensorFlow's multi-worker pattern)."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
    return True
  task_type, task_id = resolver.task_type, resolver.task_id
  if task_type is None:
    return True
  cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
  if "chief" in cluster:
    return task_type == "chief"
  return task_type == "worker" and task_id == 0


class WriteDir:
  """The directory this process writes to: the workdir on the chief, a temporary one elsewhere.

  Non-chief workers must still run the collective parts of checkpointing; they write to a
  temporary directory that `cleanup()` removes.
  """

  def __init__(self, workdir: str, chief: bool):
    self.chief = chief
    self.path = workdir if chief else tempfile.mkdtemp(prefix="tfgan_app_worker_")

  def cleanup(self) -> None:
    if not self.chief:
      shutil.rmtree(self.path, ignore_errors=True)
