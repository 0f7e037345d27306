"""The bridge's decisions: pure, clock-injected, no I/O, no imports from other layers."""
