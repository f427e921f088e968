"""The web dashboard: Starlette pages over the report services, for leadership and unit heads."""
