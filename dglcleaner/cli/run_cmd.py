"""``dglcleaner run``, ``report`` and ``plot``: experiment grids, tables and figures.

Loaded lazily by :mod:`dglcleaner.cli.main`; torch and DGL are imported inside the commands.
"""
from __future__ import annotations

import time
from typing import Any, Dict, List, Optional, Tuple

import click

from ..experiments.store import DEFAULT_DB

_SET = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                    help="Override a grid key (dotted path, YAML value), e.g. seeds=2, "
                         "datasets=[AIDS], settings.train.epochs=5. Repeatable.")
_DB = click.option("--db", "db", default=DEFAULT_DB, show_default=True,
                   type=click.Path(dir_okay=False), help="SQLite results database.")
_RUNS = click.option("--runs", "archives", multiple=True, type=click.Path(dir_okay=False),
                     metavar="ARCHIVE", help="Also read this run archive (`dglcleaner "
                     "export`; repeatable). Without an explicit --db, only the archives.")


def _sources(db: str, archives: Tuple[str, ...]):
    """(database or None, archives): the default database is skipped when archives are
    given and it was not created."""
    import os

    if archives and db == DEFAULT_DB and not os.path.exists(db):
        return None, archives
    return db, archives


def _rows(db: str, archives: Tuple[str, ...]) -> list:
    from ..experiments.archive import load_rows

    return load_rows(*_sources(db, archives))


# ---------------------------------------------------------------------------------------------
# run
# ---------------------------------------------------------------------------------------------
@click.command("run")
@click.argument("config", type=click.Path(dir_okay=False))
@_SET
@_DB
@click.option("--device", default="auto", show_default=True, help="cpu, cuda or auto.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Folder with datasets (else $DGLCLEANER_DATA_DIR).")
@click.option("--jobs", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Worker processes (each runs whole units: dataset x model x seed).")
@click.option("--skip-failed", is_flag=True,
              help="Do not retry runs stored as failed (default: retry them).")
@click.option("--threads", type=int, default=None,
              help="Torch CPU threads per job [default: $OMP_NUM_THREADS, else 1].")
@click.option("--dry-run", is_flag=True, help="Only show how many runs are pending.")
@click.option("--quiet", is_flag=True, help="No progress display.")
def run_cmd(config: str, overrides: Tuple[str, ...], db: str, device: str,
            data_dir: Optional[str], jobs: int, skip_failed: bool, threads: Optional[int],
            dry_run: bool, quiet: bool) -> None:
    """Run the experiment grid CONFIG (YAML/TOML); finished runs in --db are skipped."""
    from rich.console import Console

    from ..experiments.config import group_runs, load_grid
    from ..experiments.grid import pending_runs, run_grid
    from ..experiments.store import Store
    from ..seeding import resolve_device
    from .main import resolve_threads

    grid = load_grid(config, overrides)
    resolve_device(device)  # a bad --device fails before anything runs
    # The rule of `defend --threads`: several jobs of 2 torch threads each on a small shared
    # machine crawl (oversubscription), so one thread per job unless asked.
    threads = resolve_threads(threads)
    console = Console(stderr=True)
    with Store(db) as st:
        todo = pending_runs(grid, st, retry_failed=not skip_failed)
    units = group_runs(todo)
    # groups differing only in the holding ratio share one backdoored model
    groups = len({r.model_key or r.group_key for r in todo if r.config.get("attack")})
    shared = ("splits" if grid.doc.get("task") == "node"
              else f"units / {groups} backdoored models")
    console.print(f"grid [bold]{grid.name}[/bold]: {len(grid.runs)} runs, {len(todo)} pending "
                  f"({len(grid.runs) - len(todo)} already stored) in {len(units)} {shared}; "
                  f"db {db}")
    if dry_run or not todo:
        return
    if quiet:
        summary = run_grid(grid, db, device=device, data_dir=data_dir, jobs=jobs,
                           retry_failed=not skip_failed, threads=threads)
    else:
        summary = _with_progress(grid, db, device, data_dir, jobs, not skip_failed, console,
                                 threads)
    style = "red" if summary.failed else "green"
    console.print(f"[{style}]{summary.ok} ok, {summary.failed} failed[/{style}], "
                  f"{summary.skipped} skipped, {summary.elapsed_s / 60:.1f} min")
    for f in summary.failures[:20]:
        console.print(f"[red]failed[/red] {f['run']}: {f['error']}")
    click.echo(f"report: dglcleaner report --db {db} --config {config}", err=True)


class _RunEta:
    """Per-run time estimates from finished runs of the same kind."""

    def __init__(self) -> None:
        self.seen: Dict[Tuple[Any, ...], List[float]] = {}

    @staticmethod
    def _keys(axes: Dict[str, Any], first: bool) -> List[Tuple[Any, ...]]:
        a = (axes.get("dataset"), axes.get("model"), axes.get("attack"), axes.get("defense"))
        return [a + (first,), a[:2] + (first,), (first,)]

    def add(self, axes: Dict[str, Any], first: bool, seconds: float) -> None:
        for k in self._keys(axes, first):
            self.seen.setdefault(k, []).append(seconds)

    def estimate(self, axes: Dict[str, Any], first: bool) -> Optional[float]:
        for k in self._keys(axes, first):
            if k in self.seen:
                vals = self.seen[k]
                return sum(vals) / len(vals)
        return None


def _with_progress(grid, db, device, data_dir, jobs, retry_failed, console, threads=None):
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn,
                               SpinnerColumn, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)
    from rich.text import Text

    from ..experiments.grid import run_grid

    class EtaColumn(ProgressColumn):
        """Overall: rich's estimate; per run: mean time of finished runs of the same kind."""

        def render(self, task) -> Text:
            if task.fields.get("kind") == "overall":
                return TimeRemainingColumn().render(task)
            est = task.fields.get("estimate")
            if est is None:
                return Text("eta ?", style="dim")
            return Text(f"eta ~{max(0.0, est - (task.elapsed or 0.0)):.0f}s", style="cyan")

    eta = _RunEta()
    started: Dict[str, Any] = {}
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), EtaColumn(), console=console,
                  transient=False) as bar:
        overall = bar.add_task(f"[bold]{grid.name}[/bold]", total=None, kind="overall")
        seen_groups: set = set()

        def on_event(kind: str, key: str, payload: Dict[str, Any]) -> None:
            if kind == "plan":
                bar.update(overall, total=payload["pending"])
            elif kind == "start":
                first = _is_first(grid, key, seen_groups)
                tid = bar.add_task(f"  {payload['run']}", total=None, kind="run",
                                   estimate=eta.estimate(payload["axes"], first))
                started[key] = (tid, time.perf_counter(), first)
            elif kind == "stage" and key in started:
                tid = started[key][0]
                base = bar._tasks[tid].description.split(" [dim]")[0]
                bar.update(tid, description=f"{base} [dim]({payload['stage']})[/dim]")
            elif kind == "done":
                tid, t0, first = started.pop(key, (None, time.perf_counter(), False))
                if payload["status"] == "ok":
                    eta.add(payload["axes"], first, payload["elapsed"])
                if tid is not None:
                    bar.remove_task(tid)
                bar.advance(overall)
                if payload["status"] != "ok":
                    bar.console.print(f"[red]failed[/red] {payload['run']}: {payload['error']}")

        return run_grid(grid, db, device=device, data_dir=data_dir, jobs=jobs, threads=threads,
                        retry_failed=retry_failed, on_event=on_event)


