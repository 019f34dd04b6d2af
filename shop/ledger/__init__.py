"""The households' income ledger: double-entry, append-only; payouts, statements, verification."""
