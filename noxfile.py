"""Developer sessions: ``nox`` runs tests, lint, typecheck; docs and bench on demand."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.error_on_missing_interpreters = False
nox.options.reuse_existing_virtualenvs = True

# pyenv installs put each version in its own bin directory, reachable only through
# shims that refuse versions which are not "activated": put the real ones on PATH.
_PYENV = os.path.expanduser(os.environ.get("PYENV_ROOT", "~/.pyenv"))
_bins = sorted(glob.glob(os.path.join(_PYENV, "versions", "3.1[0-3].*", "bin")), reverse=True)
if _bins:
    os.environ["PATH"] = os.pathsep.join([*_bins, os.environ.get("PATH", "")])


def _runs(python: str) -> bool:
    exe = shutil.which(python)
    if exe is None:
        return False
    return subprocess.run([exe, "-c", "pass"], capture_output=True, check=False).returncode == 0


# Every supported interpreter that is installed and runs; missing ones are skipped.
PYTHONS = [v for v in ("3.10", "3.11", "3.12", "3.13") if _runs(f"python{v}")]


@nox.session(python=PYTHONS or None)
def tests(session: nox.Session) -> None:
    """The test suite, on every installed Python from 3.10 to 3.13."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def compiled(session: nox.Session) -> None:
    """The test suite on the compiled (mypyc) build: ``nox -s compiled``.

    Installs non-editable with ``TRIO_TCP6_COMPILE=1`` and runs the tests from a copy of
    the checkout without ``trio_tcp6/``, so they import the compiled package.
    """
    session.install(".[test]", env={"TRIO_TCP6_COMPILE": "1"})
    copy = os.path.join(session.create_tmp(), "checkout")
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(
        ".",
        copy,
        ignore=lambda d, names: [
            n for n in names if d == "." and (n == "trio_tcp6" or n.startswith((".", "build")))
        ],
    )
    session.chdir(copy)
    session.run("python", "-m", "trio_tcp6", "--version")
    session.run("python", "-m", "pytest", *session.posargs, env={"TRIO_TCP6_EXPECT_COMPILED": "1"})


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package."""
    session.install("-e", ".[test]", "mypy")
    session.run("mypy", "--strict", "trio_tcp6")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the Sphinx docs (reference and the Markdown guide); warnings are errors."""
    session.install("-e", ".[docs]")
    session.run("sphinx-build", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks, each printing its figures beside the kernel's in the same run.

    ``nox -s bench`` runs the checksum and stack benchmarks (and the TUN one as root);
    ``nox -s bench -- bench/stack_bench.py --repeat 3`` runs one script with arguments.
    """
    session.install("-e", ".")
    if session.posargs:
        session.run("python", *session.posargs)
        return
    session.run("python", "bench/checksum_bench.py")
    session.run("python", "bench/stack_bench.py")
    if hasattr(os, "geteuid") and os.geteuid() == 0 and os.path.exists("/dev/net/tun"):
        session.run("python", "bench/tun_stack_bench.py")
