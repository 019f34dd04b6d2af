"""Consumption-assistance figures: the staff home, the admin's report, unit targets, the year's summary."""
