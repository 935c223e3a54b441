"""taskcast's demo tasks, declared through the public task API exactly as a user's would be.

The stack loads them like any user's tasks: ``TASKCAST_TASKS=taskcast_demo.tasks`` (which
``make demo`` and ``make up`` set). Nothing in taskcast's own parts names them.
"""
