"""The organisation: units and people, roles, invites, names, the audit trail, imports."""
