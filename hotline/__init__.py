"""Entry points: the hotline command and the control process wiring."""
