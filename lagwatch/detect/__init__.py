"""Detection: pure functions from what was seen (and when) to statuses with reasons."""
