"""Pure quota arithmetic: admission now, borrowing and fair share in later issues."""
