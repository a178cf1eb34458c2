"""Soak the hub: a million messages through it, clients coming and going, connections cut.

What it proves (issue 13's soak requirement), or reports the exceptions to:

- **Zero lost, zero duplicated.** Every published message carries ``(publisher, counter)``,
  the counter counting that publisher's messages to that room. A subscriber's stay in a room
  (one ``Connection``'s life, from ``join`` to ``aclose``) must receive, exactly once and in
  each publisher's order, every message whose publish started after its ``join`` returned and
  before it decided to leave; anything it receives besides must be in order and not twice.
  Before leaving it waits (``--tail-timeout``) for the messages published until then. A
  :class:`~glm_live.transport.hub_client.Gap` is counted apart: with the history configured
  here there should be none, and a loss the hub did not report is a silent loss.
- **Bounded resources.** The runtime's RSS at the end of the load is within 10% of its RSS
  after warm-up (``--warmup``, a fraction of the messages: history and sessions fill up
  first); its open file descriptors, its asyncio tasks and the clients ``/health`` reports
  are back where they started once every client has closed.

How: the runtime runs in its own process (``python -m glm_live serve --token T``); this
process runs ``--clients`` clients (:class:`~glm_live.transport.hub_client.Connection`), each
with its own scoped token (reading and writing ``soak:*``, minted offline from ``T``), through
a :class:`~glm_live.testing.chaos.ChaosProxy` that cuts ``--cut-fraction`` of the connections
at a random moment in their first seconds. Each client lives a series of *lives*, as a
process restarted again and again would: a new ``Connection`` with the same ``client_id``
joins one to three rooms (sometimes one more later), publishes a few hundred messages to one
room, waiting on ``flush()`` every ``--batch`` messages and before it leaves (so nothing is
legitimately lost), waits for its rooms' tails, and closes.

Output: messages published and delivered, lost, duplicated, out of order, gaps; RSS after
warm-up and at the end (and the change in %); fds and hub clients at the start and the end;
cuts; elapsed time and messages/s. The first anomalies are printed with the client, its life,
the room, the publisher and counter, and the phase.

Run: ``make soak`` (one million messages), or ``python benchmarks/hub_soak.py --quick``
(50 000) to try it. Exit status 1 when anything was lost or duplicated, a gap or error was
reported, RSS grew more than 10% after warm-up, or fds, tasks or clients were left over.
Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import json
import logging
import os
import random
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._servers import free_port, runtime_token, start  # noqa: E402
from glm_live.testing.chaos import ChaosProxy  # noqa: E402
from glm_live.transport.hub_client import Connection, Gap, Message  # noqa: E402
from glm_live.transport.sse_client import ConnectionEvent  # noqa: E402
from glm_live.wire.auth import TokenSigner  # noqa: E402

try:
    import psutil
except ImportError:  # psutil is not a dependency: /proc says the same on Linux
    psutil = None

PATTERNS = ["soak:*"]
ANOMALIES_SHOWN = 25


# -- the ledger: what was published, and what each stay in a room received -------------------


@dataclass
class Stay:
    """One client life's stay in one room: the publishers' next counters when its ``join``
    returned (``since``) and when it decided to leave (``until``), and what it received."""

    client: str
    life: int
    room: str
    since: dict[str, int]
    until: dict[str, int] | None = None
    first: dict[str, int] = field(default_factory=dict)  # publisher -> first counter received
    last: dict[str, int] = field(default_factory=dict)  # publisher -> highest counter received
    missing: dict[str, set[int]] = field(default_factory=dict)  # skipped, not yet seen
    last_seq: int | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)  # set on every message

    def caught_up(self) -> bool:
        """Whether every message published before the leave decision has arrived."""
        assert self.until is not None
        return all(
            self.last.get(publisher, -1) >= end - 1
            for publisher, end in self.until.items()
            if end > self.since.get(publisher, 0)
        )


@dataclass
class Anomaly:
    """Something the checker found; a run of consecutive counters makes one anomaly."""

    at: float
    phase: str
    kind: str
    who: str
    text: str
    publisher: str = ""
    first: int = -1
    last: int = -1

    def __str__(self) -> str:
        counters = ""
        if self.first >= 0:
            counters = f" {self.publisher} #{self.first}" + (
                f"..#{self.last} ({self.last - self.first + 1})" if self.last > self.first else ""
            )
        return f"{self.at:7.1f}s {self.phase:8s} {self.kind}:{counters} {self.who}: {self.text}"


class Ledger:
    """Counters per (room, publisher), totals, and the anomalies found, with their context."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.phase = "warm-up"
        self.next: dict[str, dict[str, int]] = {}  # room -> publisher -> next counter
        self.reconnects: dict[str, int] = {}  # client -> reconnections, all lives
        # (room, publisher) -> the first counter of each of its lives there, and those lives
        self.lives: dict[tuple[str, str], tuple[list[int], list[int]]] = {}
        self.published = self.delivered = self.duplicated = self.lost = 0
        self.out_of_order = self.gaps = self.errors = self.stays = 0
        self.anomalies: list[Anomaly] = []

    def counter(self, room: str, publisher: str, life: int) -> int:
        counters = self.next.setdefault(room, {})
        value = counters.get(publisher, 0)
        counters[publisher] = value + 1
        self.published += 1
        starts, lives = self.lives.setdefault((room, publisher), ([], []))
        if not lives or lives[-1] != life:
            starts.append(value)
            lives.append(life)
        return value

    def life_of(self, room: str, publisher: str, counter: int) -> int:
        """Which life of ``publisher`` published its ``counter``-th message to ``room``."""
        starts, lives = self.lives[(room, publisher)]
        return lives[bisect.bisect_right(starts, counter) - 1]

    def snapshot(self, room: str) -> dict[str, int]:
        return dict(self.next.get(room, {}))

    def note(self, kind: str, who: str, text: str, publisher: str = "", counter: int = -1) -> None:
        previous = self.anomalies[-1] if self.anomalies else None
        if (
            counter >= 0
            and previous is not None
            and (previous.kind, previous.who, previous.publisher) == (kind, who, publisher)
            and previous.last == counter - 1
        ):
            previous.last = counter  # the same run goes on
            return
        at = time.monotonic() - self.started
        self.anomalies.append(Anomaly(at, self.phase, kind, who, text, publisher, counter, counter))

    def _who(self, stay: Stay) -> str:
        return (
            f"subscriber {stay.client} life {stay.life} in {stay.room} "
            f"(its reconnects so far: {self.reconnects.get(stay.client, 0)})"
        )

    def receive(self, stay: Stay, item: Message | Gap) -> None:
        if isinstance(item, Gap):
            self.gaps += 1
            self.note("gap", self._who(stay), f"{item.reason}, {item.lost_from}..{item.lost_to}")
            return
        data = item.data
        publisher, counter = data["p"], data["n"]
        self.delivered += 1
        stay.arrived.set()
        if stay.last_seq is not None and item.seq <= stay.last_seq:
            self.note(
                "seq not increasing",
                self._who(stay),
                f"seq {item.seq} after {stay.last_seq}",
                publisher,
                counter,
            )
        stay.last_seq = item.seq
        last = stay.last.get(publisher)
        if last is None:
            stay.first[publisher] = stay.last[publisher] = counter
        elif counter == last + 1:
            stay.last[publisher] = counter
        elif counter > last + 1:
            stay.missing.setdefault(publisher, set()).update(range(last + 1, counter))
            stay.last[publisher] = counter
        elif counter in stay.missing.get(publisher, ()):
            stay.missing[publisher].discard(counter)
            self.out_of_order += 1
            self.note(
                "out of order",
                self._who(stay),
                f"after #{last} (seq {item.seq})",
                publisher,
                counter,
            )
        else:
            self.duplicated += 1
            self.note(
                "duplicate",
                self._who(stay),
                f"again, after #{last} (from seq {item.seq}; published in its life "
                f"{self.life_of(stay.room, publisher, counter)}, its reconnects so far: "
                f"{self.reconnects.get(publisher, 0)})",
                publisher,
                counter,
            )

    def close(self, stay: Stay) -> None:
        """Count what ``stay`` should have received and did not."""
        assert stay.until is not None
        self.stays += 1
        for publisher, end in stay.until.items():
            begin = stay.since.get(publisher, 0)
            if end <= begin:
                continue  # nothing of it was due
            lost = sorted(c for c in stay.missing.get(publisher, ()) if begin <= c < end)
            first, last = stay.first.get(publisher), stay.last.get(publisher)
            if first is None or last is None:
                lost = list(range(begin, end))
            else:
                lost += range(begin, min(first, end))  # the head it never got
                lost += range(max(last + 1, begin), end)  # the tail it never got
            lost.sort()
            if lost:
                self.lost += len(lost)
                shown = ", ".join(f"#{c}" for c in sorted(lost)[:8])
                self.note(
                    "lost",
                    self._who(stay),
                    f"{len(lost)} of {publisher}'s #{begin}..#{end - 1} due: {shown}"
                    f"{' ...' if len(lost) > 8 else ''} (#{lost[0]} from its life "
                    f"{self.life_of(stay.room, publisher, lost[0])}; its reconnects so far: "
                    f"{self.reconnects.get(publisher, 0)})",
                )


