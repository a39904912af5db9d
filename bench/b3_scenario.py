"""B3's idle scenario: one definition for bench/bench.py (which measures it) and
scripts/text-order/gen-order.py (which profiles it to make the link's text order), so the order
is made from what B3 measures."""


def agent_yaml(probes):
    """agent.yaml of B3: containerd only, probes on or off (interval 30 s)."""
    return f"runtimes: [containerd]\nprobe: {{enabled: {'true' if probes else 'false'}, interval: 30s}}\n"


def mirrors_yaml(ports):
    """50 registries, two loopback endpoints each, on the 100 `ports` given."""
    return "mirrors:\n" + "".join(
        f'  r{i}.idle.example:\n    endpoint: ["http://127.0.0.1:{ports[2 * i]}", "http://127.0.0.1:{ports[2 * i + 1]}"]\n' for i in range(50))
