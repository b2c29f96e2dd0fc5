"""Plugin code run where its failure is its own: a child process per batch of plugins,
each plugin's work timed, its answer sent back on a pipe of its own (what the plugin prints
goes to the child's stderr, never to the command's stdout).

A plugin may raise, exit (SystemExit, os._exit), crash (a segfault), block or print, at
import or in its step. Run here, that is the plugin's answer: a one-line reason naming what
happened, and the other plugins' answers are kept (the child that died is replaced for the
rest). Used wherever a command goes over every installed algorithm (`ffbench algorithms`,
`ffbench capacity`), so that one broken plugin never ends a command that did not name it.

The child: `python -m ffbench.runner.isolated MODULE:FUNCTION FD`, the items as a JSON list on its
stdin; it imports MODULE (before any item is timed: torch takes seconds), then for each
item calls FUNCTION(item) and writes {"begin": i}, then {"value": ...} or {"error": "..."}, one
JSON line each, on descriptor FD.
"""

from __future__ import annotations

import importlib
import json
import os
import select
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from ffbench.errors import BadInput
from ffbench.runner.jobs import PARENT_PID_ENV  # it dies with its parent, as a cell does
from ffbench.runner.processes import Lines, kill_group, signal_name

MODULE = "ffbench.runner.isolated"
# a child has this long to start (the interpreter, torch) before its first item is timed
START_S = 300.0
# how long one plugin's item may take unless the command is told otherwise: its import, for
# `ffbench algorithms`; its answer (predicted peaks at several sizes), for `ffbench capacity`
LOAD_TIMEOUT_S = 60.0
ANSWER_TIMEOUT_S = 300.0
STDERR_TAIL_BYTES = 2000
REASON_CHARS = 300


@dataclass(frozen=True)
class Answer:
    value: Any = None  # the job's JSON answer
    error: str | None = None  # one line: why there is none


def run_each(job: str, items: list[Any], timeout_s: float) -> list[Answer]:
    """JOB ("module:function", called with the item, returning JSON) for each item, in
    child processes, each item given `timeout_s`
    from when the child begins it; an item whose child dies or runs out of time is an
    Answer with its reason, and a new child takes the items after it."""
    answers: list[Answer] = []
    while len(answers) < len(items):
        answers += _one_child(job, items[len(answers):], timeout_s)
    return answers


def _one_child(job: str, items: list[Any], timeout_s: float) -> list[Answer]:
    """The answers one child gives, up to and including the item it failed on."""
    read_fd, write_fd = os.pipe()
    with tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", MODULE, job, str(write_fd)], stdin=subprocess.PIPE,
                stdout=err, stderr=err, pass_fds=(write_fd,), start_new_session=True,
                env={**os.environ, PARENT_PID_ENV: str(os.getpid())})
        finally:
            os.close(write_fd)
        assert proc.stdin is not None
        try:
            proc.stdin.write(json.dumps(items).encode())
            proc.stdin.close()
        except BrokenPipeError:  # it died at once: seen below
            pass
        try:
            return _answers(proc, read_fd, len(items), timeout_s, err)
        finally:
            os.close(read_fd)
            kill_group(proc)


def _answers(proc: subprocess.Popen[bytes], fd: int, count: int, timeout_s: float,
             err: Any) -> list[Answer]:
    answers: list[Answer] = []
    channel = Lines(fd)
    deadline = time.monotonic() + START_S
    began, said_from = False, 0  # said_from: where the item's stderr starts
    while len(answers) < count:
        select.select([fd], [], [], max(0.0, min(deadline - time.monotonic(), 0.5)))
        for line in map(json.loads, channel.read()):
            if "begin" in line:
                began, deadline = True, time.monotonic() + timeout_s
                said_from = os.fstat(err.fileno()).st_size
            else:
                answers.append(Answer(line.get("value"), line.get("error")))
                began = False
        if len(answers) == count:
            break
        if channel.ended:  # the child is gone (or closed its end)
            proc.wait()
            return answers + [Answer(error=_death(proc.returncode, err, said_from))]
        if time.monotonic() > deadline:
            what = f"took more than {timeout_s:g} s" if began else "did not start"
            return answers + [Answer(error=f"{what}; it was stopped")]
    return answers


def _death(returncode: int | None, err: Any, said_from: int) -> str:
    """Why a child ended without an answer, in one line (the last line its item wrote to
    stderr, from `said_from` on, with it)."""
    if returncode is not None and returncode < 0:
        how = f"was killed by {signal_name(-returncode)}"
    else:
        how = f"exited with code {returncode}"
    err.seek(max(said_from, os.fstat(err.fileno()).st_size - STDERR_TAIL_BYTES))
    lines = [line for line in err.read().decode(errors="replace").splitlines() if line.strip()]
    said = f" ({lines[-1].strip()[:REASON_CHARS]})" if lines else ""
    return f"its process {how} without an answer{said}"


# ---- the child's side -----------------------------------------------------------------


def _reason(exc: BaseException) -> str:
    """One line: ffbench's own word for a bad algorithm, else the exception as raised."""
    text = str(exc) if isinstance(exc, BadInput) else f"{type(exc).__name__}: {exc}".rstrip(": ")
    return " ".join(text.split())[:REASON_CHARS]


def main(job: str, fd: int) -> None:
    """Answer each item on stdin with JOB's function, one JSON line each on `fd`; never ends
    by an exception (os._exit)."""
    replies = os.fdopen(fd, "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # a plugin's prints: not answers
    parent = os.environ.get(PARENT_PID_ENV)
    if parent is not None:
        from ffbench.runner.cell_process import die_with

        die_with(int(parent))
    module, _, name = job.partition(":")
    answer_of = getattr(importlib.import_module(module), name)  # its imports, untimed
    for index, item in enumerate(json.loads(sys.stdin.read())):
        replies.write(json.dumps({"begin": index}) + "\n")
        replies.flush()
        try:
            answer = {"value": answer_of(item)}
        except BaseException as exc:  # the plugin's failure, whatever it is, is the answer
            answer = {"error": _reason(exc)}
        replies.write(json.dumps(answer) + "\n")
        replies.flush()
    replies.close()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
