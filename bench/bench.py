#!/usr/bin/env python3
"""mirror-agent benchmarks: B1-B5 from the benchmarks issue, each with a baseline measured in
the same run, printed as one table. Usage: bench/bench.py path/to/mirror-agent [--quick]

Everything runs on loopback; every process started is ended; every wait is bounded."""
import ctypes, ctypes.util, json, os, random, shutil, signal, socket, statistics, struct
import subprocess, sys, tempfile, threading, time
import b3_scenario  # bench/b3_scenario.py: B3's scenario, also profiled by scripts/text-order/gen-order.py

AGENT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else ".build/release/mirror-agent")
QUICK = "--quick" in sys.argv
TMP = tempfile.mkdtemp(prefix="mirror-agent-bench.")
PROCS = []
ROWS = []


def cleanup():
    for p in PROCS:
        if p.poll() is None:
            p.terminate()
    for p in PROCS:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
    shutil.rmtree(TMP, ignore_errors=True)


def row(name, metric, value, baseline_name, baseline, target, ok):
    ratio = (value / baseline) if baseline else float("nan")
    ROWS.append((name, metric, value, baseline_name, baseline, ratio, target, "met" if ok else "MISSED"))


def fmt(v):
    if isinstance(v, str):
        return v
    if v != v:
        return "-"
    return f"{v:.3f}" if v < 100 else f"{v:.0f}"


def free_port():
    return free_ports(1)[0]


def free_ports(n):
    """n distinct free loopback ports (all held open until all are chosen, so none repeats)."""
    held = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        held.append(s)
    ports = [s.getsockname()[1] for s in held]
    for s in held:
        s.close()
    return ports


# --- inotify through libc, to see an output appear without polling --------------------------
libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
IN_MOVED_TO, IN_CLOSE_WRITE, IN_CREATE = 0x80, 0x8, 0x100


class Inotify:
    def __init__(self, paths):
        self.fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        self.wds = {}
        for p in paths:
            wd = libc.inotify_add_watch(self.fd, p.encode(), IN_MOVED_TO | IN_CLOSE_WRITE | IN_CREATE)
            if wd < 0:
                raise OSError(ctypes.get_errno(), p)
            self.wds[wd] = p

    def wait_for(self, names, timeout):
        """Waits until every (dir, name) in names was moved/written into place; returns the time."""
        import select
        pending = set(names)
        deadline = time.monotonic() + timeout
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"not seen: {pending}")
            r, _, _ = select.select([self.fd], [], [], left)
            if not r:
                continue
            data = os.read(self.fd, 65536)
            i = 0
            while i < len(data):
                wd, mask, cookie, length = struct.unpack_from("iIII", data, i)
                name = data[i + 16:i + 16 + length].rstrip(b"\0").decode()
                i += 16 + length
                if mask & (IN_MOVED_TO | IN_CLOSE_WRITE):
                    pending.discard((self.wds.get(wd), name))
        return time.monotonic()

    def drain(self):
        try:
            while os.read(self.fd, 65536):
                pass
        except BlockingIOError:
            pass

    def close(self):
        os.close(self.fd)


def shipped_yaml(runtimes):
    """The shipped packaging/agent.yaml (every key commented: the defaults) with only `runtimes`
    set, because `auto` detects nothing in a scratch root."""
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "packaging", "agent.yaml")) as f:
        shipped = f.read()
    return shipped + f"\n# bench: a scratch root has no /etc/containerd or /etc/crio to detect\nruntimes: [{', '.join(runtimes)}]\n"


def scratch_root(agent_yaml):
    root = tempfile.mkdtemp(dir=TMP)
    os.makedirs(f"{root}/etc/mirror-agent/mirrors.d")
    with open(f"{root}/etc/mirror-agent/agent.yaml", "w") as f:
        f.write(agent_yaml)
    return root


def start_daemon(root):
    log = open(f"{root}.log", "w")
    p = subprocess.Popen([AGENT, "run", "--root", root], stdout=log, stderr=subprocess.STDOUT)
    PROCS.append(p)
    status = f"{root}/run/mirror-agent/status.json"
    for _ in range(200):
        if os.path.exists(status):
            return p
        time.sleep(0.05)
    raise RuntimeError("the daemon did not start")


