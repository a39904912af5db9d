# Issue 15, containerd: a private mirror (Debian's docker-registry on loopback, htpasswd bcrypt
# authentication over TLS with a test CA) pulled through by the kubelet's path (CRI PullImage),
# with credentials from the desired state: a password file (the recommended form) for the mirror
# and inline values for the source. Without them the pull fails with a 401 in the registry's log;
# with them it succeeds; rotating the password (the registry's htpasswd, then the password file)
# makes the next pull use the new one. No secret in any output, the journal, status.json, the
# metrics or a file a non-root user can read (with a negative control).
# Sourced by run.sh with the machine booted and the package installed; leaves the agent active
# and agent.yaml as it found it (and the desired state and config.toml without credentials).

in_machine() { nsenter -t "$E2E_INIT_PID" -m -p -- "$@"; }
P_PW1="Priv-Pw1-$RANDOM$RANDOM"; P_PW2="Priv-Pw2-$RANDOM$RANDOM"; P_INLINE="Priv-Inline-$RANDOM$RANDOM"
P_SECRETS="$P_PW1|$P_PW2|$P_INLINE"
P_HTPASSWD="$H_TMP/private-htpasswd"
htpasswd -B -b -c "$P_HTPASSWD" robot "$P_PW1" 2>/dev/null
REG_HTPASSWD="$P_HTPASSWD" start_registry PRIVATE tls || echo "# cannot start the private registry"
check "private: the registry wants credentials (401 without, 200 with the password, over TLS with the test CA)" bash -c "
  [ \"\$(curl -s --cacert '$TEST_CA_CRT' -o /dev/null -w '%{http_code}' https://$REG_PRIVATE_ADDR/v2/)\" = 401 ] &&
  [ \"\$(curl -s --cacert '$TEST_CA_CRT' -u 'robot:$P_PW1' -o /dev/null -w '%{http_code}' https://$REG_PRIVATE_ADDR/v2/)\" = 200 ]"
timeout 120 skopeo --insecure-policy copy --quiet --dest-cert-dir "$TEST_CA_DIR" --dest-creds "robot:$P_PW1" \
  "oci:$H_TMP/oci:1" "docker://$REG_PRIVATE_ADDR/library/hello:1" >/dev/null 2>&1 || echo "# cannot push to the private registry"
# private_log SINCE CODE: the registry's access log, after line SINCE, has a manifest request for
# library/hello:1 made by containerd as a mirror of private.invalid (?ns=), answered CODE.
private_log() {
  tail -n +"$(( $1 + 1 ))" "$REG_PRIVATE_LOG" \
    | grep -Eq "\"(GET|HEAD) /v2/library/hello/manifests/1\?ns=private\.invalid HTTP/1\.1\" $2"
}
private_refused() { private_log "$1" 401 && ! private_log "$1" 200; }
private_pull_refused() { fails cri_pull private.invalid/library/hello:1 --remove && private_log "$1" 401; }
private_pull_served() { cri_pull private.invalid/library/hello:1 --remove && private_log "$1" 200; }
containerd_pid_now() { in_machine systemctl show -p MainPID --value containerd; }
# containerd_restarted OLDPID: containerd runs again under another main process.
containerd_restarted() {
  local p; p=$(containerd_pid_now)
  [ -n "$p" ] && [ "$p" != 0 ] && [ "$p" != "$1" ] && [ "$(in_machine systemctl is-active containerd)" = active ]
}
P_MARK="# mirror-agent: credentials for $REG_PRIVATE_ADDR"

# The CA and the secrets, as an admin provisions them: root's, in a 0700 directory.
inside install -d -m 0700 /etc/mirror-agent/e2e-private
cp "$TEST_CA_CRT" "$M/etc/mirror-agent/e2e-private/ca.crt"
printf 'robot\n' > "$M/etc/mirror-agent/e2e-private/username"
printf '%s\n' "$P_PW1" > "$M/etc/mirror-agent/e2e-private/password"
chmod 600 "$M"/etc/mirror-agent/e2e-private/*
private_desired() { # WITH_CREDENTIALS (yes|no)
  {
    echo "apiVersion: mirror-agent/v1"
    echo "kind: MirrorSet"
    echo "spec:"
    echo "  registries:"
    echo "  - source: private.invalid"
    if [ "$1" = yes ]; then
      echo "    sourceCredentials: {username: hub, password: \"$P_INLINE\"}"
    fi
    echo "    mirrors:"
    echo "    - url: https://$REG_PRIVATE_ADDR"
    echo "      tls: {ca: /etc/mirror-agent/e2e-private/ca.crt}"
    if [ "$1" = yes ]; then
      echo "      credentials:"
      echo "        usernameFile: /etc/mirror-agent/e2e-private/username"
      echo "        passwordFile: /etc/mirror-agent/e2e-private/password"
    fi
  } > "$M/etc/mirror-agent/mirrors.d/60-private.yaml.tmp"
  mv "$M/etc/mirror-agent/mirrors.d/60-private.yaml.tmp" "$M/etc/mirror-agent/mirrors.d/60-private.yaml"
}

# --- without credentials: 401 -----------------------------------------------------------------
private_desired no
check "private: the mirror's hosts.toml is written (TLS with the test CA)" wait_until 20 grep -q "$REG_PRIVATE_ADDR" "$M/etc/containerd/certs.d/private.invalid/hosts.toml"
seen=$(wc -l < "$REG_PRIVATE_LOG")
check "private: control: without credentials a CRI pull through the mirror fails (containerd $CONTAINERD_VERSION)" fails cri_pull private.invalid/library/hello:1
check "private: control: the registry answered the manifest request 401, never 200" private_refused "$seen"

# --- check reports credentials that need writing (exit 3), the agent stopped meanwhile ----------
inside systemctl stop mirror-agent
private_desired yes
inside mirror-agent check > "$H_TMP/private-check.out" 2>&1; p_rc=$?
check "private: mirror-agent check exits 3 while the credentials are not in containerd's configuration (got $p_rc)" test "$p_rc" = 3
check "private: and names the host, not the values" bash -c "grep -q 'credentials for $REG_PRIVATE_ADDR' '$H_TMP/private-check.out' && ! grep -qE '$P_SECRETS' '$H_TMP/private-check.out'"
p_pid=$(containerd_pid_now)
# The metrics directory exists before the agent starts (ProtectSystem=strict makes it writable
# only then), so the metrics the scan reads are really written; removed again at the end.
p_metrics_made=no
[ -d "$M/var/lib/prometheus/node-exporter" ] || { mkdir -p "$M/var/lib/prometheus/node-exporter"; p_metrics_made=yes; }
inside systemctl start mirror-agent

# --- with credentials: written 0600, containerd restarted, the pull works ---------------------
check "private: the credentials are written into containerd's config.toml" wait_until 30 grep -qF "$P_MARK" "$M/etc/containerd/config.toml"
check "private: config.toml is now mode 0600 (it holds credentials)" test "$(stat -c %a "$M/etc/containerd/config.toml")" = 600
check "private: containerd was restarted for them (within the restart rate limit)" wait_until 150 containerd_restarted "$p_pid"
check "private: containerd config dump (as TOML) has the mirror's auth under the table this version reads" bash -c "
  nsenter -t $E2E_INIT_PID -m -p -- containerd config dump 2>/dev/null | python3 -c '
import sys, tomllib
d = tomllib.load(sys.stdin.buffer)
plugin = \"io.containerd.cri.v1.images\" if d.get(\"version\") == 3 else \"io.containerd.grpc.v1.cri\"
auth = d[\"plugins\"][plugin][\"registry\"][\"configs\"][\"$REG_PRIVATE_ADDR\"][\"auth\"]
sys.exit(0 if auth[\"username\"] == \"robot\" and auth[\"password\"] == \"$P_PW1\" else 1)'"
check "private: mirror-agent check passes (exit 0)" inside mirror-agent check
seen=$(wc -l < "$REG_PRIVATE_LOG")
check "private: with credentials the CRI pull through the mirror works" cri_pull private.invalid/library/hello:1 --remove
check "private: and the registry served the manifest (200, ?ns=private.invalid)" private_log "$seen" 200
check "private: every backup of config.toml (they may hold credentials) is 0600" bash -c "[ -z \"\$(find '$M/var/lib/mirror-agent/backups' -type f -perm /077)\" ] && ls $M/var/lib/mirror-agent/backups/*/etc/containerd/config.toml >/dev/null"

# --- rotation: the registry's password changes, then the password file -------------------------
htpasswd -B -b -c "$P_HTPASSWD" robot "$P_PW2" 2>/dev/null
seen=$(wc -l < "$REG_PRIVATE_LOG")
check "private: control: after the registry's rotation the old password is refused (401)" private_pull_refused "$seen"
p_pid=$(containerd_pid_now)
printf '%s\n' "$P_PW2" > "$M/etc/mirror-agent/e2e-private/.password.new"
chmod 600 "$M/etc/mirror-agent/e2e-private/.password.new"
mv "$M/etc/mirror-agent/e2e-private/.password.new" "$M/etc/mirror-agent/e2e-private/password"
check "private: the daemon picks up the rotated password file (inotify on its directory)" wait_until 30 bash -c "grep -qF '$P_PW2' '$M/etc/containerd/config.toml' && ! grep -qF '$P_PW1' '$M/etc/containerd/config.toml'"
check "private: and restarts containerd for it" wait_until 150 containerd_restarted "$p_pid"
seen=$(wc -l < "$REG_PRIVATE_LOG")
check "private: the next CRI pull uses the new password (200)" private_pull_served "$seen"

# --- the secret scan -------------------------------------------------------------------------
PS="$H_TMP/private-scan"; mkdir -p "$PS"
check "private: the scan reads something real (the metrics file is written)" test -s "$M/var/lib/prometheus/node-exporter/mirror_agent.prom"
inside mirror-agent validate > "$PS/validate.out" 2>&1
inside mirror-agent validate --json > "$PS/validate.json" 2>&1
inside mirror-agent apply --dry-run --diff > "$PS/diff.out" 2>&1
inside mirror-agent apply --json --dry-run > "$PS/apply.json" 2>&1
inside mirror-agent check --json > "$PS/check.json" 2>&1
inside mirror-agent status --json > "$PS/status.json" 2>&1
in_machine journalctl -u mirror-agent --no-pager -o verbose > "$PS/journal.txt" 2>&1
in_machine systemctl show -p StatusText --value mirror-agent > "$PS/status-text.txt"
cp "$M/etc/containerd/config.toml" "$PS/config-copy.root-only"
check "private: the scan reads something real (the journal has the rotation's pass)" grep -q '60-private.yaml\|private.invalid' "$PS/journal.txt"
check "private: the scan reads something real (a root copy of config.toml has the password)" grep -qF "$P_PW2" "$PS/config-copy.root-only"
private_scan() {
  # Judged by what grep prints, not by exit statuses: grep exits 2 for a path it cannot read even
  # when another matched, and under pipefail that would hide the match.
  local hits
  hits=$( {
    grep -lE "$P_SECRETS" $(ls "$PS"/* | grep -v root-only) "$M/run/mirror-agent/status.json" "$M"/var/lib/prometheus/node-exporter/* 2>/dev/null
    # Every file a non-root user can read, as the kernel decides (nobody, no groups). The desired
    # state in mirrors.d holds the inline value the admin chose to write there.
    in_machine setpriv --reuid=nobody --regid=nogroup --clear-groups grep -rlE "$P_SECRETS" /etc /run /var /tmp /root 2>/dev/null \
      | grep -v -e '^/etc/mirror-agent/mirrors.d/'
  } || true)
  [ -z "$hits" ] || { echo "$hits"; return 1; }
}
check "private: no password (file or inline) in stdout, --json, --diff, check, the journal, STATUS=, status.json, metrics or any file a non-root user can read" private_scan
printf '%s\n' "$P_PW2" > "$M/etc/private-planted"; chmod 644 "$M/etc/private-planted"
check "private: negative control: a password in a world-readable file is found" fails private_scan
rm -f "$M/etc/private-planted"
chmod 644 "$M/etc/containerd/config.toml"
check "private: negative control: config.toml made world-readable by hand is found" fails private_scan
private_mode_repaired() {
  wait_until 90 bash -c "[ \"\$(stat -c %a '$M/etc/containerd/config.toml')\" = 600 ]" && return 0
  # What the daemon did meanwhile (no secret: the scan above holds for the journal).
  stat -c '%a %y' "$M/etc/containerd/config.toml"
  in_machine journalctl -u mirror-agent --no-pager -q -n 12
  return 1
}
check "private: and the daemon makes it 0600 again (drift on config.toml)" private_mode_repaired

# --- leave it as found -------------------------------------------------------------------------
p_pid=$(containerd_pid_now)
rm -f "$M/etc/mirror-agent/mirrors.d/60-private.yaml"
check "private: credentials leaving the desired state are removed from config.toml" wait_until 30 bash -c "! grep -qF '$P_MARK' '$M/etc/containerd/config.toml' && ! grep -qE '$P_SECRETS' '$M/etc/containerd/config.toml'"
check "private: containerd restarted without them" wait_until 150 containerd_restarted "$p_pid"
inside rm -rf /etc/mirror-agent/e2e-private
[ "$p_metrics_made" = no ] || rm -rf "$M/var/lib/prometheus/node-exporter"
check "private: the agent is active and clean" wait_until 20 bash -c "[ \"\$(nsenter -t $E2E_INIT_PID -m -p -- systemctl is-active mirror-agent)\" = active ] && ! nsenter -t $E2E_INIT_PID -m -p -- systemctl show -p StatusText --value mirror-agent | grep -q error"
