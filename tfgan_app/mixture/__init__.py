"""The maximum-likelihood family: a Gaussian mixture fitted by EM (the GMM baseline).
"""
