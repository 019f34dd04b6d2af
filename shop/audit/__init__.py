"""Who changed what, when: money, stock, prices, roles, pairings, logins and personal-data exports."""
