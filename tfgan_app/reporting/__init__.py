"""The results page: trains the reference runs, measures them and writes docs/results.md.
"""
