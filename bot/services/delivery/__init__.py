"""Delivery: the outbox, leases across processes, webhook replays, chat accounts."""
