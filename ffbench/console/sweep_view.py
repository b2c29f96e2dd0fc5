"""A command's sweeps as the console shows them: what each is and where it writes, its
progress, its table of outcomes, how to resume it after Ctrl-C, and at the end the verdict
over everything the command ran."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

from ffbench.console import show, warn
from ffbench.console.progress import sweep_progress
from ffbench.console.tables import sweep_table
from ffbench.results import FAILED_STATUSES
from ffbench.sweep.plan import PlannedSweep, is_predicted
from ffbench.sweep.run import Event, Resume
from ffbench.sweep.spec import SweepSpec
from ffbench.text import shell_command


def resume_command(argv: list[str], out: Path | None) -> str:
    """The command line that continues this sweep where it stopped: the one typed, without
    --no-resume, writing into `out` (None: where it writes by default)."""
    args = argv[argv.index("sweep") + 1 :] if "sweep" in argv else []
    kept: list[str] = []
    skip_next = False
    for arg in args:
        if skip_next or arg == "--no-resume" or arg.startswith("--out="):
            skip_next = False
            continue
        skip_next = arg == "--out"
        if not skip_next:
            kept.append(arg)
    return shell_command("ffbench", "sweep", *kept, *(["--out", out] if out else []))


class ConsoleSweepView:
    """ffbench.sweep.run.SweepView on the console; `argv` is the command line it runs for."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv

    def starting(self, planned: PlannedSweep, out_dir: Path) -> None:
        show(planned.why)
        if out_dir != planned.out:
            show(f"--no-resume: {planned.out} exists; starting over in {out_dir}",
                 to_stderr=True)

    def warning(self, text: str) -> None:
        warn(text)

    def running(self, spec: SweepSpec, out_dir: Path, first: Event,
                events: Generator[Event, None, None]) -> None:
        sweep_progress(spec, out_dir, first, events)

    def ended(self, spec: SweepSpec, out_dir: Path, rows: list[dict[str, Any]],
              retry_failed: bool) -> None:
        kind = "PREDICTED on meta (no compute), " if is_predicted(spec.device) else ""
        total = len(spec.cells())
        show(sweep_table(rows, title=f"{spec.name}: {kind}{len(rows)} of {total} cells in "
                         f"{out_dir}"))
        failed = sum(row["status"] in FAILED_STATUSES for row in rows)
        if failed and not retry_failed:
            show(f"{failed} cell(s) failed; run them again by adding --retry-failed")

    def interrupted(self, out_dir: Path, resume: Resume) -> None:
        if resume.possible:
            how = f"resume with\n  {resume_command(self.argv, resume.out)}"
        else:
            how = ("its fresh folders cannot be resumed by one command (give --out DIR with "
                   "--no-resume for a folder that can)")
        show(f"interrupted: every finished cell is kept in {out_dir}; {how}", to_stderr=True)

    def all_ended(self, folders: list[Path]) -> None:
        """The verdict over everything this command ran, then how to see more."""
        from ffbench.analysis.verdict import verdict
        from ffbench.analysis.verdict_text import verdict_lines
        from ffbench.results import ResultsError, load

        try:
            show("", *verdict_lines(verdict(load(folders))), "")
        except ResultsError as exc:  # no row to judge (every cell failed): said above
            show(f"no verdict: {exc}")
        for folder in folders:
            show(f"draw it: {shell_command('ffbench', 'plot', folder)}   one page: "
                 f"{shell_command('ffbench', 'report', folder)}")
