#!/bin/bash
# The Debian packages (cmake/Packaging.cmake, scripts/package-deb.sh) installed for real: the three
# .debs are built from this build, then `apt-get install ./….deb` puts them into a clean Debian 12
# root (debootstrap --variant=minbase, cached under /var/cache/sparecycles-test/, used through an
# overlay so the cache stays clean) with their dependencies fetched from the configured Debian
# mirror. Inside that root: the worker's system user exists, the coordinator and the worker started
# from the installed files (the worker as that user, with the command line of the packaged unit and
# its cluster drop-in, the coordinator given by the packaged conffile) count the primes below 10^7
# right, `sparecycles run` does too, and a program built against the packaged SDK (find_package)
# runs on the packaged library. Purging the worker removes its user. Ends the processes it started
# by pid and unmounts what it mounted.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
sc_init

[[ $(id -u) -eq 0 ]] || sc_skip "a chroot and apt-get inside it need root"
for tool in dpkg-shlibdeps:dpkg-dev debootstrap:debootstrap; do
  if ! command -v "${tool%%:*}" >/dev/null; then
    sc_log "installing ${tool#*:}"
    sc_apt_install "${tool#*:}" || sc_skip "${tool#*:} cannot be installed here ($(tail -n1 "$SC_TMP/apt.log" 2>/dev/null))"
  fi
done
command -v chroot >/dev/null || sc_skip "no chroot"
build=${SPARECYCLES_BUILD_DIR:-$(dirname "$(dirname "$SC_WORKER")")}
t_start=$SECONDS

# 1. The packages.
bash "$SC_SOURCE/scripts/package-deb.sh" "$build" >"$SC_TMP/packages.txt" 2>"$SC_TMP/package-deb.log" ||
  sc_fail "scripts/package-deb.sh failed: $(tail -n 5 "$SC_TMP/package-deb.log")"
cat "$SC_TMP/packages.txt" >&2
debs=()
for p in coordinator worker cli; do
  f=$(ls "$build"/packages/sparecycles-${p}_*.deb 2>/dev/null | head -n1)
  [[ -n $f ]] || sc_fail "no sparecycles-$p package in $build/packages"
  debs+=("$f")
done
dpkg-deb -f "${debs[0]}" Depends | grep -q 'libzmq5' || sc_fail "the coordinator does not depend on libzmq5"
sc_log "packages built after $((SECONDS - t_start)) s"

# 2. A clean Debian 12 root: debootstrap once into the cache (the configured mirror, the host's apt
# sources), then a fresh overlay over it for each run.
mirror=$({ grep -hsE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list || true; } |
  grep -oE 'https?://[^ ]*/debian/?' | grep -v security | head -n1 || true)
