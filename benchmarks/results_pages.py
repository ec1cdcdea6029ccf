"""Write the docs results pages from a results store: one page per benchmark grid, and an index.

For every grid file in ``benchmarks/configs`` whose runs are in the store (matched by run key,
so a store may hold several grids and other runs), writes ``<out>/<config>.md``: the grid's
table (mean ± std over seeds, the paper's numbers beside ours), how many seeds each cell has,
the runs still missing, failed runs with their errors, and the machine, versions and git
commit the runs were made on (all taken from the store rows, not from this machine). Then
writes ``<out>/index.md`` listing every grid (those without runs as "not run yet") and the
other pages already in ``<out>``. Grids with a ``plot:`` section (curve, bars, confusion) also
get their figure, ``<figures>/<config>.png`` (default: ``figures`` beside ``<out>``), embedded
in the page; a curve whose swept axis has fewer than two values in the store is not drawn (one
point per line says nothing). t-SNE is not drawn here (it trains models): the page embeds
``<figures>/<config>.png`` if ``dglcleaner plot tsne`` wrote it::

    python benchmarks/results_pages.py --db results/dglcleaner.sqlite            # docs/results
    python benchmarks/results_pages.py --runs benchmarks/runs/*.jsonl.gz         # committed runs
    python benchmarks/results_pages.py --db /tmp/s.sqlite --out /tmp/pages --configs my/grids

Pages of grids without runs are not written (an older page of that name is left alone, and
listed among the other pages). Exit code 1 when a grid file cannot be loaded (its error is
also listed in the index).
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "benchmarks" / "configs"
OUT = ROOT / "docs" / "results"
FIGURES = ROOT / "docs" / "figures"
INDEX = "index.md"


def _esc(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _seed_counts(table) -> str:
    """'5' when every cell has the same number of successful seeds, else 'min-max'."""
    counts = sorted({int(r["runs_ok"]) for r in table.records})
    if not counts:
        return "0"
    return str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _order(path: Path):
    """Tables, then figures, by the paper's number (table3 < table10), then the rest."""
    m = re.match(r"(table|fig)(\d+)", path.stem)
    if not m:
        return (2, 0, path.stem)
    return (0 if m.group(1) == "table" else 1, int(m.group(2)), path.stem)


def grid_figure(grid, chosen: Sequence[Any], path: Path) -> Optional[str]:
    """Draw ``grid``'s figure from its stored rows (``chosen``, labelled with its axes) to
    ``path``; ``None`` when it has no drawable plot or too few x values to draw a curve."""
    from dglcleaner.experiments import plots

    spec = dict(grid.plot)
    kind = spec.get("kind")
    if kind == "tsne":  # trains its models live (`dglcleaner plot tsne`): embed what it wrote
        return str(path) if path.is_file() else None
    if kind not in ("curve", "bars", "confusion"):
        return None
    ok = [r for r in chosen if r.status == "ok"]
    if not ok or (kind == "curve" and len({repr(r.axes.get(spec.get("x"))) for r in ok}) < 2):
        return None
    return plots.plot_grid(kind, chosen, spec, path,
                           title=grid.doc.get("description") or grid.name)


def grid_page(grid, rows: Sequence[Any], config_path: Path, db_label: str,
              figure: Optional[str] = None) -> str:
    """Markdown page of one grid from its stored ``rows`` (all stored rows may be passed);
    ``figure``: a path relative to the page to embed."""
    from dglcleaner.experiments.report import grid_rows, grid_table, to_markdown

    chosen, missing = grid_rows(grid, rows)
    table = grid_table(grid, chosen)
    ok = sum(r.status == "ok" for r in chosen)
    failed = len(chosen) - ok
    title = grid.doc.get("description") or grid.name
    cfg = _rel(config_path)
    finished = sorted(r.finished_at for r in chosen)
    facts = [f"runs: {len(chosen)} of {len(grid.runs)} stored ({ok} ok, {failed} failed, "
             f"{missing} not run yet)",
             f"{'splits' if grid.doc.get('task') == 'node' else 'seeds'} per cell: "
             f"{_seed_counts(table)} (mean ± std over them, population std)"]
    if finished:
        facts.append(f"runs finished between {finished[0]} and {finished[-1]}")
    facts.append(f"reproduce: `dglcleaner run {cfg}` then "
                 f"`dglcleaner report --config {cfg} --format markdown`")
    plot = grid.plot
    if plot.get("kind") in ("curve", "bars", "confusion", "tsne"):
        facts.append(f"figure: `dglcleaner plot {plot['kind']} --config {cfg} "
                     f"--out docs/figures/{config_path.stem}.png`")
    lines = [f"# {title}", "",
             f"Generated by `python benchmarks/results_pages.py` from the results store "
             f"`{db_label}`; grid file `{cfg}` (grid `{grid.name}`). Do not edit by hand.", ""]
    lines += [f"- {f}" for f in facts]
    body = to_markdown(table)
    body = body.split("\n", 2)[2] if body.startswith("### ") else body  # title is the H1
    lines += ["", body]
    if figure:
        lines += ["", f"![{_esc(title)}]({figure})"]
    return "\n".join(lines).rstrip() + "\n"


