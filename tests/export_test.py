"""The exported SavedModel: TF Serving's restore path, exact round trip, refusal of NaNs."""

import fcntl
import json
import os
import shutil
import stat
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfgan_app import export as export_command
from tfgan_app.exporting import saved_model as export
from tfgan_app.gan import build as gan_build
from tfgan_app.models import registry as models
from tfgan_app.runs import checkpoints
from tfgan_app.runs import workdir as workdir_lib
from conftest import HANG_TIMEOUT_S, assert_images_match, assert_values_match, \
    cc_loader_check_binary


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
  assert export.read_metadata(path) == {"latent_dim": 8, "step": 120,
                                        export.MAX_SAMPLES_PER_REQUEST: 256}
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
      capture_output=True, text=True, timeout=HANG_TIMEOUT_S)
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
  assert export.read_metadata(path)["first"] is True


def test_export_is_readable_by_other_users_whatever_the_umask(tmp_path, generator):
  previous = os.umask(0o077)
  try:
    path = export.export_generator(generator, 8, str(tmp_path / "base"), "dcgan", 9, {})
  finally:
    os.umask(previous)
  modes = {}
  for root, dirs, files in os.walk(tmp_path / "base"):
    for name in dirs + files:
      modes[os.path.relpath(os.path.join(root, name), tmp_path)] = stat.S_IMODE(
          os.stat(os.path.join(root, name)).st_mode)
  assert modes["base/dcgan"] == modes["base/dcgan/9"] == 0o755
  assert modes["base/dcgan/9/saved_model.pb"] == 0o644
  assert os.path.join("base", "dcgan", "9", export.EXTRA_DIR, export.METADATA_FILE) in modes
  for name, mode in modes.items():
    is_dir = os.path.isdir(tmp_path / name)
    assert mode == (0o755 if is_dir else 0o644), f"{name}: {oct(mode)}"
  assert path.endswith("9")


def _staging(model_dir, name, age_seconds):
  path = model_dir / name
  (path / "variables").mkdir(parents=True)
  (path / "saved_model.pb").write_bytes(b"half")
  then = time.time() - age_seconds
  os.utime(path, (then, then))
  return path


def test_next_export_removes_only_stale_unlocked_staging_directories(tmp_path, generator):
  model_dir = tmp_path / "dcgan"
  old = export.STALE_STAGING_SECONDS + 600
  killed = _staging(model_dir, f"{export.STAGING_PREFIX}3-abcd1234", old)
  legacy = _staging(model_dir, ".tmp-2-k2j_x9q0", old)  # Named by earlier versions.
  young = _staging(model_dir, f"{export.STAGING_PREFIX}4-young123", 0)  # Being created.
  running = _staging(model_dir, f"{export.STAGING_PREFIX}5-running1", old)
  foreign = _staging(model_dir, ".tmp-someone-else", old)  # Not ours.
  # Another exporter is still writing `running`: it holds its lock (flock locks conflict
  # between open files, in one process as between two).
  fd = os.open(running, os.O_RDONLY)
  fcntl.flock(fd, fcntl.LOCK_EX)
  try:
    path = export.export_generator(generator, 8, str(tmp_path), "dcgan", 6, {})
  finally:
    os.close(fd)
  assert not killed.exists() and not legacy.exists()
  assert young.exists() and running.exists() and foreign.exists()
  assert sorted(os.listdir(model_dir)) == sorted(
      ["6", young.name, running.name, foreign.name])
  assert os.path.exists(os.path.join(path, "saved_model.pb"))
  # Once its exporter died (lock released), the next export removes it too.
  assert export.remove_stale_staging(str(model_dir)) == [str(running)]


# --- The serving signatures: sample, sample_seeds, interpolate; warmup; export from a workdir.


@pytest.fixture(scope="module")
def exported(tmp_path_factory, generator):
  base = tmp_path_factory.mktemp("export")
  return export.export_generator(generator, 8, str(base), "dcgan", 3, {"step": 3},
                                 max_samples_per_request=16)


def _signature(path, name):
  return tf.saved_model.load(path).signatures[name]


