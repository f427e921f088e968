"""Channel adapters (one module per platform) behind one contract (contract.py)."""