def _is_first(grid, key: str, seen_groups: set) -> bool:
    """Whether ``key`` is the first run of its backdoored-model group to start (it pays for
    the shared stages)."""
    spec = next((r for r in grid.runs if r.key == key), None)
    if spec is None or spec.group_key in seen_groups:
        return False
    seen_groups.add(spec.group_key)
    return True


# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------
def _select_rows(db: str, config: Optional[str], overrides: Tuple[str, ...],
                 grid_name: Optional[str], archives: Tuple[str, ...] = ()):
    """The tables to print: the config's (its runs, layout and paper numbers), or one per
    stored grid name."""
    from ..experiments.report import build_table, grid_table

    rows = _rows(db, archives)
    if config:
        from ..experiments.config import load_grid

        return [grid_table(load_grid(config, overrides), rows)]
    names = sorted({r.grid for r in rows})
    if grid_name:
        if grid_name not in names:
            from ..errors import unknown_name

            raise unknown_name("grid", grid_name, names)
        names = [grid_name]
    return [build_table([r for r in rows if r.grid == n], title=n) for n in names]


@click.command("report")
@_DB
@_RUNS
@click.option("--config", type=click.Path(dir_okay=False), default=None,
              help="Grid file: report exactly its runs, with its layout and paper numbers.")
@_SET
@click.option("--grid", "grid_name", default=None, help="Only this grid name (without --config).")
@click.option("--format", "fmt", type=click.Choice(["rich", "markdown", "csv"]), default="rich",
              show_default=True, help="Output format.")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Write to this file instead of the terminal.")
