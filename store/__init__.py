"""Persistence: call records, and the live state of queues and agents."""
