#!/usr/bin/env python3
"""A TCP proxy that counts the bytes each way; writes them as JSON every 0.2 s and on
SIGTERM/SIGINT, so a caller can read the counters at the start and end of a window.

Usage: count_proxy.py LISTEN_PORT TARGET_PORT OUT_JSON

With COUNT_PROXY_LOG=FILE set, every read is also logged as "seconds direction bytes" (to see
where the bytes of a connect or an idle window go).
"""
import asyncio
import json
import os
import signal
import sys
import time

listen, target, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
counts = {"to_client": 0, "to_server": 0}
log = open(os.environ["COUNT_PROXY_LOG"], "w", buffering=1) if os.environ.get("COUNT_PROXY_LOG") else None
start = time.monotonic()


async def pipe(reader, writer, key):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            counts[key] += len(data)
            if log:
                log.write(f"{time.monotonic() - start:.3f} {key} {len(data)}\n")
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def handle(client_r, client_w):
    server_r, server_w = await asyncio.open_connection("127.0.0.1", target)
    await asyncio.gather(pipe(server_r, client_w, "to_client"), pipe(client_r, server_w, "to_server"))


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", listen)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    def dump():
        with open(out + ".tmp", "w") as f:
            json.dump(counts, f)
        os.replace(out + ".tmp", out)

    async with server:
        while not stop.is_set():
            dump()
            try:
                await asyncio.wait_for(stop.wait(), 0.2)
            except asyncio.TimeoutError:
                pass
    dump()


asyncio.run(main())
