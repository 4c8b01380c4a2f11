"""The renderer: leaderboard.json -> a static site (templates, static assets, figures), its output folder, screenshots."""
