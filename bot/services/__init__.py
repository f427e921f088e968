"""The rules of reformbot: pure Python and the database, no chat platform."""
