"""Tables from the results store: mean ± std over seeds, the paper's numbers beside ours.

A grid's ``report:`` section chooses the layout::

    report:
      rows: [dataset, attack]      # axes that make the rows (default: the axes that vary)
      columns: defense             # optional: one column group per value of this axis
      metrics: [asr, acc]          # 'asr' means defended.asr; any group.metric is allowed,
                                   # e.g. recovery.similarity, recovery.asr (Table 4; short
                                   # names: similarity, recovery_asr)
      group: defended              # default group for bare metric names

and its ``paper:`` section lists the published numbers, matched on axis values (every key of
an entry that is not a metric name must equal the row's axis value; sweep axes are dotted,
e.g. ``defense.explainer``)::

    paper:
      source: GCleaner paper, Table 3
      values: [{dataset: AIDS, attack: Sub-BA, defense: Before, asr: 95.84, acc: 97.14}]

Failed runs are counted in every row and listed, with their errors, below the table.
"""
from __future__ import annotations


import csv
import io
import math
from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..errors import UserError
from .store import METRIC_GROUPS, RunRow

GROUPS = METRIC_GROUPS  # the record groups the store flattens are the ones a report can name
FORMATS = ("rich", "markdown", "csv")
LABELS = {"asr": "ASR", "acc": "ACC", "bacc": "balanced ACC", "asr_all": "ASR(all)",
          "asr_conditional": "ASR(cond)",
          "precision": "precision", "recall": "recall", "f1": "F1",
          "similarity": "similarity", "defender_asr": "ASR(defender)",
          "dominant_is_target": "target found", "val_acc": "val ACC", "flips": "flips"}
#: Metrics that are not percentages (printed with 3 decimals).
UNIT_METRICS = ("similarity",)
#: Short names for metrics outside the default group (Table 4's columns).
ALIASES = {"similarity": "recovery.similarity", "recovery_asr": "recovery.asr"}


@dataclass
class Cell:
    runs: List[RunRow] = field(default_factory=list)

    @property
    def ok(self) -> List[RunRow]:
        return [r for r in self.runs if r.status == "ok"]

    @property
    def failed(self) -> List[RunRow]:
        return [r for r in self.runs if r.status != "ok"]

    def stat(self, metric: str) -> Tuple[Optional[float], Optional[float], int]:
        vals = [v for v in (r.metric(metric) for r in self.ok) if v is not None]
        if not vals:
            return None, None, 0
        mean = sum(vals) / len(vals)
        std = math.sqrt(sum((v - mean) ** 2 for v in vals) / len(vals))  # ddof=0, as runner
        return mean, std, len(vals)


@dataclass
class Table:
    """A rendered-independent table: ``header`` and ``body`` strings, ``records`` for CSV."""

    title: str
    header: List[str]
    body: List[List[str]]
    records: List[Dict[str, Any]]
    failures: List[Tuple[str, str]]
    notes: List[str]


def _norm(v: Any) -> Any:
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, (int, float)):
        return round(float(v), 9)
    return str(v).strip().lower()


def _metric_name(m: str, group: str) -> str:
    if m in ALIASES:
        return ALIASES[m]
    return m if "." in m else f"{group}.{m}"


def _cpu_text(versions: Dict[str, str]) -> str:
    """``"<cpu model> (<kernels>, MKL_CBWR <mode>), "`` for rows that recorded it (since
    2026-12-05; older rows give ``""``, so their pages are unchanged)."""
    if "cpu" not in versions:
        return ""
    return (f"{versions['cpu']} ({versions.get('cpu_capability', '?')}, MKL_CBWR "
            f"{versions.get('mkl_cbwr', '?')}), ")


def _label(metric: str, group: str) -> str:
    g, _, m = metric.partition(".")
    base = LABELS.get(m, m)
    return base if g == group else f"{g} {base}"


def _digits(metric: str) -> int:
    return 3 if metric.split(".")[-1] in UNIT_METRICS else 2


def _fmt(mean: Optional[float], std: Optional[float], digits: int = 2) -> str:
    if mean is None:
        return "-"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _fmt_paper(v: Any, digits: int = 2) -> str:
    if v is None:
        return "-"
    return f"{float(v):.{digits}f}" if isinstance(v, (int, float)) else str(v)


def _is_metric_key(k: str) -> bool:
    """A paper entry key naming a metric (``asr``, ``recovery.similarity``), not an axis
    (``dataset``, ``defense.explainer``: dotted axes are sweep values)."""
    g, dot, _ = k.partition(".")
    return k in LABELS or k in ALIASES or (bool(dot) and g in GROUPS)


