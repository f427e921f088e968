"""Dossiers and apologies: the registry, late dossiers, the apology slip."""
