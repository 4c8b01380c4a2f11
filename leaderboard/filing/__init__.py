"""Filing: `runner submit` checks a result against the cards and its predictions and files it; publications and floors are filed here too."""