def test_sample_row_i_is_the_image_of_seed_plus_i(exported, generator):
  served = _signature(exported, export.SAMPLE_SIGNATURE)(
      **{export.NUM_SAMPLES: tf.constant(4), export.SEED: tf.constant(7, tf.int64)})
  assert set(served) == {export.IMAGES, export.PNG_BYTES}
  latents = tf.stack([tf.random.stateless_normal([8], seed=[7 + i, 0]) for i in range(4)])
  expected = export.to_uint8(generator(latents, training=False)).numpy()
  np.testing.assert_array_equal(served[export.IMAGES].numpy(), expected)
  by_seed = _signature(exported, export.SAMPLE_SEEDS_SIGNATURE)(
      **{export.SEEDS: tf.constant([9, 7], tf.int64)})
  assert_images_match(by_seed[export.IMAGES].numpy(), expected[[2, 0]])  # Batch 2, not 4.
  # Each PNG decodes to its image.
  pngs = served[export.PNG_BYTES].numpy()
  assert pngs.shape == (4,)
  for png, image in zip(pngs, expected):
    np.testing.assert_array_equal(tf.io.decode_png(png).numpy(), image)


def test_interpolate_starts_and_ends_at_the_seeds_latents(exported, generator):
  served = _signature(exported, export.INTERPOLATE_SIGNATURE)(
      **{export.SEED_A: tf.constant(1, tf.int64), export.SEED_B: tf.constant(2, tf.int64),
         export.NUM_STEPS: tf.constant(5)})
  images = served[export.IMAGES].numpy()
  assert images.shape == (5, 28, 28, 1)
  ends = tf.stack([tf.random.stateless_normal([8], seed=[s, 0]) for s in (1, 2)])
  expected = export.to_uint8(generator(ends, training=False)).numpy()
  assert_images_match(images[[0, -1]], expected)  # Computed in a batch of 5, not 2.
  # Slerp keeps the midpoint's norm between the end norms' range (a lerp would shrink it).
  path = export.slerp(ends[0], ends[1], 5).numpy()
  norms = np.linalg.norm(path, axis=1)
  assert norms[2] > 0.9 * min(norms[0], norms[-1])
  np.testing.assert_allclose(path[[0, -1]], ends.numpy(), atol=1e-5)


@pytest.mark.parametrize("signature,inputs", [
    (export.SAMPLE_SIGNATURE, {export.NUM_SAMPLES: 0, export.SEED: 1}),
    (export.SAMPLE_SIGNATURE, {export.NUM_SAMPLES: 17, export.SEED: 1}),
    (export.SAMPLE_SEEDS_SIGNATURE, {export.SEEDS: list(range(17))}),
    (export.SAMPLE_SEEDS_SIGNATURE, {export.SEEDS: []}),
    (export.INTERPOLATE_SIGNATURE, {export.SEED_A: 1, export.SEED_B: 2, export.NUM_STEPS: 1}),
    (export.SERVING_SIGNATURE, {export.LATENTS: np.zeros([17, 8], np.float32)}),
    (export.SERVING_SIGNATURE, {export.LATENTS: np.zeros([0, 8], np.float32)}),
])
def test_out_of_range_requests_fail_in_graph(exported, signature, inputs):
  function = _signature(exported, signature)
  tensors = {name: tf.constant(value, export.SIGNATURE_INPUTS[signature][name])
             for name, value in inputs.items()}
  with pytest.raises(tf.errors.InvalidArgumentError, match="must be from"):
    function(**tensors)


def test_metadata_records_the_limit_the_graph_enforces(exported):
  assert export.read_metadata(exported) == {"step": 3, export.MAX_SAMPLES_PER_REQUEST: 16}
  latents = tf.zeros([16, 8])  # The limit itself is accepted.
  served = _signature(exported, export.SERVING_SIGNATURE)(**{export.LATENTS: latents})
  assert served[export.IMAGES].shape == (16, 28, 28, 1)


