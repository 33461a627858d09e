"""Forget-vector analyses of a finished grid (issues 16, 26): transfer, geometry, data shift,
recovery attacks on inputs, relearning attack, sensitivity. `python -m mubench analyze --results DIR`; each analysis is one module here."""