def paper_lookup(paper: Dict[str, Any], axes: Dict[str, Any], metric: str,
                 group: str = "defended") -> Optional[Any]:
    """The paper's value of ``metric`` (group.name) for these axis values. An entry may name
    it in full or, for metrics of the default ``group``, by its bare name (``asr``)."""
    g, _, bare = metric.rpartition(".")
    names = [metric] + [a for a, full in ALIASES.items() if full == metric]
    names += [bare] if g in ("", group) else []
    for entry in paper.get("values") or []:
        keys = [k for k in entry if not _is_metric_key(k) and k not in names]
        if all(k in axes and _norm(axes[k]) == _norm(entry[k]) for k in keys):
            for name in names:
                if name in entry:
                    return entry[name]
    return None


def grid_rows(grid: Any, rows: Sequence[RunRow]) -> Tuple[List[RunRow], int]:
    """The stored rows of ``grid``'s runs (matched by run key, in the grid's order) and the
    number of its runs not stored yet. A run stored by another grid (same key, so the same
    configuration) is labelled with this grid's axes, which its report layout names."""
    by_key = {r.key: r for r in rows}
    chosen = [replace(by_key[s.key], axes=dict(s.axes)) for s in grid.runs if s.key in by_key]
    return chosen, len(grid.runs) - len(chosen)


def grid_table(grid: Any, rows: Sequence[RunRow]) -> Table:
    """The table of ``grid`` (a loaded :class:`~.config.Grid`) from the stored ``rows``: its
    ``report:`` layout, its ``paper:`` numbers, a note when runs are missing."""
    chosen, missing = grid_rows(grid, rows)
    t = build_table(chosen, grid.report, grid.paper,
                    title=grid.doc.get("description") or grid.name)
    if missing:
        t.notes.append(f"{missing} run(s) of this grid are not in the database yet")
    return t


