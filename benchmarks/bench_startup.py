"""Start-up of the command line: `harness --help` and `harness list --json`, each against a bare
`python -c pass` measured in the same run (best of N, wall clock)."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time


def best(command: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    harness = shutil.which("harness") or sys.exit("harness is not on PATH (make setup)")
    reference = best([sys.executable, "-c", "pass"], args.repeat)
    print(f"{'command':28} {'best s':>7} {'minus python s':>15} {'ratio':>6}")
    print(f"{'python -c pass':28} {reference:7.3f} {0:15.3f} {1:6.2f}")
    for label, command in (("harness --help", [harness, "--help"]),
                           ("harness list --json", [harness, "list", "--json"])):
        seconds = best(command, args.repeat)
        print(f"{label:28} {seconds:7.3f} {seconds - reference:15.3f} {seconds / reference:6.2f}")


if __name__ == "__main__":
    main()
