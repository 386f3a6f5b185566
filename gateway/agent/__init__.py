"""Agent turns for the candidate gateway: provider client, turn runner and tool registry."""
