# Issue 16: README claims that no other test judged: the exit codes (0, 1, 2 with usage errors,
# 3), which desired-state files are read and in what order, a ConfigMap mount's ..data swap seen
# by the running daemon, and apply --diff. Each with a control that shows the check can fail.
# Sourced by run.sh.

K=$(mktemp -d "$H_TMP/claims.XXXXXX")
mkdir -p "$K/etc/mirror-agent/mirrors.d" "$K/etc/containerd"
printf 'runtimes: [containerd]\nprobe: {enabled: false}\ndaemon: {debounce: 50ms}\n' > "$K/etc/mirror-agent/agent.yaml"
printf 'version = 2\n' > "$K/etc/containerd/config.toml"
k_mirror() { printf 'mirrors:\n  %s:\n    endpoint: ["%s"]\n' "$1" "${2:-http://127.0.0.1:5000}"; }

# --- exit codes ------------------------------------------------------------------------------------
k_rc() { "$@" > "$H_TMP/claims-rc.out" 2>&1; echo $?; }
export -f k_rc 2>/dev/null
check "exit 1: status with no status file (no daemon) exits 1" test "$(k_rc "$AGENT" status --root "$K")" = 1
check "exit 2: an unknown command is a usage error" test "$(k_rc "$AGENT" no-such-command)" = 2
check "exit 2: an unknown option is a usage error" test "$(k_rc "$AGENT" apply --root "$K" --no-such-option)" = 2
check "exit 3: check on a config.toml without config_path" test "$(k_rc "$AGENT" check --root "$K")" = 3
check "and check names the file and what to set" grep -q "config.toml: set config_path = \"/etc/containerd/certs.d\"" "$H_TMP/claims-rc.out"
k_mirror one.invalid > "$K/etc/mirror-agent/mirrors.d/10-one.yaml"
check "exit 0: apply of valid desired state (control for the others)" test "$(k_rc "$AGENT" apply --root "$K")" = 0
check "exit 3: check after apply fixed config.toml: the restart it calls for is pending (--root)" \
  bash -c "[ \"\$(k_rc '$AGENT' check --root '$K')\" = 3 ] && grep -q 'restart pending: config.toml fixed' '$H_TMP/claims-rc.out'"
K0=$(mktemp -d "$H_TMP/claims0.XXXXXX"); mkdir -p "$K0/etc/mirror-agent" "$K0/etc/containerd"
printf 'version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "/etc/containerd/certs.d"\n' > "$K0/etc/containerd/config.toml"
check "exit 0: check on a config.toml with config_path and nothing pending (control)" test "$(k_rc "$AGENT" check --root "$K0")" = 0
# A file that cannot be written: the hosts directory of a new registry is a regular file.
k_mirror two.invalid > "$K/etc/mirror-agent/mirrors.d/20-two.yaml"
printf 'not a directory\n' > "$K/etc/containerd/certs.d/two.invalid"
check "exit 1: apply that cannot write a file (failure to act)" test "$(k_rc "$AGENT" apply --root "$K")" = 1
check "and the other registry's file is in force all the same" test -f "$K/etc/containerd/certs.d/one.invalid/hosts.toml"
rm -f "$K/etc/containerd/certs.d/two.invalid" "$K/etc/mirror-agent/mirrors.d/20-two.yaml"
printf 'mirrors:\n  bad.invalid:\n    endpoint: ["ftp://x"]\n' > "$K/etc/mirror-agent/mirrors.d/30-bad.yaml"
check "exit 2: apply of invalid desired state" test "$(k_rc "$AGENT" apply --root "$K")" = 2
rm -f "$K/etc/mirror-agent/mirrors.d/30-bad.yaml"