def test_evaluation_splits_large_batches_at_the_exports_limit(exported, generator):
  from tfgan_app.evaluation import evaluator  # pylint: disable=import-outside-toplevel
  assert export.request_limit(exported) == 16
  loaded = evaluator.load_saved_model_generator(exported)
  latents = tf.random.stateless_normal([40, 8], seed=[5, 5])  # Batches of 16, 16 and 8.
  images = loaded.generate_fn(latents).numpy()
  expected = export.to_uint8(generator(latents, training=False)).numpy()
  assert images.shape == (40, 28, 28, 1)
  assert_images_match(images, expected)  # Computed in batches of 16 and 8, not 40.


def test_every_signature_runs_under_saved_model_cli(exported, tmp_path):
  # Scalars through --input_exprs, arrays through --inputs (.npy): the TF1 session restore path
  # TF Serving uses. The runs are independent, so they go in parallel.
  np.save(tmp_path / "seeds.npy", np.array([7, 8, 9], np.int64))
  runs = {
      export.SAMPLE_SIGNATURE: ["--input_exprs", "num_samples=3;seed=7"],
      export.SAMPLE_SEEDS_SIGNATURE: ["--inputs", f"seeds={tmp_path / 'seeds.npy'}"],
      export.INTERPOLATE_SIGNATURE: ["--input_exprs", "seed_a=7;seed_b=9;num_steps=3"],
  }
  processes = {}
  for key, arguments in runs.items():
    processes[key] = subprocess.Popen(
        [_saved_model_cli(), "run", "--dir", exported, "--tag_set", "serve", "--signature_def",
         key, "--outdir", str(tmp_path / key)] + arguments,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  results = {key: process.communicate(timeout=HANG_TIMEOUT_S) + (process.returncode,)
             for key, process in processes.items()}
  outputs = {}
  for key in (export.SAMPLE_SIGNATURE, export.SAMPLE_SEEDS_SIGNATURE,
              export.INTERPOLATE_SIGNATURE):
    _, stderr, code = results[key]
    assert code == 0, stderr[-3000:]
    outputs[key] = {name: np.load(tmp_path / key / f"{name}.npy", allow_pickle=True)
                    for name in (export.IMAGES, export.PNG_BYTES)}
    assert outputs[key][export.IMAGES].shape == (3, 28, 28, 1)
    assert outputs[key][export.PNG_BYTES].shape == (3,)
  np.testing.assert_array_equal(outputs[export.SAMPLE_SIGNATURE][export.IMAGES],
                                outputs[export.SAMPLE_SEEDS_SIGNATURE][export.IMAGES])
  assert_images_match(outputs[export.SAMPLE_SIGNATURE][export.IMAGES][[0, 2]],
                      outputs[export.INTERPOLATE_SIGNATURE][export.IMAGES][[0, 2]])


def test_in_graph_validation_under_the_tf1_session_loader(exported):
  # The loader saved_model_cli and TF Serving use (tf.compat.v1 session restore), in process:
  # a bad num_samples fails inside the graph with INVALID_ARGUMENT.
  with tf.Graph().as_default(), tf.compat.v1.Session() as session:
    meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], exported)
    signature = meta_graph.signature_def[export.SAMPLE_SIGNATURE]
    feeds = {signature.inputs[export.NUM_SAMPLES].name: 2,
             signature.inputs[export.SEED].name: 7}
    fetch = signature.outputs[export.IMAGES].name
    assert session.run(fetch, feeds).shape == (2, 28, 28, 1)
    feeds[signature.inputs[export.NUM_SAMPLES].name] = 0
    with pytest.raises(tf.errors.InvalidArgumentError, match="num_samples must be from 1 to 16"):
      session.run(fetch, feeds)


def test_warmup_file_holds_one_prediction_log_per_signature(exported):
  from tensorflow_serving.apis import prediction_log_pb2  # pylint: disable=import-outside-toplevel
  path = os.path.join(exported, "assets.extra", export.WARMUP_FILE)
  logs = []
  for record in tf.data.TFRecordDataset(path):
    log = prediction_log_pb2.PredictionLog()
    log.ParseFromString(record.numpy())
    logs.append(log)
  signatures = {log.predict_log.request.model_spec.signature_name: log for log in logs}
  assert set(signatures) == set(export.SIGNATURE_INPUTS)
  loaded = tf.saved_model.load(exported)
  for name, log in signatures.items():
    request = log.predict_log.request
    assert request.model_spec.name == "dcgan"
    assert set(request.inputs) == set(export.SIGNATURE_INPUTS[name])
    # Every warmup request runs.
    loaded.signatures[name](**{key: tf.make_ndarray(value)
                               for key, value in request.inputs.items()})


