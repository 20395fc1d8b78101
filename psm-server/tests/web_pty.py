#!/usr/bin/env python3
"""Runs a command in a pseudo-terminal of a given size (like a user's terminal window) and
relays this process's stdin to it and its output to stdout. psm-server's web_browser test
runs OpenSSH's ssh under it so the session has a real terminal size.

Usage: web_pty.py COLS ROWS COMMAND [ARGS...]
"""
import fcntl
import os
import pty
import select
import struct
import sys
import termios


def main():
    cols, rows = int(sys.argv[1]), int(sys.argv[2])
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(sys.argv[3], sys.argv[3:])
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    stdin = sys.stdin.fileno()
    watch = [fd, stdin]
    while True:
        ready, _, _ = select.select(watch, [], [])
        if fd in ready:
            try:
                data = os.read(fd, 65536)
            except OSError:
                data = b""
            if not data:
                break
            os.write(sys.stdout.fileno(), data)
        if stdin in ready:
            data = os.read(stdin, 65536)
            if not data:
                watch.remove(stdin)
            else:
                os.write(fd, data)
    _, status = os.waitpid(pid, 0)
    sys.exit(os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    main()