# --- which files are read, in byte order ----------------------------------------------------------
S="$K/etc/mirror-agent/mirrors.d"
rm -f "$S"/*
k_mirror main.invalid > "$K/etc/mirror-agent/mirrors.yaml"
for f in B-10.yaml a-20.yml .hidden.yaml 30.yaml~ 40.yaml.dpkg-old 50.yaml.dpkg-dist 55.yaml.dpkg-new 60.txt; do
  k_mirror "$(printf '%s' "$f" | tr -c 'a-z0-9' x).invalid" > "$S/$f"
done
# A ConfigMap volume: the files are symlinks through ..data, which points at a hidden directory.
mkdir "$S/..2026_01_01_data"
k_mirror cm-old.invalid > "$S/..2026_01_01_data/70-cm.yaml"
ln -s ..2026_01_01_data "$S/..data"
ln -s ..data/70-cm.yaml "$S/70-cm.yaml"
"$AGENT" validate --root "$K" --json > "$H_TMP/claims-files.json" 2>&1
k_files() { python3 -c "import json,sys; print(' '.join(f.rsplit('/etc/mirror-agent/', 1)[1] for f in json.load(open('$H_TMP/claims-files.json'))['files']))"; }
echo "# files read: $(k_files)"
check "read: mirrors.yaml, then mirrors.d/*.yaml and *.yml in byte order (70-cm, B-10, a-20); hidden, ~, .dpkg-*, .txt and ..data ignored" \
  test "$(k_files)" = "mirrors.yaml mirrors.d/70-cm.yaml mirrors.d/B-10.yaml mirrors.d/a-20.yml"
check "control: that comparison fails for the locale order (a-20 before B-10)" \
  fails test "$(k_files)" = "mirrors.yaml mirrors.d/70-cm.yaml mirrors.d/a-20.yml mirrors.d/B-10.yaml"

# --- the daemon follows a ConfigMap's ..data swap ---------------------------------------------------
"$AGENT" run --root "$K" > "$H_TMP/claims-daemon.log" 2>&1 &
KPID=$!
H_PIDS+=($KPID)
check "the daemon renders the ConfigMap's file" wait_until 15 test -f "$K/etc/containerd/certs.d/cm-old.invalid/hosts.toml"
# What the kubelet's atomic writer does: a new hidden directory, a new ..data link renamed over the old.
mkdir "$S/..2026_01_02_data"
k_mirror cm-new.invalid > "$S/..2026_01_02_data/70-cm.yaml"
ln -s ..2026_01_02_data "$S/..data_tmp"
mv -T "$S/..data_tmp" "$S/..data"
rm -rf "$S/..2026_01_01_data"
check "after the ..data swap the new content is in force" wait_until 15 test -f "$K/etc/containerd/certs.d/cm-new.invalid/hosts.toml"
check "and the old registry's file is removed" wait_until 15 test ! -e "$K/etc/containerd/certs.d/cm-old.invalid/hosts.toml"
kill -TERM "$KPID"; wait "$KPID" 2>/dev/null

# --- apply --diff -----------------------------------------------------------------------------------
rm -rf "$S"/* "$S"/..?* "$K/etc/mirror-agent/mirrors.yaml"
k_mirror diff.invalid http://127.0.0.1:5001 > "$S/10-diff.yaml"
"$AGENT" apply --root "$K" > /dev/null 2>&1
k_mirror diff.invalid http://127.0.0.1:5002 > "$S/10-diff.yaml"
k_before=$(sha256sum < "$K/etc/containerd/certs.d/diff.invalid/hosts.toml")
cp "$K/etc/containerd/certs.d/diff.invalid/hosts.toml" "$H_TMP/claims-diff.old"
"$AGENT" apply --root "$K" --dry-run --diff > "$H_TMP/claims-diff.out" 2>&1
sed 's/^/#   /' "$H_TMP/claims-diff.out" | head -20
check "--diff shows the old endpoint removed and the new one added, as a unified diff of the file" \
  bash -c "grep -q '^--- .*diff.invalid/hosts.toml' '$H_TMP/claims-diff.out' && grep -q '^-\[host.\"http://127.0.0.1:5001\"\]' '$H_TMP/claims-diff.out' && grep -q '^+\[host.\"http://127.0.0.1:5002\"\]' '$H_TMP/claims-diff.out'"
check "--dry-run --diff wrote nothing" test "$(sha256sum < "$K/etc/containerd/certs.d/diff.invalid/hosts.toml")" = "$k_before"
"$AGENT" apply --root "$K" > /dev/null 2>&1
# GNU diff judges the hunk: the same change, once written, as `diff -u` prints it (a changed line
# is its removal, then its addition). Ours is the hunk under the hosts.toml header.
diff -u "$H_TMP/claims-diff.old" "$K/etc/containerd/certs.d/diff.invalid/hosts.toml" | tail -n +3 > "$H_TMP/claims-diff.expected"
awk '/^--- .*diff.invalid\/hosts.toml/ { f = 1; getline; next } f && /^--- / { exit } f && /^[ @+-]/ { print; next } f { exit }' \
  "$H_TMP/claims-diff.out" > "$H_TMP/claims-diff.ours"
check "--diff's hunk is the one diff -u prints for the same change" \
  bash -c "test -s '$H_TMP/claims-diff.expected' && cmp '$H_TMP/claims-diff.expected' '$H_TMP/claims-diff.ours'"
"$AGENT" apply --root "$K" --dry-run --diff > "$H_TMP/claims-diff2.out" 2>&1
check "control: once applied, --diff shows no change" lacks '^[-+]\[host' "$H_TMP/claims-diff2.out"

# --- files the runtimes read get 0644 whatever the umask (the unit runs with UMask=0077) --------------
U=$(mktemp -d "$H_TMP/claims-umask.XXXXXX")
mkdir -p "$U/etc/mirror-agent/mirrors.d"
printf 'runtimes: [containerd, crio]\n' > "$U/etc/mirror-agent/agent.yaml"
k_mirror umask.invalid > "$U/etc/mirror-agent/mirrors.d/10-umask.yaml"
(umask 077; "$AGENT" apply --root "$U" > /dev/null 2>&1; : > "$U/umask-control")
check "control: under umask 077 a plain new file is 0600" test "$(stat -c %a "$U/umask-control")" = 600
check "under umask 077 the hosts.toml and the CRI-O drop-in are 0644 (the runtimes read them)" \
  test "$(stat -c %a "$U/etc/containerd/certs.d/umask.invalid/hosts.toml") $(stat -c %a "$U/etc/containers/registries.conf.d/99-mirror-agent.conf")" = "644 644"
