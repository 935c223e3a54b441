"""The worker side: the relay from RabbitMQ into RQ, the RQ job that runs tasks, and handlers."""
