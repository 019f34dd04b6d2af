"""The demo village, built from the figures of the bureau's 2023 work summary.

XX村: 86 alleviated households with 222 people; 3 monitored households (one with its risk
eliminated); the bureau's 56 staff paired with 63 alleviated and 2 monitored households;
two sanitation companies that buy brooms; two village enterprises; 20 watermelon points in town.
Loading is idempotent: every record is looked up by its natural key first.
"""
from __future__ import annotations

import random
from datetime import date, time, timedelta

from sqlalchemy import delete, select, update

from . import clock
from .accounts.models import Organization, User
from .accounts.services import hash_password
from .catalog.models import PickupPoint, Product
from .notifications.models import Notification, OutboxMessage
from .contracts import services as contracts
from .contracts.models import Contract
from .extensions import db
from .inventory.models import Intake
from .inventory.services import IntakeItem, available, receive
from .ledger import services as ledger
from .models_base import value_fen
from .orders import services as orders
from .orders.models import Order
from .payments import services as payments
from .points import services as points
from .points.models import SalesPoint
from .producers import services as producers
from .producers.models import Enterprise, Household, Pairing, SupportedVillage, Village
from .reports.services import last_sales as ledger_last_sales
from .welfare import services as welfare

DEMO_PASSWORD = "xiangcun2023"
DEMO_STOCK = "送货入库"  # the note on the demo's current stock intakes
BUREAU = "县XX局"
COMPANIES = {"buyer-jinlv": ("劲旅环卫", "劲旅环卫采购员"), "buyer-yonghao": ("永昊环卫", "永昊环卫采购员")}
VILLAGE, TOWN = "XX村", "XX镇"
ALLEVIATED, ALLEVIATED_PEOPLE = 86, 222
STAFF = 56
WELFARE_GRANT_FEN = 30_000  # the bureau union's Spring Festival greeting to each staff member

SURNAMES = "康王李张刘陈杨赵黄周吴徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董潘袁蔡蒋余"
GIVEN = "建国 秀英 桂兰 玉兰 志强 红梅 金凤 海燕 永胜 保国 春花 德明 文华 立新 凤英 桂芝 长海 俊峰 丽娟 国庆 振华 素芳 明亮 家富 学文 翠萍 荣华 广田 秋菊 满仓".split()

PRODUCTS = [
    # name, category, unit, price_fen, season, description
    ("散养土鸡蛋", "eggs", "枚", 120, None, "村里农户散养的土鸡下的蛋，个头不大，蛋黄饱满。"),
    ("土鸡蛋礼盒（30枚）", "eggs", "箱", 3900, None, "30 枚散养土鸡蛋，稻壳包装，适合走亲访友。"),
    ("带壳新花生", "peanuts", "斤", 500, (9, 12), "当年新收的沙地花生，晒干带壳。"),
    ("花生米", "peanuts", "斤", 900, None, "手工剥壳的花生米，颗粒饱满。"),
    ("绿豆", "mung_beans", "斤", 850, None, "农户自种的明绿豆，易煮开花，消暑佳品。"),
    ("散养土鸡", "poultry", "只", 8500, None, "林下散养一年以上的土鸡，约 3 斤一只，宰杀处理干净。"),
    ("土鸭", "poultry", "只", 6000, None, "河沟散养的麻鸭，约 3 斤一只。"),
    ("大白鹅", "poultry", "只", 12000, (9, 2), "秋冬出栏的大白鹅，约 8 斤一只。"),
    ("环卫扫帚（竹枝）", "brooms", "把", 850, None, "环卫作业用竹枝大扫帚，村里扫帚户手工扎制，耐磨耐用。"),
    ("家用高粱扫帚", "brooms", "把", 1500, None, "高粱穗手工扎制的家用扫帚。"),
    ("沙地西瓜", "watermelons", "斤", 120, (6, 8), "沙地种植的西瓜，皮薄沙瓤，城区 20 余处临时销售点自提。"),
    ("手工红薯粉条", "other", "斤", 1200, None, "明侯故里食品公司用本村红薯手工制作的粉条。"),
    ("小磨香油", "other", "瓶", 3500, None, "本村芝麻石磨压榨，500 毫升一瓶。"),
]

TOWN_SPOTS = ("人民广场东门 火车站广场 汽车站南侧 县人民医院门口 第一高级中学东门 实验小学北门 人民公园西门 "
              "体育场南门 农贸市场入口 步行街北口 县政府西侧 商业街中段 文化广场 东关十字路口 西关菜市场 南关桥头 "
              "北关路口 新区管委会 滨河公园东门 高铁站出站口").split()


def _get_or_add(model, defaults: dict | None = None, **key):
    found = db.session.scalar(select(model).filter_by(**key))
    if found is not None:
        return found, False
    obj = model(**key, **(defaults or {}))
    db.session.add(obj)
    return obj, True


def _grant(username: str, village: Village) -> None:
    """The manager runs this village's point (besides any they already run)."""
    manager = db.session.scalar(select(User).filter_by(username=username))
    held = producers.managed_villages(manager.id)
    if village.id not in held:
        producers.set_managed_villages(manager.id, {village.id, *held})


