"""Channel adapters behind one contract (contract.py): Telegram, and the replies they carry."""
