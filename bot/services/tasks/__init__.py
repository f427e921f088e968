"""Deadline tasks: assignment, the reminder ladder, recurring series, bulk import."""
