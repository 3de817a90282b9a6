"""Fraud typologies for the generator, each with the shape it has in real life.

Every function returns the fraudulent events of one episode (all labelled
with the typology's ``fraud_type``, a
:class:`~npusuite.platform.contracts.labels.FraudTypology`, the vocabulary the
review app and training share), drawn from the ``rng`` it is given:

- ``card_testing``: stolen card details checked with a burst of tiny online
  payments at several merchants within minutes, from a device and network the
  account never used; if they go through, a few larger purchases follow.
- ``account_takeover``: a fraudster logs into online banking from a new device
  and (often foreign) network and, within the hour, sends large transfers to
  payees the account has never paid.
- ``cloned_card``: a skimmed card is copied and used in person far away
  within two hours of the real card being used at home, at least 2,000 km
  away (impossible travel),
  on electronics and jewellery at shops the account never visited.
- ``atm_cashout``: a card with its PIN is drained through several maximum
  withdrawals at unfamiliar ATMs, mostly at night.
- ``merchant_bust_out``: a merchant builds a short genuine history, then in
  one or two days keys large card-not-present charges (no device, no IP)
  against many compromised cards and disappears.  Spans several accounts.

Three more were added for issue 19's leave-one-typology-out protocol and were
designed (here, before any model saw them) from how they happen, not from what
the streaming features look at; none needs a new device, a foreign network or
impossible travel, so the features built for the five above are no head start:

- ``dormant_bust_out``: first-party fraud.  The account holder goes quiet for
  one to three weeks, then in one to three days spends far above their usual
  amounts at many shops near home and online, from their own phone and home
  network, with a few maximum ATM withdrawals, and is never heard from again.
- ``synthetic_identity``: an account opened mid-stream under a made-up identity
  behaves like a modest new customer for a while (credit building, labelled
  genuine: the bank finds out at the loss), then busts out within two days:
  electronics, jewellery, gift cards, cash and transfers to new payees, all
  from the one device it always used.  Genuine customers also join mid-stream
  (see the generator), so a young account is not fraud in itself.
- ``app_scam`` (authorised push payment): the genuine customer is talked into
  paying a fraudster, from their own device and network at their usual hours:
  one to four escalating transfers to one new payee over up to three days.
"""

from __future__ import annotations

import math

import numpy as np

from npusuite.fraud.personas import DAY_S, Persona, event, sample_hour
from npusuite.fraud.world import (
    ATMS_PER_CITY,
    FRAUD_CITIES,
    HOME_COUNTRY,
    TRANSFER_MCC,
    World,
    haversine_km,
    pick_weighted,
    random_device,
    random_ip,
)
from npusuite.platform.contracts.labels import GENERATED_TYPOLOGIES
from npusuite.platform.contracts.labels import FraudTypology as T

#: A cloned card turns up at least this far from home: out of reach within the 2 h window.
CLONE_MIN_KM = 2000.0
#: Each typology's function below has the typology's value as its name.
TYPOLOGIES: tuple[T, ...] = GENERATED_TYPOLOGIES
#: Share of fraudulent *transactions* each typology contributes.
TYPOLOGY_SHARE: dict[T, float] = {T.CARD_TESTING: 0.18, T.ACCOUNT_TAKEOVER: 0.13, T.CLONED_CARD: 0.14,
                                  T.ATM_CASHOUT: 0.12, T.MERCHANT_BUST_OUT: 0.14, T.DORMANT_BUST_OUT: 0.1,
                                  T.SYNTHETIC_IDENTITY: 0.09, T.APP_SCAM: 0.1}
#: A dormant bust-out's quiet spell before the spree, in days (shortened on short streams).
DORMANT_DAYS = (7, 22)
#: Where first-party and synthetic bust-outs spend: goods that resell (electronics, jewellery,
#: department stores, furniture, clothing).
RESALE_MCCS = ("5732", "5944", "5311", "5712", "5651")


def _night_or_any(rng: np.random.Generator) -> float:
    return float(rng.uniform(0, 6)) if rng.random() < 0.5 else float(rng.uniform(0, 24))


