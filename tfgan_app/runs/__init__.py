"""A training run's workdir: its files (flags.cfg, run_spec.json), checkpoints, and rebuilding a
run from them (restore_run).
"""
