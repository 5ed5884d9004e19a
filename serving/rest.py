"""TF Serving's REST API on the standard library's HTTP server, hardened for hostile clients.

- Every request gets a JSON answer `{"error": "..."}` with TF Serving's HTTP status (4xx for
  bad requests), never a silently closed connection (except an idle keep-alive connection).
- Reads are bounded in time: the request line and headers within `header_timeout` seconds of
  the request's first byte being awaited (this is also the keep-alive idle limit), the body
  within `body_timeout` seconds (slow-loris clients get 408 and are closed).
- One thread per connection, at most `max_connections` (further connections get 503 and are
  closed); at most `max_workers` requests run the model at once (others wait, up to their
  deadline).
- Strict framing: POST needs one `Content-Length` of ASCII digits (missing: 411; `-1`, `abc`,
  several: 400; over `max_body_bytes`: 413; `Transfer-Encoding`: 411).
- The body's values are bounded before it is parsed: more commas or brackets than the
  signature's largest request could need (`max_samples_per_request` rows) is 400, so a
  200,000-row or 100,000-deep JSON never reaches `json.loads`.
- JSON integers are range-checked against the input's dtype (no wrap-around).
"""

import http.server
import json
import logging
import re
import socket
import socketserver
import threading
import time

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format

from serving import limits
from serving import rest_connection
from serving import rest_json
from serving.limits import ServingError
from serving.versions import DEFAULT_SIGNATURE

_LOG = logging.getLogger("serving.server")
_PATH = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[0-9]{1,18}))?"
                   r"(?P<rest>/metadata|:predict)?/?$")
_DIGITS = re.compile(r"[0-9]{1,19}")
_BODY_PIECE = 1 << 20

