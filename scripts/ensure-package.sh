#!/usr/bin/env bash
# Make sure a Debian package providing COMMAND is installed: ensure-package.sh COMMAND PACKAGE
# (tests and the demo start their own redis-server; the browser test drives Debian's chromium).
set -euo pipefail
command_name="$1"
package="$2"
if command -v "$command_name" >/dev/null 2>&1 || [ -x "/usr/bin/$command_name" ] || [ -x "/usr/sbin/$command_name" ]; then
  exit 0
fi
echo "$command_name is missing: installing Debian's $package with apt-get" >&2
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$package" >/dev/null
