"""The hardware a job runs on: the dtype policy chosen for the CPU/GPU (precision) and the
tf.distribute strategy (distribute).
"""
