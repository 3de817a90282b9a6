"""Account personas and their genuine activity, for the fraud data generator.

A persona fixes how one customer behaves: spend level and spread, active
hours, weekday/weekend rhythm, home city, usual merchants, devices and IP
networks, how often they travel, use ATMs, pay rent and subscriptions.
:func:`genuine_activity` then lives that life day by day.

Genuine oddities are part of a normal life and are generated on purpose, so
that not every outlier is fraud: trips abroad (plausible flight times, hotel
and airline spend, foreign IPs from known devices), occasional large
purchases, large transfers to new payees (deposits), bursts of tiny in-app
payments, a new phone now and then, public Wi-Fi networks, new shops.

Rule: every draw comes from the ``rng`` passed in, in a fixed order, so a seed
reproduces the same events.  Events are plain dicts (the transaction fields of
A Transaction record minus ``transaction_id``, plus ``_t`` epoch seconds and
``fraud_type`` None); the generator sorts them and assigns ids.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from npusuite.fraud.world import (
    CURRENCY,
    HOME_COUNTRY,
    TRANSFER_MCC,
    TRAVEL_CITIES,
    City,
    Merchant,
    World,
    haversine_km,
    home_cities,
    pick_weighted,
    random_device,
    random_ip,
)

DAY_S = 86400.0


@dataclass
class Trip:
    start_day: int
    end_day: int
    city: City
    flight_h: float


@dataclass
class Persona:
    account_id: str
    card_id: str
    home: City
    tx_per_day: float
    log_spend_mu: float
    log_spend_sigma: float
    hour_centre: float
    hour_spread: float
    weekend_factor: float
    ecommerce_share: float
    local_merchants: list[Merchant]
    local_weights: np.ndarray
    online_merchants: list[Merchant]
    devices: list[str]
    home_prefixes: list[tuple[int, int]]
    atm_per_month: float
    home_atms: list[Merchant]
    payees: list[str]
    rent: tuple[str, int, float] | None           # payee, day of month, amount
    subscriptions: list[tuple[Merchant, int, float]]
    trips: list[Trip] = field(default_factory=list)
    new_phone_day: int | None = None
    micro_payer: bool = False  # buys in-app items: bursts of tiny online payments, like card testing

    def typical_amount(self) -> float:
        return math.exp(self.log_spend_mu)


def make_persona(rng: np.random.Generator, world: World, index: int, days: int) -> Persona:
    names, weights = home_cities()
    home = world.cities[names[int(rng.choice(len(names), p=weights))]]
    shops = world.local[home.name]
    n_local = int(rng.integers(6, 16))
    local = [shops[i] for i in rng.choice(len(shops), size=n_local, replace=False)]
    zipf = 1.0 / np.arange(1, n_local + 1) ** 1.1
    n_online = int(rng.integers(3, 9))
    online = [world.online[i] for i in rng.choice(len(world.online), size=n_online, replace=False)]
    online = [m for m in online if m.mcc != "5968"] or [world.online[0]]
    subs_pool = [m for m in world.online if m.mcc == "5968"]
    subscriptions = [
        (subs_pool[int(rng.integers(len(subs_pool)))], int(rng.integers(1, 29)),
         float(rng.choice([4.99, 7.99, 9.99, 12.99, 15.99])))
        for _ in range(int(rng.integers(0, 4)))
    ]
    profile = int(rng.choice(4, p=[0.2, 0.35, 0.35, 0.1]))
    centre = [9.5, 13.5, 18.5, 22.5][profile] + float(rng.normal(0, 1.0))
    payees = [f"P{index:06d}{k}" for k in range(int(rng.integers(1, 5)))]
    rent = None
    if rng.random() < 0.6:
        rent = (payees[0], int(rng.integers(1, 28)), round(float(rng.uniform(450, 1600)), 2))
    trips: list[Trip] = []
    trips_per_year = float(rng.choice([0.0, 1.0, 2.0, 4.0, 8.0], p=[0.3, 0.25, 0.2, 0.15, 0.1]))
    n_trips = int(rng.poisson(trips_per_year * days / 365.0))
    for _ in range(n_trips):
        start = int(rng.integers(1, max(2, days - 2)))
        length = int(rng.integers(2, 10))
        city = world.cities[pick_weighted(rng, TRAVEL_CITIES)]
        if city.name == home.name or any(t.start_day - 2 <= start <= t.end_day + 2 for t in trips):
            continue
        dist = haversine_km(home.lat, home.lon, city.lat, city.lon)
        trips.append(Trip(start, min(days - 1, start + length), city, 2.0 + dist / 750.0))
    return Persona(
        account_id=f"A{index:06d}",
        card_id=f"C{index:06d}{int(rng.integers(10, 99))}",
        home=home,
        tx_per_day=float(np.clip(rng.lognormal(0.7, 0.5), 0.4, 9.0)),
        log_spend_mu=float(rng.normal(3.0, 0.45)),
        log_spend_sigma=float(rng.uniform(0.45, 0.9)),
        hour_centre=centre % 24,
        hour_spread=float(rng.uniform(1.5, 3.5)),
        weekend_factor=float(rng.uniform(0.6, 1.5)),
        ecommerce_share=float(rng.beta(2, 5)),
        local_merchants=local,
        local_weights=zipf / zipf.sum(),
        online_merchants=online,
        devices=[random_device(rng) for _ in range(int(rng.integers(1, 3)))],
        home_prefixes=[world.ip_prefixes[HOME_COUNTRY][int(i)] for i in rng.choice(6, size=2, replace=False)],
        atm_per_month=float(rng.choice([0.0, 1.0, 2.0, 4.0], p=[0.3, 0.3, 0.25, 0.15])),
        home_atms=[world.atms[home.name][int(i)]
                   for i in rng.choice(len(world.atms[home.name]), size=2, replace=False)],
        payees=payees,
        rent=rent,
        subscriptions=subscriptions,
        trips=trips,
        new_phone_day=int(rng.integers(1, days)) if rng.random() < 0.1 * days / 30 else None,
        micro_payer=bool(rng.random() < 0.1),
    )


def event(persona: Persona, t: float, merchant_id: str, mcc: str, amount: float, channel: str, country: str,
          lat: float | None, lon: float | None, device: str | None, ip: str | None,
          fraud_type: str | None = None) -> dict:
    return {
        "_t": t, "account_id": persona.account_id, "card_id": persona.card_id,
        "amount": round(max(0.01, amount), 2), "currency": CURRENCY, "merchant_id": merchant_id,
        "merchant_category": mcc, "channel": channel, "country": country, "lat": lat, "lon": lon,
        "device_id": device, "ip": ip, "fraud_type": fraud_type,
    }


def sample_hour(rng: np.random.Generator, p: Persona) -> float:
    if rng.random() < 0.85:
        return float(rng.normal(p.hour_centre, p.hour_spread)) % 24.0
    return float(rng.uniform(7.0, 23.5))


def _trip_on(p: Persona, day: int) -> Trip | None:
    for trip in p.trips:
        if trip.start_day <= day <= trip.end_day:
            return trip
    return None


def _device_for(p: Persona, rng: np.random.Generator, day: int) -> tuple[str, int]:
    k = int(rng.integers(len(p.devices)))
    device = p.devices[k]
    if k == 0 and p.new_phone_day is not None and day >= p.new_phone_day:
        device = p.devices[0] + "n"  # the customer bought a new phone
    return device, k


def genuine_activity(rng: np.random.Generator, world: World, p: Persona, start_epoch: float, start_weekday: int,
                     days: int) -> list[dict]:
    """All of one account's genuine transactions over ``days`` days."""
    out: list[dict] = []
    home = p.home
    for day in range(days):
        day0 = start_epoch + day * DAY_S
        weekday = (start_weekday + day) % 7
        trip = _trip_on(p, day)
        earliest_h = 0.0
        if trip is not None and day == trip.start_day:
            earliest_h = min(23.0, float(rng.uniform(6, 12)) + trip.flight_h)
        prev_trip = _trip_on(p, day - 1)
        if trip is None and prev_trip is not None:
            earliest_h = min(23.0, 6.0 + prev_trip.flight_h)
        where = trip.city if trip else home
        rate = p.tx_per_day * (p.weekend_factor if weekday >= 5 else 1.0) * (1.4 if trip else 1.0)
        for _ in range(int(rng.poisson(rate))):
            hour = max(earliest_h + float(rng.uniform(0, 0.5)), sample_hour(rng, p))
            t = day0 + min(hour, 23.99) * 3600.0
            device, k = _device_for(p, rng, day)
            if rng.random() < p.ecommerce_share:
                m = p.online_merchants[int(rng.integers(len(p.online_merchants)))] if rng.random() < 0.85 \
                    else world.online[int(rng.integers(len(world.online)))]
                if m.mcc == "5968":
                    m = p.online_merchants[0]
                if trip and rng.random() < 0.5:
                    ip = random_ip(rng, world, trip.city.country)  # hotel Wi-Fi abroad
                elif rng.random() < 0.03:
                    ip = random_ip(rng, world, HOME_COUNTRY)  # public Wi-Fi at home
                else:
                    ip = random_ip(rng, world, HOME_COUNTRY, p.home_prefixes[min(k, 1)])
                amount = math.exp(rng.normal(p.log_spend_mu + math.log(m.amount_scale) * 0.6, p.log_spend_sigma))
                out.append(event(p, t, m.merchant_id, m.mcc, amount, "ecommerce", HOME_COUNTRY, None, None, device, ip))
                continue
            if trip is not None:
                shops = world.local[where.name]
                m = shops[int(rng.integers(len(shops)))]
            elif rng.random() < 0.88:
                m = p.local_merchants[int(rng.choice(len(p.local_merchants), p=p.local_weights))]
            else:
                m = world.local[home.name][int(rng.integers(len(world.local[home.name])))]
            amount = math.exp(rng.normal(p.log_spend_mu + math.log(m.amount_scale) * 0.6, p.log_spend_sigma))
            out.append(event(p, t, m.merchant_id, m.mcc, amount, "card_present", where.country, m.lat, m.lon,
                             None, None))
        # ATM withdrawals: round amounts at the usual ATMs, or any ATM abroad.
        if rng.random() < p.atm_per_month / 30.0 * (1.5 if trip else 1.0):
            atm = (world.atms[where.name][int(rng.integers(len(world.atms[where.name])))] if trip
                   else p.home_atms[int(rng.integers(len(p.home_atms)))])
            hour = max(earliest_h, float(rng.uniform(8, 21)))
            amount = float(rng.choice([20, 40, 50, 60, 100, 150, 200, 250],
                                      p=[0.15, 0.15, 0.2, 0.1, 0.2, 0.1, 0.06, 0.04]))
            out.append(event(p, day0 + hour * 3600, atm.merchant_id, atm.mcc, amount, "atm", where.country,
                             atm.lat, atm.lon, None, None))
        # Transfers from the banking app: rent on its day, small payments to friends.
        dom = day % 30 + 1
        if p.rent and dom == p.rent[1]:
            device, k = _device_for(p, rng, day)
            out.append(event(p, day0 + float(rng.uniform(7, 10)) * 3600, p.rent[0], TRANSFER_MCC, p.rent[2], "transfer",
                             HOME_COUNTRY, None, None, device,
                             random_ip(rng, world, HOME_COUNTRY, p.home_prefixes[min(k, 1)])))
        if rng.random() < 0.08:
            device, k = _device_for(p, rng, day)
            payee = (p.payees[int(rng.integers(len(p.payees)))] if rng.random() < 0.85
                     else f"P{int(rng.integers(1e9)):09d}")
            amount = float(np.clip(rng.lognormal(3.5, 0.9), 5, 800))
            out.append(event(p, day0 + sample_hour(rng, p) * 3600, payee, TRANSFER_MCC, amount, "transfer",
                             HOME_COUNTRY, None, None, device,
                             random_ip(rng, world, HOME_COUNTRY, p.home_prefixes[min(k, 1)])))
        for merchant, sub_day, price in p.subscriptions:
            if dom == sub_day:  # merchant-initiated: no device, no IP
                out.append(event(p, day0 + float(rng.uniform(0, 6)) * 3600, merchant.merchant_id, merchant.mcc, price,
                                 "ecommerce", HOME_COUNTRY, None, None, None, None))
        out.extend(_oddities(rng, world, p, day, day0, trip))
    return out


