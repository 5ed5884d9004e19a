"""serving.server: TF Serving's gRPC and REST APIs, its status codes, version hot swap."""

import base64
import json
import os
import threading
import time
import urllib.error
import urllib.request

import grpc
import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from serving import server as server_lib
from tfgan_app.exporting import saved_model as export
from tfgan_app.models import registry as models
from conftest import assert_images_match, conditional_standin


def _generator(seed):
  keras.utils.set_random_seed(seed)
  return models.build_generator("dcgan", 8, (28, 28, 1), filters=8)


@pytest.fixture(scope="module")
def generator():
  return _generator(1)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, generator):
  base = tmp_path_factory.mktemp("models")
  return export.export_generator(generator, 8, str(base), "dcgan", 1, {},
                                 max_samples_per_request=16)


@pytest.fixture(scope="module")
def running(exported):
  server = server_lib.ModelServer("dcgan", os.path.dirname(exported), port=0, rest_api_port=0,
                                  max_workers=4, poll_seconds=0.2).start()
  channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
  yield server, prediction_service_pb2_grpc.PredictionServiceStub(channel), \
      model_service_pb2_grpc.ModelServiceStub(channel)
  channel.close()
  server.stop(1)


def _request(signature=export.SAMPLE_SIGNATURE, model="dcgan", version=None, **inputs):
  request = predict_pb2.PredictRequest()
  request.model_spec.name = model
  request.model_spec.signature_name = signature
  if version is not None:
    request.model_spec.version.value = version
  for name, value in inputs.items():
    request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
  return request


def _sample_request(num_samples=3, seed=5, **kwargs):
  return _request(num_samples=np.int32(num_samples), seed=np.int64(seed), **kwargs)


def _expected_images(generator, seeds):
  latents = tf.stack([tf.random.stateless_normal([8], seed=[s, 0]) for s in seeds])
  return export.to_uint8(generator(latents, training=False)).numpy()


def test_grpc_predict_sample_matches_the_generator(running, generator):
  _, stub, _ = running
  response = stub.Predict(_sample_request(3, 5), timeout=30)
  assert response.model_spec.name == "dcgan" and response.model_spec.version.value == 1
  assert response.model_spec.signature_name == export.SAMPLE_SIGNATURE
  images = tf.make_ndarray(response.outputs[export.IMAGES])
  assert_images_match(images, _expected_images(generator, [5, 6, 7]))
  pngs = tf.make_ndarray(response.outputs[export.PNG_BYTES])
  np.testing.assert_array_equal(tf.io.decode_png(pngs[1]).numpy(), images[1])
  # output_filter narrows the outputs.
  request = _sample_request(2, 5)
  request.output_filter.append(export.IMAGES)
  assert set(stub.Predict(request, timeout=30).outputs) == {export.IMAGES}


def test_grpc_default_signature_and_seeds(running, generator):
  _, stub, _ = running
  latents = tf.random.stateless_normal([2, 8], seed=[9, 9]).numpy()
  response = stub.Predict(_request("", latents=latents), timeout=30)
  assert_images_match(tf.make_ndarray(response.outputs[export.IMAGES]),
                      export.to_uint8(generator(latents, training=False)).numpy())
  response = stub.Predict(_request(export.SAMPLE_SEEDS_SIGNATURE,
                                   seeds=np.array([11, 3], np.int64)), timeout=30)
  assert_images_match(tf.make_ndarray(response.outputs[export.IMAGES]),
                      _expected_images(generator, [11, 3]))


