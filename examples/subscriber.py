#!/usr/bin/env python3
"""A minimal igrt console: prints every correction, following the late-joiner rule of the
README (subscribe first, then ask ``latest``; a heartbeat whose ``last_seq`` is above the last
correction seen means one was missed: ask ``latest`` again). Plain pyzmq, no igrt import.

    python3 examples/subscriber.py --publish tcp://127.0.0.1:5556 --command tcp://127.0.0.1:5557
    # with [zmq.curve] on the service: --server-key server.key --client-key console.key_secret
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import zmq
import zmq.auth


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--publish", default="tcp://127.0.0.1:5556")
    parser.add_argument("--command", default="tcp://127.0.0.1:5557")
    parser.add_argument("--count", type=int, default=0, help="stop after N new corrections")
    parser.add_argument("--timeout", type=float, default=0.0, help="stop after S seconds")
    parser.add_argument("--server-key", help="the service's public certificate (CURVE)")
    parser.add_argument("--client-key", help="this console's secret certificate (CURVE)")
    args = parser.parse_args()
    context = zmq.Context()
    keys = None
    if args.server_key and args.client_key:
        server_public, _ = zmq.auth.load_certificate(args.server_key)
        public, secret = zmq.auth.load_certificate(args.client_key)
        keys = (server_public, public, secret)

    def socket(kind: int) -> zmq.Socket:  # type: ignore[type-arg]
        sock = context.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        if keys is not None:
            sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = keys
        return sock

    def latest() -> dict | None:  # type: ignore[type-arg]
        """The latest correction, or None (no answer within 3 s: a fresh socket next time)."""
        req = socket(zmq.REQ)
        req.connect(args.command)
        try:
            req.send_json({"cmd": "latest"})
            if not req.poll(3000):
                print("warning: no answer from the command socket", file=sys.stderr)
                return None
            reply = req.recv_json()
        finally:
            req.close()
        return reply.get("message") if reply.get("ok") else None

    sub = socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(args.publish)  # subscribe first, then ask: nothing falls between the two
    last_seq = 0
    current = latest()
    if current:
        print("correction\t" + json.dumps(current), flush=True)
        last_seq = current["seq"]
    new = 0  # corrections newer than the one current at the start
    deadline = time.monotonic() + args.timeout if args.timeout > 0 else None
    while not (args.count and new >= args.count):
        if deadline is not None and time.monotonic() > deadline:
            return 1 if args.count else 0
        if not sub.poll(250):
            continue
        topic, body = sub.recv_multipart()
        message = json.loads(body)
        if topic == b"correction" and message["seq"] > last_seq:
            if message["seq"] > last_seq + 1 and last_seq:
                print(f"warning: corrections {last_seq + 1}..{message['seq'] - 1} missed; "
                      "ask result for them", file=sys.stderr)
            print("correction\t" + body.decode(), flush=True)
            last_seq, new = message["seq"], new + 1
        elif topic == b"heartbeat" and message["last_seq"] > last_seq:
            missed = latest()  # published before our subscription was live
            if missed and missed["seq"] > last_seq:
                print("correction\t" + json.dumps(missed), flush=True)
                last_seq, new = missed["seq"], new + 1
        elif topic in (b"decision", b"error"):
            print(topic.decode() + "\t" + body.decode(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
