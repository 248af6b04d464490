"""The ``terrain`` command line (click): parses, calls :mod:`terrain`, prints.

Nothing heavy is imported here or by the command modules at import time, so that
``terrain --help`` starts fast; each command imports the library when it runs.
"""

import os

# numpy's OpenBLAS starts a thread per core that spins for a while after start-up,
# taking a core from the streaming threads; the command line does no large linear
# algebra, so one thread is enough (numpy is not imported yet when this runs).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
