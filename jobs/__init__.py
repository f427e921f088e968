"""Scheduled jobs (reminder sweeps, outbox dispatch, digests); registered by later releases."""
