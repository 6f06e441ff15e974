"""What a run is called and what it costs, known before the model loads (no torch).

Its identity from the spec and the sha256 of the model's files (``identity``,
``model_files``, ``gguf_meta``, ``checkpoints``), the prompts as the model reads them and
their lengths (``chat``, ``tokens``, in a bounded child: ``template_child``), and the
estimates and checks before a sweep: memory (``resources``), time (``pace``), the package
versions a point records (``versions``), all gathered by ``preflight``.
"""