def _oddities(rng: np.random.Generator, world: World, p: Persona, day: int, day0: float,
              trip: Trip | None) -> list[dict]:
    """Large purchases, travel bookings, in-app bursts, big transfers: genuine, but outliers."""
    out = []
    if p.micro_payer and rng.random() < 0.25:
        device, k = _device_for(p, rng, day)
        ip = random_ip(rng, world, HOME_COUNTRY, p.home_prefixes[min(k, 1)])
        apps = [m for m in world.online if m.mcc == "5815"]
        shops = [apps[int(i)] for i in rng.choice(len(apps), size=2, replace=False)]
        t = day0 + sample_hour(rng, p) * 3600
        for _ in range(int(rng.integers(2, 7))):
            t += float(rng.uniform(20, 150))
            m = shops[int(rng.random() < 0.3)]
            out.append(event(p, t, m.merchant_id, m.mcc, float(rng.choice([0.79, 0.99, 1.99, 2.49, 4.99])),
                             "ecommerce", HOME_COUNTRY, None, None, device, ip))
    if rng.random() < 0.25 / 30.0:  # a deposit, a used car: a large transfer to someone new
        device, k = _device_for(p, rng, day)
        amount = min(9000.0, p.typical_amount() * float(rng.uniform(20, 100)))
        out.append(event(p, day0 + float(rng.uniform(9, 19)) * 3600, f"P{int(rng.integers(1e9)):09d}", TRANSFER_MCC,
                         amount, "transfer", HOME_COUNTRY, None, None, device,
                         random_ip(rng, world, HOME_COUNTRY, p.home_prefixes[min(k, 1)])))
    if rng.random() < 0.8 / 30.0:
        device, k = _device_for(p, rng, day)
        factor = float(rng.uniform(6, 30))
        t = day0 + float(rng.uniform(10, 20)) * 3600
        if rng.random() < 0.5 and trip is None:
            big = [m for m in world.local[p.home.name] if m.mcc in ("5732", "5944", "5712")]
            m = big[int(rng.integers(len(big)))]
            out.append(event(p, t, m.merchant_id, m.mcc, p.typical_amount() * factor, "card_present", HOME_COUNTRY,
                             m.lat, m.lon, None, None))
        else:
            big = [m for m in world.online if m.mcc in ("5732", "4722", "5999")]
            m = big[int(rng.integers(len(big)))]
            out.append(event(p, t, m.merchant_id, m.mcc, p.typical_amount() * factor, "ecommerce", HOME_COUNTRY,
                             None, None, device, random_ip(rng, world, HOME_COUNTRY, p.home_prefixes[min(k, 1)])))
    for tr in p.trips:
        if day == max(0, tr.start_day - int(rng.integers(5, 40))) and rng.random() < 0.7:
            device, k = _device_for(p, rng, day)
            air = [m for m in world.online if m.mcc in ("4511", "4722")]
            m = air[int(rng.integers(len(air)))]
            out.append(event(p, day0 + float(rng.uniform(18, 23)) * 3600, m.merchant_id, m.mcc,
                             float(rng.uniform(120, 1400)), "ecommerce", HOME_COUNTRY, None, None, device,
                             random_ip(rng, world, HOME_COUNTRY, p.home_prefixes[min(k, 1)])))
    if trip is not None and day == trip.start_day:
        hotels = [m for m in world.local[trip.city.name] if m.mcc == "7011"]
        m = hotels[int(rng.integers(len(hotels)))]
        out.append(event(p, day0 + 23.5 * 3600, m.merchant_id, m.mcc, float(rng.uniform(150, 1200)), "card_present",
                         trip.city.country, m.lat, m.lon, None, None))
    return out
