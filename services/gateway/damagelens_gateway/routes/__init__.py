"""One router per noun: jobs, models, health, and the seed-compatible `/predict*`."""