def test_grpc_metadata_and_status(running):
  _, stub, model_stub = running
  request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
  request.model_spec.name = "dcgan"
  response = stub.GetModelMetadata(request, timeout=30)
  signatures = get_model_metadata_pb2.SignatureDefMap()
  response.metadata["signature_def"].Unpack(signatures)
  for name, inputs in export.SIGNATURE_INPUTS.items():
    assert set(signatures.signature_def[name].inputs) == set(inputs)
  assert set(signatures.signature_def[export.SAMPLE_SIGNATURE].outputs) == {
      export.IMAGES, export.PNG_BYTES}
  status_request = get_model_status_pb2.GetModelStatusRequest()
  status_request.model_spec.name = "dcgan"
  status = model_stub.GetModelStatus(status_request, timeout=30)
  assert [(s.version, s.state) for s in status.model_version_status] == [
      (1, get_model_status_pb2.ModelVersionStatus.AVAILABLE)]
  status_request.model_spec.name = "nope"
  with pytest.raises(grpc.RpcError) as raised:
    model_stub.GetModelStatus(status_request, timeout=30)
  assert raised.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("request_fn,code,message", [
    (lambda: _sample_request(model="nope"), grpc.StatusCode.NOT_FOUND,
     "Servable not found for request: Latest(nope)"),
    (lambda: _sample_request(version=99), grpc.StatusCode.NOT_FOUND, "Specific(dcgan, 99)"),
    (lambda: _request("nope", seeds=np.array([1], np.int64)),
     grpc.StatusCode.FAILED_PRECONDITION, 'Serving signature key "nope" not found'),
    (lambda: _request(num_samples=np.int32(2)), grpc.StatusCode.INVALID_ARGUMENT, "seed"),
    (lambda: _request(num_samples=np.int32(2), seed=np.int64(1), extra=np.int64(1)),
     grpc.StatusCode.INVALID_ARGUMENT, "input tensor alias not found in signature: extra"),
    (lambda: _request(num_samples=np.int32(2), seed=np.int32(1)),
     grpc.StatusCode.INVALID_ARGUMENT, "DT_INT64"),
    (lambda: _request(num_samples=np.array([2], np.int32), seed=np.int64(1)),
     grpc.StatusCode.INVALID_ARGUMENT, "shape"),
    (lambda: _request(export.SAMPLE_SEEDS_SIGNATURE, seeds=np.array([[1]], np.int64)),
     grpc.StatusCode.INVALID_ARGUMENT, "shape"),
    (lambda: _sample_request(num_samples=0), grpc.StatusCode.INVALID_ARGUMENT,
     "num_samples must be from 1 to 16"),
    # Refused by the server before the graph runs: the export declares its limit.
    (lambda: _sample_request(num_samples=17), grpc.StatusCode.INVALID_ARGUMENT,
     "num_samples is 17; at most 16 per request"),
])
def test_malformed_requests_get_tf_serving_codes_and_the_server_keeps_serving(
    running, request_fn, code, message):
  _, stub, _ = running
  with pytest.raises(grpc.RpcError) as raised:
    stub.Predict(request_fn(), timeout=30)
  assert raised.value.code() == code
  assert message in raised.value.details()
  assert stub.Predict(_sample_request(1, 0), timeout=30).outputs[export.IMAGES].tensor_shape


def _http(server, method, path, body=None):
  request = urllib.request.Request(
      f"http://127.0.0.1:{server.rest_api_port}{path}", method=method,
      data=None if body is None else json.dumps(body).encode())
  try:
    with urllib.request.urlopen(request, timeout=30) as response:
      return response.status, json.loads(response.read())
  except urllib.error.HTTPError as error:
    return error.code, json.loads(error.read())


def test_rest_predict_status_and_metadata(running, generator):
  server, _, _ = running
  status, body = _http(server, "POST", "/v1/models/dcgan:predict",
                       {"signature_name": "sample", "inputs": {"num_samples": 2, "seed": 5}})
  assert status == 200, body
  expected = _expected_images(generator, [5, 6])
  images = np.array(body["outputs"]["images"], np.uint8)
  assert_images_match(images, expected)
  png = base64.b64decode(body["outputs"]["png_bytes"][1]["b64"])
  np.testing.assert_array_equal(tf.io.decode_png(png).numpy(), images[1])

  status, body = _http(server, "POST", "/v1/models/dcgan/versions/1:predict",
                       {"signature_name": "sample_seeds", "instances": [6, 5]})
  assert status == 200, body
  assert len(body["predictions"]) == 2
  assert_images_match(np.array(body["predictions"][0]["images"], np.uint8), expected[1])

  status, body = _http(server, "GET", "/v1/models/dcgan")
  assert status == 200 and body["model_version_status"][0]["state"] == "AVAILABLE"
  assert body["model_version_status"][0]["version"] == "1"
  status, body = _http(server, "GET", "/v1/models/dcgan/metadata")
  assert status == 200
  assert set(body["metadata"]["signature_def"]["signature_def"]) >= set(export.SIGNATURE_INPUTS)


