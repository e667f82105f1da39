#!/usr/bin/env bash
# What `make bench` needs beyond deploy/local/system-packages.sh: Postfix's smtp-sink, the C SMTP
# server the benchmark sends its email to. Debian ships it in the postfix package, whose install
# would configure and start a mail system: it is installed unconfigured and kept from starting.
set -euo pipefail

if [ -x /usr/sbin/smtp-sink ]; then
  echo "smtp-sink present"
  exit 0
fi
echo "installing: postfix (for its smtp-sink only; the mail system stays off)"
export DEBIAN_FRONTEND=noninteractive
echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections
# invoke-rc.d asks policy-rc.d whether a package may start its service; 101 says no. A machine's
# own policy (container images ship one) is kept as it is.
policy=/usr/sbin/policy-rc.d
ours=false
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  ours=true
fi
trap '[ "$ours" = true ] && rm -f "$policy"' EXIT
apt-get update -q
apt-get install -y -q --no-install-recommends postfix
if [ -d /run/systemd/system ]; then
  systemctl disable --now postfix || true
elif [ -x /etc/init.d/postfix ]; then
  /etc/init.d/postfix stop >/dev/null 2>&1 || true
fi
