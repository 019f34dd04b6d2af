"""Sanitation-company contracts: standing monthly orders, bulk orders, delivery acceptance, statements."""
