"""`python -m deploy.local.kcat ARGS`: kcat with a librdkafka that speaks SCRAM to Kafka 4.

librdkafka before 2.6.1 repeats the client nonce in SCRAM's final message; Kafka 4 checks the
nonce as RFC 5802 says and refuses the login (confluentinc/librdkafka#4895). Distributions still
ship older ones (Debian 12: 2.0.2). When the installed kcat links such a librdkafka, this runs it
with the one bundled in the confluent-kafka wheel (a dev dependency) instead; otherwise it runs
kcat as it is. Arguments are passed through: `-F var/secrets/kafka/portal.conf -L`.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

from deploy.local.config import var_dir

FIXED_IN = (2, 6, 1)


def linked_librdkafka(kcat: str) -> tuple[int, ...]:
    shown = subprocess.run([kcat, "-V"], capture_output=True, text=True, check=False).stdout
    found = re.search(r"librdkafka (\d+)\.(\d+)\.(\d+)", shown)
    return tuple(int(part) for part in found.groups()) if found else (0, 0, 0)


def bundled_library_dir() -> Path | None:
    spec = find_spec("confluent_kafka")
    if spec is None or spec.origin is None:
        return None
    candidates = glob.glob(str(Path(spec.origin).parent.parent / "confluent_kafka.libs" / "librdkafka*.so*"))
    if not candidates:
        return None
    folder = var_dir() / "kcat" / "lib"
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / "librdkafka.so.1"
    link.unlink(missing_ok=True)
    link.symlink_to(candidates[0])
    return folder


def main(argv: list[str]) -> int:
    kcat = shutil.which("kcat") or shutil.which("kafkacat")
    if kcat is None:
        print("kcat is not installed (apt-get install kcat)", file=sys.stderr)
        return 2
    env = dict(os.environ)
    if linked_librdkafka(kcat) < FIXED_IN:
        library = bundled_library_dir()
        if library is None:
            print("kcat links librdkafka < 2.6.1 and confluent-kafka is not installed", file=sys.stderr)
            return 2
        env["LD_LIBRARY_PATH"] = f"{library}:{env.get('LD_LIBRARY_PATH', '')}"
    os.execve(kcat, [kcat, *argv], env)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