# -- the clients ---------------------------------------------------------------------------------


@dataclass
class Soak:
    url: str
    tokens: dict[str, str]
    rooms: list[str]
    ledger: Ledger
    budget: int  # messages still to publish
    batch: int
    life_messages: tuple[int, int]
    tail_timeout: float
    payload: str
    rng: random.Random


def _observer(ledger: Ledger, name: str) -> Any:
    def observe(event: ConnectionEvent) -> None:
        if event.kind == "reconnecting":
            ledger.reconnects[name] = ledger.reconnects.get(name, 0) + 1

    return observe


async def _follow(conn: Connection, stay: Stay, ledger: Ledger) -> None:
    async with contextlib.aclosing(conn.subscribe(stay.room)) as items:
        async for item in items:
            ledger.receive(stay, item)


async def _flush(conn: Connection, ledger: Ledger, name: str, timeout: float = 30.0) -> None:
    try:
        await conn.flush(timeout)
    except TimeoutError:
        msg = (
            f"flush() timed out after {timeout:g} s with {conn.outbox_depth} publications "
            f"unacknowledged; connection {conn.state.value}, reconnects so far "
            f"{ledger.reconnects.get(name, 0)}"
        )
        raise TimeoutError(msg) from None


async def _life(soak: Soak, name: str, life: int) -> None:
    """One life of the client ``name``: connect, join, publish, flush, wait, leave."""
    ledger, rng = soak.ledger, soak.rng
    conn = Connection(
        soak.url,
        token=soak.tokens[name],
        client_id=name,  # a restarted process keeps its id
        kind="soak",
        outbox_limit=soak.batch * 2,
        observers=[_observer(ledger, name)],
    )
    stays: list[Stay] = []
    readers: list[asyncio.Task[None]] = []
    arrived = asyncio.Event()  # one for the life's stays: any message may complete a tail

    async def join(room: str) -> None:
        await conn.join(room, timeout=60)
        # Due from here on: what is published from now (the hub has this client in the room).
        stay = Stay(name, life, room, ledger.snapshot(room), arrived=arrived)
        stays.append(stay)
        readers.append(asyncio.ensure_future(_follow(conn, stay, ledger)))

    failure: Exception | None = None
    try:
        async with conn:
            joined = rng.sample(soak.rooms, rng.randint(1, 3))
            for room in joined:
                await join(room)
            try:
                await _publish(soak, conn, name, life, joined, join)
            except Exception as exc:  # reported once the stays are checked: they still count
                failure = exc
            for stay in stays:
                stay.until = ledger.snapshot(stay.room)
            deadline = time.monotonic() + soak.tail_timeout
            while not all(stay.caught_up() for stay in stays):
                arrived.clear()
                try:
                    await asyncio.wait_for(arrived.wait(), deadline - time.monotonic())
                except TimeoutError:
                    break  # what did not come is counted as lost
            for stay in stays:
                ledger.close(stay)
    finally:
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    if failure is not None:
        raise failure


