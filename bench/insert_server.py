"""A bare grpc.aio server whose handler does one INSERT and COMMIT on asyncpg: the ceiling a
call that must write durably can reach here, beside which CreateSmartTrade is measured.

    python bench/insert_server.py PORT DATABASE_URL ANSWER_HEX

The handler inserts the request's bytes as a row (its own transaction, committed durably:
`synchronous_commit` as the server has it) through a pool of 8 connections, and answers
with ANSWER (a real CreateSmartTrade response, serialized), so the client receives and
parses what it does from CreateSmartTrade: the difference is the service's own work, as
with the echo server beside GetSmartTrade.
"""

from __future__ import annotations

import sys
from typing import Any

import asyncpg
import grpc

TABLE = "bench_ceiling"


async def main(port: int, url: str, answer: bytes) -> None:
    pool = await asyncpg.create_pool(url, min_size=8, max_size=8)
    assert pool is not None
    async with pool.acquire() as connection:
        await connection.execute(
            f"CREATE TABLE IF NOT EXISTS {TABLE} (id bigserial PRIMARY KEY, body bytea NOT NULL)"
        )

    async def insert(request: bytes, context: Any) -> bytes:
        async with pool.acquire() as connection:
            await connection.execute(f"INSERT INTO {TABLE} (body) VALUES ($1)", request)
        return answer

    server = grpc.aio.server()
    handler = grpc.method_handlers_generic_handler(
        "bench.Ceiling", {"Insert": grpc.unary_unary_rpc_method_handler(insert)}
    )
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    import uvloop

    uvloop.run(main(int(sys.argv[1]), sys.argv[2], bytes.fromhex(sys.argv[3])))
