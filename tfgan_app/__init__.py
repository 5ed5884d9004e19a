"""tfgan_app: train, measure and serve Generative Adversarial Networks with TensorFlow/Keras."""

import os

# TensorFlow's C++ INFO lines (CUDA probing, CPU feature notices) drown the training log; users
# can still ask for them with TF_CPP_MIN_LOG_LEVEL=0.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
