"""The runnable parts of igrt: the service, its pieces and the command line."""

import os

# NumPy's OpenBLAS on one thread unless OPENBLAS_NUM_THREADS says otherwise (read when NumPy is
# loaded, so set before anything here imports it). igrt's matrix products are small (points
# times a 3 x 3 matrix); OpenBLAS's extra threads spin after each one, and on two cores that
# time is taken from ITK's threads: ~5 % of an ``igrt register``'s CPU time, measured.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
