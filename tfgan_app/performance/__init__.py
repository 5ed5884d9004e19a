"""Training speed: the benchmark, analytic FLOPs and the TensorFlow tutorial's loop as baseline.
"""
