"""Files written atomically, run-directory locks and other plumbing every layer may use."""
