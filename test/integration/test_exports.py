"""Every hook the foundation issue lists is exported by libsockshim.so."""

import subprocess

import harness

HOOKS = """
socket socketpair connect listen accept accept4 getpeername send sendto sendmsg sendmmsg write
writev sendfile sendfile64 recv recvfrom recvmsg recvmmsg read readv close close_range
closefrom dup dup2 dup3 fcntl ioctl shutdown poll ppoll select pselect epoll_create
epoll_create1 epoll_ctl epoll_wait epoll_pwait epoll_pwait2 fork __read_chk __recv_chk
__recvfrom_chk __poll_chk __ppoll_chk syscall
""".split()


def main():
    out = subprocess.run(["nm", "-D", "--defined-only", harness.LIBRARY], capture_output=True,
                         text=True, check=True).stdout
    exported = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) == 3:
            exported[fields[2].split("@")[0]] = fields[1]
    missing = [h for h in HOOKS if exported.get(h) not in ("T", "W")]
    if missing:
        harness.fail(f"not exported as functions: {missing}")
    harness.note(f"ok: all {len(HOOKS)} hooks exported")


main()
