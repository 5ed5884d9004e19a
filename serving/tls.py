"""`--ssl_config`: the server's TLS certificate and key, for gRPC and REST.

The file uses the field names of TF Serving's `--ssl_config_file` (a text-format `SSLConfig`
proto), one `name: value` per line; `#` starts a comment:

  server_cert: /path/to/server.crt     # PEM certificate chain
  server_key: /path/to/server.key      # PEM private key
  custom_ca: /path/to/ca.crt           # optional: CA that signs client certificates
  client_verify: true                  # optional: require a client certificate (custom_ca)

A value is a path, or (as TF Serving writes it) a quoted string holding the PEM text itself
with `\\n` escapes, so a TF Serving ssl_config_file whose strings are on one line each works
here too. TF Serving applies its file to gRPC only; this server uses it for REST as well.
"""

import codecs
import dataclasses
import ssl
import tempfile
from typing import Optional

import grpc

_FIELDS = ("server_cert", "server_key", "custom_ca", "client_verify")


class SslConfigError(ValueError):
  """The --ssl_config file is unreadable or incomplete."""


@dataclasses.dataclass(frozen=True)
class SslConfig:
  server_cert: bytes
  server_key: bytes
  custom_ca: Optional[bytes] = None
  client_verify: bool = False

  def grpc_credentials(self) -> grpc.ServerCredentials:
    return grpc.ssl_server_credentials([(self.server_key, self.server_cert)],
                                       root_certificates=self.custom_ca,
                                       require_client_auth=self.client_verify)

  def ssl_context(self) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # ssl loads certificates from files only: the PEM goes through private temporary files.
    with tempfile.NamedTemporaryFile() as cert, tempfile.NamedTemporaryFile() as key:
      cert.write(self.server_cert)
      key.write(self.server_key)
      cert.flush()
      key.flush()
      context.load_cert_chain(cert.name, key.name)
    if self.custom_ca:
      context.load_verify_locations(cadata=self.custom_ca.decode("ascii"))
    if self.client_verify:
      context.verify_mode = ssl.CERT_REQUIRED
    return context


def _value(raw: str, path: str, field: str) -> bytes:
  raw = raw.strip()
  if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
    raw = codecs.decode(raw[1:-1], "unicode_escape")
  if raw.lstrip().startswith("-----BEGIN"):
    return raw.encode("ascii")
  try:
    with open(raw, "rb") as f:
      return f.read()
  except OSError as error:
    raise SslConfigError(f"--ssl_config={path}: {field}: cannot read {raw}: "
                         f"{error.strerror}") from error


def read_ssl_config(path: str) -> SslConfig:
  """Parses an --ssl_config file (module docstring); raises SslConfigError."""
  try:
    with open(path) as f:
      lines = f.read().splitlines()
  except OSError as error:
    raise SslConfigError(f"--ssl_config={path}: {error.strerror}") from error
  fields = {}
  for number, line in enumerate(lines, 1):
    text = line.strip()
    if not text or text.startswith("#"):
      continue
    name, sep, value = text.partition(":")
    name = name.strip()
    if not sep or name not in _FIELDS:
      raise SslConfigError(f"--ssl_config={path}:{number}: expected one of "
                           f"{', '.join(_FIELDS)} as 'name: value'")
    if not value.strip().startswith(("\"", "'")):
      value = value.split("#", 1)[0]
    fields[name] = value.strip()
  for required in ("server_cert", "server_key"):
    if not fields.get(required):
      raise SslConfigError(f"--ssl_config={path}: {required} is missing")
  verify = fields.get("client_verify", "false").lower()
  if verify not in ("true", "false"):
    raise SslConfigError(f"--ssl_config={path}: client_verify must be true or false")
  custom_ca = _value(fields["custom_ca"], path, "custom_ca") if fields.get("custom_ca") else None
  if verify == "true" and custom_ca is None:
    raise SslConfigError(f"--ssl_config={path}: client_verify needs custom_ca")
  config = SslConfig(_value(fields["server_cert"], path, "server_cert"),
                     _value(fields["server_key"], path, "server_key"), custom_ca,
                     verify == "true")
  try:
    config.ssl_context()
  except (ssl.SSLError, ValueError) as error:
    raise SslConfigError(f"--ssl_config={path}: not a usable certificate and key: "
                         f"{error}") from error
  return config
