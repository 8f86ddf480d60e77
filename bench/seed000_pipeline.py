"""Seed 000 as two whole commands (`mechscope train modular-mlp`, `mechscope probe`) against the article's NumPy code.

Baseline: the article's own code path in NumPy (`_article_seed000.py`), run to convergence in
this process: the 7-layer tanh / softmax target trained sample by sample to an epoch error
< 0.1, its test set's 5 x 5 activation images recorded one pair at a time, and the
convolutional probe trained sample by sample on 90% of them and scored on the rest, with the
article's pickles and `.npz` files in between.

mechscope: the README's two commands, each a fresh process (interpreter start and imports
included), median wall time over `--repeats` runs:

    mechscope train modular-mlp --modulus 2 --out DIR   (10,000 training and 10,000 test pairs)
    mechscope probe DIR                                  (3 seeds, each with a control task and an
                                                          untrained copy of the target: 9 probe fits)

and, doing the article's amount of work, `mechscope probe DIR --seeds 1 --no-untrained` (one
probe fit, plus the control task's). `mechscope train modular-mlp --help` and `mechscope probe
--help` are timed too: they load what each command loads and stop, which is the start-up share.

Usage: python bench/seed000_pipeline.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _article_seed000 import run as article_pipeline

TARGET = 15.0  # speed-up the two commands should reach over the article's code


def mechscope_executable() -> str:
    """The `mechscope` console script of this interpreter's environment (else the one on PATH)."""
    beside = Path(sys.executable).with_name("mechscope")
    found = str(beside) if beside.is_file() else shutil.which("mechscope")
    if found is None:
        sys.exit("no `mechscope` command found: install the package (bash scripts/setup.sh) first")
    return found


def timed(argv: list[str]) -> tuple[float, str]:
    """Wall seconds of one command run as a fresh process, and its standard output; exits if it fails."""
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr}")
    return seconds, done.stdout


def commands(exe: str, folder: Path) -> dict[str, float]:
    """One run of every command timed here; returns seconds and accuracies."""
    ckpt = folder / "mod2"
    train_start_s, _ = timed([exe, "train", "modular-mlp", "--help"])
    probe_start_s, _ = timed([exe, "probe", "--help"])
    train_s, out = timed([exe, "train", "modular-mlp", "--modulus", "2", "--out", str(ckpt), "--format", "json"])
    trained = json.loads(out)
    probe_s, out = timed([exe, "probe", str(ckpt), "--format", "json"])
    probed = json.loads(out)
    one_s, out = timed([exe, "probe", str(ckpt), "--seeds", "1", "--no-untrained", "--format", "json"])
    one = json.loads(out)
    return {
        "train_start_s": train_start_s, "probe_start_s": probe_start_s,
        "train_s": train_s, "train_inner_s": float(trained["seconds"]), "probe_s": probe_s, "probe_one_s": one_s,
        "readme_s": train_s + probe_s, "matched_s": train_s + one_s,
        "test_accuracy": float(trained["test_accuracy"]),
        "all_heads_accuracy": min(float(probed["all_heads_accuracy"]), float(one["all_heads_accuracy"])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs of the commands (medians reported)")
    args = parser.parse_args()
    exe = mechscope_executable()

    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        timed([exe, "probe", "--help"])  # warm-up: the first start reads the installed files from disk
        for i in range(args.repeats):
            (Path(tmp) / str(i)).mkdir()
            runs.append(commands(exe, Path(tmp) / str(i)))
        start = time.perf_counter()
        base = article_pipeline(Path(tmp))
        base_s = time.perf_counter() - start

    def median(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    readme, matched = median("readme_s"), median("matched_s")
    print(f"article NumPy code path: {base_s:8.2f} s  (target {base['target_iterations']} iterations, "
          f"{base['target_s']:.1f} s, test accuracy {base['target_accuracy']:.4f}; recording "
          f"{base['record_s']:.1f} s; probe {base['probe_iterations']} iterations, {base['probe_s']:.1f} s, "
          f"all-heads accuracy {base['probe_accuracy']:.4f})")
    print(f"mechscope, medians of {args.repeats} (worst accuracies: target {min(r['test_accuracy'] for r in runs):.4f}, "
          f"all heads {min(r['all_heads_accuracy'] for r in runs):.4f}):")
    print(f"  train modular-mlp              {median('train_s'):6.2f} s  (training {median('train_inner_s'):.2f} s; "
          f"start-up alone, --help: {median('train_start_s'):.2f} s)")
    print(f"  probe (README: 9 probe fits)   {median('probe_s'):6.2f} s  (start-up alone, --help: "
          f"{median('probe_start_s'):.2f} s)")
    print(f"  probe --seeds 1 --no-untrained {median('probe_one_s'):6.2f} s")
    for label, ours in (("README's two commands", readme), ("the article's amount of work", matched)):
        ratio = base_s / ours
        print(f"speed-up, {label}: {base_s:.1f} s / {ours:.2f} s = {ratio:.1f}x   target >= {TARGET:.0f}x -> "
              f"{'met' if ratio >= TARGET else 'MISSED'}")


if __name__ == "__main__":
    main()
