"""The basin maths, torch-free and pure: what the sweep (the writer) and the readers share.

- ``visage``: ASR, the basin window, VISAGE in 1D and 2D, edges read off a grid;
- ``bisection``: the basin-edge search (which points a basin-radius run probes);
- ``visit``: the order a sweep visits its grid (coarse levels first);
- ``intervals``: intervals over directions (and prompts), paired comparisons.
"""
