"""A lean HTTP/1.1 load generator for the server benchmark: several processes, each driving
its share of simulated participants over non-blocking sockets (one `selectors` loop per
process), with every request's bytes built before timing starts. Per request a process
does a send, a few recvs, a header scan and one `perf_counter` pair, so the client stays a
small share of the CPU and the server, not the client, sets the pace.

`run_load(host, port, scripts, ...)` plays `scripts` (one list of request bytes per
participant, sent in order, each after the previous response) and returns the wall time,
latencies, error count and the client's own CPU seconds (its processes' `getrusage`).

Connections are either kept alive (one per participant, opened before timing, or at the
first request when participants think, and reopened when the server closes an idle one)
or new for every request (`Connection: close`, the connect counted in the request's
latency). With `think_ms` each participant waits an
exponentially distributed time (capped at 10 x the mean) before each request. `burn_us`
makes the client spin that much CPU time per request: a deliberately slow client, used to check
that the benchmark notices when its client is the bottleneck.
"""
from __future__ import annotations

import errno
import heapq
import multiprocessing as mp
import random
import resource
import selectors
import socket
import time
from array import array

__all__ = ["build_request", "run_load"]


def build_request(method: str, path: str, host: str, body: bytes = b"",
                  content_type: str | None = None, keepalive: bool = True,
                  headers: dict | None = None) -> bytes:
    """Return the bytes of one HTTP/1.1 request."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}",
             "Connection: " + ("keep-alive" if keepalive else "close")]
    if content_type:
        lines.append(f"Content-Type: {content_type}")
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class _Conn:
    __slots__ = ("i", "script", "k", "sock", "buf", "t0", "out", "connecting")

    def __init__(self, i: int, script: list[bytes]):
        self.i, self.script, self.k = i, script, 0
        self.sock = None
        self.buf = b""
        self.t0 = 0.0
        self.out = b""
        self.connecting = False


def _response_length(buf: bytes) -> int:
    """Return the total length of the response at the start of `buf`, or -1 while its
    headers are incomplete."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return -1
    head = buf[:end].lower()
    at = head.find(b"\r\ncontent-length:")
    if at < 0:
        return end + 4
    stop = head.find(b"\r\n", at + 2)
    return end + 4 + int(head[at + 17: stop if stop > 0 else len(head)])


