"""``python -m streams.tools.peers ceiling|quix``: one system's run in a process of its own; prints its measurement.

The settings come from the environment (``KAIROS_KAFKA_BOOTSTRAP``, ``KAIROS_REDIS_URL``, ``KAIROS_PREFIX``, ...).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from streams.settings import KairosSettings
from streams.tools.peers.measure import Measurement


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m streams.tools.peers")
    parser.add_argument("system", choices=("ceiling", "quix"))
    parser.add_argument("--expected", type=int, required=True, help="Input events to handle, then stop.")
    parser.add_argument("--group", default="bench-quix", help="quix: consumer group.")
    parser.add_argument("--state-dir", type=Path, default=Path(".kairos/bench/quix-state"), help="quix: RocksDB.")
    args = parser.parse_args()
    settings = KairosSettings()
    measurement: Measurement
    if args.system == "ceiling":
        from streams.tools.peers.ceiling import raw_consumer

        measurement = asyncio.run(raw_consumer(settings, args.expected))
    else:
        from streams.tools.peers.quix import QuixPeer

        measurement = QuixPeer(settings, args.group, args.state_dir, args.expected).run()
    print(json.dumps(measurement.to_dict()), flush=True)


if __name__ == "__main__":
    main()
