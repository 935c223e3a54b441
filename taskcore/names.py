"""Names of every shared resource, derived from one namespace.

The default namespace ``taskcast`` gives the names in docs/design.md (exchange ``taskcast``, queue
``taskcast.tasks``, ...). Tests and side-by-side deployments pick another namespace and so share
nothing with anyone else on the same broker, Redis or account.
"""

from __future__ import annotations

from dataclasses import dataclass

from .tasktype import DEFAULT_QUEUE, Priority


@dataclass(frozen=True)
class Names:
    namespace: str = "taskcast"

    # RabbitMQ
    @property
    def exchange(self) -> str:
        return self.namespace

    @property
    def tasks_queue(self) -> str:
        return f"{self.namespace}.tasks"

    @property
    def dead_exchange(self) -> str:
        return f"{self.namespace}.dlx"

    @property
    def dead_queue(self) -> str:
        return f"{self.namespace}.dlq"

    @property
    def legacy_dead_queue(self) -> str:
        """The dead queue's name before its delivery limit was set; provisioning migrates it."""
        return f"{self.namespace}.dead"

    @staticmethod
    def submitted_key(task_type: str) -> str:
        """The routing key a submitted task is published with."""
        return f"task.submitted.{task_type}"

    SUBMITTED_PATTERN = "task.submitted.#"
    CANCEL_KEY = "task.control.cancel"
    CONTROL_PATTERN = "task.control.#"

    @property
    def control_queue(self) -> str:
        """Control messages (cancel), apart from the work so they never wait behind it."""
        return f"{self.namespace}.control"

    def cancel_flag(self, task_id: str) -> str:
        """Set while a running task is asked to stop; its handler checks it."""
        return f"{self.namespace}:cancel:{task_id}"

    def heartbeat(self, task_id: str) -> str:
        """Refreshed while an attempt of the task runs; its absence means the worker is gone."""
        return f"{self.namespace}:alive:{task_id}"

    @property
    def sweeper_lease(self) -> str:
        """Held by the one sweeper that repairs at a time."""
        return f"{self.namespace}:sweeper:lease"

    # RQ: three queues (one per priority) for each queue a task type names
    def rq_queue(self, priority: Priority, queue: str = DEFAULT_QUEUE) -> str:
        return f"{self.namespace}.{queue}.{priority}"

    def rq_queues(self, queues: list[str]) -> list[str]:
        """The RQ queues of ``queues`` in the order a worker serves them: by priority first."""
        return [self.rq_queue(p, q) for p in Priority for q in queues]

    def served(self, task_type: str) -> str:
        """Set, with a short expiry, by every live worker that can run ``task_type``."""
        return f"{self.namespace}:served:{task_type}"

    @property
    def unserved(self) -> str:
        """Sorted set of queued tasks no live worker knows the type of, by deadline."""
        return f"{self.namespace}:unserved"

    # Redis event log, per task. The braces are a cluster hash tag: a task's stream and meta
    # key share a slot, so the one Lua script that appends to both also works on Redis Cluster.
    def event_stream(self, task_id: str) -> str:
        return f"{self.namespace}:events:{{{task_id}}}"

    def event_meta(self, task_id: str) -> str:
        return f"{self.namespace}:eventlog:{{{task_id}}}"

    def event_channel(self, task_id: str) -> str:
        return f"{self.namespace}:live:{task_id}"

    # AWS
    @property
    def tasks_table(self) -> str:
        return f"{self.namespace}-tasks"

    @property
    def idempotency_table(self) -> str:
        return f"{self.namespace}-idempotency"

    @property
    def bucket(self) -> str:
        return f"{self.namespace}-results"
