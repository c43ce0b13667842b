"""The CLI as a real process, without paying Python's and torch's start-up on every call.

A `checkerless` process spends 5 to 10 CPU seconds importing torch, torchvision and Lightning
before it reads its arguments; the suite runs the CLI a hundred times and more, so that start-up
was a tenth of its CPU. Here each call is still a process of its own (its own memory, its own
exit code, its stdout and stderr on their own file descriptors, its atexit handlers run), forked
from one multiprocessing fork server per test worker that has imported those libraries and
nothing of the project's: the project's modules are imported fresh in each call, after its
working directory and environment are set, as in a new process.

What this skips is the interpreter's start and `python -m service.cli`'s own lookup: tests that
need the entry point itself (the console script, Ctrl-C, a server) start `sys.executable`."""

from __future__ import annotations

import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Heavy and never changed by a test: what every training or stylising command imports.
PRELOAD = ["torch", "torchvision", "pytorch_lightning"]
_context = None
# CPU seconds of the processes run_cli has run, with their own children: the fork server, not
# this process, reaps them, so this process's RUSAGE_CHILDREN never counts them (the suite's
# timeline adds them; tests/conftest.py).
forked_cpu_s = 0.0


def _fork_server():
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(PRELOAD)
    return _context


def _main(argv: list[str], cwd: str, env: dict[str, str], out: str, err: str, cpu: str) -> None:
    for fd, path in ((1, out), (2, err)):
        target = os.open(path, os.O_WRONLY)
        os.dup2(target, fd)
        os.close(target)
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    sys.argv = [str(ROOT / "service" / "cli" / "__main__.py"), *argv]
    sys.path.insert(0, cwd)  # as `python -m` puts the working directory first
    import atexit

    from service.cli.main import main

    try:
        code = main(argv)
    finally:
        atexit._run_exitfuncs()  # the fork server's child ends with os._exit, which skips them
        sys.stdout.flush()
        sys.stderr.flush()
        own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        Path(cpu).write_text(str(own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime))
    sys.exit(code)


def run_cli(args, *, cwd: Path | str | None = None, env: dict[str, str] | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m service.cli ARGS` in `cwd` (default: the repository) with `env` (default: this
    process's environment), as subprocess.run(..., capture_output=True, text=True) returns it."""
    global forked_cpu_s
    argv = [str(a) for a in args]
    with tempfile.TemporaryDirectory(prefix="cli-") as tmp:
        out, err, cpu = Path(tmp, "stdout"), Path(tmp, "stderr"), Path(tmp, "cpu")
        out.touch()
        err.touch()
        process = _fork_server().Process(target=_main, args=(
            argv, str(cwd or ROOT), dict(os.environ if env is None else env), str(out), str(err), str(cpu)))
        process.start()
        process.join(timeout)
        forked_cpu_s += float(cpu.read_text()) if cpu.exists() else 0.0
        if process.exitcode is None:
            process.kill()
            process.join()
            raise subprocess.TimeoutExpired(["checkerless", *argv], timeout, out.read_bytes(), err.read_bytes())
        return subprocess.CompletedProcess(["checkerless", *argv], process.exitcode,
                                           out.read_text(errors="replace"), err.read_text(errors="replace"))
