"""``dglcleaner export`` and ``import``: a results database's runs as a portable archive.

Loaded lazily by :mod:`dglcleaner.cli.main`; needs neither torch nor DGL.
"""
from __future__ import annotations

from typing import Optional, Tuple

import click

from ..experiments.store import DEFAULT_DB


@click.command("export")
@click.option("--db", "db", default=DEFAULT_DB, show_default=True,
              type=click.Path(dir_okay=False), help="SQLite results database to read.")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Archive to write (JSON Lines; gzip if the name ends in .gz).")
@click.option("--grid", "grids", multiple=True,
              help="Only the runs of this grid name (repeatable; default: all).")
def export_cmd(db: str, out: str, grids: Tuple[str, ...]) -> None:
    """Write stored runs to an archive, to commit or share (`dglcleaner import` reads it)."""
    from ..experiments.archive import export_runs

    n = export_runs(db, out, grids or None)
    click.echo(f"{n} runs written to {out}", err=True)


@click.command("import")
@click.argument("archives", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--db", "db", default=DEFAULT_DB, show_default=True,
              type=click.Path(dir_okay=False), help="SQLite results database to add to.")
def import_cmd(archives: Tuple[str, ...], db: Optional[str]) -> None:
    """Add the runs of archives to a results database (stored ok runs are kept)."""
    from ..experiments.archive import import_runs

    summary = import_runs(archives, db)
    click.echo(f"{db}: {summary}", err=True)
