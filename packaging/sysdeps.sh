#!/usr/bin/env bash
# Debian/Ubuntu tools that `make package` / `make test-package` need, separate from tools/sysdeps.sh (the Qt
# runtime libraries): dpkg-deb + readelf to build and inspect the .deb, zstd for its compression, Xvfb,
# xwininfo and ImageMagick's `import` for the installed-app smoke test. Installs only when root and missing.
set -euo pipefail
exec bash "$(dirname "$0")/../tools/sysdeps.sh" dpkg-dev binutils zstd xvfb xauth x11-utils imagemagick
