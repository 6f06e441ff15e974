"""The finetuning risk preflight, read from one folder.

- ``spec``: what a preflight measures and on which held-out prompts, the pre-registered
  levels; torch-free;
- ``preflight``: the verb ``risk``: the lookahead (default) or the old edge baseline
  (two basin searches through ``sweep.run``), stored reports;
- ``lookahead``: k real optimizer steps of the user's recipe in a throwaway copy (torch);
- ``anchoring``: per-example LoRA gradients toward compliance or refusal anchors, and
  how shallow the data's gradient is (torch);
- ``report``: the reports, their text and the edge baseline's band; torch-free;
- ``validation``: the pre-registered test on docs/risk-validation.csv, and a report's
  nearest validated finetunes; torch-free.

The page is ``pages/risk_page.py``; make paper's section 7 reads ``validation``.
"""
