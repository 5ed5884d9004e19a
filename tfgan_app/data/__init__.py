"""Training data as tf.data streams: TFDS images in [-1, 1] and toy points.
"""
