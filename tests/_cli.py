"""`run_cli`: the CLI in the test process, shared by the CLI tests."""

from __future__ import annotations

import contextlib
import io
import subprocess

from mubench.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """`python -m mubench ARGS` through the CLI's own `main`, in this process, with its exit code,
    stdout and stderr captured as a subprocess would return them: a fresh interpreter costs a
    couple of seconds of imports per call, more than many small commands take. An uncaught
    exception propagates (a subprocess would print a traceback), so "one line, exit 2" checks
    stay as strict."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(["mubench", *args], code, out.getvalue(), err.getvalue())