def build_table(rows: Sequence[RunRow], layout: Optional[Dict[str, Any]] = None,
                paper: Optional[Dict[str, Any]] = None, title: str = "results") -> Table:
    """Aggregate ``rows`` over seeds following ``layout`` (the grid's ``report:`` section)."""
    layout = dict(layout or {})
    paper = dict(paper or {})
    group = layout.get("group", "defended")
    if group not in GROUPS:
        raise UserError(f"report group {group!r} is unknown; valid: {', '.join(GROUPS)}")
    metrics = [_metric_name(m, group) for m in (layout.get("metrics") or ["asr", "acc"])]
    col_axis = layout.get("columns")
    order: List[str] = []
    for r in rows:
        for k in r.axes:
            if k != "seed" and k not in order:
                order.append(k)
    if layout.get("rows"):
        row_axes = list(layout["rows"])
    else:
        row_axes = [k for k in order if k != col_axis and (
            k in ("dataset", "attack", "defense") or len({_norm(r.axes.get(k)) for r in rows}) > 1)]
    for k in row_axes + ([col_axis] if col_axis else []):
        if rows and k not in order:
            raise UserError(f"report axis {k!r} is not an axis of these runs; valid: "
                            f"{', '.join(order)}")

    cells: Dict[Tuple[Any, ...], Dict[Any, Cell]] = {}
    col_values: List[Any] = []
    for r in rows:
        rk = tuple(r.axes.get(k) for k in row_axes)
        ck = r.axes.get(col_axis) if col_axis else None
        if ck not in col_values:
            col_values.append(ck)
        cells.setdefault(rk, {}).setdefault(ck, Cell()).runs.append(r)

    def has_paper(ck: Any) -> bool:
        return any(paper_lookup(paper, _axes(rk, ck), m, group) is not None
                   for rk in cells for m in metrics)

    def _axes(rk: Tuple[Any, ...], ck: Any) -> Dict[str, Any]:
        a = dict(zip(row_axes, rk))
        if col_axis:
            a[col_axis] = ck
        return a

    header = list(row_axes)
    joined = " / ".join(_label(m, group) for m in metrics)
    if col_axis:
        for ck in col_values:
            header.append(f"{ck}")
            if has_paper(ck):
                header.append(f"{ck} (paper)")
    else:
        for m in metrics:
            header.append(_label(m, group))
        if has_paper(None):
            header += [f"paper {_label(m, group)}" for m in metrics]
    header.append("runs")

    body: List[List[str]] = []
    records: List[Dict[str, Any]] = []
    for rk, by_col in cells.items():
        line = [str(v) for v in rk]
        n_ok = n_failed = 0
        for ck in (col_values if col_axis else [None]):
            cell = by_col.get(ck, Cell())
            n_ok += len(cell.ok)
            n_failed += len(cell.failed)
            stats = {m: cell.stat(m) for m in metrics}
            axes = _axes(rk, ck)
            pap = {m: paper_lookup(paper, axes, m, group) for m in metrics}
            if col_axis:
                line.append(" / ".join(_fmt(*stats[m][:2], _digits(m)) for m in metrics)
                            if cell.runs else "")
                if has_paper(ck):
                    line.append(" / ".join(_fmt_paper(pap[m], _digits(m)) for m in metrics))
            else:
                line += [_fmt(*stats[m][:2], _digits(m)) for m in metrics]
                if has_paper(None):
                    line += [_fmt_paper(pap[m], _digits(m)) for m in metrics]
            if cell.runs:
                rec: Dict[str, Any] = dict(axes)
                rec.update(runs_ok=len(cell.ok), runs_failed=len(cell.failed))
                for m in metrics:
                    rec[f"{m}_mean"], rec[f"{m}_std"], _ = stats[m]
                    rec[f"paper_{m}"] = pap[m]
                records.append(rec)
        line.append(f"{n_ok} ok" + (f", {n_failed} failed" if n_failed else ""))
        body.append(line)

    failures = [(" · ".join(f"{v}" for k, v in r.axes.items()), r.error or "")
                for r in rows if r.status != "ok"]
    over = layout.get("over", "seeds")  # node grids: "splits"
    notes = [f"cells: {joined} in %, mean ± std over {over} (population std)"]
    if col_axis:
        notes[0] = f"each {col_axis} cell: {joined} in %, mean ± std over {over} (population std)"
    unitless = [_label(m, group) for m in metrics if _digits(m) == 3]
    if unitless:
        notes[0] += f"; {', '.join(unitless)}: cosine in [-1, 1], not %"
    if any(m.startswith("recovery.") for m in metrics):
        notes.append("recovery: the backdoored model on the holding graphs carrying the "
                     "defense's recovered trigger (evaluator-side; similarity = cosine to the "
                     "same graphs with the true trigger)")
    if paper.get("source"):
        notes.append(f"paper: {paper['source']}")
    machines = sorted({f"{r.versions.get('platform', '?')}, {r.device}, " + _cpu_text(r.versions)
                       + f"{r.versions.get('cpu_threads', '?')} threads, dglcleaner "
                       f"{r.versions.get('dglcleaner', '?')}, torch {r.versions.get('torch', '?')}, "
                       f"dgl {r.versions.get('dgl', '?')}" for r in rows if r.status == "ok"})
    for m in machines:
        notes.append(f"machine: {m}")
    commits = sorted({r.git_commit for r in rows if r.git_commit})
    if commits:
        notes.append("git commit: " + ", ".join(commits))
    total = sum(r.elapsed_s or 0.0 for r in rows)
    if rows:
        notes.append(f"total run time: {total / 60:.1f} min over {len(rows)} runs")
    return Table(title=title, header=header, body=body, records=records, failures=failures,
                 notes=notes)


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------
def to_markdown(t: Table) -> str:
    def esc(s: str) -> str:
        return s.replace("|", "\\|")

    out = [f"### {t.title}", ""]
    out.append("| " + " | ".join(esc(h) for h in t.header) + " |")
    out.append("|" + "|".join("---" for _ in t.header) + "|")
    for line in t.body:
        out.append("| " + " | ".join(esc(c) for c in line) + " |")
    out.append("")
    out += [f"- {n}" for n in t.notes]
    if t.failures:
        out += ["", f"**Failed runs ({len(t.failures)})**", ""]
        out += [f"- {esc(run)}: `{err}`" for run, err in t.failures]
    return "\n".join(out) + "\n"


def to_csv(t: Table) -> str:
    buf = io.StringIO()
    keys: List[str] = []
    for r in t.records:
        for k in r:
            if k not in keys:
                keys.append(k)
    w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    w.writeheader()
    for r in t.records:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in keys})
    return buf.getvalue()


def to_rich(t: Table):
    """A rich renderable (table, notes and failures)."""
    from rich.console import Group
    from rich.table import Table as RichTable
    from rich.text import Text

    table = RichTable(title=t.title)
    for i, h in enumerate(t.header):
        table.add_column(h, justify="left" if i < len(t.header) and h in t.header[:1] else "right",
                         style="dim" if "(paper)" in h or h.startswith("paper ") else None)
    for line in t.body:
        cells = [Text(c, style="red") if c.endswith("failed") else c for c in line]
        table.add_row(*cells)
    parts: List[Any] = [table] + [Text(n, style="dim") for n in t.notes]
    for run, err in t.failures:
        parts.append(Text(f"failed: {run}: {err}", style="red"))
    return Group(*parts)


def render(t: Table, fmt: str) -> str:
    """Text of ``t`` in ``fmt`` (rich renders to plain text here)."""
    if fmt == "markdown":
        return to_markdown(t)
    if fmt == "csv":
        return to_csv(t)
    if fmt == "rich":
        from rich.console import Console

        console = Console(record=True, width=200, file=io.StringIO())
        console.print(to_rich(t))
        return console.export_text()
    raise UserError(f"unknown report format {fmt!r}; valid: {', '.join(FORMATS)}")