def atomic_write(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


# --- B1: reaction latency ----------------------------------------------------------------------
def b1():
    # Shipped settings only: a complete change is reconciled at once, whatever the debounce.
    b1_run(None, 50 if QUICK else 100)


def b1_run(debounce, iterations):
    if debounce is None:
        # Shipped settings (debounce 200ms); probes off only because no mirror here answers.
        root = scratch_root(shipped_yaml(["containerd", "crio"]) + "probe: {enabled: false}\n")
        label = "shipped debounce 200ms"
        window = 0.2
    else:
        root = scratch_root(f"runtimes: [containerd, crio]\ndaemon: {{debounce: {debounce}}}\nprobe: {{enabled: false}}\n")
        label = f"changed: debounce {debounce}"
        window = int(debounce.rstrip("ms")) / 1000
    daemon = start_daemon(root)
    dropins = f"{root}/etc/mirror-agent/mirrors.d"
    hosts_dir = f"{root}/etc/containerd/certs.d/bench.example"
    crio_dir = f"{root}/etc/containers/registries.conf.d"

    def drop(i):
        atomic_write(f"{dropins}/.bench.tmp", f'mirrors:\n  bench.example:\n    endpoint: ["http://10.0.{i % 200}.1:5000"]\n'.encode())
        os.rename(f"{dropins}/.bench.tmp", f"{dropins}/bench.yaml")

    drop(9999)
    for _ in range(100):
        if os.path.exists(f"{hosts_dir}/hosts.toml") and os.path.exists(f"{crio_dir}/99-mirror-agent.conf"):
            break
        time.sleep(0.05)
    watch = Inotify([hosts_dir, crio_dir])
    time.sleep(0.25 + 2 * window)  # the first drop, too, comes after a quiet window
    agent, base = [], []
    for i in range(iterations):
        watch.drain()
        t0 = time.monotonic()
        drop(i)
        t1 = watch.wait_for({(hosts_dir, "hosts.toml"), (crio_dir, "99-mirror-agent.conf")}, 10)
        agent.append((t1 - t0) * 1000)
        time.sleep(0.02)
        # Baseline: cp + fsync + mv of the same output bytes.
        outputs = [open(f"{hosts_dir}/hosts.toml", "rb").read(), open(f"{crio_dir}/99-mirror-agent.conf", "rb").read()]
        watch.drain()
        t0 = time.monotonic()
        atomic_write(f"{hosts_dir}/hosts.toml.base", outputs[0])
        os.rename(f"{hosts_dir}/hosts.toml.base", f"{hosts_dir}/hosts.toml")
        atomic_write(f"{crio_dir}/base.tmp", outputs[1])
        os.rename(f"{crio_dir}/base.tmp", f"{crio_dir}/99-mirror-agent.conf")
        t1 = watch.wait_for({(hosts_dir, "hosts.toml"), (crio_dir, "99-mirror-agent.conf")}, 10)
        base.append((t1 - t0) * 1000)
        # The agent checks the "drift" the baseline made (at once, then once more after the
        # debounce window); let it settle so the next drop comes after a quiet window.
        time.sleep(0.25 + 2 * window)
    watch.close()
    daemon.terminate()
    daemon.wait(5)
    p50, p99, b50, b99 = pct(agent, 50), pct(agent, 99), pct(base, 50), pct(base, 99)
    row(f"B1 reaction latency ({label})", "p50 ms", p50, "cp+fsync+mv p50", b50, "-", True)
    row(f"B1 reaction latency ({label})", f"p99 ms ({iterations} drops)", p99, "cp+fsync+mv p99", b99, "p99<=50ms and <=3x", p99 <= 50 and p99 <= 3 * b99)


# --- B2: scale ----------------------------------------------------------------------------------
def b2():
    root = scratch_root(shipped_yaml(["containerd", "crio"]))
    lines = []
    for i in range(2000):
        lines.append(f"  reg{i}.bench.example:\n    endpoint: [\"https://m{i}a.mirror.example\", \"https://m{i}b.mirror.example:5000\", \"http://10.{i // 250}.{i % 250}.3:6000\"]\n")
    with open(f"{root}/etc/mirror-agent/mirrors.d/scale.yaml", "w") as f:
        f.write("mirrors:\n" + "".join(lines))

    def timed(args):
        t0 = time.monotonic()
        r = subprocess.run(["/usr/bin/time", "-f", "%M", *args], capture_output=True, text=True, timeout=300)
        elapsed = time.monotonic() - t0
        rss_kib = int(r.stderr.strip().splitlines()[-1])
        return elapsed, rss_kib, r

    full, rss, r = timed([AGENT, "apply", "--root", root, "--json"])
    written = len(json.loads(r.stdout)["written"])
    noop, _, r2 = timed([AGENT, "apply", "--root", root, "--json"])
    rewritten = len(json.loads(r2.stdout)["written"])
    # Baseline: the same files written atomically (tmp + fsync + rename) by a minimal script.
    out = []
    for d, _, files in os.walk(f"{root}/etc/containerd/certs.d"):
        for name in files:
            out.append((os.path.join(d, name), open(os.path.join(d, name), "rb").read()))
    dest = tempfile.mkdtemp(dir=TMP)
    t0 = time.monotonic()
    for i, (path, data) in enumerate(out):
        target = f"{dest}/{i}"
        os.makedirs(target)
        atomic_write(f"{target}/hosts.toml", data)
    base = time.monotonic() - t0
    row("B2 scale 2000x3", f"full apply s ({written} files)", full, "tmp+fsync+rename per file, same files s", base, "<=0.5s and < baseline", full <= 0.5 and full < base)
    row("B2 scale 2000x3", "peak RSS MiB", rss / 1024, "-", 0, "<=64MiB", rss / 1024 <= 64)
    row("B2 scale 2000x3", f"no-op apply s ({rewritten} files written)", noop, "full apply s", full, "<=0.3s, 0 files", noop <= 0.3 and rewritten == 0)


# --- B3: idle cost ------------------------------------------------------------------------------
def proc_cost(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
    return cpu, rss


def b3():
    seconds = 20 if QUICK else 60
    # 100 endpoints: a few real listeners answering 200 on many ports.
    ports = free_ports(100)
    srv = subprocess.Popen([sys.executable, "-c", HTTP_200_SERVER, *map(str, ports)])
    PROCS.append(srv)
    time.sleep(1)
    results = {}
    for probes in (False, True):
        root = scratch_root(b3_scenario.agent_yaml(probes))
        with open(f"{root}/etc/mirror-agent/mirrors.d/idle.yaml", "w") as f:
            f.write(b3_scenario.mirrors_yaml(ports))
        d = start_daemon(root)
        time.sleep(2)
        cpu0, _ = proc_cost(d.pid)
        baseline = subprocess.Popen(["sleep", str(seconds + 5)])
        PROCS.append(baseline)
        time.sleep(seconds)
        cpu1, rss = proc_cost(d.pid)
        bcpu, brss = proc_cost(baseline.pid)
        results[probes] = (cpu1 - cpu0, rss, brss)
        d.terminate()
        d.wait(5)
        baseline.kill()
    minutes = seconds / 60
    off, on = results[False], results[True]
    # The binary as packaged: dh_strip strips it; here a stripped copy.
    stripped = f"{TMP}/mirror-agent.stripped"
    subprocess.run(["strip", "--strip-all", "-o", stripped, AGENT], check=True)
    size, full_size = os.path.getsize(stripped) / 1e6, os.path.getsize(AGENT) / 1e6
    row("B3 binary size", "stripped MB", size, "unstripped MB", full_size, "<=35MB", size <= 35)
    row("B3 idle, probes off", f"CPU s per idle minute ({seconds}s)", off[0] / minutes, "-", 0, "<=0.1s/min", off[0] / minutes <= 0.1)
    row("B3 idle, probes off", "RSS MiB", off[1], "sleep(1) RSS MiB", off[2], "<=16MiB", off[1] <= 16)
    row("B3 idle, probes on (100 endpoints, 30s)", "CPU s per minute", on[0] / minutes, "probes off", off[0] / minutes, "-", True)
    row("B3 idle, probes on (100 endpoints, 30s)", "RSS MiB", on[1], "probes off RSS MiB", off[1], "-", True)


HTTP_200_SERVER = r"""
import asyncio, sys
async def handle(reader, writer):
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            while (await reader.readline()) not in (b"\r\n", b""):
                pass
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}")
            await writer.drain()
    except Exception:
        pass
    finally:
        writer.close()
async def main():
    servers = [await asyncio.start_server(handle, "127.0.0.1", int(p), backlog=512) for p in sys.argv[1:]]
    await asyncio.sleep(3600)
asyncio.run(main())
"""

HUNG_SERVER = r"""
import asyncio, sys
held = []
async def handle(reader, writer):
    held.append(writer)
    await asyncio.sleep(3600)
async def main():
    servers = [await asyncio.start_server(handle, "127.0.0.1", int(p), backlog=512) for p in sys.argv[1:]]
    await asyncio.sleep(3600)
asyncio.run(main())
"""


# --- B4: probe fan-out ----------------------------------------------------------------------------
def b4():
    ports = free_ports(500)
    up_ports, hung_ports, refused_ports = ports[:170], ports[170:330], ports[330:]
    for script, ports in ((HTTP_200_SERVER, up_ports), (HUNG_SERVER, hung_ports)):
        p = subprocess.Popen([sys.executable, "-c", script, *map(str, ports)])
        PROCS.append(p)
    time.sleep(1.5)
    # Shipped probe settings: timeout 5s, connectTimeout 2s, concurrency 256.
    root = scratch_root(shipped_yaml(["containerd"]))
    entries = []
    for i, port in enumerate(up_ports + hung_ports + refused_ports):
        entries.append(f'  r{i}.fanout.example:\n    endpoint: ["http://127.0.0.1:{port}"]\n')
    with open(f"{root}/etc/mirror-agent/mirrors.d/fanout.yaml", "w") as f:
        f.write("mirrors:\n" + "".join(entries))
    t0 = time.monotonic()
    r = subprocess.run([AGENT, "probe", "--root", root, "--json"], capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - t0
    report = json.loads(r.stdout)
    # Baseline: one probe of one hung endpoint (one timeout) in the same run.
    one = scratch_root(shipped_yaml(["containerd"]))
    with open(f"{one}/etc/mirror-agent/mirrors.d/one.yaml", "w") as f:
        f.write(f'mirrors:\n  one.example:\n    endpoint: ["http://127.0.0.1:{hung_ports[0]}"]\n')
    t0 = time.monotonic()
    subprocess.run([AGENT, "probe", "--root", one, "--json"], capture_output=True, timeout=60)
    single = time.monotonic() - t0
    correct = report["endpoints"] == 500 and report["up"] == 170
    row("B4 probe fan-out (shipped: timeout 5s, concurrency 256)", f"500 endpoints s ({report['up']} up, {report['down']} down)", elapsed, "1 hung endpoint s",
        single, "<=5.5s (timeout+10%), 170 up", elapsed <= 5.5 and correct)


# --- B5: a pull past a hung mirror ------------------------------------------------------------------
def b5():
    if not shutil.which("containerd") or not shutil.which("docker-registry"):
        row("B5 pull past a hung mirror", "skipped (containerd or docker-registry missing)", float("nan"), "-", 0, ">=10x", False)
        return
    work = tempfile.mkdtemp(dir=TMP)
    port = free_port()
    with open(f"{work}/registry.yml", "w") as f:
        f.write(f"version: 0.1\nlog: {{level: warn}}\nstorage: {{filesystem: {{rootdirectory: {work}/data}}}}\nhttp: {{addr: 127.0.0.1:{port}}}\n")
    reg = subprocess.Popen(["docker-registry", "serve", f"{work}/registry.yml"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    PROCS.append(reg)
    hung = free_port()
    h = subprocess.Popen([sys.executable, "-c", HUNG_SERVER, str(hung)])
    PROCS.append(h)
    sock = f"{work}/containerd.sock"
    with open(f"{work}/containerd.toml", "w") as f:
        f.write(f'version = 2\nroot = "{work}/c-root"\nstate = "{work}/c-state"\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n[grpc]\n  address = "{sock}"\n[ttrpc]\n  address = "{work}/containerd-ttrpc.sock"\n[plugins."io.containerd.internal.v1.opt"]\n  path = "{work}/opt"\n')
    ctrd = subprocess.Popen(["containerd", "--config", f"{work}/containerd.toml"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    PROCS.append(ctrd)
    for _ in range(100):
        if subprocess.run(["ctr", "--address", sock, "version"], capture_output=True).returncode == 0:
            break
        time.sleep(0.1)
    # A tiny image on the good mirror.
    subprocess.run(["bash", "-c", f'source "{os.path.dirname(os.path.abspath(__file__))}/../tests/integration/lib.sh"; H_TMP={work}; make_oci_image {work}/oci 1 && skopeo copy --quiet --insecure-policy --dest-tls-verify=false oci:{work}/oci:1 docker://127.0.0.1:{port}/library/hello:1'], check=True, capture_output=True, timeout=120)
    static = f"{work}/static-hosts/hung.invalid"
    os.makedirs(static)
    with open(f"{static}/hosts.toml", "w") as f:
        f.write(f'server = "https://hung.invalid"\n[host."http://127.0.0.1:{hung}"]\n  capabilities = ["pull", "resolve"]\n[host."http://127.0.0.1:{port}"]\n  capabilities = ["pull", "resolve"]\n')

    def pull(hosts, limit):
        subprocess.run(["ctr", "--address", sock, "-n", "bench", "image", "rm", "--sync", "hung.invalid/library/hello:1"], capture_output=True)
        t0 = time.monotonic()
        try:
            r = subprocess.run(["ctr", "--address", sock, "-n", "bench", "image", "pull", "--hosts-dir", hosts, "hung.invalid/library/hello:1"], capture_output=True, timeout=limit)
            return time.monotonic() - t0, r.returncode == 0
        except subprocess.TimeoutExpired:
            return float(limit), False

    limit = 30
    static_time, static_ok = pull(f"{work}/static-hosts", limit)
    root = scratch_root("runtimes: [containerd]\ndaemon: {debounce: 20ms}\nprobe: {interval: 1s, jitter: 0s, timeout: 1s, connectTimeout: 1s, failureThreshold: 2, successThreshold: 2, onUnhealthy: demote}\n")
    with open(f"{root}/etc/mirror-agent/mirrors.d/hung.yaml", "w") as f:
        f.write(f'mirrors:\n  hung.invalid:\n    endpoint: ["http://127.0.0.1:{hung}", "http://127.0.0.1:{port}"]\n')
    d = start_daemon(root)
    rendered = f"{root}/etc/containerd/certs.d/hung.invalid/hosts.toml"
    for _ in range(200):
        if os.path.exists(rendered) and f"127.0.0.1:{hung}" not in open(rendered).read():
            break
        time.sleep(0.1)
    agent_time, agent_ok = pull(f"{root}/etc/containerd/certs.d", limit)
    d.terminate()
    d.wait(5)
    label = f">= {limit}s (timed out)" if not static_ok else f"{static_time:.2f}s"
    ratio_ok = agent_ok and static_time / max(agent_time, 1e-3) >= 10
    row("B5 pull past a hung mirror", f"after demotion s (static hosts.toml: {label})", agent_time, "static hosts.toml s", static_time, ">=10x faster", ratio_ok)


SWITCH_SERVER = r"""
import asyncio, os, sys
flag = sys.argv[1]
async def handle(reader, writer):
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            while (await reader.readline()) not in (b"\r\n", b""):
                pass
            if os.path.exists(flag):
                await asyncio.sleep(3600)  # hung: the connection stays open, nothing comes back
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}")
            await writer.drain()
    except Exception:
        pass
    finally:
        writer.close()
async def main():
    servers = [await asyncio.start_server(handle, "127.0.0.1", int(p)) for p in sys.argv[2:]]
    await asyncio.sleep(3600)
asyncio.run(main())
"""


def start_switched_failover(host, flag_name):
    """B5's setup: a switchable first mirror (hangs while TMP/flag_name exists) and a good second
    one for `host`, the daemon with the shipped settings and onUnhealthy: demote. Returns the
    flag path, the first mirror's port, the scratch root and the daemon."""
    first_port, good_port = free_ports(2)
    flag = f"{TMP}/{flag_name}"
    PROCS.append(subprocess.Popen([sys.executable, "-c", SWITCH_SERVER, flag, str(first_port), str(good_port)]))
    time.sleep(1)
    root = scratch_root(shipped_yaml(["containerd"]) + "# bench: the setting B5 is about\nprobe: {onUnhealthy: demote}\n")
    with open(f"{root}/etc/mirror-agent/mirrors.d/{host.split('.')[0]}.yaml", "w") as f:
        f.write(f'mirrors:\n  {host}:\n    endpoint: ["http://127.0.0.1:{first_port}", "http://127.0.0.1:{good_port}"]\n')
    return flag, first_port, root, start_daemon(root)


# --- B5 failover: a mirror starts hanging; how long until the agent leaves it out ------------------
def b5f():
    """Shipped probe settings (interval 30s + jitter 3s, timeout 5s, failureThreshold 3) with
    onUnhealthy: demote. The first mirror answers, then hangs (connections accepted, no answer);
    measured: from the hang to the rendered hosts.toml without it, and from the first failed probe
    (its journal line) to that."""
    flag, hung_port, root, d = start_switched_failover("failover.example", "hang-now")
    status = f"{root}/run/mirror-agent/status.json"
    rendered = f"{root}/etc/containerd/certs.d/failover.example/hosts.toml"
    log = f"{root}.log"

    def up_count():
        try:
            return sum(1 for p in json.load(open(status)).get("probes", []) if p.get("state") == "up")
        except (OSError, ValueError):
            return 0

    deadline = time.monotonic() + 30
    while up_count() < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    open(flag, "w").close()
    hang = time.monotonic()
    failing = demoted = None
    deadline = hang + 120
    while time.monotonic() < deadline and demoted is None:
        now = time.monotonic()
        if failing is None and "is failing" in open(log).read():
            failing = now
        try:
            if f"127.0.0.1:{hung_port}" not in open(rendered).read():
                demoted = now
        except OSError:
            pass
        time.sleep(0.02)
    d.terminate()
    d.wait(5)
    os.unlink(flag)
    if demoted is None or failing is None:
        row("B5 failover (shipped probe settings, demote)", "demotion not seen within 120 s", float("nan"), "-", 0, "<=15s after the first failed probe", False)
        return
    # Without rechecks the threshold needs two more full rounds after the first failure: 2 x
    # (interval 30 s + mean jitter 1.5 s + timeout 5 s), computed, not measured.
    before = 2 * (30 + 1.5 + 5)
    after_fail = demoted - failing
    row("B5 failover (shipped probe settings, demote)", "first failed probe -> hosts.toml without the mirror s", after_fail,
        "full rounds only (before rechecks; computed) s", before, "<=15s", after_fail <= 15)
    row("B5 failover (shipped probe settings, demote)", "mirror hangs -> hosts.toml without it s", demoted - hang,
        "of which waiting for the next 30s round s", failing - 5 - hang, "-", True)


# --- B5 over CRI: a mirror starts hanging while the kubelet's pulls are running ----------------------
RELAY_SERVER = r"""
import asyncio, os, sys
flag, listen, target, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
serving = None
async def watch():
    while True:
        if os.path.exists(flag):
            serving.clear()
        else:
            serving.set()
        await asyncio.sleep(0.01)
async def pipe(reader, writer, limit):
    try:
        while True:
            data = await reader.read(16384)
            if not data:
                break
            await serving.wait()  # hung: bytes stop moving, the connection stays open
            writer.write(data)
            await writer.drain()
            if limit:
                await asyncio.sleep(len(data) / limit)
    except Exception:
        pass
    finally:
        writer.close()
async def handle(creader, cwriter):
    await serving.wait()  # hung: accepted, never answered
    try:
        ureader, uwriter = await asyncio.open_connection("127.0.0.1", target)
    except OSError:
        cwriter.close()
        return
    await asyncio.gather(pipe(creader, uwriter, 0), pipe(ureader, cwriter, rate))
async def main():
    global serving
    serving = asyncio.Event()
    asyncio.get_running_loop().create_task(watch())
    await asyncio.start_server(handle, "127.0.0.1", listen, backlog=512)
    await asyncio.sleep(3600)
asyncio.run(main())
"""

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def registry_push_image(port, repo, tag, layer_size):
    """Pushes a one-layer OCI image (a layer of layer_size random bytes, its own config) through
    the registry API, with Python's http.client: one distinct image per tag, so that no pull is
    answered from content another pull left behind."""
    import gzip, hashlib, http.client, io, tarfile, urllib.parse
    payload = os.urandom(layer_size)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as t:
        info = tarfile.TarInfo("payload")
        info.size, info.mtime = len(payload), 0
        t.addfile(info, io.BytesIO(payload))
    tar = raw.getvalue()
    layer = gzip.compress(tar, compresslevel=1, mtime=0)
    sha = lambda b: "sha256:" + hashlib.sha256(b).hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [sha(tar)]}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(config), "size": len(config)},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha(layer), "size": len(layer)}]}).encode()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        for blob in (layer, config):
            c.request("POST", f"/v2/{repo}/blobs/uploads/", headers={"Content-Length": "0"})
            r = c.getresponse()
            r.read()
            loc = urllib.parse.urlsplit(r.getheader("Location"))
            query = (loc.query + "&" if loc.query else "") + urllib.parse.urlencode({"digest": sha(blob)})
            c.request("PUT", f"{loc.path}?{query}", body=blob, headers={"Content-Type": "application/octet-stream"})
            r = c.getresponse()
            r.read()
            if r.status != 201:
                raise RuntimeError(f"blob upload to 127.0.0.1:{port}: HTTP {r.status}")
        c.request("PUT", f"/v2/{repo}/manifests/{tag}", body=manifest, headers={"Content-Type": OCI_MANIFEST})
        r = c.getresponse()
        r.read()
        if r.status != 201:
            raise RuntimeError(f"manifest push to 127.0.0.1:{port}: HTTP {r.status}")
    finally:
        c.close()


def start_registry(work, name):
    """Debian's docker-registry on loopback, its access log (one line per request) in a file."""
    port = free_port()
    os.makedirs(f"{work}/{name}")
    with open(f"{work}/{name}/registry.yml", "w") as f:
        f.write(f"version: 0.1\nlog: {{level: error, accesslog: {{disabled: false}}}}\n"
                f"storage: {{filesystem: {{rootdirectory: {work}/{name}/data}}}}\nhttp: {{addr: 127.0.0.1:{port}}}\n")
    p = subprocess.Popen(["docker-registry", "serve", f"{work}/{name}/registry.yml"],
                         stdout=open(f"{work}/{name}/access.log", "w"), stderr=open(f"{work}/{name}/error.log", "w"))
    PROCS.append(p)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return port, f"{work}/{name}/access.log"
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("docker-registry did not start")


def start_cri_containerd(work, config_path):
    """A private containerd with its CRI plugin (the kubelet's API) reading hosts.toml from
    config_path. In a container (no AppArmor, no writable oom_score_adj below ours, no overlay
    inside overlay, no CNI) it starts with: disable_apparmor, restrict_oom_score_adj, the native
    snapshotter; a missing CNI config only stops pod networking, never image pulls."""
    os.makedirs(work)
    sock = f"{work}/containerd.sock"
    with open(f"{work}/containerd.toml", "w") as f:
        f.write(f'''version = 2
root = "{work}/root"
state = "{work}/state"
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{work}/containerd-ttrpc.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "{work}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  disable_apparmor = true
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{work}/cni/bin"
    conf_dir = "{work}/cni/conf"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{config_path}"
''')
    p = subprocess.Popen(["containerd", "--config", f"{work}/containerd.toml"], stdout=subprocess.DEVNULL,
                         stderr=open(f"{work}/containerd.log", "w"))
    PROCS.append(p)
    return p, sock


def b5cri():
    """B5 as the kubelet feels it: pulls through containerd's CRI plugin (ImageService/PullImage on
    its socket) while the first of two mirrors starts hanging (accepts, never answers) at T0.
    Shipped agent.yaml with only probe.onUnhealthy changed: `demote`, then `keep` (the baseline)."""
    missing = [c for c in ("containerd", "docker-registry") if not shutil.which(c)]
    try:
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e", "cri"))
        import grpc, api_pb2, api_pb2_grpc
    except ImportError as e:
        missing.append(f"python3-grpcio/python3-protobuf ({e})")
    if missing:
        row("B5 CRI failover", f"skipped ({', '.join(missing)} missing)", float("nan"), "-", 0, "<=15s", False)
        return
    rate, layer = 512 * 1024, 1024 * 1024       # each connection served at 512 KiB/s: a pull lasts ~2 s
    every, before, after = 0.5, 10.0, 60.0 if QUICK else 70.0
    deadline = 30.0                              # per PullImage (the bench's bound; see the README)
    long_deadline = 60.0 if QUICK else 120.0     # one pull at T0 + 0 s: how long containerd waits
    tags = int((before + after) / every) + 2
    work = tempfile.mkdtemp(dir=TMP)
    (r1, log1), (r2, log2) = start_registry(work, "reg-a"), start_registry(work, "reg-b")
    t = time.monotonic()
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda job: registry_push_image(job[0], "bench/img", f"p{job[1]}", layer),
                      [(port, i) for i in range(tags) for port in (r1, r2)]))
    print(f"# B5CRI: {tags} images of {layer >> 10} KiB pushed to both registries in {time.monotonic() - t:.1f}s", flush=True)
    results = {}
    for mode in ("demote", "keep"):
        results[mode] = b5cri_run(mode, work, (r1, log1), (r2, log2), rate, every, before, after, deadline, long_deadline, tags, grpc, api_pb2, api_pb2_grpc)
    b5cri_report(results, before, after, deadline, long_deadline)


