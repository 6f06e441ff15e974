"""What to compute, and whether it can run: specs, prompt sets, identities, estimates.

Torch-free: the app's pages, the store and the readers import from here.
"""
