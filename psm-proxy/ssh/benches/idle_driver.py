"""Opens N idle interactive sessions (pty + shell) through the gateway and holds them.

usage: idle_driver.py PORT KNOWN_HOSTS KEY N [nopty]
Prints "OPEN <n> <seconds>" once all are established (n counts successes), then holds them;
each line "COUNT" on stdin is answered with "ALIVE <n>": how many of them are still open
(a session the gateway closed, e.g. at a deadline, no longer counts).
"""
import asyncio
import sys
import time

import asyncssh


async def one(sem, port, known, key, pty, alive):
    async with sem:
        for attempt in range(3):
            try:
                c = await asyncssh.connect("127.0.0.1", port, username="bench+t", known_hosts=known,
                                           client_keys=[key], agent_path=None, config=[])
                if pty:
                    p = await c.create_process(term_type="xterm", term_size=(80, 24))
                else:
                    p = await c.create_process()
                await asyncio.wait_for(p.stdout.read(2), 30)
                alive.add(c)
                asyncio.ensure_future(forget_when_closed(c, alive))
                return True
            except Exception as e:  # retried, then counted as a failure
                err = e
                await asyncio.sleep(0.5)
        print("failed:", repr(err), file=sys.stderr)
        return False


async def forget_when_closed(c, alive):
    await c.wait_closed()
    alive.discard(c)


async def main():
    port, known, key, n = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
    pty = "nopty" not in sys.argv[5:]
    sem = asyncio.Semaphore(100)
    alive = set()
    t = time.monotonic()
    results = await asyncio.gather(*(one(sem, port, known, key, pty, alive) for _ in range(n)))
    print(f"OPEN {sum(results)} {time.monotonic() - t:.1f}", flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            await asyncio.sleep(3600)
        elif line.strip() == "COUNT":
            print(f"ALIVE {len(alive)}", flush=True)


asyncio.run(main())
