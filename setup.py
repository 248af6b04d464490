"""Build the compiled kernels (everything else is in pyproject.toml)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "terrain._ckernels",
            ["terrain/_ckernels.c"],
            depends=["terrain/_cbuffers.h"],
            # No fast-math and no FMA contraction: results must not depend on
            # vectorisation, i.e. on the block size. errno / trapping semantics
            # are dropped so that sqrt and the selects vectorise.
            extra_compile_args=["-O3", "-ffp-contract=off", "-fno-math-errno",
                                "-fno-trapping-math", "-std=c99"],
        ),
        # TRI / TPI / roughness (terrain/neighbourhood.py), with the same flags.
        Extension(
            "terrain._cneighbour",
            ["terrain/_cneighbour.c"],
            depends=["terrain/_cbuffers.h"],
            extra_compile_args=["-O3", "-ffp-contract=off", "-fno-math-errno",
                                "-fno-trapping-math", "-std=c99"],
        ),
        Extension(
            "terrain._clsq",
            ["terrain/_clsq.c"],
            depends=["terrain/_cbuffers.h"],
            # The least-squares stencils (terrain/lsq.py): the same flags, same reasons.
            extra_compile_args=["-O3", "-ffp-contract=off", "-fno-math-errno",
                                "-fno-trapping-math", "-std=c99"],
        ),
    ]
)
