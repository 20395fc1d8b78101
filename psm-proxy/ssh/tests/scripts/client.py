"""asyncssh client scenarios for the gateway tests (pip package asyncssh).

usage: client.py MODE PORT KNOWN_HOSTS KEY [EXTRA]
Prints OK on success; exits non-zero with a message otherwise.
"""
import asyncio
import logging
import os
import sys

import asyncssh

if os.environ.get("PSM_ASYNCSSH_DEBUG"):
    logging.basicConfig(level=logging.DEBUG)
    asyncssh.set_debug_level(2)


async def expect(proc, needle, timeout=20):
    buf = ""
    async def read():
        nonlocal buf
        while needle not in buf:
            chunk = await proc.stdout.read(4096)
            if not chunk:
                raise RuntimeError(f"EOF before {needle!r}; got {buf[-300:]!r}")
            buf += chunk
    await asyncio.wait_for(read(), timeout)
    return buf


class Kbd(asyncssh.SSHClient):
    def __init__(self, code):
        self.code = code

    def kbdint_auth_requested(self):
        return ""

    def kbdint_challenge_received(self, name, instructions, lang, prompts):
        return [self.code for _ in prompts]


async def main():
    mode, port, known, key = sys.argv[1:5]
    extra = sys.argv[5] if len(sys.argv) > 5 else ""
    opts = dict(host="127.0.0.1", port=int(port), known_hosts=known, client_keys=[key],
                agent_path=None, config=[])
    if mode == "resize":
        async with asyncssh.connect(username="alice+t1", **opts) as c:
            p = await c.create_process(term_type="xterm", term_size=(80, 24))
            p.stdin.write("stty size\n")
            await expect(p, "24 80")
            p.change_terminal_size(132, 43)
            await asyncio.sleep(0.3)
            p.stdin.write("stty size\n")
            await expect(p, "43 132")
            p.stdin.write("exit\n")
    elif mode == "menu":
        async with asyncssh.connect(username="alice", **opts) as c:
            p = await c.create_process(term_type="xterm", term_size=(100, 30))
            await expect(p, "Target (number or name")
            p.stdin.write("9\r")
            await expect(p, "No such target")
            p.stdin.write("t1\r")
            await expect(p, "Connecting to t1")
            p.stdin.write("echo menu-$((40+2))\r")
            await expect(p, "menu-42")
            p.change_terminal_size(90, 33)
            await asyncio.sleep(0.3)
            p.stdin.write("stty size\r")
            await expect(p, "33 90")
            p.stdin.write("exit\r")
    elif mode == "totp":
        async with asyncssh.connect(username="alice+t1", client_factory=lambda: Kbd(extra), **opts) as c:
            r = await c.run("echo totp-ok", check=True)
            assert r.stdout.strip() == "totp-ok", r.stdout
    elif mode == "totp-wrong":
        try:
            async with asyncssh.connect(username="alice+t1", client_factory=lambda: Kbd("000000"), **opts) as c:
                await c.run("true")
        except asyncssh.PermissionDenied:
            print("OK")
            return
        raise SystemExit("a wrong code was accepted")
    elif mode == "secret-prompt":
        async with asyncssh.connect(username="alice+t1", **opts) as c:
            p = await c.create_process(term_type="xterm", term_size=(80, 24))
            p.stdin.write("read -s -p 'Password: ' x; echo; echo got-${#x}-chars\n")
            await expect(p, "Password: ")
            await asyncio.sleep(0.2)
            p.stdin.write(extra + "\n")
            await expect(p, f"got-{len(extra)}-chars")
            p.stdin.write("echo visible-after\n")
            await expect(p, "visible-after")
            p.stdin.write("exit\n")
    elif mode == "channels":
        async with asyncssh.connect(username="alice+t1", **opts) as c:
            opened, refused = [], 0
            for _ in range(int(extra)):
                try:
                    chan, _ = await c.create_session(asyncssh.SSHClientSession)
                    opened.append(chan)
                except asyncssh.ChannelOpenError:
                    refused += 1
            for chan in opened:
                chan.close()
            await asyncio.sleep(0.5)
            r = await c.run("echo still-works", check=True)
            assert r.stdout.strip() == "still-works"
            print(f"opened={len(opened)} refused={refused}")
    elif mode == "huge-requests":
        async with asyncssh.connect(username="alice+t1", **opts) as c:
            try:
                p = await c.create_process("echo x", term_type="xterm", term_size=(10**9, 10**9))
                await p.wait()
                raise SystemExit("a 10^9-column terminal was accepted")
            except asyncssh.ChannelOpenError:
                pass
            r = await c.run("echo ${#PSM_BIG}", env={"PSM_BIG": "v" * 20000}, check=True)
            assert r.stdout.strip() == "20000", r.stdout
            r = await c.run("echo after-huge", check=True)
            assert r.stdout.strip() == "after-huge"
        # A value larger than an SSH packet ends only this connection.
        try:
            async with asyncssh.connect(username="alice+t1", **opts) as c:
                await c.run("true", env={"PSM_BIG": "v" * 300000})
        except (asyncssh.Error, OSError):
            pass
    elif mode == "hold":
        async with asyncssh.connect(username="alice+t1", **opts) as c:
            p = await c.create_process(term_type="xterm", term_size=(80, 24), stderr=asyncssh.STDOUT)
            p.stdin.write("echo ready\n")
            await expect(p, "ready")
            print("READY", flush=True)
            buf = ""
            while True:
                chunk = await p.stdout.read(4096)
                if not chunk:
                    break
                buf += chunk
            print("CLOSED", buf.replace("\r", "").replace("\n", " ")[-400:], flush=True)
            return
    elif mode == "pause":
        async with asyncssh.connect(username="alice+t1", **opts) as c:
            p = await c.create_process(term_type="xterm", term_size=(80, 24))
            p.stdin.write("echo ready\n")
            await expect(p, "ready")
            print("READY", flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
            p.stdin.write("echo after-$((6*7))\n")
            await expect(p, "after-42", timeout=60)
            print("GOT", flush=True)
            p.stdin.write("exit\n")
    elif mode == "env-then-run":
        async with asyncssh.connect(username="alice+t1", **opts) as c:
            r = await c.run("echo ${#PSM_BIG}", env={"PSM_BIG": "v" * int(extra)}, check=True)
            print(r.stdout.strip())
            r = await c.run("echo after", check=True)
            print(r.stdout.strip())
    else:
        raise SystemExit(f"unknown mode {mode}")
    print("OK")


asyncio.run(main())
