"""Reports for leadership: queries, the per-unit scoreboard, renderers and document delivery."""
