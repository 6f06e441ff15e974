"""The perturbed-ensemble defence and its adaptive attacker, read from one folder.

- ``spec``: the sweeps a defence is made of (its members run), the threat model;
  torch-free;
- ``defend``: the verb: the members and attacker runs through ``sweep.run``;
- ``report``: the vote, the adaptive attacker's choice, the defence report; torch-free;
- ``suffix_attack``: the GCG-style suffix template searched against perturbed copies
  (torch; the search itself is ``engine.suffix``).

Stored reports live in ``store.defences``; the page is ``pages/defence_page.py``.
"""
