"""`python -m service` for an installed chipsweep (CONTRACT.md: the console script, "also `python -m service`").

The layers live in the one import package `chipsweep`; this package holds only the old entry point, which runs
the same CLI as `chipsweep`. In a checkout, `python -m service` from the repository root finds the service layer's
own `__main__` first, which does the same."""
