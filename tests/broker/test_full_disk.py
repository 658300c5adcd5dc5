"""A full disk under the broker's --sessions file (issue 11, point 19), on a small tmpfs
mounted for the test (skipped, 77, where mounting is not allowed): session.delete still works
(the broker frees its reserve for it), and an answer that cannot be saved for resends is
logged as such. Env: ACTOR_BROKER, ACTOR_SESSION_FILL."""
import errno
import os
import subprocess
import sys

import zmq

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import abtest  # noqa: E402
from abtest import Broker, pack, query, start_workers, tmpdir, unpack  # noqa: E402


def mount_small_fs(size="8m"):
    d = os.path.join(tmpdir(), "fs")
    os.makedirs(d, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + size, "tmpfs", d],
                       capture_output=True, text=True)
    if r.returncode != 0:
        abtest.skip("cannot mount a tmpfs here: " + (r.stderr.strip() or "not root"))
    return d


def fill(path):
    """Writes until the disk is full, to the last byte that fits."""
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    try:
        for n in (65536, 4096, 512, 1):
            try:
                while True:
                    os.write(fd, b"\0" * n)
            except OSError as e:
                assert e.errno == errno.ENOSPC, e
    finally:
        os.close(fd)


def test_session_delete_works_on_a_full_disk_and_unsaved_answers_are_said_so():
    fs = mount_small_fs()
    try:
        db = os.path.join(fs, "sessions.db")
        lines = "create\ts1\tapp\tann\n" + "events\ts1\t300\n" + "create\ts2\tapp\tbob\n"
        subprocess.run([os.environ["ACTOR_SESSION_FILL"], db], input=lines, text=True,
                       check=True, capture_output=True)
        b = Broker("--sessions", db, "--sessions-reserve-bytes", "1048576").start()
        assert os.path.getsize(db + "-reserve") == 1048576
        start_workers(b, ["w1"])
        fill(os.path.join(fs, "filler"))
        # An answer to a client with an explicit routing id cannot be saved for resends.
        s = abtest.ctx().socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.ROUTING_ID, b"resender")
        s.connect(b.clients)
        s.send(pack(query("q1", "echo", "hi")))
        assert s.poll(10000)
        r = unpack(s.recv())
        assert r["type"] == "result", r
        s.close(0)
        abtest.wait_until(lambda: "event=answer_not_saved" in b.log(), 10, "answer_not_saved")
        # The delete that makes room works.
        c = b.client()
        _, r = c.call({"v": 1, "type": "session.delete", "id": "d1", "session": "s1"})
        assert r["type"] == "result" and r["output"] == {"deleted": True}, r
        assert "event=disk_full" in b.log()
        _, r = c.call({"v": 1, "type": "session.get", "id": "g1", "session": "s1"})
        assert r["type"] == "error" and r["code"] == "not_found", r
        b.stop()
    finally:
        abtest.kill_all()
        subprocess.run(["umount", "-l", fs], capture_output=True)


if __name__ == "__main__":
    abtest.run_tests(globals())
