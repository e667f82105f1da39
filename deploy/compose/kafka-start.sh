#!/bin/bash
# Formats the broker's storage once, with the SCRAM credentials of every principal (KRaft takes
# them only at format time), then starts it. The passwords come from the Docker secrets; set -f
# keeps bash from reading `[name=...]` as a glob.
set -euf
config=/etc/kafka/compose/kafka.properties
if [ ! -f /var/lib/kafka/data/meta.properties ]; then
  scram=()
  for principal in admin portal registration funding notification operator; do
    scram+=(--add-scram "SCRAM-SHA-512=[name=${principal},password=$(cat "/run/secrets/kafka_${principal}_password")]")
  done
  /opt/kafka/bin/kafka-storage.sh format -t "$(/opt/kafka/bin/kafka-storage.sh random-uuid)" -c "$config" "${scram[@]}" >/dev/null
fi
exec /opt/kafka/bin/kafka-server-start.sh "$config"
