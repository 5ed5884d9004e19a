"""The export contract of class-conditional generators: signatures and inputs, in-graph class
checks, label -1, metadata, warmup, the loader and TF Serving's C++ loader."""

import os
import subprocess

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from conftest import HANG_TIMEOUT_S, cc_loader_check_binary, conditional_standin
from tfgan_app.exporting import contract
from tfgan_app.exporting import loader
from tfgan_app.exporting import saved_model as export
from tfgan_app.models import registry as models

LATENT_DIM = 6
NUM_CLASSES = 10
NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
         "Bag", "Ankle boot"]


@pytest.fixture(scope="module")
def generator():
  return conditional_standin(LATENT_DIM, (8, 8, 1), NUM_CLASSES)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, generator):
  base = str(tmp_path_factory.mktemp("export"))
  return export.export_generator(generator, LATENT_DIM, base, "cgan", 3,
                                 {"step": 3, export.CLASS_NAMES_KEY: NAMES},
                                 max_samples_per_request=16)


@pytest.fixture(scope="module")
def loaded(exported):
  return tf.saved_model.load(exported)


def _images(generator, latents, labels):
  return export.to_uint8(generator(tf.constant(latents), labels=tf.constant(labels, tf.int32),
                                   training=False)).numpy()


def _latents(seeds):
  return export.latents_from_seeds(tf.constant(seeds, tf.int64), LATENT_DIM).numpy()


def test_signatures_take_the_contracts_inputs(loaded):
  assert set(loaded.signatures.keys()) == set(contract.CONDITIONAL_SIGNATURE_INPUTS)
  for name, inputs in contract.CONDITIONAL_SIGNATURE_INPUTS.items():
    specs = loaded.signatures[name].structured_input_signature[1]
    assert {alias: spec.dtype.name for alias, spec in specs.items()} == inputs, name
  assert loaded.signatures[export.SERVING_SIGNATURE].structured_input_signature[1][
      export.LABELS].shape.as_list() == [None]
  assert set(loaded.signatures[export.SAMPLE_SIGNATURE].structured_outputs) == {
      export.IMAGES, export.PNG_BYTES}


def test_serving_default_and_sample_seeds_follow_the_labels(loaded, generator):
  latents = tf.random.stateless_normal([4, LATENT_DIM], seed=[2, 2]).numpy()
  labels = np.array([0, 9, 3, 3], np.int32)
  served = loaded.signatures[export.SERVING_SIGNATURE](latents=latents, labels=labels)
  np.testing.assert_array_equal(served[export.IMAGES].numpy(),
                                _images(generator, latents, labels))
  other = loaded.signatures[export.SERVING_SIGNATURE](latents=latents, labels=labels[::-1])
  assert not np.array_equal(other[export.IMAGES].numpy(), served[export.IMAGES].numpy())
  by_seed = loaded.signatures[export.SAMPLE_SEEDS_SIGNATURE](
      seeds=tf.constant([5, 6], tf.int64), labels=tf.constant([7, 1]))
  np.testing.assert_array_equal(by_seed[export.IMAGES].numpy(),
                                _images(generator, _latents([5, 6]), [7, 1]))


def test_sample_row_i_is_sample_seeds_of_seed_plus_i(loaded):
  sample = loaded.signatures[export.SAMPLE_SIGNATURE]
  seeds = loaded.signatures[export.SAMPLE_SEEDS_SIGNATURE]
  one_class = sample(num_samples=tf.constant(5), seed=tf.constant(40, tf.int64),
                     label=tf.constant(7))[export.IMAGES].numpy()
  np.testing.assert_array_equal(one_class, seeds(
      seeds=tf.range(40, 45, dtype=tf.int64), labels=tf.fill([5], 7))[export.IMAGES].numpy())
  # -1: each row's class is drawn from its seed, deterministically.
  drawn = [sample(num_samples=tf.constant(12), seed=tf.constant(40, tf.int64),
                  label=tf.constant(-1))[export.IMAGES].numpy() for _ in range(2)]
  np.testing.assert_array_equal(drawn[0], drawn[1])
  classes = export.labels_from_seeds(tf.range(40, 52, dtype=tf.int64), NUM_CLASSES).numpy()
  expected = [tf.random.stateless_uniform([], seed=[s, 1], minval=0, maxval=NUM_CLASSES,
                                          dtype=tf.int32).numpy() for s in range(40, 52)]
  np.testing.assert_array_equal(classes, expected)  # The documented definition.
  assert len(set(classes.tolist())) > 3  # The classes vary with the seed.
  np.testing.assert_array_equal(drawn[0], seeds(
      seeds=tf.range(40, 52, dtype=tf.int64), labels=classes)[export.IMAGES].numpy())
  # A chunk that starts later (as the server splits a request) gives the same rows.
  tail = sample(num_samples=tf.constant(4), seed=tf.constant(48, tf.int64),
                label=tf.constant(-1))[export.IMAGES].numpy()
  np.testing.assert_array_equal(tail, drawn[0][8:])


