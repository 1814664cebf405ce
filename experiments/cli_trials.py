"""Commands of one stage (filled in by its owner)."""
COMMANDS: list = []
