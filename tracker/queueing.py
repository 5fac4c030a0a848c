"""Sending work to the Celery queue, and the one answer when the queue is down.

The bottom of the import graph: Celery, kombu and Django's settings only, no models. A flow
that queues its own work (webhooks, digests, monitoring) records that work in the database
first; when the broker cannot be reached, `enqueue` says so instead of failing the request,
the flow leaves a mark, and its dispatcher sends the work once the queue is back.
"""

import logging
import uuid
from dataclasses import dataclass

from celery import current_app
from django.conf import settings
from kombu.exceptions import OperationalError as QueueUnreachable

logger = logging.getLogger(__name__)

# Marks recorded work whose task the queue refused; the flow's dispatcher sends it again.
NOT_QUEUED = "not queued yet: the task queue was unreachable"


# The broker's key naming the queue's current life (see queue_epoch).
QUEUE_EPOCH_KEY = "tracker:queue-epoch"


def queue_epoch():
    """Return the id of the queue's current life: a key in the broker's Redis, made by the
    first caller. A Redis restarted without its data has lost the queued messages and the
    key alike, so a new id says that work queued under the old one will never arrive.
    "" when tasks run in-process, the broker is not Redis, or it cannot be reached."""
    if current_app.conf.task_always_eager:
        return ""
    try:
        with current_app.connection_for_write() as connection:
            if connection.transport.driver_type != "redis":
                return ""
            client = connection.default_channel.client
            client.set(QUEUE_EPOCH_KEY, uuid.uuid4().hex, nx=True)
            epoch = client.get(QUEUE_EPOCH_KEY)
    except Exception as error:  # kombu's, redis' and socket errors alike
        logger.warning("task queue unreachable, its epoch unknown: %s", error)
        return ""
    return epoch.decode() if epoch else ""


def enqueue(task, *args):
    """Send `task` (a task, or the name it is registered under) to the queue; return False,
    and log, when the broker cannot be reached.

    A name lets a flow queue a task defined above it (tasks.py) without importing it: the
    name is already the contract with queued messages, so it never changes.
    """
    return enqueue_each(task, [args]) == 1


def enqueue_each(task, arguments):
    """Send `task` once for each tuple of `arguments` (a list), all through one broker
    connection; return how many were sent: fewer, and logged, when the broker stopped
    answering."""
    if isinstance(task, str):
        task = current_app.tasks[task]
    sent = 0
    try:
        with current_app.producer_or_acquire() as producer:
            for args in arguments:
                task.apply_async(args, producer=producer)
                sent += 1
    except QueueUnreachable as error:
        logger.warning(
            "task queue unreachable, %s%r not sent (%d sent before it): %s",
            task.name,
            tuple(arguments[sent]),
            sent,
            error,
        )
    return sent


@dataclass(frozen=True)
class Queued:
    """What became of work sent to the queue: `sent` went, `kept` waits (recorded, marked)
    for the dispatcher because the queue was down."""

    sent: int = 0
    kept: int = 0

    def outage_message(self, noun):
        """The one answer staff read when the queue is down, whatever they asked for (admin
        or API): the work is kept and goes out once the queue is back."""
        return (
            f"The task queue is unreachable: {self.kept} {noun} kept, to be sent as soon as "
            "it is back."
        )


def is_final_attempt(task):
    """Whether a failure now is final: retries used up, or an in-process (eager) run, such
    as the admin's "check now" in the demo, which does not retry."""
    return task.request.is_eager or task.request.retries >= task.max_retries


def retry_later(task, cause):
    """The retry of `task`, after exponential backoff from TRACKER_CHECK_RETRY_SECONDS; the
    log says why (`cause`: the exception, or what went wrong in words)."""
    countdown = settings.TRACKER_CHECK_RETRY_SECONDS * 2**task.request.retries
    logger.warning(
        "%s%r failed (attempt %d of %d), retrying in %d s: %s",
        task.name,
        tuple(task.request.args or ()),
        task.request.retries + 1,
        task.max_retries + 1,
        countdown,
        f"{type(cause).__name__}: {cause}" if isinstance(cause, BaseException) else cause,
    )
    return task.retry(countdown=countdown)
