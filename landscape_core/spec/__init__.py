"""What to compute: the specs a user writes, their vocabulary, and the inputs they name.

The sweep's config (``config``), the judge registry (``judges``), prompt sets
(``datasets``), jailbreak templates, finetuning data, the bounded readers of a user's
files (``limits``) and the default first run. Torch-free: the app's pages, the store and
the readers import from here. What a run is called and what it costs is ``plan/``.
"""