class RestHandler(http.server.BaseHTTPRequestHandler):
  """One connection: TF Serving's REST routes; bounded, JSON-answered, keep-alive."""
  # Per-server settings, set on a subclass by `ModelServer`.
  manager = None
  max_body_bytes = 64 << 20
  header_timeout = 10.0
  body_timeout = 30.0
  request_timeout_ms = limits.DEFAULT_REQUEST_TIMEOUT_MS
  work_slots: threading.Semaphore = None
  protocol_version = "HTTP/1.1"
  server_version = "tfgan_app-model-server"

  def log_message(self, format, *args):  # pylint: disable=redefined-builtin
    _LOG.debug("REST %s " + format, self.client_address[0], *args)

  def log_error(self, format, *args):  # pylint: disable=redefined-builtin
    self.log_message(format, *args)

  def setup(self):
    self.connection = self.request
    self.rfile = rest_connection.DeadlineReader(self.connection)
    self.wfile = socketserver._SocketWriter(self.connection)  # pylint: disable=protected-access

  def finish(self):
    if self.close_connection and self.rfile.unread:
      rest_connection.linger(self.connection)

  def handle(self):
    self.close_connection = True
    self.handle_one_request()
    while not self.close_connection and not self.server.stopping.is_set():
      self.handle_one_request()

  def handle_one_request(self):
    self.server.set_busy(self.connection, False)
    self.rfile.start(self.header_timeout)
    self.command, self.request_version, self.requestline = "", "", ""
    try:
      self.raw_requestline = self.rfile.readline(65537)
      self.server.set_busy(self.connection, True)
      if len(self.raw_requestline) > 65536:
        self.send_error(414, "request line too long")
        return
      if not self.raw_requestline:
        self.close_connection = True
        return
      if not self.parse_request():  # Answered by send_error.
        return
      method = getattr(self, "do_" + self.command, None)
      if method is None:
        self.send_error(501, f"Unsupported method ({self.command!r})")
        return
      method()
    except TimeoutError:
      if self.rfile.received:
        self._reply(408, {"error": "request not received in time"}, close=True)
      self.close_connection = True
    except OSError:
      self.close_connection = True
    except Exception as error:  # pylint: disable=broad-except
      _LOG.exception("REST request failed")
      self._reply(500, {"error": f"internal error: {type(error).__name__}"}, close=True)

  def send_error(self, code, message=None, explain=None):
    """http.server's own errors (bad request line, headers) as JSON."""
    del explain
    text = message or rest_connection.STATUS_TEXT.get(int(code), "error")
    self._reply(int(code), {"error": text}, close=True)

  def _reply(self, status: int, payload, close: bool = False) -> None:
    if close:
      self.close_connection = True
    if self.request_version == "HTTP/0.9":
      self.request_version = "HTTP/1.0"  # Answer with a status line and headers all the same.
    try:
      body = json.dumps(payload).encode("utf-8")
      self.connection.settimeout(self.body_timeout)  # A client that does not read.
      self.send_response_only(status, rest_connection.STATUS_TEXT.get(status))
      self.send_header("Server", self.version_string())
      self.send_header("Content-Type", "application/json")
      self.send_header("Content-Length", str(len(body)))
      if self.close_connection:
        self.send_header("Connection", "close")
      # Headers and body in one write: two small writes meet Nagle and delayed ACKs (~40 ms).
      self._headers_buffer.append(b"\r\n" + body)
      self.flush_headers()
    except OSError:
      self.close_connection = True

  def _error(self, error: ServingError, close: bool = False) -> None:
    self._reply(limits.HTTP_STATUS.get(error.code, 500), {"error": error.message}, close)

  def _route(self, method: str):
    match = _PATH.match(self.path.split("?", 1)[0])
    if match is None:
      raise ServingError(grpc.StatusCode.NOT_FOUND, f"Malformed request: {method} {self.path}")
    version = int(match["version"]) if match["version"] else None
    return match["name"], version, match["rest"] or ""

  def do_GET(self):  # pylint: disable=invalid-name
    if self.headers.get("Content-Length", "0").strip() not in ("", "0") or \
        self.headers.get("Transfer-Encoding"):
      self.close_connection = True  # A body we do not read: the framing is lost.
    try:
      name, version, rest = self._route("GET")
      if rest == ":predict":
        raise ServingError(grpc.StatusCode.NOT_FOUND, f"Malformed request: GET {self.path}")
      if rest == "/metadata":
        servable = self.manager.get(name, version)
        signatures = json_format.MessageToDict(servable.signature_def_map(),
                                               preserving_proto_field_name=True)
        self._reply(200, {
            "model_spec": {"name": servable.name, "signature_name": "",
                           "version": str(servable.version)},
            "metadata": {"signature_def": signatures}})
        return
      rows = self.manager.status(name, version)
      self._reply(200, {"model_version_status": [
          {"version": str(v), "state": state,
           "status": {"error_code": "INTERNAL" if message else "OK",
                      "error_message": message}} for v, state, message in rows]})
    except ServingError as error:
      self._error(error)

  def _read_body(self):
    """The body by a strict Content-Length; None once an error has been answered."""
    self.rfile.unread = True  # Until the body is read: an error answer lingers (finish).
    if self.headers.get("Transfer-Encoding"):
      self._reply(411, {"error": "Transfer-Encoding is not supported; send Content-Length"},
                  close=True)
      return None
    lengths = self.headers.get_all("Content-Length") or []
    if not lengths:
      self._reply(411, {"error": "Content-Length required"}, close=True)
      return None
    if len(lengths) > 1 or not _DIGITS.fullmatch(lengths[0].strip()):
      self._reply(400, {"error": f"bad Content-Length: {', '.join(lengths)[:40]!r}"},
                  close=True)
      return None
    length = int(lengths[0].strip())
    if length > self.max_body_bytes:
      self._reply(413, {"error": f"request of {length} bytes exceeds the limit of "
                                 f"{self.max_body_bytes} (--max_message_bytes)"}, close=True)
      return None
    self.rfile.start(self.body_timeout)
    body = bytearray()
    while len(body) < length:
      # Memory is reserved a piece at a time, so that a stalled client holds little of it.
      size = min(_BODY_PIECE, length - len(body))
      if not self.server.reserve_body(size):
        self._reply(503, {"error": "too much request data in flight; retry later"},
                    close=True)
        return None
      self.reserved += size
      piece = self.rfile.read(size)
      if len(piece) < size:
        self.close_connection = True  # The client closed: nobody to answer.
        return None
      body += piece
    self.rfile.unread = False
    return body

  def do_POST(self):  # pylint: disable=invalid-name
    self.reserved = 0
    try:
      self._post()
    finally:
      self.server.release_body(self.reserved)

  def _post(self) -> None:
    raw = self._read_body()
    if raw is None:
      return
    deadline = limits.Deadline(self.request_timeout_ms / 1000.0)
    try:
      name, version, rest = self._route("POST")
      if rest != ":predict":
        raise ServingError(grpc.StatusCode.NOT_FOUND, f"Malformed request: POST {self.path}")
      servable = self.manager.get(name, version)
      bound = rest_json.value_bound(servable)
      if raw.count(b",") > bound or raw.count(b"[") + raw.count(b"{") > bound:
        raise limits.invalid(
            f"request has more values or nesting than any signature accepts (at most "
            f"{servable.max_rows} rows per request, --max_samples_per_request)")
      try:
        body = json.loads(raw or b"null")
      except RecursionError as error:
        raise limits.invalid("JSON Parse error: nested too deeply") from error
      except ValueError as error:
        raise limits.invalid(f"JSON Parse error: {error}") from error
      if not isinstance(body, dict):
        raise limits.invalid("JSON Value: request body must be an object")
      signature_name = body.get("signature_name")
      if signature_name is None:
        signature_name = DEFAULT_SIGNATURE
      if not isinstance(signature_name, str):
        raise limits.invalid("'signature_name' must be a string")
      signature_name = signature_name or DEFAULT_SIGNATURE
      inputs, rows = rest_json.rest_inputs(body, servable.signature(signature_name))
      if not self.work_slots.acquire(timeout=max(0.0, deadline.remaining())):
        raise ServingError(grpc.StatusCode.DEADLINE_EXCEEDED,
                           "Deadline exceeded waiting for a free worker")
      try:
        outputs = servable.predict(signature_name, inputs, deadline=deadline)
      finally:
        self.work_slots.release()
    except ServingError as error:
      self._error(error)
      return
    self._reply(200, rest_json.response(outputs, rows))