def b5cri_run(mode, work, reg_a, reg_b, rate, every, before, after, deadline, long_deadline, tags, grpc, api_pb2, api_pb2_grpc):
    (r1, log1), (r2, log2) = reg_a, reg_b
    flag = f"{work}/hang-{mode}"
    m1, m2 = free_ports(2)
    for listen, target, switch in ((m1, r1, flag), (m2, r2, f"{work}/never-{mode}")):
        p = subprocess.Popen([sys.executable, "-c", RELAY_SERVER, switch, str(listen), str(target), str(rate)])
        PROCS.append(p)
    relays = PROCS[-2:]
    root = scratch_root(shipped_yaml(["containerd"]) + f"# bench: the setting B5 is about\nprobe: {{onUnhealthy: {mode}}}\n")
    with open(f"{root}/etc/mirror-agent/mirrors.d/failover.yaml", "w") as f:
        f.write(f'mirrors:\n  failover.invalid:\n    endpoint: ["http://127.0.0.1:{m1}", "http://127.0.0.1:{m2}"]\n')
    ctrd, sock = start_cri_containerd(f"{work}/containerd-{mode}", f"{root}/etc/containerd/certs.d")
    channel = grpc.insecure_channel("unix://" + sock)
    images = api_pb2_grpc.ImageServiceStub(channel)
    for _ in range(100):
        try:
            images.ListImages(api_pb2.ListImagesRequest(), timeout=2)
            break
        except grpc.RpcError:
            time.sleep(0.1)
    else:
        raise RuntimeError(f"containerd's CRI plugin did not answer; see {work}/containerd-{mode}/containerd.log")
    agent = start_daemon(root)
    status, rendered, log = f"{root}/run/mirror-agent/status.json", f"{root}/etc/containerd/certs.d/failover.invalid/hosts.toml", f"{root}.log"

    def up_count():
        try:
            return sum(1 for p in json.load(open(status)).get("probes", []) if p.get("state") == "up")
        except (OSError, ValueError):
            return 0

    limit = time.monotonic() + 30
    while (up_count() < 2 or not os.path.exists(rendered)) and time.monotonic() < limit:
        time.sleep(0.05)
    if up_count() < 2:
        raise RuntimeError(f"the mirrors were not up in 30 s: {open(log).read()[-2000:]}")
    a0 = sum(1 for line in open(log1) if "/manifests/" in line)
    b0 = sum(1 for line in open(log2) if "/manifests/" in line)
    pulls, threads, long_pulls = [], [], []

    def pull(i, started, limit=deadline, into=pulls):
        ref = f"failover.invalid/bench/img:p{i}"
        error, details = "", ""
        try:
            images.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=ref)), timeout=limit)
        except grpc.RpcError as e:
            error, details = e.code().name, e.details()
        took = time.monotonic() - started
        into.append({"tag": f"p{i}", "start": started, "took": took, "error": error, "details": details})
        if not error:
            try:
                images.RemoveImage(api_pb2.RemoveImageRequest(image=api_pb2.ImageSpec(image=ref)), timeout=10)
            except grpc.RpcError:
                pass

    events = {"failing": None, "down": None, "rendered": []}
    stop = threading.Event()

    def watch():
        seen = open(rendered).read()
        while not stop.wait(0.02):
            now = time.monotonic()
            text = open(log).read()
            if events["failing"] is None and "is failing" in text:
                events["failing"] = now
            if events["down"] is None and " is down " in text:
                events["down"] = now
            try:
                current = open(rendered).read()
            except OSError:
                continue
            if current != seen:
                seen = current
                events["rendered"].append((now, f"127.0.0.1:{m1}" in current))

    watcher = threading.Thread(target=watch)
    watcher.start()
    start = time.monotonic()
    t0 = start + before
    hung = False
    for i in range(tags):
        at = start + i * every
        if at > t0 + after:
            break
        if not hung and at >= t0:
            while time.monotonic() < t0:
                time.sleep(0.001)
            open(flag, "w").close()   # T0: the first mirror hangs (the relay stops moving bytes)
            hung = True
            # The kubelet sets no deadline on PullImage (remote_image.go: context.WithCancel); one
            # pull right after T0 with a long one (bounded here) shows how long containerd waits.
            th = threading.Thread(target=pull, args=(tags - 1, time.monotonic(), long_deadline, long_pulls))
            th.start()
            threads.append(th)
        while time.monotonic() < at:
            time.sleep(0.005)
        th = threading.Thread(target=pull, args=(i, time.monotonic()))
        th.start()
        threads.append(th)
    for th in threads:
        th.join(long_deadline + 15)
    stop.set()
    watcher.join()
    agent.terminate()
    agent.wait(5)
    channel.close()
    for p in relays + [ctrd]:
        p.terminate()
        p.wait(10)
    os.unlink(flag)
    # Who answered each pull's manifest request (the tags are unique: one image per pull).
    served = {}
    for name, path, skip in (("a", log1, a0), ("b", log2, b0)):
        lines = [line for line in open(path) if "/manifests/" in line][skip:]
        for line in lines:
            tag = line.split("/manifests/")[1].split()[0].split("?")[0]
            if '" 200 ' in line:
                served.setdefault(tag, set()).add(name)
    for p in pulls + long_pulls:
        p["start"] -= t0
        p["served"] = "+".join(sorted(served.get(p["tag"], ()))) or "-"
    for key in ("failing", "down"):
        if events[key] is not None:
            events[key] -= t0
    events["rendered"] = [(t - t0, has) for t, has in events["rendered"]]
    events["long"] = long_pulls
    return sorted(pulls, key=lambda p: p["start"]), events


