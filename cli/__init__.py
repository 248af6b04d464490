"""The ``terrain`` command line (click): parses, calls :mod:`terrain`, prints.

Nothing heavy is imported here or by the command modules at import time, so that
``terrain --help`` starts fast; each command imports the library when it runs.
"""

import os

# numpy's OpenBLAS starts a thread per core that spins for a while after start-up,
# taking a core from the streaming threads; the command line does no large linear
# algebra, so one thread is enough (numpy is not imported yet when this runs).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# numpy asks the kernel for transparent huge pages for every array of 4 MB or more;
# with the page cache full of the outputs just written, each such fault costs far
# more than the small pages it saves (benchmark machine, analyze after gdaldem's runs:
# system time 1.6-2.3 -> 0.9-1.0 s, wall 3.7-4.4 -> 3.4-3.7 s). The user's setting wins.
os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")
