"""The finetuning risk preflight, read from one folder.

- ``spec``: what a preflight measures and on which held-out prompts, the pre-registered
  levels; torch-free;
- ``preflight``: the verb ``risk``: the lookahead (default) or the old edge baseline
  (two basin searches through ``sweep.run``), stored reports;
- ``lookahead``: k real optimizer steps of the user's recipe in a throwaway copy (torch);
- ``report``: the reports, their text and the edge baseline's band; torch-free.

The page is ``pages/risk_page.py``; make paper's section is ``recipes/paper_risk.py``.
"""
