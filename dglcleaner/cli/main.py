"""The ``dglcleaner`` command line.

This module imports only click and the light core (registry, params, errors). torch, DGL and
plugin code are imported inside the commands that need them, so ``--help`` and
``list-plugins`` stay fast. Any :class:`~dglcleaner.errors.UserError` becomes one line on
stderr and exit code 2; no traceback reaches the user.
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import signal
import sys
import threading
from typing import Any, Dict, List, Optional, Tuple

import click

from .. import __version__
from ..errors import DGLImportError, UserError

EXIT_USAGE = 2

# Sub-commands living in their own modules: name -> (module, attribute). Imported on use only.
LAZY_COMMANDS = {
    "attack": ("dglcleaner.cli.attack_cmd", "attack_cmd"),
    "run": ("dglcleaner.cli.run_cmd", "run_cmd"),
    "report": ("dglcleaner.cli.run_cmd", "report_cmd"),
    "plot": ("dglcleaner.cli.run_cmd", "plot_cmd"),
    "export": ("dglcleaner.cli.store_cmd", "export_cmd"),
    "import": ("dglcleaner.cli.store_cmd", "import_cmd"),
}


def fail(message: str, code: int = EXIT_USAGE) -> "click.exceptions.Exit":
    """Print ``error: message`` (one line) on stderr and exit with ``code``."""
    click.echo(f"error: {' '.join(str(message).split())}", err=True)
    raise click.exceptions.Exit(code)


class Group(click.Group):
    """A click group that loads some commands lazily and turns user errors into one line."""

    def list_commands(self, ctx: click.Context) -> List[str]:
        names = set(super().list_commands(ctx))
        names.update(n for n, (mod, _) in LAZY_COMMANDS.items()
                     if importlib.util.find_spec(mod) is not None)
        return sorted(names)

    def get_command(self, ctx: click.Context, name: str) -> Optional[click.Command]:
        cmd = super().get_command(ctx, name)
        if cmd is None and name in LAZY_COMMANDS:
            mod, attr = LAZY_COMMANDS[name]
            if importlib.util.find_spec(mod) is not None:
                cmd = getattr(importlib.import_module(mod), attr)
        return cmd

    def invoke(self, ctx: click.Context) -> Any:
        # SIGTERM (kill, a job scheduler's stop) ends a command like Ctrl-C does: cleanup runs,
        # a grid's workers are stopped, finished results stay. Only the main thread may do this.
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            return super().invoke(ctx)
        except UserError as exc:
            fail(str(exc))
        except DGLImportError as exc:
            fail(str(exc), 1)
        except KeyboardInterrupt:
            fail("interrupted; finished results were kept", 130)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt



@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dglcleaner")
def main() -> None:
    """Backdoor and label-poisoning attacks and defenses for graph neural networks.

    \b
    Quick start (no data needed, embedded synthetic dataset):
      dglcleaner list-plugins
      dglcleaner defend --attack sub-ba --defense gcleaner
    """


# ---------------------------------------------------------------------------------------------
# list-plugins
# ---------------------------------------------------------------------------------------------
@main.command("list-plugins")
@click.option("--kind", type=click.Choice(["attack", "defense", "explainer"]), default=None,
              help="Only plugins of this kind.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--check", is_flag=True, help="Import every plugin and report failures.")
@click.option("--details", "details", metavar="NAME", default=None,
              help="Show one plugin's summary, paper, threat model and parameters.")
def list_plugins(kind: Optional[str], as_json: bool, check: bool, details: Optional[str]) -> None:
    """List installed attacks, defenses and explainers (without importing them)."""
    from .. import registry

    if details:
        return _show_details(details, kind, as_json)
    specs = registry.discover(kind)
    status: Dict[Tuple[str, str, str], str] = {}
    if check:
        for spec, err in registry.check_all(kind):
            status[(spec.kind, spec.name, spec.dist)] = err or "ok"
    rows = []
    for spec in specs:
        row = spec.to_dict()
        row["status"] = status.get((spec.kind, spec.name, spec.dist), "not loaded")
        rows.append(row)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="dglcleaner plugins")
    for col in ("kind", "name", "distribution", "version", "status"):
        table.add_column(col)
    for r in rows:
        st = r["status"]
        style = "green" if st == "ok" else ("red" if st != "not loaded" else "dim")
        table.add_row(r["kind"], r["name"], r["distribution"], r["version"],
                      f"[{style}]{st}[/{style}]")
    Console().print(table)


def _show_details(name: str, kind: Optional[str], as_json: bool) -> None:
    from .. import registry
    from ..errors import UnknownNameError

    kinds = [kind] if kind else ["attack", "defense", "explainer"]
    found = None
    for k in kinds:
        try:
            found = registry.find(k, name)
            break
        except UnknownNameError:
            continue
    if found is None:
        all_names = sorted({s.name for s in registry.discover(kind)})
        from ..errors import unknown_name
        raise unknown_name("plugin", name, all_names)
    cls = registry.load_spec(found)
    info = plugin_details(cls, found)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"[bold]{info['name']}[/bold] ({info['kind']}, task {info['task']}) "
                  f"from {info['distribution']} {info['version']}")
    console.print(info["summary"])
    console.print(f"[bold]Paper:[/bold] {info['paper']}")
    console.print(f"[bold]Threat model:[/bold] {info['threat_model']}")
    if info["presets"]:
        console.print(f"[bold]Presets:[/bold] {', '.join(info['presets'])}")
    table = Table(title="parameters")
    for col in ("name", "type", "default", "valid", "help"):
        table.add_column(col)
    for p in info["params"]:
        table.add_row(p["name"], p["type"], repr(p["default"]), p["range"], p["help"])
    console.print(table)


def plugin_details(cls: Any, spec: Any) -> Dict[str, Any]:
    """Metadata of one loaded plugin class as a dict (CLI and docs generator)."""
    return {
        "name": cls.name, "kind": cls.kind, "task": cls.task, "summary": cls.summary,
        "paper": cls.paper, "threat_model": str(getattr(cls, "threat_model", "")),
        "api_version": cls.api_version, "distribution": spec.dist, "version": spec.version,
        "presets": sorted(getattr(cls, "presets", {}) or {}),
        "params": [p.to_dict() for p in cls.params],
        "doc": (cls.__doc__ or "").strip(),
        "module_doc": (sys.modules[cls.__module__].__doc__ or "").strip(),
    }


# ---------------------------------------------------------------------------------------------
# defend
# ---------------------------------------------------------------------------------------------
def check_data_dir(data_dir: Optional[str]) -> None:
    """An explicit ``--data-dir`` must exist (a typo should not silently fall back)."""
    import os

    from ..errors import DataError

    if data_dir is not None and not os.path.isdir(data_dir):
        raise DataError(f"--data-dir {data_dir!r} is not an existing folder; point it at the "
                        f"folder that holds the dataset folders (e.g. AIDS/)")


def _assignments(items: Tuple[str, ...]) -> Dict[str, str]:
    from ..params import parse_assignments

    return parse_assignments(items)


@main.command("defend")
@click.option("--dataset", default="synthetic", show_default=True,
              help="synthetic (embedded), AIDS, COLLAB, Fingerprint, Bitcoin, NCI1.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Folder with datasets (else $DGLCLEANER_DATA_DIR, else cache + download).")
@click.option("--attack", default="sub-ba", show_default=True,
              help="Backdoor attack plugin (see list-plugins); 'none' for no attack.")
@click.option("--defense", default="gcleaner", show_default=True, help="Defense plugin.")
@click.option("--model", default="gin", show_default=True,
              help="Architecture (gin, gcn, gat, sage), or a model file to repair.")
@click.option("--model-file", default=None, type=click.Path(dir_okay=False),
              help="Repair this model file (safe format; see --save-model): no attack is run.")
@click.option("--clean-data", default=None, metavar="NAME_OR_PATH[:COUNT]",
              help="With a model file: the defender's clean graphs (dataset name, TU folder or "
                   "zip, GIN text file), optionally COUNT of them.")
@click.option("--out", "out_path", default=None, type=click.Path(dir_okay=False),
              help="With a model file: where to write the repaired model.")
@click.option("--save-model", default=None, type=click.Path(dir_okay=False),
              help="Write the first seed's backdoored model to this file (safe format).")
@click.option("--adaptive-alpha", default=0.0, show_default=True, type=float,
              help="Adaptive attack (GCleaner Eq. 16): spread triggered embeddings apart.")
@click.option("--threads", default=None, type=int,
              help="Torch CPU threads [default: $OMP_NUM_THREADS, else 1].")
@click.option("--seeds", default=1, show_default=True, type=int, help="Number of seeds.")
@click.option("--seed", default=0, show_default=True, type=int, help="First seed.")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda or auto.")
@click.option("--features", default="degree_onehot", show_default=True,
              help="degree_onehot, node_label_onehot or attributes.")
@click.option("--target", "target_label", default=1, show_default=True, type=int,
              help="Target label of the backdoor.")
@click.option("--injection-ratio", default=0.05, show_default=True, type=float,
              help="Fraction of training graphs poisoned.")
@click.option("--trigger-size", default=None, type=int,
              help="Trigger nodes [default: max(2, floor(0.2 x average nodes))].")
@click.option("--holding-ratio", default=0.03, show_default=True, type=float,
              help="Defender's clean data as a fraction of the dataset.")
@click.option("--epochs", default=None, type=int, help="Training epochs of the models.")
@click.option("--attack-param", "attack_params", multiple=True, metavar="NAME=VALUE",
              help="Attack parameter (repeatable); see list-plugins --details.")
@click.option("--defense-param", "defense_params", multiple=True, metavar="NAME=VALUE",
              help="Defense parameter (repeatable).")
@click.option("--attack-preset", default=None, help="Attack preset, e.g. official.")
@click.option("--defense-preset", default=None, help="Defense preset, e.g. official.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Write the results (schema dglcleaner.defend/1) to this file.")
@click.option("--quiet", is_flag=True, help="No progress display.")
def defend(dataset: str, data_dir: Optional[str], attack: str, defense: str, model: str,
           model_file: Optional[str], clean_data: Optional[str], out_path: Optional[str],
           save_model: Optional[str], adaptive_alpha: float, threads: Optional[int],
           seeds: int, seed: int, device: str, features: str, target_label: int,
           injection_ratio: float, trigger_size: Optional[int], holding_ratio: float,
           epochs: Optional[int], attack_params: Tuple[str, ...],
           defense_params: Tuple[str, ...], attack_preset: Optional[str],
           defense_preset: Optional[str], json_path: Optional[str], quiet: bool) -> None:
    """Train a clean and a backdoored model, apply a defense, and report ACC and ASR.

    With a model file (--model FILE or --model-file FILE) it repairs that model instead: the
    defender's situation, with no attack named, only clean data (--clean-data) and a
    post-training defense; the repaired model goes to --out.
    """
    from ..models import MODEL_NAMES
    from ..runner import DefendConfig, run_defend
    from ..training import TrainConfig

    set_threads(threads)
    check_data_dir(data_dir)
    if model_file is None and model.lower() not in MODEL_NAMES + ("graphsage",):
        import os

        if os.path.isfile(model):
            model_file = model
    if model_file is not None:
        return _repair(model_file, clean_data, defense, defense_params, defense_preset,
                       out_path, device, seed, data_dir, features, json_path)
    if clean_data or out_path:
        from ..errors import ParameterError

        raise ParameterError("--clean-data and --out repair a model file; pass the file with "
                             "--model-file FILE (or --model FILE)")
    train = TrainConfig() if epochs is None else TrainConfig(epochs=epochs)
    cfg = DefendConfig(
        dataset=dataset, data_dir=data_dir,
        attack=None if attack.lower() == "none" else attack, defense=defense, model=model,
        seed=seed, seeds=seeds, device=device, features=features, target_label=target_label,
        injection_ratio=injection_ratio, trigger_size=trigger_size,
        holding_ratio=holding_ratio, train=train,
        attack_params=_assignments(attack_params), defense_params=_assignments(defense_params),
        attack_preset=attack_preset, defense_preset=defense_preset,
        adaptive_alpha=adaptive_alpha)
    doc = _with_progress(lambda cb: run_defend(cfg, cb, save_model=save_model), seeds, quiet)
    if json_path:
        from ..io_utils import atomic_write_json

        atomic_write_json(json_path, doc)
    _print_summary(doc, json_path)


def set_threads(threads: Optional[int]) -> None:
    """Torch CPU threads: ``--threads``, else $OMP_NUM_THREADS, else 1.

    One thread by default because on a shared 2-core machine torch with 2 threads ran one GIN
    forward pass 60x slower than with 1 (1.76 s vs 0.029 s, measured while other jobs ran),
    while on a quiet machine 1 thread costs 1.4-1.8x on large graphs only (environment spec).
    """
    import torch

    torch.set_num_threads(resolve_threads(threads))


def resolve_threads(threads: Optional[int]) -> int:
    """``threads`` if given (>= 1, else a :class:`ParameterError`), else $OMP_NUM_THREADS,
    else 1."""
    import os

    from ..errors import ParameterError

    if threads is not None and threads < 1:
        raise ParameterError(f"--threads must be >= 1; got {threads}")
    if threads is None:
        env = os.environ.get("OMP_NUM_THREADS", "")
        threads = int(env) if env.isdigit() and int(env) > 0 else 1
    return int(threads)


def _repair(model_file: str, clean_data: Optional[str], defense: str,
            defense_params: Tuple[str, ...], preset: Optional[str], out_path: Optional[str],
            device: str, seed: int, data_dir: Optional[str], features: str,
            json_path: Optional[str]) -> None:
    """``defend --model-file``: repair a model file with a post-training defense."""
    from ..errors import ParameterError
    from ..repair import repair

    if not clean_data:
        raise ParameterError("repairing a model file needs --clean-data NAME_OR_PATH[:COUNT]")
    if defense.lower() == "none":
        raise ParameterError("choose a post-training defense to repair with, e.g. "
                             "--defense gcleaner or --defense finetune")
    result = repair(model_file, clean_data, defense, _assignments(defense_params), out_path,
                    device, seed, preset, data_dir, features)
    if json_path:
        from ..io_utils import atomic_write_json

        atomic_write_json(json_path, {"schema": "dglcleaner.repair/1", **result})
    click.echo(f"repaired {model_file} with {defense} on {result['clean_graphs']} clean graphs: "
               f"clean accuracy {100 * result['clean_acc_before']:.2f}% -> "
               f"{100 * result['clean_acc_after']:.2f}% in {result['elapsed_s']:.1f} s"
               + (f"; written to {out_path}" if out_path else " (not saved: pass --out FILE)"))


def _with_progress(fn, seeds: int, quiet: bool):
    """Run ``fn(progress_callback)`` under a rich progress display (stderr)."""
    if quiet:
        return fn(None)
    from rich.console import Console
    from rich.progress import (BarColumn, Progress, SpinnerColumn, TextColumn,
                               TimeElapsedColumn)

    console = Console(stderr=True)
    with Progress(SpinnerColumn(), TextColumn("[bold]seed {task.fields[seed]}[/bold]"),
                  BarColumn(), TextColumn("{task.completed}/{task.total} seeds"),
                  TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                  transient=not console.is_terminal) as bar:
        task = bar.add_task("starting", total=seeds, seed=0)
        state = {"i": 0}

        def cb(i: int, msg: str) -> None:
            if i != state["i"]:
                bar.advance(task, i - state["i"])
                state["i"] = i
            bar.update(task, description=msg, seed=i)

        doc = fn(cb)
        bar.update(task, completed=seeds, description="done")
    return doc


def _fmt(ms: Optional[Dict[str, Any]]) -> str:
    if not ms or ms.get("mean") is None:
        return "-"
    return f"{ms['mean']:.2f} ± {ms['std']:.2f}"


def _print_summary(doc: Dict[str, Any], json_path: Optional[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    cfg, s = doc["config"], doc["summary"]
    n = len(doc["runs"])
    title = (f"{cfg['dataset']} · {cfg['model']} · attack {cfg['attack'] or 'none'} · "
             f"defense {cfg['defense']} · {n} seed{'s' if n > 1 else ''} (mean ± std, %)")
    table = Table(title=title, caption="ASR of the clean model = the trigger on a model that "
                  "never saw it (control). bal. ACC: mean per-class ACC (a constant model gets "
                  "100/#classes). ASR all: every triggered graph; ASR cond.: graphs the "
                  "clean model gets right.")
    for col in ("model", "ACC", "bal. ACC", "ASR", "ASR all", "ASR cond."):
        table.add_column(col, justify="right" if col != "model" else "left", no_wrap=True)
    labels = {"clean": "clean", "backdoored": "backdoored", "defended": cfg["defense"]}
    for group in ("clean", "backdoored", "defended"):
        if group in s:
            g = s[group]
            table.add_row(labels[group], _fmt(g.get("acc")), _fmt(g.get("bacc")),
                          _fmt(g.get("asr")),
                          _fmt(g.get("asr_all")), _fmt(g.get("asr_conditional")))
    console = Console()
    console.print(table)
    if "detection" in s:
        d = s["detection"]
        console.print(f"detection: precision {_fmt(d.get('precision'))}, "
                      f"recall {_fmt(d.get('recall'))}")
    timings: Dict[str, float] = {}
    for r in doc["runs"]:
        for k, v in r.get("timings", {}).items():
            timings[k] = timings.get(k, 0.0) + v / n
    console.print("time per seed (s): " + ", ".join(f"{k} {v:.2f}" for k, v in timings.items())
                  + f"; device {doc['device']}")
    if json_path:
        console.print(f"results written to {json_path}")


# ---------------------------------------------------------------------------------------------
# doctor
# ---------------------------------------------------------------------------------------------
@main.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def doctor(as_json: bool) -> None:
    """Show versions, DGL's native libraries, the loader's work, data dir and plugins."""
    from ..doctor import collect

    info = collect()
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="dglcleaner doctor", show_header=False)
    table.add_column("item", style="bold")
    table.add_column("value")
    for key, value in info.items():
        if key == "plugins":
            continue
        table.add_row(key, value if isinstance(value, str) else json.dumps(value))
    console.print(table)
    pt = Table(title="installed plugins")
    for col in ("kind", "name", "distribution", "version"):
        pt.add_column(col)
    for p in info["plugins"]:
        pt.add_row(p["kind"], p["name"], p["distribution"], p["version"])
    console.print(pt)


if __name__ == "__main__":  # pragma: no cover
    main()