async def _publish(
    soak: Soak, conn: Connection, name: str, life: int, joined: list[str], join: Any
) -> None:
    """Publish this life's share to one room, flushing every ``batch`` (and sometimes joining
    one more room then), and flush at the end: nothing it published is left behind."""
    ledger, rng = soak.ledger, soak.rng
    room = rng.choice(soak.rooms)
    quota = rng.randint(*soak.life_messages)
    for sent in range(1, quota + 1):
        if soak.budget <= 0:
            break
        soak.budget -= 1
        counter = ledger.counter(room, name, life)
        await conn.publish(room, {"p": name, "n": counter, "x": soak.payload})
        if sent % soak.batch == 0:
            await _flush(conn, ledger, name)
            if rng.random() < 0.05 and len(joined) < len(soak.rooms):
                extra = rng.choice([r for r in soak.rooms if r not in joined])
                joined.append(extra)
                await join(extra)
    await _flush(conn, ledger, name)


async def _client(soak: Soak, name: str) -> None:
    life = 0
    while soak.budget > 0:
        life += 1
        try:
            await _life(soak, name, life)
        except Exception as exc:  # reported, and the client lives on as a new process would
            soak.ledger.errors += 1
            soak.ledger.note("error", f"client {name} life {life}", f"{type(exc).__name__}: {exc}")
        await asyncio.sleep(soak.rng.uniform(0, 0.2))