def _worker(host: str, port: int, scripts: list[list[bytes]], keepalive: bool,
            think_ms: float, burn_us: float, expect: tuple[int, ...], seed: int,
            deadline_s: float, ready, go, results) -> None:
    rng = random.Random(seed)
    sel = selectors.DefaultSelector()
    conns = [_Conn(i, s) for i, s in enumerate(scripts) if s]
    lat = array("d")
    errors = reconnects = 0
    first_error = ""
    wake: list[tuple[float, int]] = []
    addr = (host, port)
    burn = burn_us / 1e6

    def think() -> float:
        return min(rng.expovariate(1000.0 / think_ms), think_ms / 100.0) if think_ms > 0 else 0.0

    def open_sock(c: _Conn) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        rc = s.connect_ex(addr)
        c.sock = s
        c.connecting = rc in (errno.EINPROGRESS, errno.EAGAIN)
        if rc not in (0, errno.EINPROGRESS, errno.EAGAIN):
            raise OSError(rc, "connect failed")

    def send(c: _Conn, now: float, fresh: bool = True) -> None:
        if fresh:
            c.t0 = now
            if burn:  # CPU time, not wall time: a busy machine must not hide the burn
                end = time.thread_time() + burn
                while time.thread_time() < end:
                    pass
        c.out = c.script[c.k]
        c.buf = b""
        if c.sock is None:
            open_sock(c)
            sel.register(c.sock, selectors.EVENT_WRITE, c)
            return
        try:
            n = c.sock.send(c.out)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError:  # the server closed an idle kept-alive connection: reopen
            reopen(c)
            return
        c.out = c.out[n:]
        sel.register(c.sock, selectors.EVENT_WRITE if c.out else selectors.EVENT_READ, c)

    def close(c: _Conn) -> None:
        try:
            sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        c.sock.close()
        c.sock = None

    def reopen(c: _Conn) -> None:
        nonlocal reconnects
        reconnects += 1
        close(c)
        send(c, c.t0, fresh=False)

    # Persistent connections exist before the timed phase when everyone answers at once.
    # With a think time each participant connects when first sending, as a browser does:
    # a connection opened and left silent is a slow client (gunicorn's gthread worker
    # holds a thread up to 5 s waiting for its first request; nginx absorbs that).
    if keepalive and think_ms <= 0:
        for c in conns:
            s = socket.create_connection(addr, timeout=30)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.setblocking(False)
            c.sock = s
    ready.wait()
    go.wait()
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t_start = time.perf_counter()
    deadline = t_start + deadline_s
    for c in conns:
        if think_ms > 0:
            heapq.heappush(wake, (t_start + think(), c.i))
        else:
            send(c, t_start)
    by_i = {c.i: c for c in conns}
    active = len(conns)
    timed_out = False
    while active:
        now = time.perf_counter()
        if now > deadline or errors > 1000:
            timed_out = now > deadline
            break
        while wake and wake[0][0] <= now:
            _, i = heapq.heappop(wake)
            send(by_i[i], now)
        timeout = 0.5 if not wake else max(0.0, min(0.5, wake[0][0] - now))
        for key, ev in sel.select(timeout):
            c = key.data
            if ev & selectors.EVENT_WRITE:
                if c.connecting:
                    err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        errors += 1
                        first_error = first_error or f"connect: {errno.errorcode.get(err, err)}"
                        close(c)
                        send(c, c.t0, fresh=False)
                        continue
                    c.connecting = False
                try:
                    n = c.sock.send(c.out)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    reopen(c)
                    continue
                c.out = c.out[n:]
                if not c.out:
                    sel.modify(c.sock, selectors.EVENT_READ, c)
                continue
            try:
                chunk = c.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                chunk = b""
            if not chunk:
                if not c.buf:  # closed before answering (idle keep-alive): send again
                    reopen(c)
                    continue
                errors += 1
                first_error = first_error or "connection closed mid-response"
                close(c)
                c.k += 1
            else:
                c.buf += chunk
                need = _response_length(c.buf)
                if need < 0 or len(c.buf) < need:
                    continue
                done = time.perf_counter()
                status = int(c.buf[9:12])
                if status in expect:
                    lat.append((done - c.t0) * 1000.0)
                else:
                    errors += 1
                    first_error = first_error or c.buf[:need][:300].decode("latin-1", "replace")
                c.k += 1
                if keepalive:
                    sel.unregister(c.sock)
                else:
                    close(c)
            if c.k >= len(c.script):
                active -= 1
                if c.sock is not None:
                    close(c)
                continue
            now = time.perf_counter()
            if think_ms > 0:
                heapq.heappush(wake, (now + think(), c.i))
            else:
                send(c, now)
    t_end = time.perf_counter()
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    for c in conns:
        if c.sock is not None:
            c.sock.close()
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    results.put({"lat": lat.tobytes(), "errors": errors, "first_error": first_error,
                 "reconnects": reconnects, "cpu_s": cpu, "t_start": t_start, "t_end": t_end,
                 "timed_out": timed_out})


def run_load(host: str, port: int, scripts: list[list[bytes]], processes: int = 2,
             keepalive: bool = True, think_ms: float = 0.0, burn_us: float = 0.0,
             expect: tuple[int, ...] = (200, 201), seed: int = 0, deadline_s: float = 300.0,
             before=None, after=None) -> dict:
    """Play `scripts` against host:port; return {"seconds", "requests", "latencies_ms",
    "errors", "first_error", "reconnects", "client_cpu_s", "timed_out"}. `before` and
    `after` (no-argument callables) run just before the processes start and just after
    the last one finishes (to read the server's CPU time around the timed phase)."""
    processes = max(1, min(processes, len(scripts)))
    ctx = mp.get_context("fork")
    ready = ctx.Barrier(processes + 1)
    go = ctx.Barrier(processes + 1)
    results = ctx.Queue()
    shares = [scripts[k::processes] for k in range(processes)]
    procs = [ctx.Process(target=_worker, daemon=True,
                         args=(host, port, shares[k], keepalive, think_ms, burn_us, expect,
                               seed * 1009 + k, deadline_s, ready, go, results))
             for k in range(processes)]
    for p in procs:
        p.start()
    ready.wait(timeout=120)
    if before is not None:
        before()
    go.wait(timeout=120)
    outs = [results.get(timeout=deadline_s + 120) for _ in procs]
    # perf_counter is the system-wide monotonic clock: the processes' stamps compare.
    wall = max(o["t_end"] for o in outs) - min(o["t_start"] for o in outs)
    if after is not None:
        after()
    for p in procs:
        p.join(timeout=30)
    lat = array("d")
    for o in outs:
        lat.frombytes(o["lat"])
    return {"seconds": wall, "requests": len(lat), "latencies_ms": lat,
            "errors": sum(o["errors"] for o in outs),
            "first_error": next((o["first_error"] for o in outs if o["first_error"]), ""),
            "reconnects": sum(o["reconnects"] for o in outs),
            "client_cpu_s": sum(o["cpu_s"] for o in outs),
            "timed_out": any(o["timed_out"] for o in outs)}
