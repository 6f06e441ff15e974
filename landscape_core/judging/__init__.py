"""Verdicts on answers: the text judges, the model judges, agreement and re-scoring.

``verdict``, ``keyword``, ``patterns`` and ``coherence`` read text (and stored
measures) only and are torch-free;
``model_judges`` runs models and is loaded by ``registry`` only when one is asked for.
"""
