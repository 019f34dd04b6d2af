"""The reports, gathered for their callers: the figures (`figures`), what each household earns (`households`),
the year's summary (`summary`) and the service point's day (`today`)."""
from __future__ import annotations

from .figures import (Export, Period, Report, Rolled, Sales, TABLES, TargetProgress, build, by_buyer, by_supply,
                      export, per_product, period_presets, rows, set_target, summed, table, targets, verify)
from .households import (HouseholdFigures, HouseholdPage, StaffHome, WatchRules, household_figures, household_page,
                         last_sales, monthly_incomes, next_payout_day, staff_home, stock_on_hand, tell_watch_digests,
                         watch_list)
from .summary import amount_words, summary_sentences, wan
from .today import ManagerToday, manager_today

__all__ = [
    'Export', 'HouseholdFigures', 'HouseholdPage', 'ManagerToday', 'Period', 'Report', 'Rolled', 'Sales',
    'StaffHome', 'TABLES', 'TargetProgress', 'WatchRules', 'amount_words', 'build', 'by_buyer', 'by_supply',
    'export', 'household_figures', 'household_page', 'last_sales', 'manager_today', 'monthly_incomes',
    'next_payout_day', 'per_product', 'period_presets', 'rows', 'set_target', 'staff_home', 'stock_on_hand',
    'summed', 'summary_sentences', 'table', 'targets', 'tell_watch_digests', 'verify', 'wan', 'watch_list'
]
