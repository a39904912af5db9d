# shellcheck shell=bash
# containers/image judged as deployed: skopeo (a TEST-SIDE package, installed after the agent)
# inside the machine reads the SYSTEM configuration, /etc/containers/registries.conf and
# registries.conf.d/ (no --registries-conf), with the agent's drop-in beside an admin's main file
# and another admin drop-in. What containers/image does with them (its pkg/sysregistriesv2):
# drop-ins load in name order after the main file; a later [[registry]] with the same prefix
# replaces the earlier one whole; the longest matching prefix wins, whichever file it is in.
# Sourced by run.sh (machine booted, agent installed, CRI-O drop-in written by the CRI-O section);
# leaves registries.conf(.d) and the agent as it found them.
ci_dropin="$M/etc/containers/registries.conf.d/99-mirror-agent.conf"
if ! inside sh -c 'command -v skopeo' >/dev/null 2>&1 || [ ! -f "$ci_dropin" ]; then
  check "containers/image case: skopeo and the agent's drop-in are present" false
else
  echo "# skopeo $(inside skopeo --version | awk '{ print $3 }') reading the system registries.conf(.d)"
  ci_main="$M/etc/containers/registries.conf"
  ci_saved="$H_TMP/registries.conf.saved"
  if [ -e "$ci_main" ]; then cp -p "$ci_main" "$ci_saved"; else rm -f "$ci_saved"; fi
  # The admin's main file: the same prefix as ours with an old, dead mirror (our drop-in's entry
  # must replace it whole), and a nested prefix below it that blocks one team's images.
  cat > "$ci_main" <<'TOML'
unqualified-search-registries = []

[[registry]]
prefix = "upstream.invalid"
location = "upstream.invalid"

[[registry.mirror]]
location = "127.0.0.1:9"
insecure = true

[[registry]]
prefix = "upstream.invalid/team"
location = "upstream.invalid/team"
blocked = true
TOML
  # skopeo_inspect IMAGE: the manifest and config of IMAGE, read as containers/image resolves it.
  # --raw: the manifest only (a plain inspect also lists tags, which containers/image asks of the
  # source registry itself, never of a mirror).
  skopeo_inspect() { inside timeout 60 skopeo inspect --raw "docker://$1" >/dev/null; }
  # mirror_get SINCE REPO REF: after line SINCE, the mirror answered a GET/HEAD for REPO:REF's
  # manifest (containers/image sends no ?ns=; the harness only PUTs).
  mirror_get() {
    tail -n +"$(( $1 + 1 ))" "$REG_MIRROR_LOG" | grep -Eq "\"(GET|HEAD) /v2/$2/manifests/$3 HTTP/1\.1\" 200"
  }

  mv "$ci_dropin" "$H_TMP/99-mirror-agent.conf.aside"
  check "control: without our drop-in, skopeo cannot get upstream.invalid/library/hello:1" fails skopeo_inspect upstream.invalid/library/hello:1
  mv "$H_TMP/99-mirror-agent.conf.aside" "$ci_dropin"
  seen=$(registry_log_lines MIRROR)
  check "skopeo (system registries.conf.d) gets upstream.invalid/library/hello:1 through our drop-in" skopeo_inspect upstream.invalid/library/hello:1
  check "and the mirror served it" mirror_get "$seen" library/hello 1
  check "the main file's nested prefix (upstream.invalid/team, blocked) still wins for its subtree" \
    bash -c "nsenter -t $E2E_INIT_PID -m -p -- timeout 60 skopeo inspect --raw docker://upstream.invalid/team/app:1 2>&1 | grep -qi blocked"

  # An admin drop-in that sorts after ours: a different prefix leaves ours alone; the same prefix
  # replaces our entry (containers/image's rule, which the agent cannot change).
  ci_later="$M/etc/containers/registries.conf.d/zz-admin.conf"
  printf '[[registry]]\nprefix = "other.invalid"\nlocation = "other.invalid"\nblocked = true\n' > "$ci_later"
  seen=$(registry_log_lines MIRROR)
  check "with a later drop-in for another prefix, skopeo still pulls second.invalid through ours" skopeo_inspect second.invalid/library/second:1
  check "and the mirror served it" mirror_get "$seen" library/second 1
  printf '[[registry]]\nprefix = "second.invalid"\nlocation = "second.invalid"\nblocked = true\n' >> "$ci_later"
  check "a later drop-in with the same prefix (second.invalid, blocked) replaces our entry" \
    bash -c "nsenter -t $E2E_INIT_PID -m -p -- timeout 60 skopeo inspect --raw docker://second.invalid/library/second:1 2>&1 | grep -qi blocked"
  rm -f "$ci_later"
  if [ -e "$ci_saved" ]; then cp -p "$ci_saved" "$ci_main"; else rm -f "$ci_main"; fi
fi
