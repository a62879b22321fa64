#!/usr/bin/env python3
"""Redis operations, bytes and CPU per cluster event, measured on a real
redis-server with three real `tether serve --cluster` nodes (docs/design.md
§7.4 derives Redis's capacity from these figures).

    python3 bench/cluster_costs.py [--bin target/release/tether] [--n 1000]

For each event kind it takes Redis's INFO (commandstats, total_net_input_bytes,
total_net_output_bytes, used_cpu_user+sys) before and after N events and
prints the deltas per event: connects, disconnects, relayed lines (64 B, one
sender on n1, a reader on each node), cross-node kicks, and an idle second of
heartbeats (three nodes). Needs redis-server on PATH.
"""
import argparse, os, shutil, signal, socket, subprocess, sys, tempfile, time

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def redis_info(port):
    s = socket.create_connection(("127.0.0.1", port)); s.sendall(b"INFO all\r\n")
    data = b""
    while True:
        chunk = s.recv(1 << 20)
        if not chunk: break
        data += chunk
        if data.startswith(b"$"):
            n = int(data[1:data.index(b"\r\n")])
            if len(data) >= data.index(b"\r\n") + 2 + n: break
    s.close()
    info = {}
    for line in data.decode().split("\r\n"):
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1); info[k] = v
    calls = 0
    for k, v in info.items():
        if k.startswith("cmdstat_"):
            calls += int(v.split("calls=")[1].split(",")[0])
    cmds = {k[8:]: int(v.split("calls=")[1].split(",")[0]) for k, v in info.items() if k.startswith("cmdstat_")}
    return {"calls": calls, "cmds": cmds, "in": int(info["total_net_input_bytes"]),
            "out": int(info["total_net_output_bytes"]),
            "cpu": float(info["used_cpu_user"]) + float(info["used_cpu_sys"])}

def delta(a, b, n):
    cmds = {k: (b["cmds"].get(k, 0) - a["cmds"].get(k, 0)) / n for k in b["cmds"]}
    cmds = {k: round(v, 2) for k, v in cmds.items() if v > 0}
    return (f"ops={(b['calls'] - a['calls']) / n:.2f} in_B={(b['in'] - a['in']) / n:.0f} "
            f"out_B={(b['out'] - a['out']) / n:.0f} cpu_us={(b['cpu'] - a['cpu']) * 1e6 / n:.1f} {cmds}")

class Line:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port)); self.buf = b""
    def line(self, timeout=10):
        self.s.settimeout(timeout)
        while b"\n" not in self.buf:
            d = self.s.recv(65536)
            if not d: raise EOFError
            self.buf += d
        l, self.buf = self.buf.split(b"\n", 1); return l.decode(errors="replace")
    def send(self, text): self.s.sendall(text.encode() + b"\n")

def console(port, cmd):
    c = Line(port); c.send(cmd); out = []
    while True:
        l = c.line()
        if l in (".", "ok") or l.startswith("error"): out.append(l); break
        out.append(l)
        if cmd.startswith("kick"): break
    c.s.close(); return out

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/tether")
    ap.add_argument("--n", type=int, default=1000)
    a = ap.parse_args(); n = a.n
    tmp = tempfile.mkdtemp(); rport = free_port(); procs = []
    try:
        procs.append(subprocess.Popen(["redis-server", "--port", str(rport), "--save", "", "--appendonly", "no",
                                       "--dir", tmp], stdout=subprocess.DEVNULL))
        time.sleep(0.5)
        nodes = []
        for i in (1, 2, 3):
            chat, admin = free_port(), free_port()
            procs.append(subprocess.Popen([a.bin, "serve", "--cluster", f"redis://127.0.0.1:{rport}", "--node", f"n{i}",
                                           "--listen", f"127.0.0.1:{chat}", "--admin", f"127.0.0.1:{admin}",
                                           "--web", "off", "--max-channels", "20000"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            nodes.append((chat, admin))
        time.sleep(1.5)
        print(f"# uptime: {os.popen('uptime').read().strip()}")
        readers = [Line(c) for c, _ in nodes]
        for r in readers: r.line()
        time.sleep(1.0)
        # Heartbeats: an idle stretch with three nodes.
        b0 = redis_info(rport); time.sleep(5.0); b1 = redis_info(rport)
        print(f"heartbeat (per node per second, 3 nodes): {delta(b0, b1, 15)}")
        # Connects, then disconnects, on n1.
        b0 = redis_info(rport)
        clients = []
        for _ in range(n):
            c = Line(nodes[0][0]); c.line(); clients.append(c)
        time.sleep(1.0); b1 = redis_info(rport)
        print(f"connect (per connect, incl. 1 s of heartbeats / {n}): {delta(b0, b1, n)}")
        ids = []
        b0 = redis_info(rport)
        for c in clients: c.s.close()
        time.sleep(1.0); b1 = redis_info(rport)
        print(f"disconnect (per disconnect): {delta(b0, b1, n)}")
        # Relayed lines: one sender on n1, every node's reader reads every line.
        sender = Line(nodes[0][0]); sid = sender.line().split()[1]
        for r in readers: r.buf = b""
        time.sleep(1.0)
        b0 = redis_info(rport); t0 = time.time()
        payload = "x" * 64
        for i in range(n): sender.send(payload)
        for r in readers:
            got = 0
            while got < n:
                if r.line().endswith(payload): got += 1
        b1 = redis_info(rport)
        print(f"relayed line (64 B, 3 nodes): {delta(b0, b1, n)} wall={time.time() - t0:.2f}s")
        # Cross-node kicks: clients on n2 kicked from n1's console.
        victims = []
        for _ in range(min(n, 200)):
            c = Line(nodes[1][0]); victims.append((c, c.line().split()[1]))
        time.sleep(1.0)
        b0 = redis_info(rport)
        for _, vid in victims:
            assert console(nodes[0][1], f"kick {vid} abort") == ["ok"]
        b1 = redis_info(rport)
        print(f"cross-node kick: {delta(b0, b1, len(victims))}")
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try: p.wait(10)
            except subprocess.TimeoutExpired: p.kill()
        shutil.rmtree(tmp, ignore_errors=True)

if __name__ == "__main__":
    main()
