"""Model families (runs/families.py): chosen once from --architecture, each building its model,
naming its checkpoint's objects and its run spec; the trainers sit on top of them."""

import json

import pytest
import tensorflow as tf

from tfgan_app.common import config as config_lib
from tfgan_app.runs import checkpoints
from tfgan_app.runs import families
from tfgan_app.runs import workdir as workdir_lib
from tfgan_app.training import trainers


@pytest.mark.parametrize("architecture, family", [
    ("dcgan", families.GAN), ("mlp", families.GAN), ("tf_tutorial", families.GAN),
    ("gmm", families.MIXTURE)])
def test_one_choice_of_family_serves_the_run_and_its_trainer(architecture, family):
  assert families.for_architecture(architecture) is family
  assert trainers.for_architecture(architecture).family is family


def _root_objects(checkpoint_path):
  return {name.split("/")[0] for name, _ in tf.train.list_variables(checkpoint_path)}


def test_mixture_checkpoint_keeps_its_layout_and_restores(tmp_path):
  config = config_lib.TrainConfig(architecture="gmm", gmm_components=3, seed=4)
  run = families.MIXTURE.build(config, (2, 2, 1), None)
  run.step.assign(7)
  path = checkpoints.make_checkpoint(run).save(str(tmp_path / "ckpt"))
  # The layout of the runs written before the families: the mixture, step and seed at the root.
  assert _root_objects(path) == {"gmm", "step", "seed", "save_counter", "_CHECKPOINTABLE_OBJECT_GRAPH"}
  restored = families.MIXTURE.build(config, (2, 2, 1), None)
  checkpoints.restore_checkpoint(restored, path)
  assert int(restored.step.numpy()) == 7
  for saved, loaded in zip(run.mixture.variables, restored.mixture.variables):
    assert (saved.numpy() == loaded.numpy()).all()


def test_gan_checkpoint_holds_both_players_their_optimizers_step_and_seed(tmp_path):
  config = config_lib.TrainConfig(architecture="dcgan", dataset="mnist", latent_dim=4,
                                  g_filters=4, d_filters=4, mixed_precision="float32")
  model = families.GAN.build(config, (28, 28, 1), "float32")
  required, optional = model.checkpoint_objects()
  assert set(required) == {"generator", "discriminator", "g_optimizer", "d_optimizer", "step",
                           "seed"}
  assert optional == {}  # Loss scales only under mixed_float16.
  path = checkpoints.make_checkpoint(model).save(str(tmp_path / "ckpt"))
  assert set(required) <= _root_objects(path)


def test_run_spec_comes_from_the_family_and_old_specs_get_its_defaults(tmp_path):
  gan_config = config_lib.TrainConfig(architecture="dcgan", dataset="mnist")
  gmm_config = config_lib.TrainConfig(architecture="gmm", dataset="mnist", gmm_components=5)
  gan_spec = workdir_lib.run_spec(gan_config, (28, 28, 1))
  gmm_spec = workdir_lib.run_spec(gmm_config, (28, 28, 1))
  assert gan_spec == families.GAN.run_spec(gan_config, (28, 28, 1))
  assert gmm_spec == {"architecture": "gmm", "dataset": "mnist", "image_shape": [28, 28, 1],
                      "latent_dim": gmm_config.latent_dim, "gmm_components": 5}
  # A GAN run from before g_refine_blocks, its kernel size and minibatch discrimination existed.
  old = {key: value for key, value in gan_spec.items()
         if key not in ("g_refine_blocks", "g_refine_kernel_size", "minibatch_discrimination")}
  (tmp_path / "gan.json").write_text(json.dumps(old))
  assert workdir_lib.read_run_spec(str(tmp_path / "gan.json")) == gan_spec
  # The mixture's spec gets none of the GAN's fields.
  (tmp_path / "gmm.json").write_text(json.dumps({**gmm_spec, "precision": {"policy": "x"}}))
  assert workdir_lib.read_run_spec(str(tmp_path / "gmm.json")) == gmm_spec