def card_testing(rng: np.random.Generator, world: World, p: Persona, t0: float) -> list[dict]:
    device = random_device(rng)
    country = pick_weighted(rng, FRAUD_CITIES)
    ip = random_ip(rng, world, world.cities[country].country)
    small = [m for m in world.online if m.mcc in ("5815", "5999")]
    sites = [small[int(i)] for i in rng.choice(len(small), size=int(rng.integers(2, 6)), replace=False)]
    out, t = [], t0
    for _ in range(int(rng.integers(5, 18))):
        t += float(rng.exponential(25.0)) + 3.0
        m = sites[int(rng.integers(len(sites)))]
        amount = float(rng.choice([0.5, 1.0, 1.0, 1.5, 2.0, 2.5, 3.0, 4.99]))
        amount += float(rng.integers(0, 100)) / 100.0 * (rng.random() < 0.3)
        out.append(event(p, t, m.merchant_id, m.mcc, amount, "ecommerce", HOME_COUNTRY, None, None, device, ip,
                         T.CARD_TESTING))
    if rng.random() < 0.6:
        big = [m for m in world.online if m.mcc in ("5732", "5999", "5651")]
        for _ in range(int(rng.integers(1, 4))):
            t += float(rng.uniform(120, 2400))
            m = big[int(rng.integers(len(big)))]
            out.append(event(p, t, m.merchant_id, m.mcc, float(rng.uniform(80, 900)), "ecommerce", HOME_COUNTRY,
                             None, None, device, ip, T.CARD_TESTING))
    return out


def account_takeover(rng: np.random.Generator, world: World, p: Persona, t0: float) -> list[dict]:
    device = random_device(rng)
    abroad = rng.random() < 0.6
    cc = world.cities[pick_weighted(rng, FRAUD_CITIES)].country if abroad else HOME_COUNTRY
    ip = random_ip(rng, world, cc)
    out, t = [], t0
    if rng.random() < 0.4:  # a first, smaller transfer to see whether it goes through
        t += float(rng.uniform(60, 600))
        out.append(event(p, t, f"P{int(rng.integers(1e9)):09d}", TRANSFER_MCC, float(rng.uniform(20, 150)), "transfer",
                         HOME_COUNTRY, None, None, device, ip, T.ACCOUNT_TAKEOVER))
    for _ in range(int(rng.integers(1, 5))):
        t += float(rng.uniform(90, 1500))
        amount = min(9500.0, max(400.0, p.typical_amount() * float(rng.uniform(15, 80))))
        out.append(event(p, t, f"P{int(rng.integers(1e9)):09d}", TRANSFER_MCC, amount, "transfer", HOME_COUNTRY,
                         None, None, device, ip, T.ACCOUNT_TAKEOVER))
    if rng.random() < 0.3:  # gift cards bought online from the same session
        m = [m for m in world.online if m.mcc == "5999"][int(rng.integers(5))]
        t += float(rng.uniform(60, 900))
        out.append(event(p, t, m.merchant_id, m.mcc, float(rng.uniform(100, 500)), "ecommerce", HOME_COUNTRY,
                         None, None, device, ip, T.ACCOUNT_TAKEOVER))
    return out


def cloned_card(rng: np.random.Generator, world: World, p: Persona, t0: float) -> list[dict]:
    far = {name: w for name, w in FRAUD_CITIES.items()
           if haversine_km(p.home.lat, p.home.lon, world.cities[name].lat, world.cities[name].lon) >= CLONE_MIN_KM}
    city = world.cities[pick_weighted(rng, far)]
    shops = [m for m in world.local[city.name] if m.mcc in ("5732", "5944", "5311", "5651", "5999", "5812")]
    out, t = [], t0
    for k in range(int(rng.integers(2, 8))):
        if k:
            t += float(rng.uniform(300, 3600))
        m = shops[int(rng.integers(len(shops)))]
        amount = float(rng.uniform(60, 2500)) if m.mcc in ("5732", "5944") else float(rng.uniform(40, 600))
        out.append(event(p, t, m.merchant_id, m.mcc, amount, "card_present", city.country, m.lat, m.lon, None, None,
                         T.CLONED_CARD))
    return out


