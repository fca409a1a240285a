"""Value objects and rules that do not depend on storage or transport."""
