"""Stock at the village service point: lots from each supplier, movements, allocation, traceability."""
