"""landscape_core: measure the safety landscape of a chat model (Peng et al., NeurIPS'24).

A pure library with a CLI (``python -m landscape_core``). It never imports streamlit.
"""

__version__ = "0.1.0"
