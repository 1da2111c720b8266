#!/usr/bin/env bash
# Install what the project needs on Debian 12, idempotently:
#  - the daemons and tools the lab nodes run, WITHOUT starting any of them on this machine
#    (a temporary /usr/sbin/policy-rc.d refuses service starts during the install);
#  - a virtualenv in .venv with the project installed in editable mode (plus pytest, ruff).
set -euo pipefail
cd "$(dirname "$0")/.."

# chromium (headless) and a font: the app in a real browser (runbooks/browse.py, make demo).
PACKAGES=(openssh-server nginx keepalived apache2 libapache2-mod-php php-mysql mariadb-server
          mariadb-backup
          tini tcpdump tshark curl iproute2 util-linux procps python3-venv
          chromium fonts-dejavu-core)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing Debian packages (${missing[*]}); run this as root" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  created_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    created_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -q
  apt-get install -y -q "${missing[@]}" </dev/null
  [ "$created_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.tp5-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[dev]'
  touch "$stamp"
fi
echo "setup: ok ($(.venv/bin/python --version), packages present)"
