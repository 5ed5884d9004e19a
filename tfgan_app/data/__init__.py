"""Training data as tf.data streams: TFDS images and image folders in [-1, 1], and toy points.
"""
