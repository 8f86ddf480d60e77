"""`mechscope sweep modular-mlp --out DIR`: train and probe the modular MLP over a grid of moduli and seeds."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from mechscope.cli._options import (
    CacheOpt,
    FormatOpt,
    NoCacheOpt,
    OperationChoice,
    OutDirOpt,
    RayAddressOpt,
    WorkersOpt,
    checked_out,
    task_cache,
)
from mechscope.cli._output import OutputFormat, emit
from mechscope.cli.errors import CLIError
from mechscope.engine import open_engine
from mechscope.limits import MAX_DRAWS, MAX_MODULUS
from mechscope.recipes.sweep import SweepGrid, check_sweep_out, sweep_modular
from mechscope.serialize import to_json

EXAMPLES = (
    "Examples:\n\n  mechscope sweep modular-mlp --out sweeps/modular            # 20 seeds x moduli 2, 3 and 5\n\n"
    "  mechscope sweep modular-mlp --moduli 2,3 --seeds 3 --out sweeps/small --format json\n\n"
    "  mechscope sweep modular-mlp --workers 2 --out sweeps/modular     # the points as tasks on a local Ray "
    "runtime\n\n"
    "  mechscope sweep modular-mlp --cache sweeps/.tasks --out sweeps/modular   # a rerun trains only unfinished points\n\n"
    "  mechscope sweep modular-mlp --ray-address 10.0.0.5:6379 --seeds 100 --out sweeps/big   # on a Ray cluster"
)


def modular_mlp(
    out: OutDirOpt,
    moduli: Annotated[str, typer.Option(
        "--moduli", metavar="M,M,...", help="Comma-separated moduli m >= 2; each is trained with every seed.")]
    = "2,3,5",
    seeds: Annotated[int, typer.Option(
        "--seeds", min=1, max=MAX_DRAWS, help="Seeds 0..N-1 per modulus (data, weights, training, probe).")] = 20,
    n_pairs: Annotated[int, typer.Option(
        "--n-pairs", min=10, max=10_000_000, help="Sampled training pairs, and as many held-out pairs.")] = 10_000,
    operation: Annotated[OperationChoice, typer.Option(help="Binary operation.")] = OperationChoice("+"),
    workers: WorkersOpt = 0,
    ray_address: RayAddressOpt = None,
    cache: CacheOpt = None,
    no_cache: NoCacheOpt = False,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Train and probe seed 000's modular MLP at every modulus and seed; write sweep.csv, sweep.json, sweep.png."""
    target = checked_out(out, check_sweep_out)
    grid = SweepGrid(moduli=_moduli(moduli), seeds=range(seeds), n_pairs=n_pairs, operation=operation.value)
    tasks = task_cache(cache, no_cache, workers, ray_address)
    start = time.perf_counter()
    with open_engine(workers, ray_address) as engine:
        result = sweep_modular(grid, engine=engine, cache=tasks, progress=True)
        n_workers = engine.workers
    seconds = time.perf_counter() - start
    files = result.write(target)
    summary = {"out": target, "files": files, "points": len(result.rows), "workers": n_workers,
               "seconds": seconds, **to_json(result)}
    text = (f"{result.format()}\n{len(result.rows)} points in {seconds:.1f}s on {n_workers} worker(s); "
            f"written: {', '.join(str(p) for p in files)}")
    emit(summary, fmt, text)


def _moduli(text: str) -> tuple[int, ...]:
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts or not all(p.isdigit() and len(p) <= 6 and 2 <= int(p) <= MAX_MODULUS for p in parts):
        raise CLIError(f"--moduli must be comma-separated integers from 2 to {MAX_MODULUS}, e.g. 2,3,5; "
                       f"got {text!r}.")
    values = tuple(int(p) for p in parts)
    if len(set(values)) != len(values):
        raise CLIError(f"--moduli names a modulus twice; got {text!r}.")
    return values
