"""Sending work to the queue: a broker that is down or hung never fails or hangs the caller."""

import socket
import threading

from tests.support.outages import celery_broker
from tracker.queueing import enqueue


def test_a_hung_queue_fails_soft_instead_of_hanging_the_request():
    """A broker that accepts connections and never answers (a wedged Redis)."""
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(16)
        outcome = []
        with celery_broker(f"redis://127.0.0.1:{hung.getsockname()[1]}/0"):
            sender = threading.Thread(
                target=lambda: outcome.append(enqueue("tracker.tasks.check_source_task", 1)),
                daemon=True,
            )
            sender.start()
            sender.join(timeout=120)
    assert outcome == [False]  # gave up (after the broker's socket timeout), did not hang
