"""A pure-Python MQTT broker for `edge-sim demo` on machines without Mosquitto.

Demo only (amqtt, installed by `scripts/demo.sh` when Mosquitto is missing): production
fleets use Mosquitto, see config/mosquitto/.
"""

from __future__ import annotations

import asyncio
import sys


async def serve(port: int) -> None:
    from amqtt.broker import Broker

    broker = Broker({
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    })
    await broker.start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