def atm_cashout(rng: np.random.Generator, world: World, p: Persona, t0: float) -> list[dict]:
    city = world.cities[pick_weighted(rng, FRAUD_CITIES)] if rng.random() < 0.6 else \
        world.cities[["Manchester", "Birmingham", "London", "Glasgow"][int(rng.integers(4))]]
    if city.name == p.home.name:
        city = world.cities["Bucharest"]
    atms = world.atms[city.name]
    out, t = [], t0
    for _ in range(int(rng.integers(3, 9))):
        t += float(rng.uniform(120, 1800))
        atm = atms[int(rng.integers(len(atms)))]
        amount = float(rng.choice([200, 250, 300, 400, 500], p=[0.2, 0.2, 0.3, 0.15, 0.15]))
        out.append(event(p, t, atm.merchant_id, atm.mcc, amount, "atm", city.country, atm.lat, atm.lon, None, None,
                         T.ATM_CASHOUT))
    return out


def merchant_bust_out(rng: np.random.Generator, world: World, victims: list[Persona], bystanders: list[Persona],
                      t0: float) -> list[dict]:
    """Genuine sales to ``bystanders`` in the weeks before ``t0``, then the bust-out on ``victims``."""
    mcc = str(rng.choice(["5999", "5732", "5944", "5311"]))
    merchant_id = world.new_merchant_id("W")
    out = []
    for b in bystanders:  # the merchant's clean-looking history (genuine, labelled so)
        t = t0 - float(rng.uniform(2, 20)) * DAY_S
        if t > 0:
            amount = math.exp(rng.normal(b.log_spend_mu, b.log_spend_sigma))
            out.append(event(b, t, merchant_id, mcc, amount, "ecommerce", HOME_COUNTRY, None, None, b.devices[0],
                             random_ip(rng, world, HOME_COUNTRY, b.home_prefixes[0])))
    for v in victims:
        t = t0 + float(rng.uniform(0, 1.5)) * DAY_S
        for _ in range(int(rng.integers(1, 4))):
            t += float(rng.uniform(60, 7200))
            amount = float(rng.choice([249.99, 399.0, 499.99, 650.0, 899.0, 1199.0, 1499.99]))
            out.append(event(v, t, merchant_id, mcc, amount, "ecommerce", HOME_COUNTRY, None, None, None, None,
                             T.MERCHANT_BUST_OUT))
    return out


def _home_ip(rng: np.random.Generator, world: World, p: Persona) -> str:
    return random_ip(rng, world, HOME_COUNTRY, p.home_prefixes[0])


def dormant_bust_out(rng: np.random.Generator, world: World, p: Persona, t0: float) -> list[dict]:
    """The spree after the quiet spell (the generator silences the account before ``t0`` and after)."""
    shops = [m for m in world.local[p.home.name] if m.mcc in RESALE_MCCS]
    web = [m for m in world.online if m.mcc in ("5732", "5999", "5651")]
    device = p.devices[0]
    out, t = [], t0
    for _ in range(int(rng.integers(6, 21))):
        t += float(rng.uniform(600, 4 * 3600))
        if rng.random() < 0.6:
            m = shops[int(rng.integers(len(shops)))]
            amount = min(3000.0, p.typical_amount() * m.amount_scale ** 0.6 * float(rng.uniform(3, 12)))
            out.append(event(p, t, m.merchant_id, m.mcc, amount, "card_present", HOME_COUNTRY, m.lat, m.lon, None,
                             None, T.DORMANT_BUST_OUT))
        else:
            m = web[int(rng.integers(len(web)))]
            amount = min(3000.0, p.typical_amount() * float(rng.uniform(5, 25)))
            out.append(event(p, t, m.merchant_id, m.mcc, amount, "ecommerce", HOME_COUNTRY, None, None, device,
                             _home_ip(rng, world, p), T.DORMANT_BUST_OUT))
    for _ in range(int(rng.integers(0, 3))):
        t += float(rng.uniform(1800, 6 * 3600))
        atm = p.home_atms[int(rng.integers(len(p.home_atms)))]
        out.append(event(p, t, atm.merchant_id, atm.mcc, float(rng.choice([250, 300, 500])), "atm", HOME_COUNTRY,
                         atm.lat, atm.lon, None, None, T.DORMANT_BUST_OUT))
    return out


