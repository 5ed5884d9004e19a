"""The generator's SavedModel for TensorFlow Serving: the contract (names, dtypes, metadata; no
Keras), the exporter and the one loader of exports.
"""
