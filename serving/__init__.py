"""Serving the exported generator: a TF-Serving-compatible server, a gRPC client, and the
configuration for the real TensorFlow Serving (see serving/README.md)."""