def test_export_command_exports_the_newest_checkpoint_of_a_workdir(tmp_path):
  from tests.conftest import tiny_config  # pylint: disable=import-outside-toplevel
  # Refine blocks with kernels of their own size: the export must rebuild them from run_spec.
  config = tiny_config(tmp_path / "run", None, ema_decay=0.9, kernel_size=5, g_refine_blocks=1,
                       g_refine_kernel_size=3)
  image_shape = (28, 28, 1)
  model = gan_build.build_gan(config, image_shape)
  model.step.assign(42)
  ema = model.ema_generator
  ema.project.kernel.assign(ema.project.kernel * 0.5)  # EMA differs from G: must be the export.
  manager = tf.train.CheckpointManager(checkpoints.make_checkpoint(model),
                                       str(tmp_path / "run" / workdir_lib.CHECKPOINT_DIR), 2)
  manager.save(checkpoint_number=42)
  (tmp_path / "run" / workdir_lib.FLAGFILE).write_text(config.to_flagfile())
  (tmp_path / "run" / workdir_lib.RUN_SPEC).write_text(
      json.dumps(workdir_lib.run_spec(config, image_shape)))

  assert export_command.main(["export", f"--workdir={tmp_path / 'run'}", "--model_name=cli",
                      f"--export_dir={tmp_path / 'out'}"]) == 0
  path = str(tmp_path / "out" / "cli" / "42")
  assert export.read_metadata(path)["step"] == 42
  latents = tf.random.stateless_normal([2, 8], seed=[3, 3])
  served = tf.saved_model.load(path).signatures[export.SERVING_SIGNATURE](latents=latents)
  np.testing.assert_array_equal(served[export.IMAGES].numpy(),
                                export.to_uint8(ema(latents, training=False)).numpy())
  assert export_command.main(["export", f"--workdir={tmp_path / 'nothing'}"]) == 1


def test_warmup_can_be_limited_to_the_batchable_signatures():
  logs = export.warmup_requests("dcgan", 8, [export.SERVING_SIGNATURE,
                                             export.SAMPLE_SEEDS_SIGNATURE])
  names = [log.predict_log.request.model_spec.signature_name for log in logs]
  assert names == [export.SERVING_SIGNATURE, export.SAMPLE_SEEDS_SIGNATURE]
  with pytest.raises(export.ExportError, match="unknown warmup signature"):
    export.warmup_requests("dcgan", 8, ["nope"])


def test_every_signature_runs_under_the_cpp_loader_tf_serving_calls(exported, generator):
  # tensorflow::LoadSavedModel from the wheel's libtensorflow_cc: the model server's own loader.
  binary = cc_loader_check_binary()

  def run(*arguments):
    result = subprocess.run([binary, exported, *arguments], capture_output=True, text=True,
                            timeout=HANG_TIMEOUT_S)
    lines = dict(line.split(" ", 1) for line in result.stdout.strip().splitlines())
    return result.returncode, lines

  expected = export.to_uint8(generator(tf.stack(
      [tf.random.stateless_normal([8], seed=[s, 0]) for s in (7, 8, 9)]), training=False))
  checksum = int(np.sum(expected.numpy(), dtype=np.int64))
  for arguments in (["sample", "num_samples=int32:3", "seed=int64:7"],
                    ["sample_seeds", "seeds=int64s:7,8,9"]):
    code, lines = run(*arguments)
    assert code == 0, lines
    assert lines[export.IMAGES] == f"uint8 [3,28,28,1] {checksum}"
    assert lines[export.PNG_BYTES].startswith("string [3] ")
  code, lines = run("interpolate", "seed_a=int64:7", "seed_b=int64:9", "num_steps=int32:4")
  assert code == 0 and lines[export.IMAGES].startswith("uint8 [4,28,28,1] "), lines
  code, lines = run("serving_default", "latents=float32zeros:2,8")
  zeros = export.to_uint8(generator(tf.zeros([2, 8]), training=False)).numpy()
  assert code == 0 and lines[export.IMAGES] == f"uint8 [2,28,28,1] {int(zeros.sum())}", lines
  code, lines = run("sample", "num_samples=int32:17", "seed=int64:7")
  assert code == 3 and lines["RUN"].startswith("INVALID_ARGUMENT: assertion failed: "
                                               "[num_samples must be from 1 to 16]"), lines
  # TF Serving itself refuses an oversize batch of latents or seeds.
  for arguments, what in ((["serving_default", "latents=float32zeros:17,8"], "latents"),
                          (["sample_seeds", "seeds=int64s:" + ",".join(map(str, range(17)))],
                           "seeds")):
    code, lines = run(*arguments)
    assert code == 3 and lines["RUN"].startswith(
        f"INVALID_ARGUMENT: assertion failed: [the number of {what} must be from 1 to 16]"), lines


