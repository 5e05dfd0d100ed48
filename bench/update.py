"""What an update costs against a full build, measured side by side in one run.

Writes the first ``--docs`` abstracts of ../shared/data/scifact/corpus.jsonl as one text file
each, then times, each as a fresh ``semindex index`` process the way a user runs it:

1. a full build from scratch;
2. a re-index with nothing changed;
3. a re-index after editing 1% of the files (a sentence appended to each);
4. a re-index after deleting 1% and adding 1% new files.

It prints each wall time and its ratio to the full build, against the targets (1% changed:
<= 5%; nothing changed: <= 2%), then runs ``semindex verify`` on the result.

    python bench/update.py [--data ../shared/data/scifact] [--docs 5000]

The data is for evaluation only: it is written under bench/.work/ (git-ignored), never committed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scifact import ROOT, SEMINDEX, write_corpus


def timed_index(folder: Path, *extra: str) -> tuple[float, dict]:
    """Run ``semindex index FOLDER --json`` as a new process; its wall time and report."""
    started = time.perf_counter()
    done = subprocess.run(
        [*SEMINDEX, "index", str(folder), "-q", "--json", *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"semindex index failed: {done.stderr.strip()}")
    return seconds, json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "scifact")
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / ".work" / "update")
    parser.add_argument("--docs", type=int, default=5000)
    args = parser.parse_args()
    corpus = args.data / "corpus.jsonl"
    if not corpus.is_file():
        sys.exit(f"no {corpus}; pass --data DIR holding a BEIR corpus.jsonl")
    folder = args.work / "docs"
    count = write_corpus(corpus, folder, limit=args.docs)
    files = sorted(folder.iterdir())
    step = max(1, len(files) // max(1, len(files) // 100))  # every 100th file: 1%
    print(f"{count} documents in {folder}")

    rows = []
    full, report = timed_index(folder, "--rebuild")
    rows.append(("full build", full, report))
    seconds, report = timed_index(folder)
    rows.append(("nothing changed", seconds, report))

    for path in files[::step]:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write("\nA follow-up note: the authors later revised these findings.\n")
    seconds, report = timed_index(folder)
    rows.append(("1% edited", seconds, report))

    for number, path in enumerate(files[step // 2 :: step]):
        os.remove(path)
        (folder / f"new-{number:04d}.txt").write_text(
            f"New note {number}\n\nA short new abstract about topic {number} and its measured effects.\n",
            encoding="utf-8",
        )
    seconds, report = timed_index(folder)
    rows.append(("1% deleted + 1% added", seconds, report))

    print(f"\n{'run':<24}{'wall s':>9}{'vs full':>10}{'embedded':>10}{'reused':>9}{'files +/~/-':>14}")
    for name, seconds, report in rows:
        changes = f"{report['files_added']}/{report['files_updated']}/{report['files_removed']}"
        print(
            f"{name:<24}{seconds:>9.1f}{seconds / full:>10.2%}{report['chunks_embedded']:>10}"
            f"{report['chunks_reused']:>9}{changes:>14}"
        )
    targets = [("nothing changed", 0.02), ("1% edited", 0.05), ("1% deleted + 1% added", 0.05)]
    print()
    for name, limit in targets:
        seconds = next(s for n, s, _ in rows if n == name)
        verdict = "meets" if seconds / full <= limit else "MISSES"
        print(f"{name}: {seconds / full:.2%} of the full build, {verdict} the target of <= {limit:.0%}")
    verified = subprocess.run([*SEMINDEX, "verify", "--index", str(folder)], cwd=ROOT, check=False)
    sys.exit(verified.returncode)


if __name__ == "__main__":
    main()
