"""Business rules: validation, submission, explanations. No SQL, no HTTP."""
