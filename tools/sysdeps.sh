#!/usr/bin/env bash
# Install Debian packages only when running as root and only the missing ones; otherwise print the apt line.
# With no arguments: the libraries a real (xcb) Qt window needs (offscreen use needs none of them).
# With arguments: those packages (packaging/sysdeps.sh passes the packaging tools).
set -euo pipefail
if [ $# -gt 0 ]; then
  pkgs=("$@")
else
  pkgs=(libegl1 libgl1 libxkbcommon0 libxkbcommon-x11-0 libfontconfig1 libdbus-1-3 libxcb-cursor0 libxcb-icccm4
        libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-shape0 libxcb-randr0 libxcb-xinerama0 libxcb-xkb1
        libxcb-xfixes0 libglib2.0-0)
fi
command -v dpkg-query >/dev/null 2>&1 || { echo "sysdeps: not a Debian/Ubuntu system; install these yourself: ${pkgs[*]}"; exit 0; }
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "sysdeps: missing ${missing[*]}; install them with: sudo apt-get install ${missing[*]}"
  exit 0
fi
echo "sysdeps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
