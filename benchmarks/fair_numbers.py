"""The fair sweep's answer in numbers: the verdict (ffbench.analysis.verdict) of a results
folder, its lines and its table (per FF variant, phase and optimizer: the ratio at the
deepest depth to each backprop's and to the strongest backprop's, and the depth from which it
is below).

Run: `PYTHONPATH=. python benchmarks/fair_numbers.py RESULTS` on the results of
`ffbench sweep fair --device meta --out RESULTS` (or of the same sweep on a GPU). Peaks are
the measured ones (CUDA allocated, else tracked; on meta the tracked bytes are predictions).
"""

from __future__ import annotations

import sys

from ffbench.analysis.verdict import verdict
from ffbench.analysis.verdict_text import verdict_lines, verdict_table
from ffbench.results import load


def main(path: str) -> None:
    answer = verdict(load([path]))
    print("\n".join(verdict_lines(answer)))
    columns, rows = verdict_table(answer)
    print("\n| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main(sys.argv[1])
