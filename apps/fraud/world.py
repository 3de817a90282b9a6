"""The simulated world the fraud generator draws from: cities, merchants, IP networks.

Rules:
- Everything here is a pure function of the ``numpy.random.Generator`` it is
  given, so the same seed always builds the same world.
- The bank is British: accounts live in GB cities and are billed in GBP.
  Foreign activity (travel, fraud rings) happens in the other cities.
- IP addresses are drawn from per-country /16 networks.  A real deployment
  would read a GeoIP database; the feature code only ever looks at the /16
  prefix ("is this a network the account has used before?"), never at the
  country table below, so it learns nothing the real world would not show.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

CURRENCY = "GBP"
HOME_COUNTRY = "GB"

#: (city, country, lat, lon, weight as a home city)
CITIES: list[tuple[str, str, float, float, float]] = [
    ("London", "GB", 51.507, -0.128, 9.0),
    ("Manchester", "GB", 53.480, -2.242, 2.5),
    ("Birmingham", "GB", 52.486, -1.890, 2.5),
    ("Leeds", "GB", 53.800, -1.549, 1.5),
    ("Glasgow", "GB", 55.864, -4.252, 1.5),
    ("Bristol", "GB", 51.455, -2.588, 1.0),
    ("Edinburgh", "GB", 55.953, -3.188, 1.0),
    ("Paris", "FR", 48.857, 2.352, 0.0),
    ("Berlin", "DE", 52.520, 13.405, 0.0),
    ("Madrid", "ES", 40.417, -3.704, 0.0),
    ("Rome", "IT", 41.902, 12.496, 0.0),
    ("Amsterdam", "NL", 52.368, 4.904, 0.0),
    ("Dublin", "IE", 53.350, -6.260, 0.0),
    ("New York", "US", 40.713, -74.006, 0.0),
    ("Dubai", "AE", 25.205, 55.271, 0.0),
    ("Bangkok", "TH", 13.756, 100.502, 0.0),
    ("Bucharest", "RO", 44.427, 26.103, 0.0),
    ("Sao Paulo", "BR", -23.551, -46.633, 0.0),
    ("Kuala Lumpur", "MY", 3.139, 101.687, 0.0),
    ("Mexico City", "MX", 19.433, -99.133, 0.0),
    ("Lagos", "NG", 6.524, 3.379, 0.0),
]

#: Where people from the bank go on holiday or business (weights).
TRAVEL_CITIES = {"Paris": 3, "Berlin": 2, "Madrid": 3, "Rome": 2, "Amsterdam": 2, "Dublin": 2,
                 "New York": 2, "Dubai": 1, "Bangkok": 1, "Edinburgh": 1, "Glasgow": 1, "London": 2,
                 "Mexico City": 0.5, "Kuala Lumpur": 0.3, "Bucharest": 0.3}
#: Where skimmed cards and cash-out mules turn up (weights).  Overlaps travel on purpose.
FRAUD_CITIES = {"New York": 2, "Bucharest": 3, "Sao Paulo": 2, "Kuala Lumpur": 2, "Mexico City": 2,
                "Bangkok": 2, "Lagos": 1, "Dubai": 1, "Madrid": 1, "Paris": 1}

#: Merchant categories: (MCC, how many per city, typical-amount multiplier, card-present?)
LOCAL_MCCS: list[tuple[str, int, float]] = [
    ("5411", 12, 1.0),   # grocery
    ("5812", 12, 1.1),   # restaurants
    ("5814", 8, 0.4),    # fast food
    ("5541", 6, 1.8),    # fuel
    ("5912", 4, 0.8),    # pharmacy
    ("5311", 3, 2.0),    # department store
    ("5651", 4, 2.0),    # clothing
    ("4111", 3, 0.3),    # transit
    ("5732", 2, 6.0),    # electronics
    ("5944", 2, 8.0),    # jewellery
    ("5712", 2, 8.0),    # furniture
    ("7011", 4, 5.0),    # hotels
    ("5999", 4, 1.2),    # misc retail
]
ONLINE_MCCS: list[tuple[str, int, float]] = [
    ("5815", 10, 0.4),   # digital goods
    ("5999", 14, 1.5),   # online retail
    ("5732", 5, 6.0),    # electronics
    ("5651", 6, 2.0),    # clothing
    ("4722", 3, 10.0),   # travel agencies
    ("4511", 3, 9.0),    # airlines
    ("5968", 6, 0.6),    # subscriptions (merchant-initiated, no device)
]
ATM_MCC = "6011"
TRANSFER_MCC = "4829"
ATMS_PER_CITY = 6


@dataclass(frozen=True)
class City:
    name: str
    country: str
    lat: float
    lon: float


@dataclass(frozen=True)
class Merchant:
    merchant_id: str
    mcc: str
    amount_scale: float
    city: City | None  # None for online merchants
    lat: float | None
    lon: float | None


@dataclass
class World:
    cities: dict[str, City]
    local: dict[str, list[Merchant]]          # city name -> card-present merchants
    atms: dict[str, list[Merchant]]           # city name -> ATMs
    online: list[Merchant]
    ip_prefixes: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # country -> /16 prefixes
    _next_id: int = 0

    def new_merchant_id(self, prefix: str = "M") -> str:
        self._next_id += 1
        return f"{prefix}{self._next_id:06d}"


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in kilometres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(min(1.0, math.sqrt(a)))


def build_world(rng: np.random.Generator) -> World:
    cities = {name: City(name, cc, lat, lon) for name, cc, lat, lon, _ in CITIES}
    world = World(cities=cities, local={}, atms={}, online=[])
    for city in cities.values():
        shops = []
        for mcc, n, scale in LOCAL_MCCS:
            for _ in range(n):
                lat = city.lat + float(rng.normal(0, 0.05))
                lon = city.lon + float(rng.normal(0, 0.08))
                shops.append(Merchant(world.new_merchant_id(), mcc, scale, city, round(lat, 5), round(lon, 5)))
        world.local[city.name] = shops
        world.atms[city.name] = [
            Merchant(world.new_merchant_id("ATM"), ATM_MCC, 1.0, city,
                     round(city.lat + float(rng.normal(0, 0.04)), 5), round(city.lon + float(rng.normal(0, 0.06)), 5))
            for _ in range(ATMS_PER_CITY)
        ]
    for mcc, n, scale in ONLINE_MCCS:
        for _ in range(n):
            world.online.append(Merchant(world.new_merchant_id("W"), mcc, scale, None, None, None))
    countries = sorted({c.country for c in cities.values()})
    octets = rng.permutation(np.arange(2, 224))
    k = 0
    for cc in countries:
        n = 6 if cc == HOME_COUNTRY else 2
        world.ip_prefixes[cc] = [(int(octets[k + i]), int(rng.integers(0, 256))) for i in range(n)]
        k += n
    return world


def home_cities() -> tuple[list[str], np.ndarray]:
    names = [c[0] for c in CITIES if c[4] > 0]
    w = np.array([c[4] for c in CITIES if c[4] > 0], dtype=float)
    return names, w / w.sum()


def pick_weighted(rng: np.random.Generator, table: dict[str, float]) -> str:
    names = list(table)
    w = np.array([table[n] for n in names], dtype=float)
    return names[int(rng.choice(len(names), p=w / w.sum()))]


def random_ip(rng: np.random.Generator, world: World, country: str, prefix: tuple[int, int] | None = None) -> str:
    a, b = prefix if prefix else world.ip_prefixes[country][int(rng.integers(len(world.ip_prefixes[country])))]
    return f"{a}.{b}.{int(rng.integers(0, 256))}.{int(rng.integers(1, 255))}"


def random_device(rng: np.random.Generator) -> str:
    return "D" + "".join(f"{int(x):02x}" for x in rng.integers(0, 256, size=6))
