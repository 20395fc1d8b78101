"""Opens N idle interactive sessions (pty + shell) through the gateway and holds them.

usage: idle_driver.py PORT KNOWN_HOSTS KEY N
Prints "OPEN <n> <seconds>" once all are established (n counts successes), then sleeps.
"""
import asyncio
import sys
import time

import asyncssh


async def one(sem, port, known, key, conns):
    async with sem:
        for attempt in range(3):
            try:
                c = await asyncssh.connect("127.0.0.1", port, username="bench+t", known_hosts=known,
                                           client_keys=[key], agent_path=None, config=[])
                p = await c.create_process(term_type="xterm", term_size=(80, 24))
                await asyncio.wait_for(p.stdout.read(2), 30)
                conns.append((c, p))
                return True
            except Exception as e:  # retried, then counted as a failure
                err = e
                await asyncio.sleep(0.5)
        print("failed:", repr(err), file=sys.stderr)
        return False


async def main():
    port, known, key, n = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
    sem = asyncio.Semaphore(100)
    conns = []
    t = time.monotonic()
    results = await asyncio.gather(*(one(sem, port, known, key, conns) for _ in range(n)))
    print(f"OPEN {sum(results)} {time.monotonic() - t:.1f}", flush=True)
    await asyncio.sleep(3600)


asyncio.run(main())
