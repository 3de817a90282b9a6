"""The KRaft cluster id handed to ``kafka-storage format`` (no broker needed)."""

from __future__ import annotations

import base64

from npusuite.platform.kafka.broker import new_cluster_id


def test_cluster_ids_are_16_byte_base64url_and_never_look_like_an_option():
    # 1 in 64 raw ids starts with "-", which StorageTool's parser reads as an option: 4,000 draws
    # would include ~60 of them.
    ids = [new_cluster_id() for _ in range(4000)]
    assert not [cid for cid in ids if cid.startswith("-")]
    assert all(len(base64.urlsafe_b64decode(cid + "==")) == 16 for cid in ids)
    assert len(set(ids)) == len(ids)
