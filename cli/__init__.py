"""semindex front ends: the ``semindex`` command line."""