# --- Point generators (toy distributions): the same signatures with a `samples` output.


@pytest.fixture(scope="module")
def point_generator():
  keras.utils.set_random_seed(2)
  return models.build_generator("mlp", 4, (2,), filters=8, hidden_units=(16, 16))


def test_point_export_serves_float32_samples_under_every_signature(tmp_path, point_generator):
  path = export.export_generator(point_generator, 4, str(tmp_path), "ring8", 5, {"step": 5})
  loaded = tf.saved_model.load(path)
  latents = tf.random.stateless_normal([6, 4], seed=[1, 1])
  serve = loaded.signatures[export.SERVING_SIGNATURE]
  assert list(serve.structured_input_signature[1]) == [export.LATENTS]
  served = serve(**{export.LATENTS: latents})
  assert set(served) == {export.SAMPLES}
  samples = served[export.SAMPLES]
  assert samples.dtype == tf.float32 and samples.shape == (6, 2)
  np.testing.assert_array_equal(samples.numpy(), point_generator(latents).numpy())
  sample = loaded.signatures[export.SAMPLE_SIGNATURE](
      **{export.NUM_SAMPLES: tf.constant(3), export.SEED: tf.constant(7, tf.int64)})
  by_seed = loaded.signatures[export.SAMPLE_SEEDS_SIGNATURE](
      **{export.SEEDS: tf.constant([7, 8, 9], tf.int64)})
  assert set(sample) == set(by_seed) == {export.SAMPLES}
  np.testing.assert_array_equal(sample[export.SAMPLES].numpy(), by_seed[export.SAMPLES].numpy())
  path_points = loaded.signatures[export.INTERPOLATE_SIGNATURE](
      **{export.SEED_A: tf.constant(7, tf.int64), export.SEED_B: tf.constant(9, tf.int64),
         export.NUM_STEPS: tf.constant(4)})[export.SAMPLES].numpy()
  assert path_points.shape == (4, 2)
  # Computed in batches of 4 and 3: equal up to the kernels' summation order.
  assert_values_match(path_points[[0, -1]], sample[export.SAMPLES].numpy()[[0, 2]])


def test_point_export_runs_under_the_tf1_loader_tf_serving_uses(tmp_path, point_generator):
  path = export.export_generator(point_generator, 4, str(tmp_path), "ring8", 1, {})
  latents = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
  np.save(tmp_path / "latents.npy", latents)
  result = subprocess.run(
      [_saved_model_cli(), "run", "--dir", path, "--tag_set", "serve", "--signature_def",
       export.SERVING_SIGNATURE, "--inputs", f"{export.LATENTS}={tmp_path / 'latents.npy'}",
       "--outdir", str(tmp_path / "out")],
      capture_output=True, text=True, timeout=HANG_TIMEOUT_S)
  assert result.returncode == 0, result.stderr[-3000:]
  served = np.load(tmp_path / "out" / f"{export.SAMPLES}.npy")
  assert served.dtype == np.float32 and served.shape == (3, 2)
  np.testing.assert_allclose(served, point_generator(latents).numpy(), rtol=1e-6, atol=1e-6)
