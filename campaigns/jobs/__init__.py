"""Per-recipient jobs: claiming, recording outcomes, retry policy, counts by state, dispatch."""
