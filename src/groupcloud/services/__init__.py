"""Use cases, one package per capability. Each public function is one transaction (or a
bounded retry of one) and records what it changed in the audit trail inside that same
transaction."""