mirror=${mirror:-http://deb.debian.org/debian}
cache_dir=/var/cache/sparecycles-test
base=$cache_dir/debian-bookworm-minbase
mkdir -p "$cache_dir"
exec 9>"$cache_dir/.lock"
flock -w 600 9 || sc_fail "another run holds $cache_dir/.lock"
if [[ ! -x $base/usr/bin/apt-get ]]; then
  sc_log "debootstrap --variant=minbase bookworm from $mirror into $base (once; about 90 s)"
  partial=$base.partial.$$
  rm -rf "$partial"
  timeout 900 debootstrap --variant=minbase bookworm "$partial" "$mirror" >"$SC_TMP/debootstrap.log" 2>&1 ||
    { rm -rf "$partial"; sc_skip "debootstrap from $mirror failed: $(tail -n1 "$SC_TMP/debootstrap.log")"; }
  # The host's enabled Debian sources, where their keyring is also in the new root.
  copied=0
  for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do
    [[ -f $f ]] || continue
    keys_there=1
    for key in $(awk '/^Signed-By:/ { print $2 }' "$f"); do [[ -f $partial$key ]] || keys_there=0; done
    ((keys_there)) || continue
    grep -qE '/debian' "$f" || continue
    cp "$f" "$partial/etc/apt/sources.list.d/" && copied=$((copied + 1))
  done
  ((copied == 0)) || : >"$partial/etc/apt/sources.list"
  cp /etc/resolv.conf "$partial/etc/resolv.conf"
  chroot "$partial" apt-get update >>"$SC_TMP/debootstrap.log" 2>&1 ||
    { rm -rf "$partial"; sc_skip "apt-get update in the new root failed: $(tail -n1 "$SC_TMP/debootstrap.log")"; }
  chroot "$partial" apt-get clean
  mv "$partial" "$base"
fi
flock -u 9

root=$SC_TMP/root
mkdir -p "$root" "$SC_TMP/upper" "$SC_TMP/work"
MOUNTS=()
if mount -t overlay overlay -o "lowerdir=$base,upperdir=$SC_TMP/upper,workdir=$SC_TMP/work" "$root" 2>/dev/null; then
  MOUNTS+=("$root")
else
  sc_log "no overlayfs here: copying the cached root"
  cp -a "$base/." "$root/"
fi
mount -t proc proc "$root/proc"
MOUNTS+=("$root/proc")
# Ends the processes inside the root first (a busy mount cannot go), then unmounts, innermost first.
end_and_unmount() {
  local i pid
  for ((i = ${#SC_PIDS[@]} - 1; i >= 0; i--)); do
    pid=${SC_PIDS[i]}
    kill -0 "$pid" 2>/dev/null || continue
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
    umount "${MOUNTS[i]}" 2>/dev/null || umount -l "${MOUNTS[i]}"
  done
}
SC_CLEANUP_HOOKS+=(end_and_unmount)
cp /etc/resolv.conf "$root/etc/resolv.conf"
# Commands in the root get a clean environment, as systemd gives a service (this script's own
# SPARECYCLES_* variables would otherwise reach the binaries as options).
clean_env=(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C)
in_root() { chroot "$root" "${clean_env[@]}" HOME=/root "$@"; }
in_root dpkg-query -W -f='${Status}' libzmq5 2>/dev/null | grep -q installed &&
  sc_fail "the clean root already has libzmq5: not clean"

# 3. apt-get install ./….deb, dependencies from the mirror.
mkdir -p "$root/tmp/debs"
cp "${debs[@]}" "$root/tmp/debs/"
names=()
for f in "${debs[@]}"; do names+=("./$(basename "$f")"); done
t0=$SECONDS
apt_in_root() {
  in_root env DEBIAN_FRONTEND=noninteractive sh -c "cd /tmp/debs && apt-get install -y --no-install-recommends $*"
}
if ! apt_in_root "${names[*]}" >"$SC_TMP/apt-root.log" 2>&1; then
  in_root apt-get update >>"$SC_TMP/apt-root.log" 2>&1 || true
  apt_in_root "${names[*]}" >>"$SC_TMP/apt-root.log" 2>&1 ||
    sc_fail "apt-get install of the packages failed: $(grep -E '^E:|unmet|Depends' "$SC_TMP/apt-root.log" | head -n 5)"
fi
sc_log "apt-get install ./….deb in $((SECONDS - t0)) s: $(grep -oE '[0-9]+ newly installed' "$SC_TMP/apt-root.log")"
for p in sparecycles-coordinator sparecycles-worker sparecycles-cli libzmq5 libsodium23 libtbb12 libsqlite3-0 libpng16-16; do
  in_root dpkg-query -W -f='${Status}' "$p" | grep -q "install ok installed" || sc_fail "$p is not installed in the root"
done
for f in /usr/bin/sparecycles-coordinator /usr/bin/sparecycles-worker /usr/bin/sparecycles \
  /usr/lib/systemd/system/sparecycles-coordinator.service /usr/lib/systemd/system/sparecycles-worker.service \
  /etc/sparecycles/worker.conf /usr/include/sparecycles/sdk/client.hpp /usr/lib/cmake/SpareCycles/SpareCyclesConfig.cmake; do
  [[ -e $root$f ]] || sc_fail "$f was not installed"
done
in_root dpkg-query -W -f='${Conffiles}' sparecycles-worker | grep -q /etc/sparecycles/worker.conf ||
  sc_fail "/etc/sparecycles/worker.conf is not a conffile"

# The worker's system user: a system uid, no login shell.
pw=$(in_root getent passwd sparecycles) || sc_fail "the worker package did not create the user sparecycles"
IFS=: read -r _ _ uid gid _ home shell <<<"$pw"
((uid > 0 && uid < 1000)) || sc_fail "sparecycles has uid $uid, not a system uid"
[[ $shell == */nologin ]] || sc_fail "sparecycles has the login shell $shell"
sc_log "user sparecycles: uid $uid gid $gid home $home shell $shell"

# The packaged units as installed (the worker's with the package's User= drop-in) verify clean:
# systemd-analyze of this machine over the root, with the stock units (targets) copied in.
if command -v systemd-analyze >/dev/null && [[ -f /usr/lib/systemd/system/multi-user.target ]]; then
  cp -an /usr/lib/systemd/system/. "$root/usr/lib/systemd/system/"
  out=$(systemd-analyze verify --root="$root" sparecycles-coordinator.service sparecycles-worker.service 2>&1) || true
  [[ -z $out ]] || { echo "$out" >&2; sc_fail "systemd-analyze verify of the installed units printed the above"; }
  # The check can fail: the same call on a unit with a misspelled key and a missing binary prints.
  printf '[Service]\nExecStart=/usr/bin/sparecycles-missing\nProtectSytem=strict\n' \
    >"$root/usr/lib/systemd/system/sparecycles-selftest.service"
  out=$(systemd-analyze verify --root="$root" sparecycles-selftest.service 2>&1) || true
  [[ -n $out ]] || sc_fail "systemd-analyze verify printed nothing for a broken unit: the check cannot fail"
  rm "$root/usr/lib/systemd/system/sparecycles-selftest.service"
  user=$(systemd-analyze cat-config --root="$root" systemd/system/sparecycles-worker.service 2>/dev/null | grep -E '^User=' | tail -n1 || true)
  exposure=$(systemd-analyze security --offline=yes --root="$root" sparecycles-worker.service 2>&1 | grep -oE 'exposure level.*: [0-9.]+' | grep -oE '[0-9.]+$' || true)
  sc_log "installed units verify clean; worker unit: ${user:-no User=}, exposure ${exposure:-?}"
fi

# 4. The coordinator and a worker from the installed files, on 127.0.0.1 with ports the OS picks.
in_root install -d -m 0700 /var/lib/sparecycles-coordinator
# chroot and env exec, so the pid sc_start keeps is the coordinator's own (never start a shell
# function in the background here: its subshell's pid would be ended and the daemon left).
sc_start "$SC_TMP/coordinator.log" chroot "$root" "${clean_env[@]}" HOME=/root /usr/bin/sparecycles-coordinator --pool cluster \
  --data /var/lib/sparecycles-coordinator --peers 'tcp://127.0.0.1:*' --clients 'tcp://127.0.0.1:*' \
  --endpoints-file /var/lib/sparecycles-coordinator/endpoints --heartbeat 500ms --backups off
coordinator_pid=$SC_LAST_PID
sc_wait 30 "the coordinator's endpoints" test -s "$root/var/lib/sparecycles-coordinator/endpoints"
[[ $(readlink /proc/"$coordinator_pid"/exe) == */sparecycles-coordinator ]] ||
  sc_fail "pid $coordinator_pid is not the coordinator"
peers=$(sc_endpoint peers "$root/var/lib/sparecycles-coordinator/endpoints")
clients=$(sc_endpoint clients "$root/var/lib/sparecycles-coordinator/endpoints")
sc_log "coordinator in the root: peers $peers, clients $clients"

# The worker as the packaged unit runs it: the cluster drop-in's ExecStart (a loaded test machine
# would pause a volunteer-profile worker), as the user sparecycles, with its state directory made
# as systemd's StateDirectory= would, and the coordinator set in the packaged conffile.
sed -i "s|^#coordinator = .*|coordinator = $peers|" "$root/etc/sparecycles/worker.conf"
grep -q "^coordinator = $peers" "$root/etc/sparecycles/worker.conf" || sc_fail "worker.conf has no coordinator line to set"
# The worker runs as another user, who cannot read the coordinator's data directory: the operator
# hands the public key over, as for a coordinator on another machine (docs/security.md).
install -m 0644 "$root/var/lib/sparecycles-coordinator/curve/coordinator.pub" "$root/etc/sparecycles/coordinator.pub"
sed -i "s|^#coordinator-key = .*|coordinator-key = /etc/sparecycles/coordinator.pub|" "$root/etc/sparecycles/worker.conf"
grep -q "^coordinator-key = " "$root/etc/sparecycles/worker.conf" || sc_fail "worker.conf has no coordinator-key line to set"
in_root install -d -o sparecycles -g sparecycles -m 0700 /var/lib/sparecycles-worker
exec_start=$(grep -E '^ExecStart=.+' "$root/usr/share/sparecycles/systemd/cluster.conf" | tail -n1 | cut -d= -f2-)
[[ $exec_start == /usr/bin/sparecycles-worker* ]] || sc_fail "unexpected ExecStart in the packaged cluster drop-in: $exec_start"
grep -q '^User=sparecycles' "$root/usr/lib/systemd/system/sparecycles-worker.service.d/user.conf" ||
  sc_fail "the packaged unit does not run as sparecycles"
read -r -a exec_words <<<"$exec_start"
sc_start "$SC_TMP/worker.log" chroot --userspec="$uid:$gid" "$root" \
  "${clean_env[@]}" HOME=/nonexistent "${exec_words[@]}" --calibrate 5ms
worker_pid=$SC_LAST_PID
one_peer() {
  kill -0 "$worker_pid" 2>/dev/null || sc_fail "the worker exited early"
  [[ $(in_root /usr/bin/sparecycles peers --coordinator "$clients" --json | grep -o '"peer":' | wc -l) -eq 1 ]]
}
sc_wait 60 "the worker to join" one_peer
[[ $(stat -c %u /proc/"$worker_pid") == "$uid" && $(readlink /proc/"$worker_pid"/exe) == */sparecycles-worker ]] ||
  sc_fail "pid $worker_pid is not the worker running as sparecycles"

n=10000000
expected=$(sc_prime_count "$n")
[[ -n $expected ]] || sc_fail "no independent count of the primes below $n (python3 missing?)"
t0=$SECONDS
result=$(timeout 300 chroot "$root" "${clean_env[@]}" /usr/bin/sparecycles submit --coordinator "$clients" primes --from 0 --to "$n" --json --no-progress)
sc_log "submit in $((SECONDS - t0)) s: $result"
count=$(echo "$result" | sc_json_int count)
[[ $count == "$expected" ]] || sc_fail "pi($n) through the installed coordinator and worker: got '$count', expected $expected"
done_units=$(in_root /usr/bin/sparecycles peers --coordinator "$clients" --json | sc_json_int units_done)
((done_units > 0)) || sc_fail "the installed worker did no unit"

n2=1000000
expected2=$(sc_prime_count "$n2")
run_out=$(timeout 300 chroot "$root" "${clean_env[@]}" /usr/bin/sparecycles run primes --to "$n2" --json --no-progress 2>"$SC_TMP/run.err") ||
  sc_fail "sparecycles run failed: $(tail -n 3 "$SC_TMP/run.err")"
count2=$(echo "$run_out" | sc_json_int count)
[[ $count2 == "$expected2" ]] || sc_fail "sparecycles run primes --to $n2: got '$count2', expected $expected2"

# 5. The SDK: a program built on this machine against the extracted sparecycles-cli package with
# find_package(SpareCycles), run inside the root on the installed libsparecycles.so.
if command -v c++ >/dev/null; then
  dpkg-deb -x "${debs[2]}" "$SC_TMP/sdk"
  cmake -S "$SC_SOURCE/examples" -B "$SC_TMP/examples" -DCMAKE_PREFIX_PATH="$SC_TMP/sdk/usr" \
    -DCMAKE_BUILD_TYPE=Release -DCMAKE_SKIP_RPATH=ON >"$SC_TMP/examples.log" 2>&1 &&
    cmake --build "$SC_TMP/examples" --target count_primes >>"$SC_TMP/examples.log" 2>&1 ||
    sc_fail "building examples/count_primes against the packaged SDK failed: $(tail -n 5 "$SC_TMP/examples.log")"
  install -m 0755 "$SC_TMP/examples/count_primes" "$root/usr/local/bin/count_primes"
  sdk_out=$(timeout 300 chroot "$root" "${clean_env[@]}" /usr/local/bin/count_primes "$n2" 2>"$SC_TMP/count_primes.err") ||
    sc_fail "count_primes on the packaged library failed: $(tail -n 3 "$SC_TMP/count_primes.err")"
  [[ $sdk_out == "$expected2" ]] || sc_fail "count_primes $n2 on the packaged SDK: got '$sdk_out', expected $expected2"
  sdk_note="; examples/count_primes built with find_package against it ran on the packaged library"
else
  sdk_note="; no C++ compiler here, the SDK build was not tried"
fi

# 6. Purge the worker (it is stopped first, as its prerm would): the system user goes with it.
kill -TERM "$worker_pid"
for _ in $(seq 150); do kill -0 "$worker_pid" 2>/dev/null || break; sleep 0.2; done
kill -0 "$worker_pid" 2>/dev/null && sc_fail "the worker did not stop on SIGTERM within 30 s"
in_root env DEBIAN_FRONTEND=noninteractive apt-get purge -y sparecycles-worker >"$SC_TMP/purge.log" 2>&1 ||
  sc_fail "apt-get purge sparecycles-worker failed: $(tail -n 3 "$SC_TMP/purge.log")"
in_root getent passwd sparecycles >/dev/null && sc_fail "purging the worker left the user sparecycles"
[[ ! -e $root/etc/sparecycles/worker.conf && ! -e $root/var/lib/sparecycles-worker ]] ||
  sc_fail "purging the worker left its configuration or state"

sizes=$(awk '{ printf "%s%s %s KiB", sep, $1, $2; sep = ", " }' "$SC_TMP/packages.txt")
echo "PASS: $sizes installed with apt-get into a clean Debian 12 root; pi($n) = $count through the installed coordinator and worker (user sparecycles), sparecycles run pi($n2) = $count2$sdk_note; purge removed the user ($((SECONDS - t_start)) s)"
