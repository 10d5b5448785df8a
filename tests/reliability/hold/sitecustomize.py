"""Test hook: with this folder on PYTHONPATH and EDGEFL_TEST_HOLD set, the runtime's aggregator
(``python -m edgefl.runtime aggregate``) stops inside ``StateStore.save`` at a chosen point and
waits there to be killed.

EDGEFL_TEST_HOLD is JSON: ``{"round": R, "accepted": K, "received": N, "marker": PATH}``: when
the state of round R with K accepted updates is about to be saved, wait until the aggregator's
MQTT client has received N update messages in all (paho acknowledges each to the broker as it
arrives), then write PATH (JSON: what was received and accepted) and sleep. The updates
accepted in memory and those received but not yet handled are then on no disk: kill -9 loses
them unless their agents resend.
"""

import json
import os
import time

_SPEC = os.environ.get("EDGEFL_TEST_HOLD")

if _SPEC:
    from edgefl.runtime.state_store import StateStore
    from edgefl.runtime.transport.paho_mqtt import PahoTransport

    _spec = json.loads(_SPEC)
    _received = []
    _on_message, _save = PahoTransport._on_message, StateStore.save

    def _counting_on_message(self, client, userdata, msg):
        if "/update/" in msg.topic:
            _received.append(msg.topic)
        _on_message(self, client, userdata, msg)

    def _holding_save(self, core):
        if core.round == _spec["round"] and len(core.accepted) >= _spec["accepted"]:
            end = time.time() + 30
            while len(_received) < _spec["received"] and time.time() < end:
                time.sleep(0.01)
            time.sleep(0.5)  # paho sends each PUBACK right after its on_message returns
            with open(_spec["marker"], "w") as fh:
                json.dump({"received": list(_received), "accepted": sorted(core.accepted)}, fh)
            while True:
                time.sleep(1)
        _save(self, core)

    PahoTransport._on_message = _counting_on_message
    StateStore.save = _holding_save
