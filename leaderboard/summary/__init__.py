"""The summarize stage: filed results -> leaderboard.json (tables, tie groups, floors, ranking)."""
