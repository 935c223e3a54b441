"""The fan-out benchmark: many watchers on one realtime process, against bare websockets."""
