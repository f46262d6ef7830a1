"""Client-side services the API and the CLI call: goal runs, schedules, progress."""
