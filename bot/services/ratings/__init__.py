"""Citizen ratings: the rating itself, statistics, follow-up cases, service points, QR."""