def report_cmd(db: str, archives: Tuple[str, ...], config: Optional[str],
               overrides: Tuple[str, ...], grid_name: Optional[str], fmt: str,
               out: Optional[str]) -> None:
    """Tables of stored results: mean ± std over seeds, paper numbers beside ours."""
    from ..experiments.report import render, to_rich

    tables = _select_rows(db, config, overrides, grid_name, archives)
    if not tables:
        src, arch = _sources(db, archives)
        click.echo(f"no runs stored in {', '.join([src] * bool(src) + list(arch))}", err=True)
        return
    if out:
        from ..io_utils import atomic_write_bytes

        text = "\n".join(render(t, fmt) for t in tables) if fmt != "csv" else render(tables[0], fmt)
        if fmt == "csv" and len(tables) > 1:
            text = "".join(render(t, fmt) for t in tables)
        atomic_write_bytes(out, text.encode())
        click.echo(f"report written to {out}", err=True)
        return
    if fmt == "rich":
        from rich.console import Console

        console = Console()
        for t in tables:
            console.print(to_rich(t))
    else:
        for t in tables:
            click.echo(render(t, fmt), nl=False)


# ---------------------------------------------------------------------------------------------
# plot
# ---------------------------------------------------------------------------------------------
@click.command("plot")
@click.argument("kind", type=click.Choice(["curve", "bars", "confusion", "tsne"]))
@_DB
@_RUNS
@click.option("--config", type=click.Path(dir_okay=False), default=None,
              help="Grid file: plot its runs; its `plot:` section sets x/hue/panel/metrics.")
@_SET
@click.option("--x", "x", default=None, help="Axis on the x axis (curve: a swept setting).")
@click.option("--hue", default=None, help="Axis with one line/bar per value.")
@click.option("--panel", default=None, help="Axis with one panel per value ('' for none).")
@click.option("--metric", "metrics", multiple=True, help="Metrics (default asr, acc).")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Output file (.png, .svg or .pdf).")
@click.option("--device", default="auto", show_default=True, help="tsne only: cpu/cuda/auto.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="tsne only: dataset folder.")
def plot_cmd(kind: str, db: str, archives: Tuple[str, ...], config: Optional[str],
             overrides: Tuple[str, ...],
             x: Optional[str], hue: Optional[str], panel: Optional[str],
             metrics: Tuple[str, ...], out: str, device: str, data_dir: Optional[str]) -> None:
    """Figures: curve (Figs. 6, 7, 9, 11, 12), bars (8), confusion (5), tsne (10)."""
    from ..errors import UserError
    from ..experiments import plots

    spec: Dict[str, Any] = {}
    grid = None
    if config:
        from ..experiments.config import load_grid

        grid = load_grid(config, overrides)
        spec = grid.plot
    opts = {k: v for k, v in (("x", x), ("hue", hue), ("panel", panel)) if v is not None}
    spec.update(opts)
    if metrics:
        spec["metrics"] = list(metrics)
    title = (grid.doc.get("description") if grid else "") or ""
    if kind == "tsne":
        if grid is None:
            raise UserError("plot tsne needs --config (the runs whose embeddings to show)")
        path = _plot_tsne(grid, out, device, data_dir, title)
    else:
        path = plots.plot_grid(kind, plot_rows(db, grid, archives), spec, out, title=title,
                               xlabel_given=bool(x))
    click.echo(f"figure written to {path}", err=True)


def plot_rows(db: str, grid=None, archives: Tuple[str, ...] = ()) -> list:
    """The stored rows to plot: all of ``db`` (and ``archives``), or ``grid``'s runs labelled
    with *its* axes (a run stored by another grid with the same configuration counts, as in
    ``report``; its own axes may lack the one swept here, e.g. Fig. 6's injection ratio on
    Table 3's runs)."""
    rows = _rows(db, archives)
    if grid is None:
        return rows
    from ..experiments.report import grid_rows

    return grid_rows(grid, rows)[0]


def _plot_tsne(grid, out: str, device: str, data_dir: Optional[str], title: str) -> str:
    """One panel per attack: first dataset/model/seed of the grid, its last defense."""
    from ..experiments import plots
    from ..experiments.config import build_defend_config
    from ..runner import SeedRun

    panels = []
    seen = set()
    for spec in grid.runs:
        if spec.group_key in seen or spec.config["attack"] is None:
            continue
        group = [r for r in grid.runs if r.group_key == spec.group_key]
        seen.add(spec.group_key)
        if spec.seed != grid.runs[0].seed or spec.config["dataset"] != grid.runs[0].config["dataset"]:
            continue
        last = group[-1]
        run = SeedRun(build_defend_config(dict(last.config, device=device, data_dir=data_dir)),
                      last.seed)
        res = run.run_defense(last.config["defense"], last.config["defense_params"],
                              last.config["defense_preset"])
        panels.append((f"{spec.axes['attack']} / {last.axes['defense']}",
                       plots.tsne_embeddings(run, res.model)))
    return plots.plot_tsne(panels, out, title=title)