# -- the runtime's resources ---------------------------------------------------------------------


@dataclass
class Sample:
    at: float
    published: int
    rss: int
    fds: int
    clients: int
    tasks: int
    sessions: int | None
    stats: dict[str, int]


def _rss_fds(pid: int) -> tuple[int, int]:
    if psutil is not None:
        process = psutil.Process(pid)
        return process.memory_info().rss, process.num_fds()
    status = Path(f"/proc/{pid}/status").read_text()
    kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
    return kib * 1024, len(os.listdir(f"/proc/{pid}/fd"))


def _fd_targets(pid: int) -> list[str]:
    """What the runtime's file descriptors point at (to name a leak)."""
    targets = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            targets.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
    return sorted(targets)


def _health(port: int) -> dict[str, Any]:
    # The operator's view: /health tells the hub's figures to credentials only (the admin's
    # here; no hub client uses it).
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/health", headers={"Authorization": f"Bearer {runtime_token()}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        health: dict[str, Any] = json.load(response)
        return health


async def sample(pid: int, port: int, ledger: Ledger) -> Sample:
    rss, fds = _rss_fds(pid)
    health = await asyncio.to_thread(_health, port)
    hub = health["hub"]
    return Sample(
        time.monotonic() - ledger.started,
        ledger.published,
        rss,
        fds,
        int(hub["clients"]),
        int(health["tasks"]),
        hub.get("sessions"),
        hub.get("stats", {}),
    )


async def _sampler(
    pid: int, port: int, ledger: Ledger, every: float, out: list[Sample], show: bool
) -> None:
    while True:
        await asyncio.sleep(every)
        now = await sample(pid, port, ledger)
        out.append(now)
        if show:
            print(
                f"  {now.at:6.1f}s {ledger.phase:8s} published {now.published} delivered "
                f"{ledger.delivered} RSS {now.rss / (1 << 20):.1f} MiB fds {now.fds} "
                f"clients {now.clients} tasks {now.tasks} sessions {now.sessions}",
                file=sys.stderr,
            )


# -- the run -------------------------------------------------------------------------------------


class _Cuts(random.Random):
    """The proxy draws each connection's lifetime with ``rng.uniform(*lifetime)``: this one
    gives ``fraction`` of them a lifetime from that range (they are cut then, unless closed
    first) and the others a day (never cut)."""

    def __init__(self, fraction: float, seed: int) -> None:
        super().__init__(seed)
        self.fraction = fraction

    def uniform(self, a: float, b: float) -> float:
        if self.random() < self.fraction:
            return super().uniform(a, b)
        return 24 * 3600.0


