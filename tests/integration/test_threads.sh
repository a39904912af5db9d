# The probes' event loop is one thread (issue 14 item 6): during a probe round of 100 endpoints
# that all hang (each connection accepted, never answered, so all 100 are in flight at once for
# a whole timeout), the daemon has exactly one NIO event-loop thread, where NIO's shared group
# would start one per core. Threads are read from /proc/PID/task/*/comm (NIO names its loops
# "NIO-ELT-<group>-#<n>", its shared group "NIO-SGLTN-..."). Sourced by run.sh.

TH=$(mktemp -d "$H_TMP/threads.XXXXXX")
mkdir -p "$TH/etc/mirror-agent/mirrors.d"
# One process, 100 loopback listeners (ports the kernel picks, so none repeats) that accept and
# hold every connection, logging each.
_h_spawn "$TH/hung.log" python3 -u -c "$_H_PY_GUARD"'
import asyncio
held = []
async def handle(reader, writer):
    held.append(writer); print("accepted", flush=True)
    await reader.read()  # until the prober gives up and closes
    print("closed", flush=True)
async def main():
    ports = []
    for _ in range(100):
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=512)
        ports.append(server.sockets[0].getsockname()[1])
    print("listening", *ports, flush=True)
    await asyncio.sleep(3600)
asyncio.run(main())
' "threads" "$$" "$H_MAX_LIFETIME"
check "threads: 100 hung listeners are up" wait_until 20 grep -q listening "$TH/hung.log"
read -r -a TH_PORTS <<< "$(grep listening "$TH/hung.log" | cut -d' ' -f2-)"
{
  echo "mirrors:"
  for i in "${!TH_PORTS[@]}"; do printf '  r%d.threads.example:\n    endpoint: ["http://127.0.0.1:%s"]\n' "$i" "${TH_PORTS[$i]}"; done
} > "$TH/etc/mirror-agent/mirrors.d/threads.yaml"
printf 'runtimes: [containerd]\ndaemon: {debounce: 50ms}\nprobe: {interval: 30s, jitter: 0s, timeout: 8s, connectTimeout: 2s, concurrency: 256}\n' > "$TH/etc/mirror-agent/agent.yaml"
"$AGENT" run --root "$TH" > "$TH/daemon.log" 2>&1 &
TH_PID=$!
H_PIDS+=($!)
th_in_flight() { test "$(grep -c accepted "$TH/hung.log")" -ge 100; }
check "threads: the first probe round has all 100 endpoints in flight at once" wait_until 15 th_in_flight
th_names() { cat /proc/"$TH_PID"/task/*/comm 2>/dev/null; }
TH_NAMES=$(th_names)
TH_CLOSED=$(grep -c closed "$TH/hung.log")
TH_NIO=$(grep -c '^NIO-' <<< "$TH_NAMES")
echo "# threads during the round: $(wc -l <<< "$TH_NAMES") in all, $TH_NIO NIO event loops ($(sort <<< "$TH_NAMES" | uniq -c | awk '{printf "%s x%s, ", $2, $1}'))"
check "threads: during the round the daemon runs exactly one NIO event-loop thread (found $TH_NIO)" test "$TH_NIO" -eq 1
check "threads: and the round was still in flight when they were counted (no connection closed yet: $TH_CLOSED)" test "$TH_CLOSED" -eq 0
check "control: the listeners do see the prober close its connections (at the 8 s timeout)" wait_until 20 bash -c "test \$(grep -c closed '$TH/hung.log') -ge 100"
kill -TERM "$TH_PID" 2>/dev/null; wait "$TH_PID" 2>/dev/null || true