def synthetic_identity(rng: np.random.Generator, world: World, p: Persona, t0: float) -> list[dict]:
    """The bust-out of a synthetic account ``p`` (its quiet build-up is genuine activity, made by the generator)."""
    device = p.devices[0]
    shops = [m for m in world.local[p.home.name] if m.mcc in RESALE_MCCS]
    gift = [m for m in world.online if m.mcc in ("5999", "5732")]
    out, t = [], t0
    for _ in range(int(rng.integers(5, 16))):
        t += float(rng.uniform(300, 3 * 3600))
        r = rng.random()
        if r < 0.4:
            m = shops[int(rng.integers(len(shops)))]
            out.append(event(p, t, m.merchant_id, m.mcc, float(rng.uniform(300, 2500)), "card_present", HOME_COUNTRY,
                             m.lat, m.lon, None, None, T.SYNTHETIC_IDENTITY))
        elif r < 0.7:
            m = gift[int(rng.integers(len(gift)))]
            out.append(event(p, t, m.merchant_id, m.mcc, float(rng.uniform(200, 1500)), "ecommerce", HOME_COUNTRY,
                             None, None, device, _home_ip(rng, world, p), T.SYNTHETIC_IDENTITY))
        elif r < 0.85:
            atm = world.atms[p.home.name][int(rng.integers(ATMS_PER_CITY))]
            out.append(event(p, t, atm.merchant_id, atm.mcc, float(rng.choice([300, 400, 500])), "atm", HOME_COUNTRY,
                             atm.lat, atm.lon, None, None, T.SYNTHETIC_IDENTITY))
        else:
            out.append(event(p, t, f"P{int(rng.integers(1e9)):09d}", TRANSFER_MCC, float(rng.uniform(500, 3000)),
                             "transfer", HOME_COUNTRY, None, None, device, _home_ip(rng, world, p),
                             T.SYNTHETIC_IDENTITY))
    return out


def app_scam(rng: np.random.Generator, world: World, p: Persona, t0: float) -> list[dict]:
    """Escalating transfers to one new payee, sent by the customer at their usual hours."""
    payee = f"P{int(rng.integers(1e9)):09d}"
    device = p.devices[int(rng.integers(len(p.devices)))]
    ip = random_ip(rng, world, HOME_COUNTRY, p.home_prefixes[min(p.devices.index(device), 1)])
    day0 = t0 - t0 % DAY_S
    out, factor = [], float(rng.uniform(4, 15))
    for k in range(int(rng.integers(1, 5))):
        day = day0 + DAY_S * min(2, k // 2 + int(rng.random() < 0.3))
        t = max(day + sample_hour(rng, p) * 3600.0, out[-1]["_t"] + 600.0 if out else t0)
        amount = min(9500.0, max(250.0, p.typical_amount() * factor))
        out.append(event(p, t, payee, TRANSFER_MCC, amount, "transfer", HOME_COUNTRY, None, None, device, ip,
                         T.APP_SCAM))
        factor *= float(rng.uniform(1.2, 2.5))  # "one more payment and the money is released"
    return out


def episode_start(rng: np.random.Generator, start_epoch: float, days: int) -> float:
    """A start time after the first day (so accounts have some history), often at night."""
    day = int(rng.integers(1, max(2, days)))
    return start_epoch + day * DAY_S + _night_or_any(rng) * 3600.0


def anchor_after_card_present(rng: np.random.Generator, genuine: list[dict], start_epoch: float,
                              days: int) -> float:
    """A time 15 min–2 h after one of the account's genuine card-present payments at home."""
    cps = [e["_t"] for e in genuine if e["channel"] == "card_present" and e["country"] == HOME_COUNTRY
           and e["_t"] > start_epoch + DAY_S]
    if not cps:
        return episode_start(rng, start_epoch, days)
    return cps[int(rng.integers(len(cps)))] + float(rng.uniform(900, 7200))
