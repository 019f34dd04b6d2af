"""Every model, imported in dependency order so Alembic and the app see the whole schema."""
from .accounts.models import ApiToken, LoginSession, Organization, RequestKey, User  # noqa: F401
from .producers.models import (Enterprise, Household, HouseholdCard, Pairing, PointManager, Village,  # noqa: F401
                               VisitNote)
from .catalog.models import PickupPoint, PriceTier, Product  # noqa: F401
from .inventory.models import Intake, Lot, StockMovement  # noqa: F401
from .contracts.models import Backorder, CompanyPayment, Contract, ContractPrice, ContractRun  # noqa: F401
from .points.models import PointDay, PointDevice, PointGrower, PointOperator, PointSale, Permit, SalesPoint  # noqa: F401
from .orders.models import Allocation, CartItem, Order, OrderEvent, OrderLine, Refund, RefundLine  # noqa: F401
from .payments.models import ProcessedStripeEvent  # noqa: F401
from .welfare.models import WelfareFund, WelfareGrant, WelfareMovement, WelfareTopUp  # noqa: F401
from .ledger.models import Account, Entry, JournalTransaction, Payout  # noqa: F401
from .reports.models import OrganizationTarget  # noqa: F401
from .audit.models import AuditEvent  # noqa: F401
from .notifications.models import ChannelSetting, Notification, OutboxMessage  # noqa: F401
