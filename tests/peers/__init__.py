"""Real external peers for tests: pjsua2 caller/answerer processes, sipp, RTP sinks."""
