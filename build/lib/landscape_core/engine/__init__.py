"""The model side: loading, directions, perturbation, decoding, likelihoods.

The only package that imports torch at module top. It never imports ``judging``:
whoever judges answers passes the engine what it needs (stop texts, for instance).
"""
