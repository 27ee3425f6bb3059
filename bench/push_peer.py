"""The push benchmark's peer: a local Web Push service in a process of its own.

A real push service runs elsewhere and keeps connections open; sharing the
sender's process (and its GIL) would charge the service's work (a JWT
verified and a body decrypted per push) to whoever sends. The parent starts this script, reads the
subscriptions it created from a JSON file, and asks for the delivery count
over stdin/stdout (one line ``count`` in, one number out).

    python bench/push_peer.py <subscriptions> <json file>
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.pushservice import PushService  # noqa: E402


def main() -> None:
    count, out = int(sys.argv[1]), Path(sys.argv[2])
    with PushService(keep_alive=True) as push:
        subs = [push.new_subscription().to_json() for _ in range(count)]
        out.write_text(json.dumps({"base_url": push.base_url, "subscriptions": subs}))
        print("ready", flush=True)
        for line in sys.stdin:
            if line.strip() == "count":
                print(len(push.deliveries()), len(push.rejections()), flush=True)


if __name__ == "__main__":
    main()
