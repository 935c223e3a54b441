"""The websocket fan-out: each client gets the events of the tasks it holds watch tokens for."""
