"""Execute a grid: every pending run, sharing work, one stored row per run.

Work is shared at two levels (see :func:`~dglcleaner.experiments.config.group_runs`):

* a *unit* (dataset, features, split, model, training settings, seed) loads the data and trains
  the clean model once, for every attack, defense, holding ratio and trigger size;
* a *group* (unit + holding ratio and trigger size + attack settings) runs the attack and
  trains the backdoored model once, for every defense; groups that differ only in how the
  backdoored model is trained (the adaptive attack's ``adaptive_alpha``) also share the attack
  result, and groups that differ only in the holding ratio share the attack result and the
  backdoored model (the holding set is drawn from the test split after the train split, so
  the models never see it; ``EVAL_FIELDS`` in :mod:`~dglcleaner.experiments.config`).

After each defense the evaluator adds ``record["recovery"]`` when the defense exposes its
recovered trigger (GCleaner): :func:`recovery_metrics` (Table 4's similarity and recovery ASR).

Each stage is seeded from the run seed alone (:func:`~dglcleaner.seeding.derive_seed`), and the
stages of a group always run in the same order (data, the ``check`` hooks, clean
model, attack, backdoored model, defense), so a run gives the same numbers whether its
neighbours ran before it, were skipped on a resume, or ran in another worker process. An
attack whose check refuses the settings fails its own runs before any training; so does a
defense with bad parameters or a ``check`` hook that refuses this run's data (the group's
models are trained only if some run still needs them).

A run that raises (a plugin error, a non-finite loss) or ends with non-finite numbers is stored
as ``failed`` with its error and the grid goes on. Finished rows are committed one by one, so a
killed grid started again skips them.
"""
from __future__ import annotations

import math
import os
import subprocess
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

from .config import Grid, RunSpec, build_defend_config, group_runs
from .store import Store

#: ``on_event(kind, key, payload)``; kinds: ``plan``, ``start``, ``stage``, ``done``.
EventFn = Callable[[str, str, Dict[str, Any]], None]


@dataclass
class GridSummary:
    total: int = 0
    skipped: int = 0
    ok: int = 0
    failed: int = 0
    elapsed_s: float = 0.0
    failures: List[Dict[str, str]] = field(default_factory=list)


_GIT: Dict[str, Optional[str]] = {}