class RestServer(socketserver.TCPServer):
  """A thread per connection, at most `max_connections`; TLS when `ssl_context` is given."""

  allow_reuse_address = True
  daemon_threads = True

  def __init__(self, address, handler, max_connections: int, ssl_context=None,
               max_body_bytes_in_flight: int = 0):
    self._slots = threading.BoundedSemaphore(max_connections)
    self._body_budget = max_body_bytes_in_flight  # 0: no limit beyond the connections.
    self._body_bytes = 0
    self._ssl_context = ssl_context
    self._connections = {}  # socket -> busy (reading or answering a request)
    self._lock = threading.Lock()
    self.stopping = threading.Event()
    super().__init__(address, handler)

  def reserve_body(self, size: int) -> bool:
    """Takes `size` bytes of the body budget; False (take nothing) if it would overflow."""
    with self._lock:
      if self._body_budget and self._body_bytes + size > self._body_budget:
        return False
      self._body_bytes += size
      return True

  def release_body(self, size: int) -> None:
    with self._lock:
      self._body_bytes -= size

  def set_busy(self, sock, busy: bool) -> None:
    with self._lock:
      if sock in self._connections:
        self._connections[sock] = busy

  def process_request(self, request, client_address):
    if not self._slots.acquire(blocking=False):
      rest_connection.refuse(request, 503, "too many connections (--max_rest_connections)")
      return
    thread = threading.Thread(target=self._serve_connection, args=(request, client_address),
                              name="rest-connection", daemon=True)
    thread.start()

  def _serve_connection(self, request, client_address):
    try:
      if self._ssl_context is not None:
        request.settimeout(self.RequestHandlerClass.header_timeout)
        try:
          request = self._ssl_context.wrap_socket(request, server_side=True)
        except (OSError, ValueError):
          request.close()
          return
      with self._lock:
        self._connections[request] = False
      self.finish_request(request, client_address)
    except Exception:  # pylint: disable=broad-except
      _LOG.debug("REST connection failed", exc_info=True)
    finally:
      with self._lock:
        self._connections.pop(request, None)
      self.shutdown_request(request)
      self._slots.release()

  def stop(self, deadline: float) -> None:
    """Stops accepting; idle connections close now, busy ones at `deadline` at the latest."""
    self.stopping.set()
    self.shutdown()
    self.server_close()
    while True:
      with self._lock:
        targets = [s for s, busy in self._connections.items()
                   if not busy or time.monotonic() >= deadline]
        left = len(self._connections)
      for sock in targets:
        try:
          sock.shutdown(socket.SHUT_RDWR)
        except OSError:
          pass
      if not left or time.monotonic() >= deadline:
        return
      time.sleep(0.05)
