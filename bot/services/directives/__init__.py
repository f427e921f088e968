"""Directives and broadcasts: targeting, attachments, acknowledgement, chasing, status."""
