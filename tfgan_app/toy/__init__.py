"""Toy distributions with known densities: the distributions, their metrics, and the
optimal-discriminator theory check.
"""
