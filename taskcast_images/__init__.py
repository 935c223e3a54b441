"""The image task: fetch an image a client names, apply a filter, store the result.

Declared through the public task API like any user's task (``TASKCAST_TASKS=taskcast_images.tasks``),
it is the reference example of real background work: hostile input from the network, CPU, and
storage. ``fetch`` is the guarded download, ``filters`` the image operations, ``tasks`` the task.
"""
