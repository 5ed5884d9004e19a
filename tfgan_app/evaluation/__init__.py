"""Measuring generators: FID/IS/KID/precision-recall, the domain classifier, the
confident-and-varied check, the evaluation during training.
"""