def _name(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + rng.choice(GIVEN)


def _member_counts(rng: random.Random) -> list[int]:
    """86 households holding exactly 222 people, 1 to 5 each."""
    counts = [2] * ALLEVIATED
    extra = ALLEVIATED_PEOPLE - sum(counts)
    while extra > 0:
        i = rng.randrange(ALLEVIATED)
        if counts[i] < 5:
            counts[i] += 1
            extra -= 1
    for _ in range(10):  # a few people living alone, balanced by larger families
        i, j = rng.randrange(ALLEVIATED), rng.randrange(ALLEVIATED)
        if counts[i] == 2 and counts[j] < 5 and i != j:
            counts[i] -= 1
            counts[j] += 1
    return counts


def load(today: date | None = None) -> str:
    """Load the demo village as of `today` (the day it is loaded): its history is the twelve months before."""
    rng = random.Random(2023)
    added: dict[str, int] = {}

    def count(kind: str, created: bool) -> None:
        added[kind] = added.get(kind, 0) + int(created)

    password_hash = None

    def password() -> str:
        nonlocal password_hash  # one hash for every demo user keeps the load fast; demo data only
        if password_hash is None:
            password_hash = hash_password(DEMO_PASSWORD)
        return password_hash

    village, created = _get_or_add(Village, {"town": TOWN}, name=VILLAGE)
    count("villages", created)
    bureau, created = _get_or_add(Organization, {"kind": "government"}, name=BUREAU)
    count("organizations", created)
    db.session.flush()

    # households: 86 alleviated (222 people), 3 monitored, 8 ordinary
    members = _member_counts(rng)
    specs = [(f"XXC{n:03d}", "alleviated", members[n - 1], None) for n in range(1, ALLEVIATED + 1)]
    specs += [("XXC087", "monitored", 2, False), ("XXC088", "monitored", 3, False), ("XXC089", "monitored", 2, True)]
    specs += [(f"XXC{n:03d}", "ordinary", rng.randint(2, 5), None) for n in range(90, 98)]
    households = []
    for code, status, size, risk in specs:
        phone = f"13{rng.randint(0, 9)}{rng.randint(10000000, 99999999)}" if rng.random() < 0.7 else None
        household, created = _get_or_add(
            Household, {"head_name": _name(rng), "members": size, "status": status, "risk_eliminated": risk,
                        "phone": phone, "village": village}, code=code)
        count("households", created)
        households.append(household)

    for name, kind in (("XX县明侯故里食品有限责任公司", "company"), ("XX县XX种植专业合作社", "cooperative")):
        _, created = _get_or_add(Enterprise, {"kind": kind, "village": village}, name=name)
        count("enterprises", created)

    # users: admin, manager, 56 staff, two company buyers
    staff_names = ["康本树"] + [_name(rng) for _ in range(STAFF - 1)]
    users = [("admin", "局帮扶办协调员", "admin", bureau), ("manager", "村电商服务点管理员", "manager", None),
             ("coordinator", "县XX局消费帮扶联络员", "coordinator", bureau)]
    users += [(f"staff{n:02d}", staff_names[n - 1], "staff", bureau) for n in range(1, STAFF + 1)]
    for username, (org_name, display) in COMPANIES.items():
        org, created = _get_or_add(Organization, {"kind": "company"}, name=org_name)
        count("organizations", created)
        users.append((username, display, "company", org))
    staff = []
    for username, display, role, org in users:
        user = db.session.scalar(select(User).filter_by(username=username))
        if user is None:
            user = User(username=username, display_name=display, role=role, organization=org,
                        password_hash=password(), active=True)
            db.session.add(user)
            count("users", True)
        if role == "staff":
            staff.append(user)
    db.session.flush()
    _grant("manager", village)
    _get_or_add(SupportedVillage, organization_id=bureau.id, village_id=village.id)

    # 65 pairings: staff01–09 two households each, staff10–56 one; 63 alleviated + 2 monitored
    paired = households[:63] + households[86:88]
    owners = [s for s in staff[:9] for _ in range(2)] + staff[9:]
    for user, household in zip(owners, paired):
        if db.session.scalar(select(Pairing.id).filter_by(household_id=household.id)) is None:
            db.session.add(Pairing(user=user, household=household))
            count("pairings", True)

    for name, category, unit, price, season, description in PRODUCTS:
        _, created = _get_or_add(Product, {
            "category": category, "unit": unit, "price_fen": price, "description": description, "active": True,
            "season_start_month": season[0] if season else None, "season_end_month": season[1] if season else None,
        }, name=name, village_id=village.id)
        count("products", created)

    points = [("村电商服务点", "XX镇XX村村委会东侧", None), ("县XX局机关大院", "县城XX路XX局院内传达室", None)]
    points += [(f"西瓜临时销售点{n:02d}（{spot}）", f"县城{spot}", (6, 8)) for n, spot in enumerate(TOWN_SPOTS, 1)]
    hours = {"村电商服务点": ("123456", time(18, 0)), "县XX局机关大院": ("12345", time(17, 30))}
    for name, address, season in points:
        days, closes = hours.get(name, (None, None))
        _, created = _get_or_add(PickupPoint, {
            "village_id": village.id, "address": address, "active": True, "open_weekdays": days, "closes_at": closes,
            "season_start_month": season[0] if season else None, "season_end_month": season[1] if season else None,
        }, name=name)
        count("pickup points", created)
    db.session.flush()

    today = today or clock.today()
    added["contract months"] = _load_contracts(rng, households, today)
    added["watermelon point sales"] = _load_summer(rng, households, today)
    added["market point sales"] = _load_market(rng, households, today)
    added["purchases in the last twelve months"] = _load_buying(rng, households, today)
    # the past months' events are history, not news: nobody is notified of them
    db.session.execute(delete(OutboxMessage))
    db.session.execute(delete(Notification))
    db.session.execute(update(User).values(unread_notifications=0))
    added["lots"] = _load_stock(rng, households)
    added["orders"] = _load_orders(rng) if added["purchases in the last twelve months"] else 0
    added["household cards"] = _load_card()
    added["neighbouring villages"] = _load_neighbours(rng, password)
    added["welfare grants"] = _load_welfare(bureau, today)

    if not any(added.values()):
        return "Demo village already loaded; nothing changed."
    return "Demo village loaded: " + ", ".join(f"{n} {kind}" for kind, n in added.items() if n)


BROOM_MAKERS = ["XXC090", "XXC091", "XXC092", "XXC093", "XXC030", "XXC031", "XXC032", "XXC094"]
# The households the demo's own figures put at risk (the watch list names them, and only them): one stopped
# selling three months ago, one sells too little for its five people, a monitored household whose risk is open.
AT_RISK = {"idle": "XXC040", "low": "XXC062", "monitored": "XXC088"}


def _contracts(today: date) -> list[tuple]:
    """The two sanitation companies' broom contracts, dated from the day the demo is loaded: the three-year
    ¥190,000 contract of 劲旅环卫 (trimmed at its cap), ended last month, and 永昊环卫's two-year one, running."""
    this_month = clock.month_of(today)
    return [
        # number, company, monthly brooms, price (fen), first, last, cap (fen), status
        ("JL-" + clock.month_after(this_month, -36).replace("-", ""), "劲旅环卫", 1000, 550,
         clock.month_after(this_month, -36), clock.month_after(this_month, -1), 19_000_000, "ended"),
        ("YH-" + clock.month_after(this_month, -11).replace("-", ""), "永昊环卫", 600, 850,
         clock.month_after(this_month, -11), clock.month_after(this_month, 12), 13_000_000, "active"),
    ]


def _load_contracts(rng: random.Random, households: list[Household], today: date) -> int:
    """The two sanitation companies' broom contracts, with every past month made, delivered, accepted
    and (all but the last two) paid — through the real services, dated month by month."""
    if db.session.scalar(select(Contract.id).limit(1)) is not None:
        return 0
    manager = db.session.scalar(select(User).where(User.username == "manager"))
    admin = db.session.scalar(select(User).where(User.username == "admin"))
    broom = db.session.scalar(select(Product).where(Product.name == "环卫扫帚（竹枝）"))
    makers = [h for h in households if h.code in BROOM_MAKERS]
    this_month = clock.month_of(today)
    made = 0
    for number, company, monthly, price, first, last, cap, status in _contracts(today):
        org = db.session.scalar(select(Organization).where(Organization.name == company))
        buyer = db.session.scalar(select(User).where(User.organization_id == org.id, User.role == "company"))
        contract = contracts.save_contract(None, contracts.ContractData(
            number=number, organization_id=org.id, product_id=broom.id, unit_price_fen=price, monthly_quantity=monthly,
            first_month=first, last_month=last, cap_fen=cap, delivery_address=f"{company}城区作业站", delivery_day=5,
            payment_terms_days=30, status="active"), user_id=admin.id)
        month = first
        while month <= last and month < this_month:
            start = clock.month_start(month)
            day = lambda d, h=10: clock.at_local(start.replace(day=d), h)  # noqa: E731 - 10:00 at the shop
            for maker in makers:  # every broom maker brings a share of this month's brooms
                receive(household_id=maker.id, items=[IntakeItem(broom.id, monthly // len(makers) + rng.randint(0, 10))],
                        user_id=manager.id, received_at=day(1))
            result = contracts.generate_for(contract, month, at=day(3))
            if result.order is not None:
                made += 1
                contracts.deliver(result.order, user_id=manager.id, at=day(5))
                line = result.order.lines[0]
                short = rng.choice([0, 0, 0, 0, 5, 12])  # now and then a few brooms with broken handles
                contracts.accept(result.order, {line.id: line.quantity - short}, user_id=buyer.id,
                                 note="断柄 %d 把" % short if short else None, at=day(8))
                if short:
                    contracts.handle_rejected(result.order, restock=False, user_id=manager.id)
            paid_through = clock.month_after(this_month, -2)
            if month < paid_through:
                owed = contracts.owed_by(org)
                if owed:
                    contracts.record_payment(org, owed, reference=f"{number}-{month}", user_id=admin.id,
                                             paid_on=clock.month_end(month) + timedelta(days=20))
            if start.month % 3 == 0:  # the service point pays the broom makers every quarter
                for maker in makers:
                    account = ledger.household_account(maker.id)
                    if account.owed_fen:
                        ledger.pay_out(account, account.owed_fen, method="bank_transfer",
                                       reference=f"Q{start.year}-{start.month // 3}-{maker.code}", user_id=manager.id,
                                       at=clock.at_local(start.replace(day=28), 10))
            month = clock.month_after(month)
        contract.status = status
        db.session.flush()
    return made


STAFF_YEAR_FEN = 4_470_000  # 2023 work summary: 直接消费帮扶采购共计4.47万元
BASKETS = [[("散养土鸡蛋", 60), ("花生米", 3)], [("散养土鸡", 1), ("绿豆", 3)], [("土鸡蛋礼盒（30枚）", 2), ("花生米", 2)],
           [("散养土鸡", 1), ("土鸭", 1)], [("绿豆", 5), ("散养土鸡蛋", 30)], [("带壳新花生", 10), ("散养土鸡蛋", 30)],
           [("散养土鸡", 2)], [("花生米", 5), ("绿豆", 5)]]
# the companies' festival buying for their workers (节日福利): (months before the load, company, lines)
FESTIVAL_ORDERS = [
    (10, "劲旅环卫", [("花生米", 300), ("土鸡蛋礼盒（30枚）", 200), ("散养土鸡", 80)]),
    (6, "劲旅环卫", [("散养土鸡蛋", 2400), ("绿豆", 300)]),
    (3, "永昊环卫", [("绿豆", 400), ("小磨香油", 150), ("土鸭", 50)]),
]
LINE_FEN_PER_PERSON = 60_000  # what the demo aims to bring each person in a year: above the watch list's ¥500


class _Suppliers:
    """Who brings the goods the demo's buyers buy: first whoever has not sold for five weeks, then whoever is
    furthest behind ¥600 a person for the months so far (what it earned at the sales points counts) — so every
    household but the ones the demo puts at risk sells steadily, in proportion to its size."""

    def __init__(self, households: list[Household], first_day: date, today: date, *, low: set[int]):
        self.households = {h.id: h for h in households}
        self.low = low  # households the demo keeps low: they are brought up to a quarter of the line only
        ids = list(self.households)
        season = {h: i.income_fen for h, i in ledger.incomes(ids, first_day, today).items()}
        self.earned: dict[int, int] = {h: season[h] for h in ids}
        self.last: dict[int, date] = {h: first_day - timedelta(days=45) for h in ids}
        self.season_last = {h: clock.local_day(at) for h, at in ledger_last_sales(ids).items() if at}

    def pick(self, n: int, on: date, months_gone: int, *, without: set[int]) -> list[Household]:
        def priority(household_id: int):
            line = LINE_FEN_PER_PERSON // 4 if household_id in self.low else LINE_FEN_PER_PERSON
            owed = line * self.households[household_id].members * months_gone // 12
            last = max([d for d in (self.last[household_id], self.season_last.get(household_id)) if d and d <= on])
            return ((on - last).days > 35, (owed - self.earned[household_id]) // self.households[household_id].members)

        ranked = sorted((i for i in self.households if i not in without), key=priority, reverse=True)
        return [self.households[i] for i in ranked[:n]]

    def sold(self, household: Household, fen: int, on: date) -> None:
        self.earned[household.id] += fen
        self.last[household.id] = max(self.last[household.id], on)


def _take_in(suppliers: _Suppliers, wanted: dict[Product, int], on: date, months_gone: int, *, without: set[int],
             manager: User) -> None:
    """Take in exactly `wanted` (product → units) from the households the demo's buying should reach now."""
    for product, quantity in wanted.items():
        parts = max(1, min(quantity, 10))
        chosen = suppliers.pick(parts, on, months_gone, without=without)
        share, extra = divmod(quantity, len(chosen))
        for n, supplier in enumerate(chosen):
            part = share + (1 if n < extra else 0)
            if part:
                receive(household_id=supplier.id, items=[IntakeItem(product.id, part)], user_id=manager.id,
                        received_at=clock.at_local(on, 8))
                suppliers.sold(supplier, value_fen(part, product.price_fen, product.scale), on)


def _load_buying(rng: random.Random, households: list[Household], today: date) -> int:
    """The last twelve months of staff buying from the village, week by week (about the work summary's ¥44,700
    a year), and the companies' festival orders: each week's goods taken in from the households just before,
    the orders paid at the service point (or accepted on account) and handed over, the households paid out
    at each quarter's end. Bought up to yesterday."""
    if db.session.scalar(select(Order.id).where(Order.channel == "retail").limit(1)) is not None:
        return 0
    manager = db.session.scalar(select(User).where(User.username == "manager"))
    staff = list(db.session.scalars(select(User).where(User.role == "staff").order_by(User.username)))
    point = db.session.scalar(select(PickupPoint).where(PickupPoint.name == "县XX局机关大院"))
    products = {p.name: p for p in db.session.scalars(select(Product))}
    sellers = [h for h in households if h.status in ("alleviated", "monitored") and h.code not in BROOM_MAKERS]
    codes = {h.code: h.id for h in households}
    first_day = date(today.year - 1, today.month, min(today.day, 28))  # twelve months ago
    suppliers = _Suppliers(sellers, first_day, today, low={codes[AT_RISK["low"]], codes[AT_RISK["monitored"]]})
    festivals = {_month_back(today, months): (company, lines) for months, company, lines in FESTIVAL_ORDERS}
    made, week = 0, first_day
    while week < today:
        days = [d for d in (week + timedelta(days=n) for n in range(7)) if d < today]
        gone = (days[0] - first_day).days * 12 // 365 + 1  # months of the year so far, for the suppliers' share
        without = {codes[AT_RISK["idle"]]} if (today - days[0]).days < 95 else set()  # it stopped three months ago
        baskets = _baskets(rng, products, staff, STAFF_YEAR_FEN * len(days) // 365, days)
        wanted: dict[Product, int] = {}
        for _buyer, basket in baskets:
            for product, quantity in basket:
                wanted[product] = wanted.get(product, 0) + quantity
        _take_in(suppliers, wanted, days[0], gone, without=without, manager=manager)
        for buyer, basket in baskets:
            at = clock.at_local(rng.choice(days), rng.randint(9, 17))
            order = orders.place_order(buyer, payment_method="offline", pickup_point_id=point.id,
                                       lines=[(p.id, q) for p, q in basket], at=at)
            payments.confirm_offline_payment(order, reference=f"S{days[0]:%Y%m%d}-{made:05d}", user_id=manager.id,
                                             at=at)
            orders.pack(order, user_id=manager.id, at=at)
            orders.hand_over(order, user_id=manager.id, to=buyer.display_name, at=at)
            made += 1
        for day in days:
            if day in festivals:
                company, lines = festivals[day]
                made += _festival_order(company, [(products[n], q) for n, q in lines], days, suppliers, without,
                                        gone, manager)
            if day.month % 3 == 0 and day.day == 28:  # paid out at each quarter's end
                _pay_out(sellers, day.replace(day=1), manager)
        db.session.flush()
        week += timedelta(days=7)
    return made


def _month_back(today: date, months: int) -> date:
    month = clock.month_after(clock.month_of(today), -months)
    return clock.month_start(month).replace(day=min(today.day, 28))


def _baskets(rng: random.Random, products: dict[str, Product], staff: list[User], budget: int,
             days: list[date]) -> list[tuple[User, list[tuple[Product, int]]]]:
    """A week's staff baskets (of what is in season all week), worth at most `budget` together."""
    baskets, value = [], 0
    while True:
        basket = [(products[n], q) for n, q in rng.choice(BASKETS) if products[n].season_start_month is None
                  or (products[n].in_season(days[0]) and products[n].in_season(days[-1]))]
        worth = sum(value_fen(q, p.price_fen, p.scale) for p, q in basket)
        if value + worth > budget:
            return baskets
        if basket:
            baskets.append((rng.choice(staff), basket))
            value += worth


def _pay_out(households: list[Household], month_start: date, manager: User) -> None:
    """The quarter's payout: each household is paid what it is owed, in cash, on the 28th."""
    for household in households:
        account = ledger.household_account(household.id)
        if account.owed_fen:
            ledger.pay_out(account, account.owed_fen, method="cash",
                           reference=f"Q{month_start.year}-{month_start.month // 3}", user_id=manager.id,
                           at=clock.at_local(month_start.replace(day=28), 10))


def _festival_order(company: str, lines: list[tuple[Product, int]], days: list[date], suppliers: _Suppliers,
                    without: set[int], months_gone: int, manager: User) -> int:
    """A company's bulk order for its workers' festival, on account: taken in, confirmed, delivered, accepted."""
    org = db.session.scalar(select(Organization).where(Organization.name == company))
    buyer = db.session.scalar(select(User).where(User.organization_id == org.id, User.role == "company"))
    _take_in(suppliers, dict(lines), days[0], months_gone, without=without, manager=manager)
    order = contracts.request_bulk_order(buyer, [(p.id, q) for p, q in lines], at=clock.at_local(days[0], 9))
    contracts.confirm_bulk_order(order, user_id=manager.id)
    contracts.deliver(order, user_id=manager.id, at=clock.at_local(days[min(2, len(days) - 1)], 10))
    contracts.accept(order, {line.id: line.quantity for line in order.lines}, user_id=buyer.id,
                     at=clock.at_local(days[min(3, len(days) - 1)], 15))
    return 1


# Who brings what to the service point: (product, household codes, quantity range, shelf life in days)
STOCK = [
    ("散养土鸡蛋", ["XXC001", "XXC002", "XXC005", "XXC011", "XXC087", "XXC088"], (60, 200), 20),
    ("土鸡蛋礼盒（30枚）", ["XXC003", "XXC089"], (5, 15), 20),
    ("花生米", ["XXC004", "XXC007", "XXC020"], (30, 80), 180),
    ("带壳新花生", ["XXC008", "XXC021"], (50, 120), 120),
    ("绿豆", ["XXC006", "XXC012", "XXC087"], (20, 60), 365),
    ("散养土鸡", ["XXC009", "XXC013", "XXC088"], (4, 12), 5),
    ("土鸭", ["XXC014"], (3, 8), 5),
    ("环卫扫帚（竹枝）", ["XXC090", "XXC091", "XXC092", "XXC093", "XXC030", "XXC031"], (150, 400), None),
    ("家用高粱扫帚", ["XXC094", "XXC032"], (20, 50), None),
]


def _load_stock(rng: random.Random, households: list[Household]) -> int:
    """Lots on hand at the service point, taken in over the past few days (only into an empty stock)."""


    if db.session.scalar(select(Intake.id).where(Intake.note == DEMO_STOCK).limit(1)) is not None:
        return 0
    manager = db.session.scalar(select(User).where(User.username == "manager"))
    by_code = {h.code: h for h in households}
    products = {p.name: p for p in db.session.scalars(select(Product))}
    visits: dict[str, list[IntakeItem]] = {}
    for name, codes, (low, high), shelf_days in STOCK:
        for code in codes:
            visits.setdefault(code, []).append(IntakeItem(products[name].id, rng.randint(low, high)))
    count = 0
    for code, items in visits.items():
        received_at = clock.now() - timedelta(days=rng.randint(0, 3), hours=rng.randint(0, 6))
        for item in items:
            shelf = next(s[3] for s in STOCK if products[s[0]].id == item.product_id)
            if shelf is not None:
                item.best_before = clock.local_day(received_at) + timedelta(days=shelf)
        receive(household_id=by_code[code].id, items=items, user_id=manager.id, received_at=received_at,
                note=DEMO_STOCK)
        count += len(items)
    return count


def _load_orders(rng: random.Random) -> int:
    """A few staff orders through the real services, so every page has something to show:
    most paid and handed over, one paid and waiting to be packed, one waiting for payment."""

    manager = db.session.scalar(select(User).where(User.username == "manager"))
    point = db.session.scalar(select(PickupPoint).where(PickupPoint.name == "县XX局机关大院"))
    products = {p.name: p for p in db.session.scalars(select(Product))}
    baskets = [[("散养土鸡蛋", 30)], [("花生米", 5), ("绿豆", 3)], [("散养土鸡", 1)], [("散养土鸡蛋", 60), ("小磨香油", 1)],
               [("绿豆", 5)], [("土鸡蛋礼盒（30枚）", 2)], [("带壳新花生", 10)], [("散养土鸡蛋", 20), ("花生米", 2)]]

    count = 0
    for n, basket in enumerate(baskets, start=1):
        buyer = db.session.scalar(select(User).where(User.username == f"staff{n * 3:02d}"))
        lines = [(products[name].id, quantity) for name, quantity in basket]
        stock = available([pid for pid, _ in lines])
        if any(stock.get(pid, 0) < quantity for pid, quantity in lines):
            continue  # not enough of it in this demo's stock: skip that basket
        order = orders.place_order(buyer, payment_method="offline", pickup_point_id=point.id, lines=lines)
        count += 1
        if n < len(baskets):
            payments.confirm_offline_payment(order, reference=f"DEMO-{n:04d}", user_id=manager.id)
        if n < len(baskets) - 1:
            orders.pack(order, user_id=manager.id)
            orders.hand_over(order, user_id=manager.id, to=buyer.display_name)
        db.session.flush()
    return count


DEMO_CARD = ("XXC001", "demo-household-card-XXC001", "202312")  # household, link token, PIN


WEIGHED_MELON = ("沙地西瓜（称重）", 120)    # ¥1.20 per 斤, weighed at the town's points to 0.1 斤
WEIGHED_PEANUTS = ("散装带壳花生（称重）", 450)  # ¥4.50 per 斤 at the market point
MARKET_BROOM = "家用高粱扫帚"
OPERATORS = 5  # op01..op05, four watermelon points each; op01 also runs the market point
MELON_SEASON = ((7, 1), (8, 31))  # the watermelon points sell in July and August


def melon_season(today: date) -> tuple[date, date, bool]:
    """The watermelon season the demo shows: this summer's while it lasts (selling today), else the last one."""
    (m1, d1), (m2, d2) = MELON_SEASON
    first, last = date(today.year, m1, d1), date(today.year, m2, d2)
    if today < first:
        return first.replace(year=today.year - 1), last.replace(year=today.year - 1), False
    return first, last, today <= last


def _weighed(name: str, category: str, price: int, season: tuple | None, description: str) -> Product:
    product = db.session.scalar(select(Product).where(Product.name == name))
    if product is None:
        village = db.session.scalar(select(Village).filter_by(name=VILLAGE))
        product = Product(village_id=village.id, name=name, category=category, unit="斤", price_fen=price, quantity_decimals=1, active=True,
                          season_start_month=season[0] if season else None,
                          season_end_month=season[1] if season else None, description=description)
        db.session.add(product)
        db.session.flush()
    return product


def _operators(rng: random.Random) -> list[User]:
    manager = db.session.scalar(select(User).where(User.username == "manager"))
    operators = []
    for n in range(1, OPERATORS + 1):
        user = db.session.scalar(select(User).where(User.username == f"op{n:02d}"))
        if user is None:
            user = User(username=f"op{n:02d}", display_name=f"{_name(rng)}（销售点）", role="operator",
                        password_hash=manager.password_hash, active=True)
            db.session.add(user)
        operators.append(user)
    db.session.flush()
    return operators


def _season_at_point(rng: random.Random, point, operator: User, growers: list[Household],
                     goods: list[tuple[Product, int, tuple[int, int]]], today: date, *, turns: bool = False) -> int:
    """A point's season through the points' own service, as phones send it: each grower's permit and goods
    brought on the first day, each day to yesterday sold — cash or the grower's own payment code — and closed
    with its cash count (with `turns`, the growers take turns at the stall, a day each). Today is left to sell
    and close."""
    manager = db.session.scalar(select(User).where(User.username == "manager"))
    device = points.register_device(point, operator)
    for grower in growers:
        points.add_grower(point, household_id=grower.id, qr_note="微信收款码", user_id=manager.id)
        points.issue_permit(point, household_id=grower.id, issued_by="县市场监督管理局", valid_from=point.first_day,
                            valid_to=point.last_day, user_id=manager.id)
        for product, quantity, _daily in goods:
            points.record_arrival(point, household_id=grower.id, product_id=product.id, quantity=quantity,
                                  user_id=operator.id, at=clock.at_local_time(point.first_day, time(6, 30)))
    made, seq, day = 0, 0, point.first_day
    while day <= point.last_day and day < today:
        for k, grower in enumerate(growers):  # each grower's day, summed up as a sale per product
            if turns and (day - point.first_day).days % len(growers) != k:
                continue
            for product, _quantity, (low, high) in goods:
                seq += 1
                units = rng.randint(low, high)
                at = clock.at_local_time(day, time(9 + 5 * k % 10, rng.randint(0, 59)))
                sale = points.SaleIn(f"{rng.getrandbits(32):08x}-0000-4000-8000-{point.id:04d}{seq:08d}",
                                     f"{point.code}-{device.code}-{seq:04d}", point.id, grower.id, None, product.id,
                                     units, product.price_fen, value_fen(units, product.price_fen, product.scale),
                                     "cash" if rng.random() < 0.6 else "grower_qr", at)
                points.record_sale(operator, sale, now=at)
                made += 1
        figures = points.day_figures(point, day)
        short = 100 if rng.random() < 0.05 else 0  # now and then a yuan short, as real tills are
        points.close_day(point, day, max(0, figures.cash_fen - short), note="找零差错" if short else None,
                         user_id=operator.id)
        day += timedelta(days=1)
    return made


def _load_summer(rng: random.Random, households: list[Household], today: date) -> int:
    """The watermelon season at the 20 points in town (July and August), two growers each with a free permit,
    operators op01–op05, each day's sales by weight: this summer's while it lasts (the points sell today), else
    last summer's."""
    if db.session.scalar(select(SalesPoint.id).where(SalesPoint.code == "XG01")) is not None:
        return 0
    first, last, _current = melon_season(today)
    manager = db.session.scalar(select(User).where(User.username == "manager"))
    melon = _weighed(WEIGHED_MELON[0], "watermelons", WEIGHED_MELON[1], (6, 8),
                     "瓜农在城区临时销售点现场称重出售，精确到 0.1 斤。")
    operators = _operators(rng)
    growers = [h for h in households if h.status in ("alleviated", "monitored") and h.code not in BROOM_MAKERS
               and h.code not in AT_RISK.values()]
    rng.shuffle(growers)
    made = 0
    for n, spot in enumerate(TOWN_SPOTS, 1):
        point = points.save_point(None, points.PointData(
            code=f"XG{n:02d}", name=f"西瓜临时销售点{n:02d}（{spot}）", address=f"县城{spot}", first_day=first,
            last_day=last, opens_at=time(7, 0), closes_at=time(21, 0)), user_id=manager.id)
        operator = operators[(n - 1) % OPERATORS]
        points.assign_operator(point, operator.id, by=manager.id)
        made += _season_at_point(rng, point, operator, growers[2 * (n - 1): 2 * n], [(melon, 200_000, (1200, 3600))],
                                 today, turns=True)
    db.session.flush()
    return made


def _load_market(rng: random.Random, households: list[Household], today: date) -> int:
    """Outside the watermelon season, a market point selling today: the 年货集市 in winter (brooms and peanuts
    by weight for the Spring Festival), a 农产品集市 in spring and autumn — three growers with permits, op01
    selling, the days so far closed."""
    if melon_season(today)[2] or db.session.scalar(select(SalesPoint.id).where(SalesPoint.code == "NH01")):
        return 0
    manager = db.session.scalar(select(User).where(User.username == "manager"))
    winter = today.month in (11, 12, 1, 2)
    name = "年货集市临时销售点（人民广场）" if winter else "农产品集市临时销售点（人民广场）"
    point = points.save_point(None, points.PointData(
        code="NH01", name=name, address="县城人民广场东门", first_day=today - timedelta(days=10),
        last_day=today + timedelta(days=20), opens_at=time(8, 0), closes_at=time(18, 0)), user_id=manager.id)
    operator = _operators(rng)[0]
    points.assign_operator(point, operator.id, by=manager.id)
    peanuts = _weighed(WEIGHED_PEANUTS[0], "peanuts", WEIGHED_PEANUTS[1], None,
                       "农户在集市现场称重出售的带壳花生，精确到 0.1 斤。")
    broom = db.session.scalar(select(Product).where(Product.name == MARKET_BROOM))
    by_code = {h.code: h for h in households}
    growers = [by_code[code] for code in ("XXC094", "XXC008", "XXC021")]  # a broom maker, two peanut growers
    made = _season_at_point(rng, point, operator, growers, [(peanuts, 30_000, (150, 600)), (broom, 400, (3, 12))],
                            today)
    db.session.flush()
    return made


# Two more of the county's villages, each with its own service point and manager: each manager sees only their own
# village (XX村's `manager` sees neither), the admin sees all three. Each is supported by a unit of its own, whose
# coordinator and two staff (paired with two of its households) log in too.
# (village, household codes, manager, product, (unit, login prefix, coordinator's name, staff names))
NEIGHBOURS = [
    ("东岭村", "DLC", ("manager-dongling", "东岭村电商服务点管理员"),
     ("东岭小米", "other", "斤", 600, "东岭村旱地谷子碾的小米，颗粒金黄。"),
     ("县农业农村局", "nongye", "县农业农村局消费帮扶联络员", ("赵国华", "孙丽娟"))),
    ("南河村", "NHC", ("manager-nanhe", "南河村电商服务点管理员"),
     ("南河土蜂蜜", "other", "瓶", 4500, "南河村农户林下散养的土蜂蜜，500 克一瓶。"),
     ("县交通运输局", "jiaotong", "县交通运输局消费帮扶联络员", ("周志强", "吴海燕"))),
]


def _load_neighbours(rng: random.Random, password) -> int:
    """The neighbouring villages: six households each, a product, a pickup point at the village committee, a
    manager who took in this week's stock from three of the households."""
    added = 0
    for name, prefix, (username, display), (product_name, category, unit, price, description), support in NEIGHBOURS:
        village, created = _get_or_add(Village, {"town": TOWN}, name=name)
        if not created:
            continue
        db.session.flush()
        households = [Household(code=f"{prefix}{n:03d}", head_name=_name(rng), members=rng.randint(2, 5),
                                status="ordinary", village=village) for n in range(1, 7)]
        product = Product(village_id=village.id, name=product_name, category=category, unit=unit, price_fen=price,
                          description=description, active=True)
        point = PickupPoint(village_id=village.id, name=f"{name}电商服务点", address=f"{TOWN}{name}村委会",
                            active=True, open_weekdays="123456", closes_at=time(18, 0))
        manager = User(username=username, display_name=display, role="manager", password_hash=password(), active=True)
        db.session.add_all([*households, product, point, manager])
        db.session.flush()
        producers.set_managed_villages(manager.id, {village.id})
        _supporting_unit(village, households[:2], support, password)
        for household in households[:3]:
            receive(household_id=household.id, items=[IntakeItem(product.id, rng.randint(20, 40))],
                    user_id=manager.id, received_at=clock.now() - timedelta(days=rng.randint(1, 5)), note=DEMO_STOCK)
        added += 1
    return added


def _supporting_unit(village: Village, households: list[Household], support: tuple, password) -> None:
    """A unit supporting the village: its coordinator, and two staff each paired with one of the households."""
    unit_name, prefix, coordinator, staff_names = support
    unit, _created = _get_or_add(Organization, {"kind": "government"}, name=unit_name)
    db.session.flush()
    producers.set_supported_villages(unit.id, {village.id})
    people = [User(username=f"{prefix}-coordinator", display_name=coordinator, role="coordinator", organization=unit,
                   password_hash=password(), active=True)]
    people += [User(username=f"{prefix}{n:02d}", display_name=staff_name, role="staff", organization=unit,
                    password_hash=password(), active=True) for n, staff_name in enumerate(staff_names, 1)]
    db.session.add_all(people)
    db.session.flush()
    for user, household in zip(people[1:], households):
        producers.pair(user, household)


def _load_welfare(bureau: Organization, today: date) -> int:
    """The bureau's trade union funds its Spring Festival greeting (春节慰问): ¥300 to each of its staff, to spend on
    the village's produce until the end of next month (the coordinator keeps it on /unit/welfare)."""
    fund = welfare.fund_of(bureau.id)
    if welfare.fund_grants(fund, limit=1):
        return 0
    coordinator = db.session.scalar(select(User).where(User.username == "coordinator"))
    staff = db.session.scalars(select(User).where(User.organization_id == bureau.id, User.role == "staff")
                               .order_by(User.username)).all()
    at = clock.at_local_time(today, time(9, 0))  # the morning of the day the demo is loaded
    welfare.top_up(fund, WELFARE_GRANT_FEN * len(staff) + 500_000, reference="工会拨款-春节慰问",
                   user_id=coordinator.id, at=at)
    expires = (today.replace(day=1) + timedelta(days=62)).replace(day=1) - timedelta(days=1)  # next month's end
    for member in staff:
        welfare.grant(fund, welfare.GrantAsk(member, WELFARE_GRANT_FEN, today, expires, "春节慰问"),
                      granted_by=coordinator.id, at=at)
    _spend_welfare(staff, at)
    return len(staff)


WELFARE_BASKETS = [  # (what was bought, how much of it the grant paid: "all", "half" or fen)
    ([("散养土鸡蛋", 30), ("花生米", 4)], 12_000), ([("土鸡蛋礼盒（30枚）", 2)], "all"), ([("绿豆", 5), ("花生米", 5)], "all"),
    ([("散养土鸡", 2)], 10_000), ([("小磨香油", 2), ("散养土鸡蛋", 30)], "all"), ([("带壳新花生", 10)], "all"),
    ([("散养土鸡蛋", 60)], 5_000), ([("花生米", 10), ("绿豆", 10)], "half"),
]


def _spend_welfare(staff: list[User], at) -> int:
    """The Spring Festival grant partly spent the same morning (`at`, when it was granted): a few members' baskets paid wholly or partly from
    it (the rest at the service point), handed over; the last one placed and still to be paid at the point —
    through the real checkout, so the grants, orders, ledger and the union's statement agree."""
    manager = db.session.scalar(select(User).where(User.username == "manager"))
    point = db.session.scalar(select(PickupPoint).where(PickupPoint.name == "县XX局机关大院"))
    products = {p.name: p for p in db.session.scalars(select(Product))}
    spenders = [member for member in staff if member.username == "staff01"] + staff[4::6]
    count = 0
    for n, (member, (basket, paid)) in enumerate(zip(spenders, WELFARE_BASKETS), start=1):
        lines = [(products[name].id, quantity) for name, quantity in basket if name in products]
        stock = available([pid for pid, _ in lines])
        when = at + timedelta(minutes=20 * n)
        if not lines or any(stock.get(pid, 0) < quantity for pid, quantity in lines) or not all(
                products[name].in_season(clock.local_day(when)) for name, _q in basket):
            continue
        total = sum(value_fen(q, products[name].price_fen, products[name].scale) for name, q in basket)
        wanted = {"all": min(total, WELFARE_GRANT_FEN), "half": min(total // 2, WELFARE_GRANT_FEN)}.get(paid, paid)
        order = payments.checkout(member, payment_method="offline", pickup_point_id=point.id, lines=lines,
                                  welfare_fen=wanted, at=when)[0]
        count += 1
        if n == len(WELFARE_BASKETS):
            continue  # placed this morning: the rest is paid at the service point
        if order.due_fen:
            payments.confirm_offline_payment(order, reference=f"FL-{n:04d}", user_id=manager.id, at=when)
        orders.pack(order, user_id=manager.id)
        orders.hand_over(order, user_id=manager.id, to=member.display_name)
        db.session.flush()
    return count


def _load_card() -> int:
    """One household's card with a known PIN, so the household's own page can be tried (see `demo logins`)."""
    first = db.session.scalar(select(Household).where(Household.code == DEMO_CARD[0]))
    if first is None or producers.current_card(first.id) is not None:
        return 0
    manager = db.session.scalar(select(User).where(User.username == "manager"))
    producers.issue_card(first, user_id=manager.id, token=DEMO_CARD[1], pin=DEMO_CARD[2])
    return 1


def logins_text(base_url: str = "http://127.0.0.1:5000") -> str:
    base = base_url.rstrip("/")
    return "\n".join([
        f"The shop: {base}/login",
        f"Household card of {DEMO_CARD[0]}: {base}/h/{DEMO_CARD[1]}  PIN {DEMO_CARD[2]}",
        "Demo logins (password for all: %s)" % DEMO_PASSWORD,
        "  admin           bureau coordinator (users, pairings, reports)",
        "  manager         village e-commerce service point",
        "  staff01..staff56  bureau staff, each paired with their households",
        "  buyer-jinlv     劲旅环卫 buyer",
        "  buyer-yonghao   永昊环卫 buyer",
        "  op01..op05      sales point operators (the 20 watermelon points, four each; op01 also the market point)",
        "  coordinator     县XX局 unit coordinator (its target, staff buying, pairings, bulk orders, union welfare)",
        "  manager-dongling, manager-nanhe   东岭村 and 南河村 service points",
        "  nongye-coordinator, nongye01..02       县农业农村局 (supports 东岭村)",
        "  jiaotong-coordinator, jiaotong01..02   县交通运输局 (supports 南河村)",
    ])
