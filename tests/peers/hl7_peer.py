"""MLLP peers for the end-to-end tests, built on python-hl7's asyncio
``hl7.mllp`` (a client and a server we did not write).

    hl7_peer.py client HOST PORT FILE...      send each file's message, print "MSA-1 MSA-2" per ACK
    hl7_peer.py server PORT MODE LOG          answer every message per MODE (aa, ae, ar, silent,
                                              late:SECONDS) and append it as a JSON line to LOG,
                                              with the number of the connection it came on; each
                                              connection's start and end are lines of their own
                                              ({"opened": N}, {"closed": N}); every line
                                              has "ms", its time in ms since the epoch

The server prints "ready" once it listens and runs until killed.
"""

import asyncio
import json
import sys
import time

import hl7
from hl7.mllp import open_hl7_connection, start_hl7_server


def msh10(message):
    return str(message.segment("MSH")[10])


async def client(host, port, files):
    reader, writer = await open_hl7_connection(host, int(port), encoding="utf-8")
    for name in files:
        with open(name, encoding="utf-8") as f:
            message = hl7.parse(f.read().replace("\n", "\r"))
        writer.writemessage(message)
        await writer.drain()
        ack = await asyncio.wait_for(reader.readmessage(), 10)
        msa = ack.segment("MSA")
        print(f"{msa[1]} {msa[2]}", flush=True)
    writer.close()


async def server(port, mode, log_path):
    log = open(log_path, "a", encoding="utf-8")
    connections = iter(range(1, 1 << 30))

    def note(entry):
        entry["ms"] = int(time.time() * 1000)
        log.write(json.dumps(entry) + "\n")
        log.flush()

    async def on_connect(reader, writer):
        connection = next(connections)
        note({"opened": connection})
        try:
            while True:
                message = await reader.readmessage()
                note({"control_id": msh10(message), "text": str(message), "connection": connection})
                if mode == "silent":
                    continue
                if mode.startswith("late:"):
                    await asyncio.sleep(float(mode.split(":", 1)[1]))
                code = {"aa": "AA", "ae": "AE", "ar": "AR"}.get(mode, "AA")
                ack = message.create_ack(ack_code=code)
                if code != "AA":
                    err = f"ERR|||207^Application internal error^HL70357|E||||peer says {code}"
                    ack = hl7.parse(str(ack) + "\r" + err)
                writer.writemessage(ack)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            note({"closed": connection})
            writer.close()

    async with await start_hl7_server(on_connect, "127.0.0.1", int(port)) as srv:
        print("ready", flush=True)
        await srv.serve_forever()


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "client":
        asyncio.run(client(args[0], args[1], args[2:]))
    elif cmd == "server":
        asyncio.run(server(args[0], args[1], args[2]))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
