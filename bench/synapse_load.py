#!/usr/bin/env python3
"""Load driver for bench/compare-synapse.sh (standard library only).

  synapse_load.py run --base URL --pid PID --secret S [--seq 200] [--n 4000]
                      [--conc 8] [--json OUT]
      Registers two users on a running Synapse (shared-secret admin API), puts them in one
      room and measures, with the receiver on a continuous long-poll /sync loop:
        latency     sequential sends, from the start of the send request until the event
                    shows up in the receiver's /sync response;
        throughput  --conc connections of the sending user, each sending its share of --n
                    one request after another, from the first send until the receiver has
                    seen every message through /sync;
        resources   Synapse's user+system CPU time over the throughput phase divided by the
                    messages, and its VmRSS / VmHWM afterwards.
      It also watches Synapse's sockets and reports any that are not on loopback.

  synapse_load.py compare --synapse JSON --kith TEXT
      Prints the two side by side with the ratios Kith/Synapse.

  synapse_load.py wait --base URL --pid PID
      Waits until Synapse answers (or its process is gone).
"""

import argparse
import hashlib
import hmac
import http.client
import json
import os
import re
import sys
import threading
import time
import urllib.parse
import uuid

# ---------------------------------------------------------------- HTTP


class Api:
    """One keep-alive HTTP connection to the homeserver."""

    def __init__(self, base, token=None, timeout=120):
        u = urllib.parse.urlsplit(base)
        self.host, self.port = u.hostname, u.port
        self.token = token
        self.timeout = timeout
        self.conn = None
        self.rate_limited = 0

    def call(self, method, path, body=None):
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        data = None if body is None else json.dumps(body).encode()
        dropped = 0
        while True:
            if self.conn is None:
                self.conn = http.client.HTTPConnection(
                    self.host, self.port, timeout=self.timeout
                )
            try:
                self.conn.request(method, path, body=data, headers=headers)
                resp = self.conn.getresponse()
                raw = resp.read()
            except (http.client.HTTPException, ConnectionError):
                # A dropped keep-alive connection: reconnect and repeat (sends carry a
                # transaction id, so a repeat is idempotent).
                self.conn.close()
                self.conn = None
                dropped += 1
                if dropped > 3:
                    raise
                continue
            out = json.loads(raw) if raw else {}
            if resp.status == 429:
                self.rate_limited += 1
                time.sleep(out.get("retry_after_ms", 100) / 1000)
                continue
            if resp.status != 200:
                raise RuntimeError(f"{method} {path}: HTTP {resp.status} {out}")
            return out


def q(s):
    return urllib.parse.quote(s, safe="")


def register(base, secret, user):
    api = Api(base)
    nonce = api.call("GET", "/_synapse/admin/v1/register")["nonce"]
    password = uuid.uuid4().hex
    mac = hmac.new(secret.encode(), digestmod=hashlib.sha1)
    mac.update(f"{nonce}\0{user}\0{password}\0notadmin".encode())
    out = api.call(
        "POST",
        "/_synapse/admin/v1/register",
        {
            "nonce": nonce,
            "username": user,
            "password": password,
            "admin": False,
            "mac": mac.hexdigest(),
        },
    )
    return out["user_id"], out["access_token"]


# ---------------------------------------------------------------- /proc


def proc_cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 1 :].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds():
    """CPU time all cores spent running something so far (/proc/stat: user, nice,
    system, irq, softirq; not idle, iowait or time stolen by the hypervisor)."""
    with open("/proc/stat") as f:
        cols = [int(x) for x in f.readline().split()[1:8]]
    return (sum(cols) - cols[3] - cols[4]) / os.sysconf("SC_CLK_TCK")


def proc_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def _socket_inodes(pid):
    inodes = set()
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _loopback_or_unset(hexaddr):
    ip = hexaddr.split(":")[0]
    if len(ip) == 8:  # IPv4, little-endian words
        return ip == "00000000" or ip.endswith("7F")
    # IPv6: ::, ::1, or ::ffff:127.x.x.x
    return (
        ip == "0" * 32
        or ip == "0" * 24 + "01000000"
        or (ip.startswith("0000000000000000FFFF0000") and ip.endswith("7F"))
    )