def git_commit() -> Optional[str]:
    """``HEAD`` of the checkout dglcleaner runs from (``+dirty`` with local changes)."""
    if "commit" not in _GIT:
        here = os.path.dirname(os.path.abspath(__file__))
        try:
            head = subprocess.run(["git", "-C", here, "rev-parse", "HEAD"], capture_output=True,
                                  text=True, timeout=10)
            commit = head.stdout.strip() if head.returncode == 0 else None
            if commit:
                st = subprocess.run(["git", "-C", here, "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True, timeout=10)
                if st.returncode == 0 and st.stdout.strip():
                    commit += "+dirty"
        except (OSError, subprocess.SubprocessError):
            commit = None
        _GIT["commit"] = commit
    return _GIT["commit"]


def pending_runs(grid: Grid, store: Store, retry_failed: bool = True) -> List[RunSpec]:
    """Runs of ``grid`` not yet stored as ``ok`` (nor as ``failed`` unless ``retry_failed``)."""
    done = store.done_keys([r.key for r in grid.runs], include_failed=not retry_failed)
    return [r for r in grid.runs if r.key not in done]


def run_grid(grid: Grid, db_path: str, *, device: str = "auto", data_dir: Optional[str] = None,
             jobs: int = 1, retry_failed: bool = True, on_event: Optional[EventFn] = None,
             threads: Optional[int] = None) -> GridSummary:
    """Run every pending run of ``grid`` and store it in ``db_path``; return the counts.

    ``threads``: torch CPU threads of each job (with ``jobs == 1``, of this process). ``None``
    leaves this process as it is and gives each worker ``cpu_count // jobs``."""
    emit = on_event or (lambda kind, key, payload: None)
    start = time.perf_counter()
    with Store(db_path) as store:
        todo = pending_runs(grid, store, retry_failed)
    summary = GridSummary(total=len(grid.runs), skipped=len(grid.runs) - len(todo))
    units = group_runs(todo)
    emit("plan", "", {"total": len(grid.runs), "pending": len(todo), "units": len(units)})
    opts = grid.record_options

    def tally(kind: str, key: str, payload: Dict[str, Any]) -> None:
        if kind == "done":
            if payload["status"] == "ok":
                summary.ok += 1
            else:
                summary.failed += 1
                summary.failures.append({"key": key, "run": payload.get("run", ""),
                                         "error": payload.get("error") or ""})
        emit(kind, key, payload)

    if jobs <= 1 or len(units) <= 1:
        if threads is not None:
            import torch

            torch.set_num_threads(max(1, int(threads)))
        for unit in units:
            run_unit(unit, db_path, device=device, data_dir=data_dir, record_options=opts,
                     emit=tally)
    else:
        _run_parallel(units, db_path, device, data_dir, opts, jobs, tally, threads)
    summary.elapsed_s = time.perf_counter() - start
    return summary


# ---------------------------------------------------------------------------------------------
# Parallel execution: one process per unit at a time; rows are written by the workers.
# ---------------------------------------------------------------------------------------------
def _worker_init(threads: int, parent_pid: int) -> None:
    import torch

    torch.set_num_threads(max(1, threads))
    # A parent killed without cleanup (SIGKILL, a crash) would leave this worker computing,
    # and writing rows for, a whole unit nobody waits for, racing a resumed run. It leaves
    # instead: the run in progress is not written (rows are atomic) and a rerun redoes it.
    _leave_with_parent(parent_pid)


def _leave_with_parent(parent_pid: int) -> None:
    """Start a daemon thread that ends this process once ``parent_pid`` is no longer its parent."""
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()


def _watch_parent(parent_pid: int, poll_s: float = 0.5) -> None:
    while os.getppid() == parent_pid:
        time.sleep(poll_s)
    os._exit(1)


def _unit_worker(unit, db_path, device, data_dir, opts, queue) -> None:
    run_unit(unit, db_path, device=device, data_dir=data_dir, record_options=opts,
             emit=lambda kind, key, payload: queue.put((kind, key, payload)))


def _run_parallel(units, db_path, device, data_dir, opts, jobs, emit,
                  threads: Optional[int] = None) -> None:
    import multiprocessing as mp
    import queue as queue_mod
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from multiprocessing.managers import SyncManager

    # spawn: a forked child would inherit torch's thread pools and DGL state in an unknown state.
    ctx = mp.get_context("spawn")
    if threads is None:
        threads = max(1, (os.cpu_count() or 1) // jobs)
    manager = SyncManager(ctx=ctx)
    manager.start(_leave_with_parent, (os.getpid(),))
    q = manager.Queue()
    # Largest units first so the slowest one does not start last.
    order = sorted(units, key=lambda u: -sum(len(g) for g in u))
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_worker_init,
                               initargs=(threads, os.getpid()))
    try:
        futures = {pool.submit(_unit_worker, u, db_path, device, data_dir, opts, q)
                   for u in order}
        while futures:
            done, futures = wait(futures, timeout=0.2, return_when=FIRST_COMPLETED)
            _drain(q, emit, queue_mod)
            for f in done:
                f.result()  # a crash of the worker machinery itself is not a run failure
        _drain(q, emit, queue_mod)
        pool.shutdown()
    except BaseException:
        # Interrupted (Ctrl-C, SIGTERM through the CLI) or crashed: stop the workers now rather
        # than let shutdown() wait for their units; finished rows are already stored.
        procs = list((getattr(pool, "_processes", None) or {}).values())
        for proc in procs:
            proc.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in procs:
            proc.join(timeout=5)
        raise
    finally:
        manager.shutdown()


def _drain(q, emit, queue_mod) -> None:
    while True:
        try:
            kind, key, payload = q.get_nowait()
        except queue_mod.Empty:
            return
        emit(kind, key, payload)


# ---------------------------------------------------------------------------------------------
# One unit
# ---------------------------------------------------------------------------------------------
class _AllRefused(Exception):
    """Every defense of a group refused its settings: skip the group's training."""


def _error_text(exc: BaseException, stage: str) -> str:
    msg = " ".join(str(exc).split()) or "(no message)"
    return f"{type(exc).__name__}: {msg} (during {stage})"


def _refused_defenses(run, group: Sequence[RunSpec]) -> Dict[str, str]:
    """Runs of ``group`` whose defense is refused before training (key -> error): unknown or
    invalid parameters, or the defense's ``check`` hook on this run's data."""
    from ..registry import make_plugin

    refused = {}
    for spec in group:
        try:
            plugin = make_plugin("defense", spec.config["defense"],
                                 spec.config["defense_params"] or {},
                                 spec.config["defense_preset"])
            run.check_defense(plugin)
        except Exception as exc:  # noqa: BLE001 - recorded as this run's error
            refused[spec.key] = _error_text(exc, "defense check")
    return refused


def _share(source, run, same_data: bool) -> None:
    """Give ``run`` the featurised graphs and the clean model (and, with ``same_data``, the
    split into train, holding and evaluation sets) that ``source`` already computed.

    Both runs share dataset, train split, features and clean-model settings (same unit key),
    so the cached values are exactly what ``run`` would compute. Uses SeedRun's stage cache.
    """
    stages = ("features", "data", "clean_model") if same_data else ("features", "clean_model")
    run.share_stages(source, stages)


def _instrument(run, captured: Dict[str, Any]) -> None:
    """Memoise evaluations of the shared clean/backdoored models (``record`` repeats them for
    every defense) and capture each defense result (for the finite-number check) and plugin
    instance (for the evaluator's recovery metrics)."""
    orig_eval, orig_defense = run.evaluate, run.run_defense
    orig_context = run.defense_context
    memo: Dict[Any, Dict[str, float]] = {}

    def evaluate(model, result=None, with_trigger=True):
        shared = (model is run.cached("clean_model")
                  or model is run.cached("backdoored_model"))
        if result is None and shared:
            k = (id(model), with_trigger)
            if k not in memo:
                memo[k] = orig_eval(model, result, with_trigger)
            return dict(memo[k])
        return orig_eval(model, result, with_trigger)

    def run_defense(*args, **kwargs):
        captured["result"] = orig_defense(*args, **kwargs)
        return captured["result"]

    def defense_context(defense):
        captured["plugin"] = defense  # SeedRun.run_defense builds the plugin, then asks this
        return orig_context(defense)

    run.evaluate = evaluate
    run.run_defense = run_defense
    run.defense_context = defense_context


def _snapshot(model) -> Dict[str, Any]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(model, snap: Dict[str, Any]) -> bool:
    import torch

    state = model.state_dict()
    return state.keys() == snap.keys() and all(torch.equal(state[k], snap[k]) for k in snap)


def _finite_problem(rec: Dict[str, Any], dres) -> Optional[str]:
    import torch

    for name, val in (rec.get("defended") or {}).items():
        if name == "acc" and (val is None or (isinstance(val, float) and math.isnan(val))):
            return "defended accuracy is NaN"
    model = getattr(dres, "model", None)
    if isinstance(model, torch.nn.Module):
        for pname, p in model.named_parameters():
            if not torch.isfinite(p).all():
                return f"defended model has non-finite values in parameter {pname}"
    return None


def _confusions(run, dres, num_classes: int) -> Dict[str, List[List[int]]]:
    """Confusion matrices (rows: true class, columns: predicted) on the clean eval set."""
    import torch

    from ..training import predict

    graphs, labels = run.data["eval"]

    def conf(pred) -> List[List[int]]:
        m = torch.zeros(num_classes, num_classes, dtype=torch.long)
        m.index_put_((labels.long(), torch.as_tensor(pred).long().cpu()),
                     torch.ones(len(labels), dtype=torch.long), accumulate=True)
        return m.tolist()

    out = {"clean": conf(predict(run.clean_model, graphs, device=run.device))}
    if run.cfg.attack:
        out["backdoored"] = conf(predict(run.backdoored_model, graphs, device=run.device))
    g = dres.transform(graphs) if dres.transform is not None else graphs
    pred = (dres.predict(dres.model, g) if dres.predict is not None
            else predict(dres.model, g, device=run.device))
    out["defended"] = conf(pred)
    return out


def recovery_metrics(run, plugin, dres) -> Optional[Dict[str, float]]:
    """Evaluator-side numbers on a defense's recovered trigger (Table 4), or ``None``.

    Needs a defense that keeps ``recovered_ = {"graphs", "labels", "triggered",
    "positions"}`` (GCleaner) and a run with an attack. Computed after the defense finished,
    from what only the evaluator knows (target label, true trigger); nothing goes back to the
    defense. Keys (percent unless said): ``asr`` - the backdoored model's ASR on the clean
    graphs carrying the recovered trigger (the paper's "ASR (recovery)"); ``defender_asr`` -
    the defense's own target-free estimate (``info["recovery_asr"]``); ``dominant_is_target``
    - 100 when the class the recovered trigger pushes to is the true target; ``similarity`` -
    cosine in [-1, 1] between the backdoored model's embeddings of the holding graphs with the
    recovered and with the true trigger (only when the trigger was recovered, not the oracle).
    """
    import torch

    from .. import metrics
    from ..seeding import derive_seed
    from ..training import predict

    rec = getattr(plugin, "recovered_", None)
    if not run.cfg.attack or not isinstance(rec, dict) or not rec.get("triggered"):
        return None
    model = run.backdoored_model
    target = run.cfg.target_label
    labels = torch.as_tensor(rec["labels"]).long()
    pred = predict(model, list(rec["triggered"]), device=run.device)
    out: Dict[str, float] = {"asr": metrics.asr(pred, labels, target)}
    info = getattr(dres, "info", None) or {}
    if isinstance(info.get("recovery_asr"), (int, float)):
        out["defender_asr"] = 100.0 * float(info["recovery_asr"])
    if isinstance(info.get("recovery_dominant_class"), int):
        out["dominant_is_target"] = 100.0 * float(info["recovery_dominant_class"] == target)
    if rec.get("positions") is not None and rec.get("graphs"):
        true = run.attack_result.apply_trigger(list(rec["graphs"]),
                                               derive_seed(run.seed, "eval-similarity"))
        if len(true) == len(rec["triggered"]):
            out["similarity"] = metrics.trigger_similarity(model, rec["triggered"], true,
                                                           run.device)
    return out


def run_unit(unit: Sequence[Sequence[RunSpec]], db_path: str, *, device: str = "auto",
             data_dir: Optional[str] = None, record_options: Optional[Dict[str, Any]] = None,
             emit: Optional[EventFn] = None) -> None:
    """Run the groups of one unit in order, storing one row per run."""
    if unit and unit[0] and unit[0][0].config.get("task") == "node":
        from .node_grid import run_node_unit

        return run_node_unit(unit, db_path, device=device, data_dir=data_dir, emit=emit)
    from ..runner import SeedRun, versions

    emit = emit or (lambda kind, key, payload: None)
    opts = record_options or {}
    vers = versions()
    commit = git_commit()
    source = None
    data_sources: Dict[str, Any] = {}  # data_key -> run whose data stage is reused
    attack_sources: Dict[str, Any] = {}  # attack_key -> run whose attack result is reused
    model_sources: Dict[str, Any] = {}  # model_key -> run whose backdoored model is reused
    unit_error: Optional[str] = None
    data_errors: Dict[str, str] = {}  # e.g. a holding ratio this split cannot give
    with Store(db_path) as store:
        for group in unit:
            first = group[0]
            cfg_dict = dict(first.config, device=device, data_dir=data_dir)
            state = {"key": first.key, "stage": "setup"}

            def progress(msg: str, _state=state) -> None:
                _state["stage"] = msg
                emit("stage", _state["key"], {"stage": msg})

            emit("start", first.key, {"run": first.describe(), "axes": first.axes})
            t_setup = time.perf_counter()
            setup_error = unit_error or data_errors.get(first.data_key)
            run = None
            checked = False
            refused: Dict[str, str] = {}  # spec key -> its defense's refusal
            snaps: Dict[str, Any] = {}
            if setup_error is None:
                try:
                    run = SeedRun(build_defend_config(cfg_dict), first.seed, progress)
                    if source is not None:
                        _share(data_sources.get(first.data_key, source), run,
                               same_data=first.data_key in data_sources)
                    if first.attack_key in attack_sources:  # e.g. another adaptive alpha
                        run.share_stages(attack_sources[first.attack_key],
                                         ("attack_plugin", "attack_result", "triggered_eval"))
                    if first.model_key and first.model_key in model_sources:  # another holding
                        run.share_stages(model_sources[first.model_key],
                                         ("attack_plugin", "attack_result", "backdoored_model"))
                    captured: Dict[str, Any] = {}
                    _instrument(run, captured)
                    # Fixed stage order (see module doc): clean model before the attack.
                    run.data
                    data_sources.setdefault(first.data_key, run)
                    run.check()  # the attack's own check: bad settings fail before training
                    checked = True
                    refused = _refused_defenses(run, group)
                    if len(refused) == len(group):
                        raise _AllRefused()  # no run left that needs a model
                    run.clean_model
                    if source is None:
                        source = run
                    if run.cfg.attack:
                        run.attack_result
                        run.backdoored_model  # refuses an alpha an attack's own model ignored
                        run.triggered_eval
                        if run.attack_result.model is None:
                            # the runner trained the model: the attack result does not depend
                            # on alpha; an attack training its own model (GTA) may apply alpha
                            attack_sources.setdefault(first.attack_key, run)
                        if first.model_key:
                            model_sources.setdefault(first.model_key, run)
                    snaps = {"clean_model": _snapshot(run.clean_model)}
                    if run.cfg.attack:
                        snaps["backdoored_model"] = _snapshot(run.backdoored_model)
                except _AllRefused:
                    pass  # each run keeps its own refusal
                except Exception as exc:  # noqa: BLE001 - recorded, the grid goes on
                    setup_error = _error_text(exc, state["stage"])
                    if (run is not None and "data" not in run._cache
                            and run._dataset is not None):  # loaded, but not this split
                        data_errors[first.data_key] = setup_error  # e.g. this holding only
                    elif run is not None and "data" in run._cache and not checked:
                        pass  # this group's attack settings only; the others still run
                    elif run is None or "clean_model" not in run._cache:
                        unit_error = setup_error  # data or clean model broken: whole unit
            setup_s = time.perf_counter() - t_setup
            setup_timings = dict(run.timings) if run is not None else {}

            for i, spec in enumerate(group):
                state["key"] = spec.key
                if i > 0:
                    emit("start", spec.key, {"run": spec.describe(), "axes": spec.axes})
                t0 = time.perf_counter()
                before = dict(run.timings) if run is not None else {}
                rec: Dict[str, Any] = {}
                error = setup_error or refused.get(spec.key)
                if error is None:
                    state["stage"] = "defense"
                    captured.clear()
                    try:
                        rec = run.record(spec.config["defense"], spec.config["defense_params"],
                                         spec.config["defense_preset"])
                        error = _finite_problem(rec, captured.get("result"))
                        if error is None and opts.get("confusion"):
                            rec["confusion"] = _confusions(run, captured["result"],
                                                           run.data["num_classes"])
                        if error is None and opts.get("recovery", True):
                            # Extra evaluator numbers: a problem here is noted in the record
                            # but does not fail the defense's run.
                            try:
                                recovery = recovery_metrics(run, captured.get("plugin"),
                                                            captured.get("result"))
                            except Exception as exc:  # noqa: BLE001
                                rec["recovery_error"] = _error_text(exc, "recovery metrics")
                            else:
                                if recovery:
                                    rec["recovery"] = recovery
                    except Exception as exc:  # noqa: BLE001 - recorded, the grid goes on
                        error = _error_text(exc, state["stage"])
                        tb = traceback.format_exc(limit=-3)
                        rec = {"traceback": tb}
                    for name, snap in snaps.items():
                        if not _same(run._cache[name], snap):
                            run._cache[name].load_state_dict(snap)
                            error = (f"defense {spec.config['defense']!r} changed the shared "
                                     f"{name.replace('_', ' ')} in place (plugin bug: copy the "
                                     f"model before changing it); the model was restored")
                timings = {k: round(v - before.get(k, 0.0), 4)
                           for k, v in (run.timings.items() if run is not None else [])
                           if v - before.get(k, 0.0) > 0}
                if i == 0:
                    for k, v in setup_timings.items():
                        timings[k] = round(timings.get(k, 0.0) + v, 4)
                rec.pop("timings", None)  # cumulative in SeedRun; the row keeps per-run deltas
                elapsed = time.perf_counter() - t0 + (setup_s if i == 0 else 0.0)
                status = "ok" if error is None else "failed"
                store.put(key=spec.key, grid=spec.grid, seed=spec.seed, axes=spec.axes,
                          config=spec.config, status=status, error=error, record=rec,
                          timings=timings, elapsed_s=round(elapsed, 4), versions=vers,
                          git_commit=commit, device=str(run.device) if run is not None else device)
                emit("done", spec.key, {"status": status, "error": error, "elapsed": elapsed,
                                        "run": spec.describe(), "axes": spec.axes})