def b5cri_report(results, before, after, deadline, long_deadline):
    fast = 10.0   # a pull not held by the hung mirror takes ~2-3 s here; a held one takes its deadline
    name = "B5 CRI failover (shipped probe settings)"
    summary = {}
    for mode, (pulls, events) in results.items():
        print(f"# B5CRI {mode}: T0 -> first failed probe {fmt_s(events['failing'])}, -> down {fmt_s(events['down'])}, "
              f"hosts.toml changes {[(round(t, 2), 'with' if has else 'without') for t, has in events['rendered']]}")
        print("#   start s  took s  result             manifest served by (a: the mirror that hangs at T0, b: the second)")
        for p in pulls + [dict(p, error=(p["error"] or "ok") + f" ({long_deadline:.0f}s deadline)") for p in events["long"]]:
            print(f"#   {p['start']:7.2f} {p['took']:7.2f}  {p['error'] or 'ok':18} {p['served']:3} {p['details'][-160:]}")
        good = lambda p: not p["error"] and p["took"] <= fast
        stopped = None   # the first start after T0 from which every pull completed fast
        for i, p in enumerate(pulls):
            if p["start"] >= 0 and all(good(q) for q in pulls[i:]):
                stopped = p["start"]
                break
        summary[mode] = stopped
        in_flight = [p for p in pulls if p["start"] < 0 < p["start"] + p["took"]]
        failed = [p for p in in_flight if p["error"]]
        later = [p for p in pulls if p["start"] >= 0]
        held = [p for p in later if not good(p)]
        row(f"{name}, onUnhealthy: {mode}", f"pulls in flight at T0: {len(in_flight)}, {len(failed)} failed "
            f"({', '.join(sorted(set(p['error'] for p in failed))) or '-'}); longest s", max((p["took"] for p in in_flight), default=float("nan")),
            "pull deadline s", deadline, "-", True)
        row(f"{name}, onUnhealthy: {mode}", f"pulls started after T0 held to their deadline or failed: {len(held)} of {len(later)} "
            f"({sum(1 for p in later if p['served'] == 'b' and good(p))} fast via mirror b)", len(held), "-", 0, "-", True)
        for p in events["long"]:
            row(f"{name}, onUnhealthy: {mode}", f"a pull at T0+{p['start']:.1f}s with a {long_deadline:.0f}s deadline: {p['error'] or 'ok'} after s",
                p["took"], "its deadline s", long_deadline, "-", True)
        if mode == "demote":
            demote_events = events
    d, k = summary.get("demote"), summary.get("keep")
    keep_label = f"{k:.1f}s" if k is not None else f"never in {after:.0f}s"
    row(name, f"T0 (mirror hangs) -> new pulls stop waiting on it s (keep: {keep_label})", d if d is not None else float("nan"),
        "onUnhealthy: keep s (window if never)", k if k is not None else after, "demote < keep", d is not None and (k is None or d < k))
    failing = demote_events["failing"]
    without = [t for t, has in demote_events["rendered"] if not has]
    if failing is not None and without:
        row(name, "demote: first failed probe -> hosts.toml without the mirror s", without[0] - failing,
            "T0 -> first failed probe s", failing, "<=15s", without[0] - failing <= 15)
    if failing is not None and d is not None:
        row(name, "demote: first failed probe -> new CRI pulls stop waiting s", d - failing, "T0 -> first failed probe s", failing, "<=15s", d - failing <= 15)
    else:
        row(name, "demote: new CRI pulls never stopped waiting within the window", float("nan"), "-", 0, "<=15s", False)


