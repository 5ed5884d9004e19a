"""Training runs: the training flags, the run loop (train_and_export), one trainer per model
family, the callbacks.
"""