@pytest.mark.parametrize("method,path,body,code,message", [
    ("POST", "/v1/models/nope:predict", {"inputs": {"latents": [[0.0] * 8]}}, 404,
     "Servable not found"),
    ("POST", "/v1/models/dcgan:predict", {"signature_name": "nope", "inputs": [1]}, 400,
     'Serving signature key "nope" not found'),
    ("POST", "/v1/models/dcgan:predict",
     {"signature_name": "sample", "inputs": {"num_samples": 0, "seed": 1}}, 400,
     "num_samples must be from 1 to 16"),
    ("POST", "/v1/models/dcgan:predict",
     {"signature_name": "sample", "inputs": {"num_samples": 1.5, "seed": 1}}, 400, "int32"),
    ("POST", "/v1/models/dcgan:predict", {"signature_name": "sample"}, 400, "exactly one"),
    ("GET", "/v1/models/dcgan/versions/7", None, 404, "Could not find version 7"),
])
def test_rest_errors(running, method, path, body, code, message):
  server, _, _ = running
  status, reply = _http(server, method, path, body)
  assert status == code and message in reply["error"], reply
  assert _http(server, "GET", "/v1/models/dcgan")[0] == 200


def test_new_version_is_picked_up_with_no_failed_request(tmp_path):
  base = tmp_path / "dcgan"
  export.export_generator(_generator(1), 8, str(tmp_path), "dcgan", 1, {})
  server = server_lib.ModelServer("dcgan", str(base), port=0, rest_api_port=-1,
                                  max_workers=4, poll_seconds=0.1).start()
  failures, versions, stop = [], [], threading.Event()

  def client():
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
      stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
      while not stop.is_set():
        try:
          response = stub.Predict(_sample_request(4, 1), timeout=30)
          versions.append(response.model_spec.version.value)
        except grpc.RpcError as error:
          failures.append(f"{error.code()}: {error.details()}")
        time.sleep(0.005)  # Leaves the loader some CPU on a 2-core machine.

  # Version 2 is written beforehand and renamed into place as export_generator does, so that
  # the test measures the swap, not the export competing with the clients for the CPU.
  staged = export.export_generator(_generator(2), 8, str(tmp_path / "staging"), "dcgan", 2, {})
  threads = [threading.Thread(target=client) for _ in range(4)]
  try:
    for thread in threads:
      thread.start()
    time.sleep(0.3)
    os.rename(staged, base / "2")
    deadline = time.time() + 30
    while time.time() < deadline and versions[-8:].count(2) < 8:
      time.sleep(0.05)
  finally:
    stop.set()
    for thread in threads:
      thread.join()
    server.stop(1)
  assert not failures, failures[:3]
  assert 1 in versions and versions[-1] == 2
  # Once switched, never back: version 1 was unloaded.
  first_new = versions.index(2)
  assert versions[first_new:].count(1) <= 4  # At most the requests already running on 1.
  assert [row[0] for row in server.manager.status("dcgan")] == [2]


def test_warmup_requests_are_replayed_on_load(exported):
  servable = server_lib.Servable("dcgan", 1, exported)
  assert servable.warmup() == len(export.SIGNATURE_INPUTS)


def test_message_size_is_bounded(exported):
  server = server_lib.ModelServer("dcgan", os.path.dirname(exported), port=0, rest_api_port=0,
                                  max_workers=1, max_message_bytes=4096).start()
  try:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
      stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
      assert stub.Predict(_sample_request(1, 0), timeout=30).outputs  # 28x28 fits in 4 KiB.
      with pytest.raises(grpc.RpcError) as raised:  # 16 images (12.5 KB) do not.
        stub.Predict(_sample_request(16, 0), timeout=30)
      assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    status, reply = _http(server, "POST", "/v1/models/dcgan:predict",
                          {"instances": [[0.0] * 8] * 100})
    assert status == 413 and "exceeds the limit" in reply["error"]  # Payload Too Large.
  finally:
    server.stop(1)


