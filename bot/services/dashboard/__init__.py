"""The web dashboard's rules: who may sign in, one-time links, sessions and passwords."""
