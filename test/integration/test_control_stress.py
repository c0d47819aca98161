"""1000 control requests in a row, then 50 at once, while traffic flows through
a psock: every request is answered, and every byte of the traffic arrives."""

import os
import threading

from harness import Target, control_request, fail, note, request_line

HERE = os.path.dirname(os.path.abspath(__file__))
POLICY = os.path.join(os.path.dirname(os.path.dirname(HERE)), "policy", "examples", "drop_and_loop.json")


def main():
    with Target(os.path.join(HERE, "control_stress.py"), policy=POLICY) as target:
        pid = int(target.line())
        path = target.control_path(pid)
        for i in range(1000):
            r = control_request(path, request_line("dump" if i % 2 else "info"))
            if not r.get("ok"):
                fail(f"request {i}: {r!r}")
        note("ok: 1000 requests in a row answered")
        errors = []

        def one():
            try:
                if not control_request(path, request_line("dump")).get("ok"):
                    errors.append("not ok")
            except OSError as e:
                errors.append(str(e))
        threads = [threading.Thread(target=one) for _ in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        if errors:
            fail(f"{len(errors)} of 50 concurrent requests failed: {errors[:3]}")
        note("ok: 50 requests at once answered")
        psock = control_request(path, request_line("dump"))["result"]["psocks"]
        tx = psock[0]["stats"]["tx"] if len(psock) == 1 else {}
        if not tx or tx["dropped"] != 0 or tx["in"] == 0 or \
                tx["in"] != tx["passed"] + tx["queued"]:
            fail(f"psocks during traffic: {psock!r}")
        target.proc.stdin.close()
        result = target.read()
        if target.proc.wait(timeout=30) != 0 or result["sent"] != result["received"] \
                or result["sent"] == 0:
            fail(f"traffic: {result['sent']} sent, {result['received']} received")
        note(f"ok: all {result['sent']} bytes of the traffic arrived")
    print("PASS control stress", flush=True)


if __name__ == "__main__":
    main()
