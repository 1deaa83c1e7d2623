"""`buf breaking` against the released contract image: the current tree passes, and a field
renamed in a copy of the protos fails, so the CI check guards what it claims to guard."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUF = Path(sys.executable).parent / "buf"
RELEASED = ROOT / "protos/releases/smarttrade-v1.binpb"
TRADE_PROTO = Path("protos/smarttrade/v1/smart_trade.proto")


def breaking(workspace: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BUF), "breaking", str(workspace), "--against", str(RELEASED)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def copy_of_the_contract(tmp_path: Path) -> Path:
    workspace = tmp_path / "contract"
    workspace.mkdir()
    shutil.copy(ROOT / "buf.yaml", workspace / "buf.yaml")
    shutil.copytree(ROOT / "protos", workspace / "protos")
    return workspace


def test_the_current_contract_is_compatible_with_the_released_one() -> None:
    result = breaking(ROOT)

    assert result.returncode == 0, result.stdout + result.stderr


def test_renaming_a_field_breaks_the_released_contract(tmp_path: Path) -> None:
    workspace = copy_of_the_contract(tmp_path)
    proto = workspace / TRADE_PROTO
    source = proto.read_text()
    assert source.count("  string symbol = 3;") == 1  # SmartTrade.symbol
    proto.write_text(source.replace("  string symbol = 3;", "  string market = 3;"))

    result = breaking(workspace)

    assert result.returncode != 0
    assert 'changed name from "symbol" to "market"' in result.stdout


def test_adding_a_field_keeps_the_released_contract(tmp_path: Path) -> None:
    workspace = copy_of_the_contract(tmp_path)
    proto = workspace / TRADE_PROTO
    source = proto.read_text()
    anchor = "  string etag = 20;\n"
    assert source.count(anchor) == 1
    # A number far above those in use, so the test outlives the fields added after it.
    proto.write_text(source.replace(anchor, anchor + "  // A new field.\n  string label = 1000;\n"))

    result = breaking(workspace)

    assert result.returncode == 0, result.stdout + result.stderr