def fmt_s(v):
    return "-" if v is None else f"{v:.2f}s"


# --- B5 hysteresis: a flapping mirror and the files --------------------------------------------------
def b5flap():
    """Shipped probe settings with onUnhealthy: demote; the first mirror flaps for 150 s: hung 3 s,
    answering 3 s, again and again (a probe and its rechecks, timeout 5 s + 1 s apart, see the
    same phase, so a failed round probe is followed by failed rechecks: it does get demoted).
    Measured: how often the rendered hosts.toml changes, and the shortest time between changes.
    Hysteresis: down needs 3 failed probes in a row, up 2 good full rounds, so two changes are
    never closer than one interval (30 s)."""
    flag, _, root, d = start_switched_failover("flap.example", "flap-now")
    rendered = f"{root}/etc/containerd/certs.d/flap.example/hosts.toml"
    for _ in range(200):
        if os.path.exists(rendered):
            break
        time.sleep(0.05)
    seen = open(rendered).read()
    changes, flips = [], 0
    start = time.monotonic()
    duration = 90 if QUICK else 150
    while time.monotonic() - start < duration:
        phase = (time.monotonic() - start) % 6
        hang = phase < 3
        if hang != os.path.exists(flag):
            open(flag, "w").close() if hang else os.unlink(flag)
            flips += 1
        current = open(rendered).read()
        if current != seen:
            seen = current
            changes.append(time.monotonic() - start)
        time.sleep(0.02)
    d.terminate()
    d.wait(5)
    if os.path.exists(flag):
        os.unlink(flag)
    gaps = [b - a for a, b in zip(changes, changes[1:])]
    shortest = min(gaps) if gaps else float("nan")
    print(f"# B5FLAP: {flips} flips, hosts.toml changed at {[round(c, 1) for c in changes]} s")
    row("B5 hysteresis, flapping mirror (shipped probe settings, demote)", f"hosts.toml changes in {duration}s: {len(changes)} "
        f"(the mirror changed {flips} times: hung 3 s, up 3 s); shortest gap s", shortest, "probe interval s", 30,
        ">=30s between changes", not gaps or shortest >= 30)


def main():
    if not os.access(AGENT, os.X_OK):
        sys.exit(f"no agent binary at {AGENT}")
    benches = [b1, b2, b3, b4, b5f, b5, b5cri, b5flap]
    only = [a for a in sys.argv[2:] if a.startswith("B")]
    try:
        for bench in benches:
            if only and bench.__name__.upper() not in only:
                continue
            print(f"# running {bench.__name__.upper()} ...", flush=True)
            bench()
    finally:
        cleanup()
    cpu = open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0].strip(": \t") if os.path.exists("/proc/cpuinfo") else "?"
    print(f"\nmirror-agent benchmarks on {os.cpu_count()} cores ({cpu}), {time.strftime('%Y-%m-%d')}")
    header = ("benchmark", "metric", "value", "baseline", "baseline value", "ratio", "target", "result")
    table = [header] + [(a, b, fmt(c), d, fmt(e), fmt(f), g, h) for a, b, c, d, e, f, g, h in ROWS]
    widths = [max(len(str(r[i])) for r in table) for i in range(len(header))]
    for i, r in enumerate(table):
        print(" | ".join(str(c).ljust(w) for c, w in zip(r, widths)))
        if i == 0:
            print("-+-".join("-" * w for w in widths))


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    main()
