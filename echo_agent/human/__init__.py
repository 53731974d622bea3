"""`echo-agent shell`: the person's own bash, each typed command and its output recorded as a human step."""
