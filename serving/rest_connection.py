"""Connection-level pieces of the REST server: socket reads with a deadline (slow clients cannot
hold a thread forever), refusing a connection with a JSON answer, and a lingering close (a
client still sending its body gets the answer instead of a reset)."""

import json
import socket
import time

STATUS_TEXT = {400: "Bad Request", 404: "Not Found", 408: "Request Timeout",
                411: "Length Required", 413: "Payload Too Large", 429: "Too Many Requests",
                431: "Request Header Fields Too Large", 500: "Internal Server Error",
                501: "Not Implemented", 503: "Service Unavailable", 504: "Gateway Timeout"}


class DeadlineReader:
  """Buffered reads from a socket, each phase (headers, body) bounded by a deadline."""

  def __init__(self, sock):
    self._sock = sock
    self._buffer = bytearray()
    self._deadline = time.monotonic()
    self.received = 0
    self.closed = False
    self.unread = False

  def start(self, seconds: float) -> None:
    self._deadline = time.monotonic() + seconds
    self.received = len(self._buffer)  # Pipelined bytes already belong to this phase.

  def _fill(self) -> bytes:
    remaining = self._deadline - time.monotonic()
    if remaining <= 0:
      raise TimeoutError("read deadline passed")
    self._sock.settimeout(remaining)
    data = self._sock.recv(65536)
    self._buffer += data
    self.received += len(data)
    return data

  def readline(self, limit: int = -1) -> bytes:
    while True:
      end = self._buffer.find(b"\n")
      if end >= 0 and (limit < 0 or end < limit):
        size = end + 1
        break
      if 0 <= limit <= len(self._buffer):
        size = limit
        break
      if not self._fill():
        size = len(self._buffer)
        break
    line = bytes(self._buffer[:size])
    del self._buffer[:size]
    return line

  def read(self, size: int) -> bytearray:
    while len(self._buffer) < size and self._fill():
      pass
    if len(self._buffer) <= size:  # The usual case: no copy of a large body.
      data, self._buffer = self._buffer, bytearray()
      return data
    data = self._buffer[:size]
    del self._buffer[:size]
    return data

  def close(self) -> None:
    self.closed = True


def linger(sock, seconds: float = 2.0, max_bytes: int = 8 << 20) -> None:
  """Closes after an early answer without resetting it away: stop sending, then read and drop
  what the client still sends (bounded in time and bytes), so that a client that writes its
  whole body before reading still gets the answer (a lingering close, as httpd does)."""
  try:
    sock.shutdown(socket.SHUT_WR)
    end = time.monotonic() + seconds
    dropped = 0
    while dropped < max_bytes:
      remaining = end - time.monotonic()
      if remaining <= 0:
        break
      sock.settimeout(remaining)
      data = sock.recv(65536)
      if not data:
        break
      dropped += len(data)
  except OSError:
    pass


def refuse(sock, status: int, message: str) -> None:
  """Answers a connection we will not serve, then closes it."""
  body = json.dumps({"error": message}).encode()
  try:
    sock.settimeout(1.0)
    sock.sendall(f"HTTP/1.1 {status} {STATUS_TEXT.get(status, '')}\r\nContent-Type: "
                 f"application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                 .encode() + body)
  except OSError:
    pass
  finally:
    try:
      sock.close()
    except OSError:
      pass
