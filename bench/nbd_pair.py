#!/usr/bin/env python3
# Runs an NBD server that speaks on stdin/stdout (nbdkit --single) on one end
# of a socketpair and a client with the other end as its fd 3, as the
# helper hands it to QEMU: bench/pbs-nbd.sh times QEMU's NBD client this way.
#   nbd_pair.py SERVER ARGS... -- CLIENT ARGS...
import os
import socket
import subprocess
import sys

split = sys.argv.index("--")
server_cmd, client_cmd = sys.argv[1:split], sys.argv[split + 1:]
ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
# close_fds=False: the server inherits what the caller opened for it (a
# key pipe for key-fd=N).
server = subprocess.Popen(server_cmd, stdin=theirs.fileno(), stdout=theirs.fileno(), close_fds=False)
theirs.close()
fd = ours.detach()
if fd != 3:
    os.dup2(fd, 3, inheritable=True)
    os.close(fd)
os.set_inheritable(3, True)
client = subprocess.Popen(client_cmd, pass_fds=(3,))
os.close(3)
rc = client.wait()
server.wait()
sys.exit(rc)
