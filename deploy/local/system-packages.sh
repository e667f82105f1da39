#!/usr/bin/env bash
# The Debian packages the project needs on a fresh machine of its kind (Debian 12, no Docker
# engine): one script for `.ci/run`, `make test` and `make demo`. Installs only what is missing.
set -euo pipefail

missing=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v psql >/dev/null || missing+=(postgresql-client)
command -v kcat >/dev/null || missing+=(kcat)
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
command -v promtool >/dev/null || missing+=(prometheus)
# The browser test of the HTML report (selenium drives these; nothing downloads a browser).
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
  # The Debian package starts a cluster of its own on 5432; ours lives under var/ instead.
  if command -v pg_lsclusters >/dev/null; then
    pg_lsclusters -h 2>/dev/null | while read -r version name _; do
      pg_ctlcluster "$version" "$name" stop || true
    done
  fi
  # Only its promtool is wanted (the alert rules' tests); the server it may have started goes.
  if [ -d /run/systemd/system ] && systemctl list-unit-files prometheus.service >/dev/null 2>&1; then
    systemctl disable --now prometheus || true
  elif [ -x /etc/init.d/prometheus ]; then
    /etc/init.d/prometheus stop || true
  fi
else
  echo "all present"
fi
