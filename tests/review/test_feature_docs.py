"""Features in people's words (npusuite.fraud.feature_docs): every feature the scorer computes has a
human name and unit, the inversions give back what was computed, and unknown names stay readable."""

from __future__ import annotations

import math

from npusuite.fraud.feature_docs import SPECS, describe, duration, headline
from npusuite.fraud.features import FEATURE_NAMES


def test_every_feature_has_words():
    assert set(SPECS) == set(FEATURE_NAMES)


def test_inversions_give_back_the_units():
    assert describe("device_age_log", 4.852).text == "device first seen 2 min ago"  # log1p(127 s)
    assert describe("device_age_log", 0.0).text == "device new to this account (or none)"
    assert describe("cnt_24h", math.log1p(7)).text == "7 transaction(s) in the last 24 h"
    assert describe("amount_to_median_log", math.log(14)).text == "14.0× the account's median amount"
    assert describe("geo_speed_log", math.log1p(1215)).text == "1,215 km/h implied travel speed"
    assert describe("hour_unusual", -math.log(0.015)).text == "this hour of day: 1.5% of the account's habit"
    assert describe("new_device", 1.0).text == "new device for this account" and describe("new_device", 1.0).notable
    assert describe("since_prev_log", math.log1p(3 * 3600)).text == "3.0 h since the previous transaction"
    assert duration(45) == "45 s" and duration(120) == "2 min" and duration(86400 * 3) == "3 d"


def test_unknown_names_and_impossible_values_stay_readable():
    assert describe("tx_count_1h", 3.0).text == "tx_count_1h = 3"
    assert describe("geo_km_log", 1e308).text  # overflows nowhere
    top = headline({"ch_ecommerce": 1.0, "new_device": 1.0, "cnt_1h": 0.0, "amount_z": 0.1})
    assert [f.name for f in top] == ["new_device", "amount_z", "cnt_1h"]  # notable first, channel one-hot left out