def index_page(entries: List[Dict[str, Any]], others: Sequence[str], db_label: str) -> str:
    """Markdown index: one line per grid, then the other pages of the folder."""
    lines = ["# Results", "",
             f"Tables of the benchmark grids in `benchmarks/configs`, generated from the results "
             f"store `{db_label}` by `python benchmarks/results_pages.py` (see "
             f"`benchmarks/README.md` for the commands and run times).", "",
             "| grid | description | runs stored | page |", "|---|---|---|---|"]
    for e in entries:
        if e.get("error"):
            status, page = f"config error: {_esc(e['error'])}", "-"
        elif e["stored"] == 0:
            status, page = f"not run yet (0 of {e['total']})", "-"
        else:
            status = f"{e['stored']} of {e['total']}" + (f" ({e['failed']} failed)"
                                                        if e["failed"] else "")
            page = f"[{e['stem']}]({e['stem']}.md)"
        lines.append(f"| `{e['stem']}` | {_esc(e.get('description', ''))} | {status} | {page} |")
    if others:
        lines += ["", "## Other result pages", "",
                  "Written by the benchmark scripts in `benchmarks/` (not from the store):", ""]
        lines += [f"- [{Path(o).stem}]({o})" for o in others]
    return "\n".join(lines) + "\n"


def write_pages(db: Optional[str], out: Path = OUT, configs: Path = CONFIGS,
                db_label: Optional[str] = None,
                figures: Optional[Path] = FIGURES, runs: Sequence[Path] = ()) -> Dict[str, Any]:
    """Write the pages from the runs of ``db`` and the archives ``runs`` (and figures to
    ``figures``, ``None``: none; the default is the ``figures`` folder beside ``out``); return
    ``{"written": [...], "not_run": [...], "errors": {...}, "figures": [...]}``."""
    import os

    from dglcleaner.errors import UserError
    from dglcleaner.experiments.archive import load_rows
    from dglcleaner.experiments.config import load_grid
    from dglcleaner.experiments.report import grid_rows
    from dglcleaner.io_utils import atomic_write_bytes

    rows = load_rows(db, runs)
    if figures is FIGURES:
        figures = Path(out).parent / "figures"
    db_label = db_label or ", ".join([Path(db).name] * bool(db) + [_rel(p) for p in runs])
    out.mkdir(parents=True, exist_ok=True)
    entries: List[Dict[str, Any]] = []
    summary: Dict[str, Any] = {"written": [], "not_run": [], "errors": {}, "figures": [],
                               "figure_errors": {}}
    paths = sorted((p for p in configs.iterdir() if p.suffix in (".yaml", ".yml", ".toml")),
                   key=_order)
    for path in paths:
        entry: Dict[str, Any] = {"stem": path.stem}
        entries.append(entry)
        try:
            grid = load_grid(path)
        except Exception as exc:  # noqa: BLE001 - listed in the index, the others go on
            entry["error"] = " ".join(str(exc).split())
            summary["errors"][path.stem] = entry["error"]
            continue
        chosen, _ = grid_rows(grid, rows)
        entry.update(description=grid.doc.get("description") or grid.name,
                     total=len(grid.runs), stored=len(chosen),
                     failed=sum(r.status != "ok" for r in chosen))
        if not chosen:
            summary["not_run"].append(path.stem)
            continue
        rel = None
        if figures is not None:
            try:
                fig = grid_figure(grid, chosen, figures / f"{path.stem}.png")
            except UserError as exc:  # e.g. runs without confusion matrices: page, no figure
                summary["figure_errors"][path.stem] = str(exc)
                fig = None
            if fig:
                summary["figures"].append(fig)
                rel = Path(os.path.relpath(fig, out)).as_posix()
        atomic_write_bytes(out / f"{path.stem}.md",
                           grid_page(grid, chosen, path, db_label, rel).encode())
        summary["written"].append(path.stem)
    generated = {f"{s}.md" for s in summary["written"]} | {INDEX}
    others = sorted(p.name for p in out.glob("*.md") if p.name not in generated)
    atomic_write_bytes(out / INDEX, index_page(entries, others, db_label).encode())
    return summary


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--db", default=None, help="results store (SQLite) to read")
    ap.add_argument("--runs", type=Path, nargs="+", default=[], metavar="ARCHIVE",
                    help="run archives to read (`dglcleaner export`; e.g. the committed "
                         "benchmarks/runs/*.jsonl.gz), instead of or besides --db")
    ap.add_argument("--out", type=Path, default=OUT, help=f"output folder (default {_rel(OUT)})")
    ap.add_argument("--configs", type=Path, default=CONFIGS,
                    help=f"folder of grid files (default {_rel(CONFIGS)})")
    ap.add_argument("--db-label", default=None,
                    help="how the pages name the store (default: its file name)")
    ap.add_argument("--figures", type=Path, default=FIGURES,
                    help="folder for the grids' figures (default: figures beside --out)")
    ap.add_argument("--no-figures", action="store_true", help="write no figures")
    args = ap.parse_args(argv)
    if not args.db and not args.runs:
        ap.error("give --db, --runs or both")
    from dglcleaner.errors import UserError

    try:
        s = write_pages(args.db, args.out, args.configs, args.db_label,
                        None if args.no_figures else args.figures, args.runs)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(s['written'])} page(s) written to {args.out}: {', '.join(s['written']) or '-'}; "
          f"not run yet: {', '.join(s['not_run']) or '-'}; {len(s['figures'])} figure(s)",
          file=sys.stderr)
    for stem, err in s["errors"].items():
        print(f"config error in {stem}: {err}", file=sys.stderr)
    for stem, err in s["figure_errors"].items():
        print(f"no figure for {stem}: {err}", file=sys.stderr)
    return 1 if s["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
