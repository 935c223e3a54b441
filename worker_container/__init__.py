"""The worker side: the relay from RabbitMQ into RQ, the RQ job that runs the users' tasks, the
registry of the task types live workers serve, and the sweeper."""
