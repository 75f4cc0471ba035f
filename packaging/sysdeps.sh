#!/usr/bin/env bash
# Debian/Ubuntu tools that `make package` / `make test-package` need, separate from tools/sysdeps.sh (the Qt
# runtime libraries): dpkg-deb + readelf to build and inspect the .deb, zstd for its compression, Xvfb,
# xwininfo and ImageMagick's `import` for the installed-app smoke test. Installs only when root and missing.
set -euo pipefail
pkgs=(dpkg-dev binutils zstd xvfb xauth x11-utils imagemagick)
command -v dpkg-query >/dev/null 2>&1 || { echo "packaging/sysdeps: not a Debian/Ubuntu system; the .deb is built on Debian/Ubuntu only"; exit 0; }
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "packaging/sysdeps: missing ${missing[*]}: sudo apt-get install ${missing[*]}"
  exit 0
fi
echo "packaging/sysdeps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
