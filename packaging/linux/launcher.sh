#!/bin/sh
# segstudio launcher: the app is one folder in /opt/segstudio (Python, Qt and torch inside).
# Resolved relative to this script, so a package unpacked elsewhere (dpkg -x ROOT) runs its own copy.
here=$(dirname "$(readlink -f "$0")")
exec "$here/../../opt/segstudio/segstudio" "$@"