def test_interpolate_keeps_one_class(loaded, generator):
  path = loaded.signatures[export.INTERPOLATE_SIGNATURE](
      seed_a=tf.constant(1, tf.int64), seed_b=tf.constant(2, tf.int64),
      num_steps=tf.constant(3), label=tf.constant(4))[export.IMAGES].numpy()
  ends = _latents([1, 2])
  np.testing.assert_array_equal(path[[0, -1]], _images(generator, ends, [4, 4]))


@pytest.mark.parametrize("signature,inputs,message", [
    (export.SERVING_SIGNATURE, {"latents": np.zeros([2, LATENT_DIM], np.float32),
                                "labels": np.array([0, 10], np.int32)}, "labels must be from 0 to 9"),
    (export.SERVING_SIGNATURE, {"latents": np.zeros([2, LATENT_DIM], np.float32),
                                "labels": np.array([-1, 2], np.int32)}, "labels must be from 0 to 9"),
    (export.SERVING_SIGNATURE, {"latents": np.zeros([2, LATENT_DIM], np.float32),
                                "labels": np.array([1], np.int32)}, "one class per row"),
    (export.SAMPLE_SIGNATURE, {"num_samples": np.int32(2), "seed": np.int64(0),
                               "label": np.int32(10)}, "label must be from -1 to 9"),
    (export.SAMPLE_SIGNATURE, {"num_samples": np.int32(2), "seed": np.int64(0),
                               "label": np.int32(-2)}, "label must be from -1 to 9"),
    (export.SAMPLE_SEEDS_SIGNATURE, {"seeds": np.array([1, 2], np.int64),
                                     "labels": np.array([3, 12], np.int32)}, "labels must be"),
    (export.INTERPOLATE_SIGNATURE, {"seed_a": np.int64(0), "seed_b": np.int64(1),
                                    "num_steps": np.int32(3), "label": np.int32(-1)},
     "label must be from 0 to 9"),
])
def test_classes_out_of_range_are_invalid_argument_from_the_graph(loaded, signature, inputs,
                                                                  message):
  with pytest.raises(tf.errors.InvalidArgumentError, match=message):
    loaded.signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})


def test_metadata_class_names_signature_and_loader(exported, loaded, generator):
  metadata = export.read_metadata(exported)
  assert metadata[export.NUM_CLASSES_KEY] == NUM_CLASSES and metadata["class_names"] == NAMES
  assert contract.num_classes(metadata) == NUM_CLASSES
  names = loaded.signatures[export.CLASS_NAMES_SIGNATURE]()[export.CLASS_NAMES].numpy()
  assert [name.decode() for name in names] == NAMES
  found = loader.load_export(exported, loader.IMAGES)
  assert found.num_classes == NUM_CLASSES and found.latent_dim == LATENT_DIM
  latents = np.zeros([2, LATENT_DIM], np.float32)
  np.testing.assert_array_equal(found.generate(latents, np.array([1, 2], np.int32)).numpy(),
                                _images(generator, latents, [1, 2]))
  with pytest.raises(loader.ExportLoadError, match="class-conditional"):
    found.generate(latents)


def test_class_names_default_to_indices_and_must_fit(tmp_path, generator):
  path = export.export_generator(generator, LATENT_DIM, str(tmp_path), "cgan", 1, {},
                                 warmup=False)
  assert export.read_metadata(path)["class_names"] == [str(i) for i in range(NUM_CLASSES)]
  with pytest.raises(export.ExportError, match="10 classes but the metadata names 2"):
    export.export_generator(generator, LATENT_DIM, str(tmp_path), "cgan", 2,
                            {"class_names": ["a", "b"]})
  assert not os.path.exists(tmp_path / "cgan" / "2")


