#!/usr/bin/env bash
# Downloads the Debian packages the default demo gallery is built from (the versions and checksums pinned in
# scripts/gallery/sources.json) and unpacks each into $IMGPICK_HOME/gallery/PACKAGE with dpkg-deb -x.
# Nothing is installed. Idempotent: a package whose pin has not changed is not fetched again (~0.1 s in all).
#
#   scripts/gallery/fetch-sources.sh            # called by `scripts/setup.sh demo`
#
# Env: IMGPICK_HOME (default ~/.cache/imgpick).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
IMGPICK_HOME="${IMGPICK_HOME:-$HOME/.cache/imgpick}"
DEST="$IMGPICK_HOME/gallery"
die() { echo "fetch-sources: FAILED: $*" >&2; exit 1; }
command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null \
  || die "apt-get and dpkg-deb are needed (a Debian or Ubuntu machine); the demo gallery is built from Debian packages"
mkdir -p "$DEST"

# "package version sha256" per line, from the pins.
pins="$(python3 -c 'import json, sys
for name, pin in sorted(json.load(open(sys.argv[1]))["debian"].items()):
    print(name, pin["version"], pin["sha256"])' "$HERE/sources.json")"

updated=0
fetch() {  # fetch PACKAGE VERSION SHA256 TMPDIR
  local pkg="$1" version="$2" sha="$3" tmp="$4"
  # apt-get download verifies the file against the archive's signed index; the pinned sha256 is checked below.
  if ! (cd "$tmp" && apt-get download -q "$pkg=$version" >>"$tmp/apt.log" 2>&1); then
    if [ "$updated" = 0 ] && [ "$(id -u)" = 0 ]; then
      updated=1  # a fresh machine has no package lists yet
      apt-get update -q >>"$tmp/apt.log" 2>&1 || true
      (cd "$tmp" && apt-get download -q "$pkg=$version" >>"$tmp/apt.log" 2>&1) && return 0
    fi
    tail -n 5 "$tmp/apt.log" >&2
    die "apt-get download $pkg=$version failed. If the mirror no longer has that version, pin the one it has in \
scripts/gallery/sources.json (apt-cache policy $pkg) and check the gallery still builds; if the package lists are \
missing, run 'sudo apt-get update' and retry"
  fi
}

while read -r pkg version sha; do
  [ -n "$pkg" ] || continue
  want="$version $sha"
  if [ -f "$DEST/$pkg/.pinned" ] && [ "$(cat "$DEST/$pkg/.pinned")" = "$want" ]; then
    continue
  fi
  echo "fetch-sources: $pkg $version"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  fetch "$pkg" "$version" "$sha" "$tmp"
  deb="$(ls "$tmp"/*.deb)"
  got="$(sha256sum "$deb" | cut -d' ' -f1)"
  [ "$got" = "$sha" ] || die "$pkg $version: sha256 $got differs from the pin $sha in scripts/gallery/sources.json \
(the archive rebuilt it?); check the files and update the pin"
  rm -rf "$DEST/$pkg" "$DEST/$pkg.partial"
  dpkg-deb -x "$deb" "$DEST/$pkg.partial" || die "dpkg-deb could not unpack $deb"
  echo "$want" >"$DEST/$pkg.partial/.pinned"
  mv "$DEST/$pkg.partial" "$DEST/$pkg"
  rm -rf "$tmp"
  trap - EXIT
done <<<"$pins"

# Packages no longer pinned are removed, so the folder holds exactly what sources.json names.
for d in "$DEST"/*/; do
  d="${d%/}"
  grep -q "^$(basename "$d") " <<<"$pins" || rm -rf "$d"
done
