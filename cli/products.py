"""``terrain slope|aspect|gradient|hillshade|...``: one command per product, made from
the registry (:data:`terrain.registry.PRODUCTS`, ``command=True``).

Each command takes the DEM, -o, the product's own options (declared with the
product), the gradient, input, GeoTIFF and run options, and --plot when the
product has a map; :func:`cli.common.run_product_command` does the work.
"""

from __future__ import annotations

import click

from terrain import registry

from . import options as o


def make_command(decl: registry.Product) -> click.Command:
    """The click command of the product ``decl``."""
    fields = [p.field for p in decl.parameters]

    def command(**kwargs):
        from .common import run_product_command

        settings = {f: kwargs.pop(f) for f in fields}
        run_product_command(decl.name, settings, **kwargs)

    command.__doc__ = decl.help
    command = o.product_options(o.product_parameter_options(decl.name),
                                method_default=decl.default_method,
                                maps=decl.style is not None)(command)
    return click.command(decl.name, short_help=decl.summary)(command)


COMMANDS = [make_command(p) for p in registry.PRODUCTS.values() if p.command]
