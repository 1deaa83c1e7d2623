"""The shape of the code (DESIGN §3), read from the imports of every module of the package.

Every import counts: at module level, inside functions, and under TYPE_CHECKING (a type is a
dependency too).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "service" / "smarttrade"
LAYERS = ("domain", "store", "exchange", "engine", "usecases", "api")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def imports() -> dict[str, set[str]]:
    """Every module of the package (generated code aside) and the modules it imports."""
    found: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if "v1" in path.relative_to(PACKAGE).parts[:1]:
            continue
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module)
                imported.update(f"{node.module}.{alias.name}" for alias in node.names)
        found[module_name(path)] = imported
    return found


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "smarttrade" or len(parts) < 2:
        return None
    return parts[1] if parts[1] in LAYERS else None


def imports_of(layer: str) -> dict[str, set[str]]:
    return {m: i for m, i in imports().items() if layer_of(m) == layer}


def offending(layer: str, forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    """The modules of `layer` importing anything that starts with one of `forbidden`."""
    found = {}
    for module, imported in imports_of(layer).items():
        bad = sorted(i for i in imported if i.startswith(forbidden))
        if bad:
            found[module] = bad
    return found


def test_the_package_is_read_whole() -> None:
    for layer in LAYERS:
        assert imports_of(layer), f"no module found in {layer}/"


def test_the_api_imports_no_store_no_exchange_and_no_sqlalchemy() -> None:
    forbidden = ("smarttrade.store", "smarttrade.exchange", "sqlalchemy", "asyncpg")
    assert offending("api", forbidden) == {}


def test_the_api_calls_use_cases_not_the_engine() -> None:
    assert offending("api", ("smarttrade.engine",)) == {}


def test_sqlalchemy_and_asyncpg_are_imported_only_by_the_store() -> None:
    outside = {
        module: sorted(i for i in imported if i.startswith(("sqlalchemy", "asyncpg", "alembic")))
        for module, imported in imports().items()
        if layer_of(module) != "store"
    }
    assert {module: bad for module, bad in outside.items() if bad} == {}


def test_the_store_imports_nothing_of_the_venues_the_runtime_or_above() -> None:
    forbidden = tuple(f"smarttrade.{layer}" for layer in ("exchange", "engine", "usecases", "api"))
    assert offending("store", forbidden) == {}


def test_the_domain_imports_only_the_standard_library_and_itself() -> None:
    allowed_roots = {"__future__", "dataclasses", "datetime", "decimal", "enum", "typing"}
    allowed_roots |= {"collections", "functools", "itertools", "math", "heapq", "bisect"}
    allowed_roots |= {"re"}  # pure text matching: label rules, a list's filter (issue 15)
    for module, imported in imports_of("domain").items():
        for name in imported:
            root = name.split(".")[0]
            if root == "smarttrade":
                assert name.startswith("smarttrade.domain"), (module, name)
            else:
                assert root in allowed_roots, (module, name)


def test_only_the_ccxt_adapter_imports_ccxt() -> None:
    users = {m for m, imported in imports().items() if any(i.startswith("ccxt") for i in imported)}
    assert users <= {"smarttrade.exchange.ccxt_exchange"}


def test_grpc_and_protobuf_stay_in_the_api_and_the_composition_root() -> None:
    protocol = ("grpc", "google.protobuf", "google.rpc", "smarttrade.v1")
    outside = [
        (module, name)
        for module, imported in imports().items()
        if layer_of(module) not in ("api", None)
        for name in imported
        if name.startswith(protocol)
    ]
    assert outside == []


def test_the_packages_import_each_other_without_a_cycle() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for module, imported in imports().items():
        source = layer_of(module)
        for name in imported:
            target = layer_of(name)
            if source and target and target != source:
                graph[source].add(target)

    def reaches(start: str, goal: str, seen: frozenset[str] = frozenset()) -> bool:
        return any(
            nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt}))
            for nxt in graph[start]
        )

    assert [layer for layer in LAYERS if reaches(layer, layer)] == []


def test_the_engine_module_and_reconciliation_do_not_import_each_other() -> None:
    assert not any(
        i.startswith("smarttrade.engine.engine") for i in imports()["smarttrade.engine.reconcile"]
    )
