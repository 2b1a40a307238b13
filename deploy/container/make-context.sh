#!/bin/bash
# Builds the context for the Containerfiles here: a root file system holding the SpareCycles
# binaries and exactly the shared libraries they load (ldd), nothing else, so the images need no
# registry and no base image.
#   deploy/container/make-context.sh BUILD_DIR CONTEXT_DIR
#   podman build -f deploy/container/Containerfile.worker -t sparecycles-worker CONTEXT_DIR
# BUILD_DIR is a CMake build tree (or any directory holding the three binaries).
set -euo pipefail
build=${1:?usage: make-context.sh BUILD_DIR CONTEXT_DIR}
ctx=${2:?usage: make-context.sh BUILD_DIR CONTEXT_DIR}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

find_bin() {
  local name=$1 p
  for p in "$build/$name" "$build/coordinator/$name" "$build/worker/$name" "$build/sdk/$name" "$build/bin/$name"; do
    [[ -x $p ]] && { echo "$p"; return; }
  done
  echo "make-context.sh: $name not found under $build" >&2
  exit 1
}

rm -rf "$ctx"
root=$ctx/rootfs
mkdir -p "$root/usr/bin" "$root/etc" "$root/tmp" "$root/var/lib/sparecycles-coordinator" \
  "$root/var/lib/sparecycles-worker"
chmod 1777 "$root/tmp"
for name in sparecycles-coordinator sparecycles-worker sparecycles; do
  bin=$(find_bin "$name")
  install -m 0755 "$bin" "$root/usr/bin/$name"
  # Debug info is most of a RelWithDebInfo binary; the image does not need it.
  if command -v strip >/dev/null; then strip --strip-debug "$root/usr/bin/$name"; fi
  # "libx.so => /path (addr)" and the loader "/lib64/ld-linux-x86-64.so.2 (addr)".
  ldd "$bin" | awk '/=> \// { print $3 } /^[[:space:]]*\/[^ ]+ \(/ { print $1 }' | while read -r lib; do
    cp -L --parents -n "$lib" "$root/" 2>/dev/null || cp -L --parents "$lib" "$root/"
  done
done
# TBB may dlopen its allocator; keep it beside libtbb when the system has it.
for lib in /usr/lib/*/libtbbmalloc.so.2; do
  [[ -e $lib ]] && cp -L --parents -n "$lib" "$root/"
done
# Unprivileged users for the images (uid 65534 = nobody, the usual unprivileged id).
printf 'root:x:0:0:root:/:/nonexistent\nsparecycles:x:65534:65534:sparecycles:/var/lib/sparecycles-worker:/nonexistent\n' \
  >"$root/etc/passwd"
printf 'root:x:0:\nsparecycles:x:65534:\n' >"$root/etc/group"
printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
cp "$here/Containerfile.coordinator" "$here/Containerfile.worker" "$ctx/"
echo "make-context.sh: $(find "$root" -type f | wc -l) files, $(du -sh "$root" | cut -f1) in $root"
