"""A bare grpc.aio echo server: the baseline the API's throughput is compared with."""

from __future__ import annotations

import sys
from typing import Any

import grpc


async def echo(request: bytes, context: Any) -> bytes:
    return request


async def main(port: int) -> None:
    server = grpc.aio.server()
    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
    )
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    import uvloop

    uvloop.run(main(int(sys.argv[1])))
