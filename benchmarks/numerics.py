"""Same command, same numbers? And what MKL's compatible kernels cost on this CPU.

Runs one ``dglcleaner defend`` (default: Sub-BA then GCleaner on the embedded synthetic data,
one seed) ``--repeats`` times in fresh processes with MKL's default kernels and as many times
with ``MKL_CBWR=COMPATIBLE``, interleaved so that load on the machine hits both alike. Prints
and writes (``--out``, Markdown; ``--json``) the wall time of each mode, whether the repeats of
a mode gave identical JSON summaries (they must: the seed fixes everything on one machine),
and whether the two modes agree (they need not: see ``dglcleaner/machine.py``).

    python benchmarks/numerics.py --repeats 2 --out docs/results/numerics.md

Bad input (a repeat count below 1, extra ``defend`` options that ``defend`` refuses) is one
line on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, machine_md  # noqa: E402

from dglcleaner.io_utils import atomic_write_bytes  # noqa: E402

MODES = {"default": None, "compatible": "COMPATIBLE"}


def defend_once(cbwr: Optional[str], defend_args: List[str], threads: int) -> Dict[str, Any]:
    """One ``defend`` in a fresh process (MKL reads ``MKL_CBWR`` once per process)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    env.pop("MKL_CBWR", None)
    if cbwr:
        env["MKL_CBWR"] = cbwr
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run.json"
        cmd = [sys.executable, "-m", "dglcleaner", "defend", *defend_args, "--threads",
               str(threads), "--json", str(out)]
        start = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            lines = (proc.stderr or proc.stdout).strip().splitlines()
            raise SystemExit(f"defend failed ({' '.join(defend_args)}): "
                             f"{lines[-1] if lines else 'exit ' + str(proc.returncode)}")
        return {"wall_s": wall, "summary": json.loads(out.read_text())["summary"]}


def measure(repeats: int, defend_args: List[str], threads: int) -> Dict[str, Any]:
    runs: Dict[str, List[Dict[str, Any]]] = {m: [] for m in MODES}
    for _ in range(repeats):
        for mode, cbwr in MODES.items():
            runs[mode].append(defend_once(cbwr, defend_args, threads))
    result: Dict[str, Any] = {"defend_args": defend_args, "repeats": repeats, "modes": {}}
    for mode, rs in runs.items():
        walls = [r["wall_s"] for r in rs]
        result["modes"][mode] = {
            "wall_s_mean": statistics.fmean(walls),
            "wall_s_std": statistics.pstdev(walls),
            "repeats_identical": all(r["summary"] == rs[0]["summary"] for r in rs),
            "backdoored_asr": rs[0]["summary"]["backdoored"]["asr"]["mean"],
            "defended_asr": rs[0]["summary"].get("defended", {}).get("asr", {}).get("mean"),
        }
    result["modes_agree"] = runs["default"][0]["summary"] == runs["compatible"][0]["summary"]
    return result


def to_markdown(res: Dict[str, Any], info: Dict[str, Any], command: str) -> str:
    lines = ["# Numerics: the same command twice, and MKL's compatible kernels", "",
             f"Measured by `{command}`: `dglcleaner defend {' '.join(res['defend_args'])}`, "
             f"{res['repeats']} fresh processes per mode, interleaved.", "",
             machine_md(info), "",
             "| mode | wall time (s) | repeats identical | backdoored ASR | defended ASR |",
             "|---|---|---|---|---|"]
    for mode, m in res["modes"].items():
        label = "MKL default" if mode == "default" else "MKL_CBWR=COMPATIBLE"
        defended = "-" if m["defended_asr"] is None else f"{m['defended_asr']:.2f}"
        lines.append(f"| {label} | {m['wall_s_mean']:.1f} ± {m['wall_s_std']:.1f} | "
                     f"{'yes' if m['repeats_identical'] else 'NO'} | "
                     f"{m['backdoored_asr']:.2f} | {defended} |")
    lines += ["", f"The two modes give {'the same' if res['modes_agree'] else 'different'} "
              "summaries. Wall time includes starting Python and importing torch and DGL; it is "
              "an upper bound when the load average exceeds the core count.", ""]
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, help="write the Markdown page here")
    ap.add_argument("--json", type=Path, help="write the measurements as JSON here")
    ap.add_argument("defend_args", nargs="*",
                    help="options for defend (after --); default: --attack sub-ba "
                         "--defense gcleaner --seeds 1")
    args = ap.parse_args(argv)
    if args.repeats < 1 or args.threads < 1:
        print("error: --repeats and --threads must be at least 1", file=sys.stderr)
        return 2
    defend_args = args.defend_args or ["--attack", "sub-ba", "--defense", "gcleaner",
                                       "--seeds", "1"]
    try:
        res = measure(args.repeats, defend_args, args.threads)
    except SystemExit as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(args.threads)  # so the page names the threads each defend ran with
    info = machine()
    res["machine"] = info
    command = "python benchmarks/numerics.py " + " ".join(argv if argv is not None
                                                           else sys.argv[1:])
    page = to_markdown(res, info, command.strip())
    print(page)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(args.out, page.encode())
    if args.json:
        atomic_write_bytes(args.json, (json.dumps(res, indent=1, sort_keys=True) + "\n").encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
