"""Experiment grids, the results store, reports and plots (``dglcleaner run/report/plot``).

``load_grid(path, overrides)`` reads a YAML/TOML grid and expands it into runs;
``run_grid(grid, db)`` executes the pending ones into a SQLite :class:`Store`;
:mod:`.report` turns stored rows into tables and :mod:`.plots` into figures.
Importing this package is light; torch and DGL load when a grid is expanded or run.
"""
from .config import ConfigError, Grid, RunSpec, load_grid
from .store import DEFAULT_DB, RunRow, Store

__all__ = ["ConfigError", "Grid", "RunSpec", "load_grid", "Store", "RunRow", "DEFAULT_DB",
           "run_grid"]


def run_grid(*args, **kwargs):
    """See :func:`dglcleaner.experiments.grid.run_grid`."""
    from .grid import run_grid as _run_grid

    return _run_grid(*args, **kwargs)