async def soak_run(args: argparse.Namespace, port: int, pid: int) -> tuple[Ledger, dict[str, Any]]:
    ledger = Ledger(time.monotonic())
    # A cut connection lives 50-500 ms: lives last longer, so it is cut, not closed first.
    proxy = ChaosProxy(port, lifetime=(0.05, 0.5), seed=args.seed)
    proxy.rng = _Cuts(args.cut_fraction, args.seed)
    await proxy.start()
    signer = TokenSigner(args.admin)
    names = [f"c{i:02d}" for i in range(args.clients)]
    tokens = {
        name: signer.issue(name, PATTERNS, PATTERNS, ttl_s=24 * 3600, now=time.time())[0]
        for name in names
    }
    soak = Soak(
        url=f"http://127.0.0.1:{proxy.port}",
        tokens=tokens,
        rooms=[f"soak:{i}" for i in range(args.rooms)],
        ledger=ledger,
        budget=args.messages,
        batch=args.batch,
        life_messages=(args.life // 5, args.life * 9 // 5),
        tail_timeout=args.tail_timeout,
        payload="x" * args.payload,
        rng=random.Random(args.seed),
    )
    samples: list[Sample] = []
    await sample(pid, port, ledger)  # the first /health request may open what stays open
    await asyncio.sleep(1)
    first = await sample(pid, port, ledger)
    fds_before = _fd_targets(pid)
    sampler = asyncio.ensure_future(
        _sampler(pid, port, ledger, args.sample_every, samples, args.progress)
    )
    clients = [asyncio.ensure_future(_client(soak, name)) for name in names]
    warm: Sample | None = None
    loaded: Sample | None = None
    try:
        while soak.budget > 0:
            await asyncio.sleep(0.2)
            if warm is None and ledger.published >= args.warmup * args.messages:
                warm = await sample(pid, port, ledger)
                ledger.phase = "load"
        loaded = await sample(pid, port, ledger)  # the last of the load, clients still on
        ledger.phase = "drain"
        await asyncio.gather(*clients)
    finally:
        for task in clients:
            task.cancel()
        sampler.cancel()
        await proxy.stop()
    elapsed = time.monotonic() - ledger.started
    await asyncio.sleep(2)  # let the runtime close what the clients closed
    last = await sample(pid, port, ledger)
    fds_after = _fd_targets(pid)
    for target in fds_before:
        if target in fds_after:
            fds_after.remove(target)
    return ledger, {
        "first": first,
        "warm": warm,
        "loaded": loaded,
        "last": last,
        "samples": samples,
        "elapsed": elapsed,
        "cuts": proxy.cuts,
        "connections": proxy.connections,
        "new_fds": fds_after,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="50 000 messages, to try it")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rooms", type=int, default=10)
    parser.add_argument("--cut-fraction", type=float, default=0.01)
    parser.add_argument("--life", type=int, default=500, help="mean messages per client life")
    parser.add_argument("--batch", type=int, default=50, help="publishes between flushes")
    parser.add_argument("--payload", type=int, default=16, help="padding bytes per message")
    parser.add_argument(
        "--history",
        type=int,
        help="the hub's history per room (default: what half the warm-up fills, 1000 to 5000)",
    )
    parser.add_argument("--warmup", type=float, default=0.2, help="fraction of the messages")
    parser.add_argument("--tail-timeout", type=float, default=10.0)
    parser.add_argument("--sample-every", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--progress", action="store_true", help="print every sample")
    args = parser.parse_args()
    if args.quick:
        args.messages = 50_000
    if args.history is None:  # full before the warm-up ends, so RSS can be flat after it
        args.history = max(1000, min(5000, int(args.warmup * args.messages / args.rooms / 2)))
    args.admin = runtime_token()  # the runtime's admin token: no client uses it
    logging.basicConfig(level=logging.WARNING, format="%(name)s %(levelname)s %(message)s")

    config = Path(tempfile.mkdtemp()) / "hub.toml"
    # Clients publish as fast as they flush: lift the per-connection rate limit, which would
    # close them (1008); history holds what a cut client misses while it reconnects.
    config.write_text(
        f"[hub]\nrate = 1e9\nburst = 1e9\nsend_queue = 100000\nhistory = {args.history}\n"
    )
    port = free_port()
    log = config.with_name("runtime.log")
    command = [sys.executable, "-m", "glm_live", "serve", "--port", str(port)]
    with log.open("wb") as stderr:
        runtime = start(
            [*command, f"--token={args.admin}", "--config", str(config)], port, stderr=stderr
        )
        try:
            ledger, res = asyncio.run(soak_run(args, port, runtime.pid))
        finally:
            runtime.terminate()
            runtime.wait(10)
    return report(args, ledger, res, log)


def report(args: argparse.Namespace, ledger: Ledger, res: dict[str, Any], log: Path) -> int:
    first, warm, loaded, last = res["first"], res["warm"], res["loaded"], res["last"]
    elapsed = res["elapsed"]
    print(
        f"hub soak: {args.messages} messages, {args.clients} clients, {args.rooms} rooms, "
        f"payload {args.payload} B, history {args.history}/room, cut fraction {args.cut_fraction}"
    )
    print(
        f"  published {ledger.published}  delivered {ledger.delivered}  lost {ledger.lost}  "
        f"duplicated {ledger.duplicated}  out of order {ledger.out_of_order}  gaps {ledger.gaps}"
        f"  errors {ledger.errors}"
    )
    print(
        f"  stays checked {ledger.stays}; connections through the proxy {res['connections']}, "
        f"cut {res['cuts']} ({res['cuts'] / max(1, res['connections']):.1%}); client "
        f"reconnects {sum(ledger.reconnects.values())}"
    )
    print(
        f"  elapsed {elapsed:.1f} s; {ledger.published / elapsed:.0f} msgs/s published, "
        f"{ledger.delivered / elapsed:.0f} deliveries/s"
    )
    growth = loaded.rss / warm.rss - 1 if warm and loaded else float("nan")
    peak = max((s.rss for s in res["samples"] if warm and s.at >= warm.at), default=0)
    mib = 1 << 20
    print(
        f"  runtime RSS: start {first.rss / mib:.1f} MiB, after warm-up ({args.warmup:.0%} of "
        f"the messages) {warm.rss / mib if warm else float('nan'):.1f} MiB, end of load "
        f"{loaded.rss / mib if loaded else float('nan'):.1f} MiB ({growth:+.1%}), peak after "
        f"warm-up {peak / mib:.1f} MiB, "
        f"idle at the end {last.rss / mib:.1f} MiB"
    )
    print(
        f"  runtime fds: start {first.fds}, warm-up {warm.fds if warm else '-'}, end of load "
        f"{loaded.fds if loaded else '-'}, idle at the end {last.fds}; hub clients: start "
        f"{first.clients}, end {last.clients}; sessions kept: start {first.sessions}, end "
        f"{last.sessions}"
    )
    if res["new_fds"]:
        print(f"  runtime fds open at the end that were not at the start: {res['new_fds']}")
    print(
        f"  runtime asyncio tasks: start {first.tasks}, end of load "
        f"{loaded.tasks if loaded else '-'}, idle at the end {last.tasks}"
    )
    print(f"  hub stats at the end: {last.stats}")
    if ledger.anomalies:
        print(f"anomalies ({len(ledger.anomalies)}; the first {ANOMALIES_SHOWN}):")
        for line in ledger.anomalies[:ANOMALIES_SHOWN]:
            print(f"  {line}")
    errors = log.read_text(errors="replace").strip().splitlines()
    if errors:
        print(f"runtime stderr ({len(errors)} lines, the last 10; all in {log}):")
        for line in errors[-10:]:
            print("  " + line)
    failures = []
    if ledger.lost or ledger.duplicated or ledger.out_of_order:
        failures.append("messages lost, duplicated or out of order")
    if ledger.gaps or ledger.errors:
        failures.append("gaps or client errors")
    if not growth <= 0.10:
        failures.append(f"RSS grew {growth:+.1%} after warm-up (limit +10%)")
    if last.fds > first.fds or last.clients > first.clients or last.tasks > first.tasks:
        failures.append("fds, tasks or hub clients left over")
    print("FAIL: " + "; ".join(failures) if failures else "PASS")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
