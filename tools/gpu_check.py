"""``make gpu-check``: every chapter notebook, full profile, on CUDA, with a report.

For each notebook it runs ``pytest --nbval-lax`` with ``SPOKENSTYLE_PROFILE=full`` and collects
what the notebook recorded through :func:`spokenstyle.runtime.report` (key metrics) and
:func:`spokenstyle.runtime.report_models` (the device of every model the trainer saw). It fails
when CUDA is unavailable, when a notebook fails, or when a notebook trained nothing on the GPU
(a model on the CPU, or no model at all). The result goes to ``reports/gpu-check.json``::

    {"device": "NVIDIA H100 80GB HBM3", "torch": "...", "profile": "full", "measured": "...",
     "notebooks": {"03_gan_math.ipynb": {"seconds": 41.2, "passed": true,
                   "models": [{"name": "G", "device": "cuda:0"}, ...], "metrics": {...}}}}

Runs with the venv's Python (``make gpu-check``) or any interpreter that can import the
package (``PYTHON=python3 make gpu-check`` with ``PYTHONPATH`` set, as in shared/gpu/README.md).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from spokenstyle import runtime  # noqa: E402


def run_notebook(path: Path, timeout: int) -> dict:
    with tempfile.NamedTemporaryFile("w+", suffix=".jsonl", delete=False) as handle:
        report_path = handle.name
    env = {**os.environ, "SPOKENSTYLE_PROFILE": "full", "SPOKENSTYLE_REPORT": report_path,
           "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "-q", "-p", "no:cacheprovider",
                           f"--nbval-cell-timeout={timeout}", str(path)],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    records = [json.loads(line) for line in Path(report_path).read_text().splitlines() if line.strip()]
    Path(report_path).unlink(missing_ok=True)
    models = [{"name": r["name"], "device": r["device"], "accelerator": r["accelerator"]}
              for r in records if r["kind"] == "model"]
    metrics: dict = {}
    for r in records:
        if r["kind"] == "metrics":
            metrics.update(r["values"])
    problems = []
    if proc.returncode != 0:
        problems.append("nbval failed:\n" + proc.stdout[-3000:] + proc.stderr[-2000:])
    if not models:
        problems.append("no model was trained or registered (runtime.report_models)")
    elif not all(m["accelerator"] for m in models):
        problems.append("models left on the CPU: " + ", ".join(f"{m['name']}@{m['device']}" for m in models
                                                               if not m["accelerator"]))
    return {"seconds": round(seconds, 1), "passed": not problems, "problems": problems,
            "models": models, "metrics": metrics}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "gpu-check.json")
    parser.add_argument("--cell-timeout", type=int, default=600)
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every chapters/*.ipynb")
    args = parser.parse_args(argv)
    device = runtime.get_device()
    if device.type == "cpu" or not runtime.is_accelerator(device):
        print("gpu-check needs CUDA, and torch sees no GPU here (torch.cuda.is_available() is False)")
        return 2
    notebooks = args.notebooks or sorted((ROOT / "chapters").glob("[0-9]*.ipynb"))
    result = {"device": runtime.device_name(device), "torch": __import__("torch").__version__,
              "profile": "full", "measured": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
              "notebooks": {}}
    for nb in notebooks:
        row = run_notebook(nb, args.cell_timeout)
        result["notebooks"][nb.name] = row
        print(f"{nb.name:36s} {row['seconds']:7.1f} s  {'ok' if row['passed'] else 'FAILED'}  {row['metrics']}")
        for problem in row["problems"]:
            print("   " + problem.replace("\n", "\n   "))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    total = sum(r["seconds"] for r in result["notebooks"].values())
    print(f"total {total:.0f} s on {result['device']} -> {args.out}")
    return 0 if all(r["passed"] for r in result["notebooks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
