"""An open-loop HTTP/1.1 driver (asyncio, standard library only): requests start at a fixed offered rate whatever
the server's answers do, and each latency counts from the moment its request was due, so a server that falls
behind shows its queue in the percentiles (no coordinated omission, unlike a closed-loop tool such as wrk).

Connections: an idle kept-alive connection is reused; otherwise a new one is opened (gunicorn's sync workers
close every connection after one response), up to ``max_connections`` in flight; a request waiting for one
still counts from when it was due.
"""

import asyncio
import time


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    fields = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            fields[name.strip().lower()] = value.strip().lower()
    keep = fields.get("connection") != "close"
    if "content-length" in fields:
        await reader.readexactly(int(fields["content-length"]))
    elif fields.get("transfer-encoding") == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        await reader.read()
        keep = False
    return status, keep


async def _run(host, port, payload: bytes, rate: float, duration: float, max_connections: int) -> dict:
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    slots = asyncio.Semaphore(max_connections)
    latencies: list[float] = []
    errors = {"non2xx": 0, "socket": 0}
    tasks = []

    async def one(due: float) -> None:
        async with slots:
            for attempt in (0, 1):  # a kept-alive connection the server closed meanwhile: retry once on a new one
                reused = bool(idle)
                reader, writer = idle.pop() if idle else await asyncio.open_connection(host, port)
                try:
                    writer.write(payload)
                    await writer.drain()
                    status, keep = await _read_response(reader)
                except (OSError, asyncio.IncompleteReadError):
                    writer.close()
                    if reused and attempt == 0:
                        continue
                    errors["socket"] += 1
                    return
                latencies.append(time.perf_counter() - due)
                if not 200 <= status < 300:
                    errors["non2xx"] += 1
                if keep:
                    idle.append((reader, writer))
                else:
                    writer.close()
                return

    start = time.perf_counter() + 0.05
    total = int(rate * duration)
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(due)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    for _, writer in idle:
        writer.close()
    latencies.sort()

    def pct(p):
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000 if latencies else None

    return {
        "offered_rps": rate,
        "requests": total,
        "answered": len(latencies),
        "elapsed_s": elapsed,
        "achieved_rps": len(latencies) / elapsed,
        "p50_ms": pct(50),
        "p90_ms": pct(90),
        "p99_ms": pct(99),
        "max_ms": latencies[-1] * 1000 if latencies else None,
        **errors,
    }


def run(host: str, port: int, payload: bytes, *, rate: float, duration: float, max_connections: int = 64) -> dict:
    return asyncio.run(_run(host, port, payload, rate, duration, max_connections))


def raw_request(method: str, path: str, host: str, headers: dict, body: str = "") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", *(f"{k}: {v}" for k, v in headers.items())]
    data = body.encode()
    if body:
        lines.append(f"Content-Length: {len(data)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data
