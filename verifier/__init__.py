"""Pure verification of the evidence ledger formats: bytes, trusted keys and an explicit time in, a report out."""