def foreign_sockets(pid):
    """Sockets of `pid` whose local or remote address is neither loopback nor unset."""
    inodes = _socket_inodes(pid)
    bad = []
    for table in ("tcp", "tcp6", "udp", "udp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as f:
                rows = f.readlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if cols[9] in inodes and not (
                _loopback_or_unset(cols[1]) and _loopback_or_unset(cols[2])
            ):
                bad.append(f"{table} {cols[1]} -> {cols[2]}")
    return bad


class SocketWatch(threading.Thread):
    """Samples Synapse's sockets every 200 ms and remembers any non-loopback one."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.samples = 0
        self.bad = set()
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                self.bad.update(foreign_sockets(self.pid))
                self.samples += 1
            except OSError:
                pass
            self.stop.wait(0.2)


# ---------------------------------------------------------------- receiver


class Receiver(threading.Thread):
    """The receiving user's continuous long-poll /sync loop.

    Records, for every message body from the sender, the moment the /sync response that
    carried it was read."""

    def __init__(self, base, token, user_id, sender_id, room_id):
        super().__init__(daemon=True)
        self.api = Api(base, token)
        self.sender_id = sender_id
        self.room_id = room_id
        self.seen = {}
        self.limited = 0
        self.cond = threading.Condition()
        # The filter a lean client would use: messages only, nothing else in the
        # response; a timeline limit high enough that a busy interval between two syncs
        # is never cut short ("limited").
        fil = {
            "presence": {"not_types": ["*"]},
            "account_data": {"not_types": ["*"]},
            "room": {
                "rooms": [room_id],
                "timeline": {"limit": 100000, "types": ["m.room.message"]},
                "state": {"lazy_load_members": True},
                "ephemeral": {"not_types": ["*"]},
                "account_data": {"not_types": ["*"]},
            },
        }
        self.filter_id = self.api.call(
            "POST", f"/_matrix/client/v3/user/{q(user_id)}/filter", fil
        )["filter_id"]
        first = self.api.call(
            "GET", f"/_matrix/client/v3/sync?filter={q(self.filter_id)}&timeout=0"
        )
        self.since = first["next_batch"]

    def run(self):
        while True:
            out = self.api.call(
                "GET",
                f"/_matrix/client/v3/sync?filter={q(self.filter_id)}"
                f"&timeout=30000&since={q(self.since)}",
            )
            at = time.monotonic()
            self.since = out["next_batch"]
            room = out.get("rooms", {}).get("join", {}).get(self.room_id)
            if not room:
                continue
            timeline = room.get("timeline", {})
            with self.cond:
                if timeline.get("limited"):
                    self.limited += 1
                for ev in timeline.get("events", []):
                    if (
                        ev.get("type") == "m.room.message"
                        and ev.get("sender") == self.sender_id
                    ):
                        self.seen.setdefault(ev["content"]["body"], at)
                self.cond.notify_all()

    def wait_body(self, body, timeout=60):
        with self.cond:
            if not self.cond.wait_for(lambda: body in self.seen, timeout):
                raise RuntimeError(f"receiver never saw {body!r}")
            return self.seen[body]

    def wait_count(self, prefix, count, timeout=1800):
        def enough():
            return sum(1 for b in self.seen if b.startswith(prefix)) >= count

        with self.cond:
            if not self.cond.wait_for(enough, timeout):
                got = sum(1 for b in self.seen if b.startswith(prefix))
                raise RuntimeError(f"receiver saw {got} of {count} {prefix!r} messages")
            return max(t for b, t in self.seen.items() if b.startswith(prefix))


# ---------------------------------------------------------------- run


def send(api, room_id, body):
    txn = uuid.uuid4().hex
    api.call(
        "PUT",
        f"/_matrix/client/v3/rooms/{q(room_id)}/send/m.room.message/{txn}",
        {"msgtype": "m.text", "body": body},
    )


def pct(sorted_vals, p):
    i = round((len(sorted_vals) - 1) * p)
    return sorted_vals[min(i, len(sorted_vals) - 1)]


def run(args):
    watch = SocketWatch(args.pid)
    watch.start()
    tag = uuid.uuid4().hex[:8]
    alice_id, alice_token = register(args.base, args.secret, f"alice{tag}")
    bob_id, bob_token = register(args.base, args.secret, f"bob{tag}")
    alice = Api(args.base, alice_token)
    bob = Api(args.base, bob_token)
    room_id = alice.call(
        "POST",
        "/_matrix/client/v3/createRoom",
        {"preset": "private_chat", "is_direct": True, "name": "bench"},
    )["room_id"]
    alice.call(
        "POST", f"/_matrix/client/v3/rooms/{q(room_id)}/invite", {"user_id": bob_id}
    )
    bob.call("POST", f"/_matrix/client/v3/rooms/{q(room_id)}/join", {})

    recv = Receiver(args.base, bob_token, bob_id, alice_id, room_id)
    recv.start()

    # Warm up: a few round trips before anything is timed.
    for i in range(10):
        send(alice, room_id, f"warm up {i}")
        recv.wait_body(f"warm up {i}")

    lat = []
    for i in range(args.seq):
        body = f"sequential {i}"
        t0 = time.monotonic()
        send(alice, room_id, body)
        lat.append(recv.wait_body(body) - t0)
    lat.sort()
    ms = [x * 1000 for x in lat]
    print(
        f"synapse latency  received n={args.seq}: p50 {pct(ms, .5):.2f} ms  "
        f"p90 {pct(ms, .9):.2f} ms  p95 {pct(ms, .95):.2f} ms  "
        f"p99 {pct(ms, .99):.2f} ms  max {ms[-1]:.2f} ms",
        flush=True,
    )

    per = args.n // args.conc
    total = per * args.conc
    conns = [Api(args.base, alice_token) for _ in range(args.conc)]
    for c in conns:  # open the connections before the clock starts
        c.call("GET", "/_matrix/client/versions")
    errors = []

    def sender(w, api):
        try:
            for i in range(per):
                send(api, room_id, f"load {w}-{i}")
        except Exception as e:  # reported below
            errors.append(e)

    threads = [
        threading.Thread(target=sender, args=(w, c), daemon=True)
        for w, c in enumerate(conns)
    ]
    cpu0 = proc_cpu_seconds(args.pid)
    own0 = proc_cpu_seconds(os.getpid())
    busy0 = machine_busy_seconds()
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    answered = time.monotonic() - t0
    if errors:
        raise errors[0]
    done = recv.wait_count("load ", total) - t0
    cpu = proc_cpu_seconds(args.pid) - cpu0
    own = proc_cpu_seconds(os.getpid()) - own0
    others = machine_busy_seconds() - busy0 - cpu - own
    rss = proc_kb(args.pid, "VmRSS")
    hwm = proc_kb(args.pid, "VmHWM")
    print(
        f"synapse throughput n={total} concurrency={args.conc} (one user, "
        f"{args.conc} connections): all sends answered in {answered:.2f} s "
        f"({total / answered:.0f} msg/s); all seen by the receiver's /sync in "
        f"{done:.2f} s ({total / done:.0f} msg/s)",
        flush=True,
    )
    print(
        f"synapse resources throughput phase, one process: cpu {cpu * 1000:.0f} ms "
        f"user+sys, {cpu * 1e6 / total:.1f} us/msg; rss {rss / 1024:.1f} MiB; "
        f"peak rss {hwm / 1024:.1f} MiB",
        flush=True,
    )
    watch.stop.set()
    watch.join()
    rate_limited = alice.rate_limited + bob.rate_limited
    rate_limited += sum(c.rate_limited for c in conns) + recv.api.rate_limited
    print(
        f"synapse checks: {rate_limited} rate-limited (429) answers, "
        f"{recv.limited} gapped (limited) syncs, "
        f"{len(watch.bad)} non-loopback sockets in {watch.samples} samples; "
        f"during the throughput phase this driver used {own:.1f} s of CPU and "
        f"everything else on the machine {max(others, 0):.1f} s"
        + ("".join(f"\n  {b}" for b in sorted(watch.bad))),
        flush=True,
    )
    result = {
        "latency_ms": {
            "p50": pct(ms, 0.5),
            "p90": pct(ms, 0.9),
            "p95": pct(ms, 0.95),
            "p99": pct(ms, 0.99),
            "max": ms[-1],
            "n": args.seq,
        },
        "throughput": {
            "n": total,
            "conc": args.conc,
            "answered_s": answered,
            "done_s": done,
            "msg_s": total / done,
        },
        "cpu_us_per_msg": cpu * 1e6 / total,
        "rss_mib": rss / 1024,
        "peak_rss_mib": hwm / 1024,
        "rate_limited": rate_limited,
        "limited_syncs": recv.limited,
        "foreign_sockets": sorted(watch.bad),
        "driver_cpu_s": own,
        "other_cpu_s": others,
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


# ---------------------------------------------------------------- compare


def parse_kith(text):
    def latency(kind):
        m = re.search(
            rf"^latency  {kind} n=(\d+): p50 ([\d.]+) ms  p90 ([\d.]+) ms  "
            rf"p95 ([\d.]+) ms  p99 ([\d.]+) ms  max ([\d.]+) ms",
            text,
            re.M,
        )
        if not m:
            raise SystemExit(f"no 'latency  {kind}' line in Kith's output")
        keys = ("n", "p50", "p90", "p95", "p99", "max")
        return dict(zip(keys, [float(x) for x in m.groups()]))

    m = re.search(
        r"^throughput n=(\d+) concurrency=(\d+):.*all delivered durably in ([\d.]+) s "
        r"\((\d+) msg/s\)",
        text,
        re.M,
    )
    r = re.search(
        r"^resources .*?([\d.]+) us/msg; rss ([\d.]+) MiB.*peak rss ([\d.]+) MiB",
        text,
        re.M,
    )
    if not m or not r:
        raise SystemExit("no throughput or resources line in Kith's output")
    return {
        "received": latency("received"),
        "delivered": latency("sequential"),
        "n": int(m.group(1)),
        "conc": int(m.group(2)),
        "msg_s": float(m.group(4)),
        "cpu_us_per_msg": float(r.group(1)),
        "rss_mib": float(r.group(2)),
        "peak_rss_mib": float(r.group(3)),
    }


def compare(args):
    with open(args.synapse) as f:
        s = json.load(f)
    with open(args.kith) as f:
        k = parse_kith(f.read())
    rows = []
    for p in ("p50", "p95", "p99"):
        rows.append(
            (
                f"latency {p}, ms (send -> receiver has it)",
                k["received"][p],
                s["latency_ms"][p],
                "lower",
            )
        )
    rows.append(
        (
            f"throughput, msg/s (n={k['n']} / {s['throughput']['n']}, "
            f"{k['conc']} connections)",
            k["msg_s"],
            s["throughput"]["msg_s"],
            "higher",
        )
    )
    rows.append(
        (
            "CPU per message, us (throughput phase)",
            k["cpu_us_per_msg"],
            s["cpu_us_per_msg"],
            "lower",
        )
    )
    rows.append(("RSS after throughput, MiB", k["rss_mib"], s["rss_mib"], "lower"))
    rows.append(
        ("peak RSS (VmHWM), MiB", k["peak_rss_mib"], s["peak_rss_mib"], "lower")
    )
    w = max(len(r[0]) for r in rows)
    print(f"{'measure':<{w}}  {'Kith':>10}  {'Synapse':>10}  {'Kith/Synapse':>12}")
    for name, kv, sv, better in rows:
        ratio = kv / sv if sv else float("nan")
        print(
            f"{name:<{w}}  {kv:>10.2f}  {sv:>10.2f}  {ratio:>11.3f}x  ({better} is better)"
        )
    d = k["delivered"]
    print(
        f"\nKith, sender's 'delivered' (recipient stored it and the acknowledgement came "
        f"back): p50 {d['p50']:.2f} / p95 {d['p95']:.2f} / p99 {d['p99']:.2f} ms"
    )
    print(
        "Kith's CPU and RSS are the two daemons summed (sender and recipient each run one);"
        "\nSynapse's are its one process, which serves both users."
    )


def wait_up(args):
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if not os.path.exists(f"/proc/{args.pid}"):
            raise SystemExit("Synapse exited while starting")
        try:
            Api(args.base, timeout=2).call("GET", "/_matrix/client/versions")
            return
        except (OSError, RuntimeError):
            time.sleep(0.25)
    raise SystemExit(f"Synapse did not answer within {args.timeout} s")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--base", required=True)
    r.add_argument("--pid", type=int, required=True)
    r.add_argument("--secret", required=True)
    r.add_argument("--seq", type=int, default=200)
    r.add_argument("--n", type=int, default=8000)
    r.add_argument("--conc", type=int, default=8)
    r.add_argument("--json")
    c = sub.add_parser("compare")
    c.add_argument("--synapse", required=True)
    c.add_argument("--kith", required=True)
    w = sub.add_parser("wait")
    w.add_argument("--base", required=True)
    w.add_argument("--pid", type=int, required=True)
    w.add_argument("--timeout", type=float, default=120)
    args = ap.parse_args()
    try:
        {"run": run, "compare": compare, "wait": wait_up}[args.cmd](args)
    except KeyboardInterrupt:
        # Every thread is a daemon thread: leaving the main one ends the process.
        return 130


if __name__ == "__main__":
    sys.exit(main())