# --- A class-conditional export: labels over gRPC and REST, classes checked by the graph.


@pytest.fixture(scope="module")
def conditional(tmp_path_factory):
  generator = conditional_standin(4, (8, 8, 1), 10)
  base = tmp_path_factory.mktemp("conditional")
  path = export.export_generator(generator, 4, str(base), "cgan", 1, {},
                                 max_samples_per_request=16)
  # chunk_rows=4: a 10-row sample runs as chunks of consecutive seeds.
  server = server_lib.ModelServer("cgan", os.path.dirname(path), port=0, rest_api_port=0,
                                  max_workers=2, chunk_rows=4).start()
  channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
  yield server, prediction_service_pb2_grpc.PredictionServiceStub(channel), \
      tf.saved_model.load(path).signatures
  channel.close()
  server.stop(1)


def test_conditional_grpc_and_rest_take_labels(conditional):
  server, stub, signatures = conditional
  latents = tf.random.stateless_normal([3, 4], seed=[1, 2]).numpy()
  labels = np.array([7, 0, 9], np.int32)
  expected = signatures["serving_default"](latents=latents, labels=labels)["images"].numpy()
  response = stub.Predict(_request("", "cgan", latents=latents, labels=labels), timeout=30)
  np.testing.assert_array_equal(tf.make_ndarray(response.outputs["images"]), expected)
  whole = {}
  for label in (3, -1):  # Chunked by the server: the same rows as one call.
    response = stub.Predict(_request("sample", "cgan", num_samples=np.int32(10),
                                     seed=np.int64(5), label=np.int32(label)), timeout=30)
    whole[label] = signatures["sample"](
        num_samples=tf.constant(10), seed=tf.constant(5, tf.int64),
        label=tf.constant(label))["images"].numpy()
    np.testing.assert_array_equal(tf.make_ndarray(response.outputs["images"]), whole[label])
  status, body = _http(server, "POST", "/v1/models/cgan:predict", {"instances": [
      {"latents": row.tolist(), "labels": int(label)} for row, label in zip(latents, labels)]})
  assert status == 200, body
  np.testing.assert_array_equal(np.array(body["predictions"], np.uint8), expected)
  status, body = _http(server, "POST", "/v1/models/cgan:predict", {
      "signature_name": "sample_seeds", "inputs": {"seeds": [5, 6], "labels": [3, 3]}})
  assert status == 200, body
  np.testing.assert_array_equal(np.array(body["outputs"]["images"], np.uint8), whole[3][:2])
  status, body = _http(server, "POST", "/v1/models/cgan:predict",
                       {"signature_name": "class_names", "inputs": {}})
  assert status == 200 and body["outputs"] == [str(i) for i in range(10)], body


def test_conditional_label_out_of_range_is_invalid_argument_and_400(conditional):
  server, stub, _ = conditional
  for request in (_request("", "cgan", latents=np.zeros([2, 4], np.float32),
                           labels=np.array([1, 10], np.int32)),
                  _request("sample", "cgan", num_samples=np.int32(2), seed=np.int64(0),
                           label=np.int32(-2))):
    with pytest.raises(grpc.RpcError) as raised:
      stub.Predict(request, timeout=30)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "must be from" in raised.value.details()
  status, body = _http(server, "POST", "/v1/models/cgan:predict", {
      "signature_name": "sample", "inputs": {"num_samples": 2, "seed": 0, "label": 10}})
  assert status == 400 and "label must be from -1 to 9" in body["error"], body
  status, body = _http(server, "POST", "/v1/models/cgan:predict",
                       {"instances": [{"latents": [0.0] * 4, "labels": -1}]})
  assert status == 400 and "labels must be from 0 to 9" in body["error"], body
  # The server keeps serving.
  response = stub.Predict(_request("sample", "cgan", num_samples=np.int32(1), seed=np.int64(0),
                                   label=np.int32(9)), timeout=30)
  assert tf.make_ndarray(response.outputs["images"]).shape == (1, 8, 8, 1)