def test_warmup_requests_cover_labels_and_replay(exported, loaded):
  path = os.path.join(exported, export.EXTRA_DIR, export.WARMUP_FILE)
  requests = [prediction_log_pb2.PredictionLog.FromString(record.numpy()).predict_log.request
              for record in tf.data.TFRecordDataset(path)]
  expected = {name: inputs for name, inputs in contract.CONDITIONAL_SIGNATURE_INPUTS.items()
              if inputs}  # class_names has no inputs to warm up.
  assert {r.model_spec.signature_name: set(r.inputs) for r in requests} == {
      name: set(inputs) for name, inputs in expected.items()}
  for request in requests:  # Each one is valid: TF Serving fails a load on a failed warmup.
    outputs = loaded.signatures[request.model_spec.signature_name](
        **{alias: tf.constant(tf.make_ndarray(proto)) for alias, proto in request.inputs.items()})
    assert export.IMAGES in outputs
  batchable = export.warmup_requests("cgan", LATENT_DIM, [export.SERVING_SIGNATURE,
                                                          export.SAMPLE_SEEDS_SIGNATURE], 10)
  assert [set(log.predict_log.request.inputs) for log in batchable] == [
      {export.LATENTS, export.LABELS}, {export.SEEDS, export.LABELS}]


def test_unconditional_exports_keep_their_signatures(tmp_path):
  plain = models.build_generator("dcgan", LATENT_DIM, (28, 28, 1), filters=8)
  path = export.export_generator(plain, LATENT_DIM, str(tmp_path), "plain", 1, {})
  signatures = tf.saved_model.load(path).signatures
  assert set(signatures.keys()) == set(contract.SIGNATURE_INPUTS)
  for name, inputs in contract.SIGNATURE_INPUTS.items():
    specs = signatures[name].structured_input_signature[1]
    assert {alias: spec.dtype.name for alias, spec in specs.items()} == inputs, name
  metadata = export.read_metadata(path)
  assert export.NUM_CLASSES_KEY not in metadata and "class_names" not in metadata
  assert loader.load_export(path).num_classes == 0


def test_conditional_point_generator_exports_samples(tmp_path):
  points = conditional_standin(4, (2,), 3)
  path = export.export_generator(points, 4, str(tmp_path), "ring", 1, {}, warmup=False)
  served = tf.saved_model.load(path).signatures[export.SERVING_SIGNATURE](
      latents=tf.zeros([3, 4]), labels=tf.constant([0, 1, 2]))
  assert set(served) == {export.SAMPLES} and served[export.SAMPLES].shape == (3, 2)
  np.testing.assert_allclose(served[export.SAMPLES].numpy(), points(
      tf.zeros([3, 4]), labels=tf.constant([0, 1, 2]), training=False).numpy(), atol=1e-6)


def test_every_signature_runs_under_the_cpp_loader_tf_serving_calls(exported, generator):
  binary = cc_loader_check_binary()

  def run(*arguments):
    result = subprocess.run([binary, exported, *arguments], capture_output=True, text=True,
                            timeout=HANG_TIMEOUT_S)
    return result.returncode, dict(line.split(" ", 1)
                                   for line in result.stdout.strip().splitlines())

  sevens = _images(generator, _latents([7, 8, 9]), [7, 7, 7])
  for arguments in (["sample", "num_samples=int32:3", "seed=int64:7", "label=int32:7"],
                    ["sample_seeds", "seeds=int64s:7,8,9", "labels=int32s:7,7,7"]):
    code, lines = run(*arguments)
    assert code == 0 and lines[export.IMAGES] == f"uint8 [3,8,8,1] {int(sevens.sum())}", lines
  zeros = _images(generator, np.zeros([2, LATENT_DIM], np.float32), [0, 9])
  code, lines = run("serving_default", f"latents=float32zeros:2,{LATENT_DIM}",
                    "labels=int32s:0,9")
  assert code == 0 and lines[export.IMAGES] == f"uint8 [2,8,8,1] {int(zeros.sum())}", lines
  code, lines = run("class_names")
  assert code == 0 and lines[export.CLASS_NAMES] == (
      f"string [{NUM_CLASSES}] {sum(len(name) for name in NAMES)}"), lines
  code, lines = run("serving_default", f"latents=float32zeros:2,{LATENT_DIM}",
                    "labels=int32s:0,10")
  assert code == 3 and lines["RUN"].startswith(
      "INVALID_ARGUMENT: assertion failed: [labels must be from 0 to 9]"), lines
