"""Forget-vector analyses of a finished grid (issue 16): transfer, geometry, data shift,
sensitivity. `python -m mubench analyze --results DIR`; each analysis is one module here."""
