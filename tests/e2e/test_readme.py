"""The README's "Using the API" walk-throughs, run as written against a fresh `smarttrade
serve`: the CLI session prints what the README shows, the `buf curl` script and the Python
example work.

The blocks are found by the HTML comment before them (`<!-- cli-walkthrough -->`, ...). In the
CLI session, a line starting with `$ ` is a command (a trailing backslash continues it on the
next line), the lines up to the next command are its output (stdout and stderr), and `<id>`
stands for an id that differs on every run. Column spacing is not compared, so an `<id>` in a
table need not be padded to the id's width.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.process import ServerProcess, serve_process

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
VENV_BIN = Path(sys.executable).parent
PLACEHOLDERS = {"<id>": "[0-9a-f]+"}
STEP_END = "::readme-step-end::"


@dataclass(frozen=True)
class Step:
    command: str
    expected: tuple[str, ...]


def block_after(marker: str) -> str:
    """The fenced code block right after `<!-- marker -->` in the README."""
    text = README.read_text()
    found = re.search(rf"<!-- {re.escape(marker)} -->\s*```[a-z]*\n(.*?)\n```", text, re.DOTALL)
    assert found, f"README.md has no code block marked <!-- {marker} -->"
    return found.group(1)


def session_steps(block: str) -> list[Step]:
    steps: list[Step] = []
    lines = block.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        assert line.startswith("$ "), f"expected a command, found {line!r}"
        command = line[2:]
        while command.endswith("\\"):
            index += 1
            command = command[:-1] + " " + lines[index].strip()
        index += 1
        expected = []
        while index < len(lines) and not lines[index].startswith("$ "):
            expected.append(lines[index])
            index += 1
        steps.append(Step(command, tuple(expected)))
    return steps


def pattern(line: str) -> re.Pattern[str]:
    """The expected line as a regex: placeholders stand for their values, and any run of
    spaces for any other run."""
    parts = re.split(f"({'|'.join(map(re.escape, PLACEHOLDERS))})", line.strip())
    regex = "".join(PLACEHOLDERS.get(part, re.escape(part)) for part in parts)
    return re.compile(re.sub(r"(\\ )+", r"\\s+", regex))


def matches(expected: tuple[str, ...], actual: list[str]) -> bool:
    return len(expected) == len(actual) and all(
        pattern(want).fullmatch(got.strip()) for want, got in zip(expected, actual, strict=True)
    )


def environment(server: ServerProcess, **extra: str) -> dict[str, str]:
    """The variables a user of the walk-throughs has, pointing at the test's server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTTRADE_")}
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        SMARTTRADE_SERVER=server.address,
        SMARTTRADE_DATA_DIR=str(server.data_dir),
        **extra,
    )
    return env


async def run(arguments: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        arguments,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
async def server(database_url: str, tmp_path: Path) -> AsyncIterator[ServerProcess]:
    """A fresh `smarttrade serve` with its local token (in the data dir), on a fresh store."""
    async with serve_process(tmp_path / "data", database_url=database_url) as running:
        yield running


def test_the_readme_session_parses_into_commands_with_outputs() -> None:
    steps = session_steps(block_after("cli-walkthrough"))

    assert len(steps) >= 10
    prefixes = ("smarttrade ", "ACCOUNT=", "TRADE=", "SHORT=")
    assert all(step.command.startswith(prefixes) for step in steps)
    assert pattern("name:  smartTrades/<id>").fullmatch("name: smartTrades/0123abcd")


async def test_the_cli_walkthrough_prints_what_the_readme_shows(server: ServerProcess) -> None:
    steps = session_steps(block_after("cli-walkthrough"))
    script = "exec 2>&1\n" + "".join(f"{step.command}\necho {STEP_END}\n" for step in steps)

    result = await run(["bash", "-c", script], environment(server))

    outputs = result.stdout.split(f"{STEP_END}\n")
    assert len(outputs) == len(steps) + 1, result.stdout
    for step, output in zip(steps, outputs, strict=False):
        shown = "\n".join(step.expected)
        assert matches(step.expected, output.splitlines()), (
            f"$ {step.command}\nREADME shows:\n{shown}\nbut it printed:\n{output}"
        )


async def test_the_buf_curl_walkthrough_creates_and_reads_a_trade(server: ServerProcess) -> None:
    result = await run(["bash", "-c", block_after("buf-curl-walkthrough")], environment(server))

    assert "smarttrade.v1.SmartTradeService" in result.stdout, result.stderr
    assert '"state": "SMART_TRADE_STATE_ACTIVE"' in result.stdout, result.stderr
    assert '"code": "invalid_argument"' in result.stderr
    assert result.returncode == 24  # the rich error at the end


async def test_the_python_example_runs_as_written(server: ServerProcess, tmp_path: Path) -> None:
    home = tmp_path / "home"
    token_dir = home / ".local/share/smarttrade"
    token_dir.mkdir(parents=True)
    (token_dir / "local-token").write_text((server.data_dir / "local-token").read_text())
    code = block_after("python-client-example").replace("127.0.0.1:50051", server.address)

    result = await run([sys.executable, "-c", code], environment(server, HOME=str(home)))

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ACTIVE", "0.4995"]
