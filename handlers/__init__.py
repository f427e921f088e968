"""What the bot does when someone writes: commands, buttons and flows."""
