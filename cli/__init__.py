"""The ``terrain`` command line (click): parses, calls :mod:`terrain`, prints.

Nothing heavy is imported here or by the command modules at import time, so that
``terrain --help`` starts fast; each command imports the library when it runs.
"""
