"""A small PLC stand-in: a real pymodbus Modbus/TCP server that records coil writes.

``python -m npusuite.inspection.plc_sim --port 5020 --log writes.jsonl`` serves
coils 0..63 (and as many holding registers) for device id 1 and appends one
JSON line per coil write to ``--log``: ``{"t": epoch_s, "address": int,
"value": bool}``; ``t`` is the server's clock when the write arrived, so a
test (or the demo) can check that the reject coil was set for a part within
its window.  It prints ``READY <port>`` only once it listens; when it cannot
(a taken port, an address this host does not have) it prints nothing on
stdout and fails with one line (``UserError``: exit 2 from ``npusuite
inspection plc-sim``; ``npusuite: error: ...`` and exit 2 as a module).  Used
by the demo and the tests; a real line talks to its real PLC instead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from pathlib import Path

from npusuite.platform.errors import UserError

logger = logging.getLogger(__name__)


def _device(log: Path | None, coils: int):
    from pymodbus.simulator import DataType, SimData, SimDevice

    async def record(function_code, start_address, address, count, current, set_values):
        if log is not None and function_code in (5, 15) and set_values is not None:
            now = time.time()
            with log.open("a") as fh:
                for i, value in enumerate(set_values):
                    fh.write(json.dumps({"t": now, "address": address + i, "value": bool(value)}) + "\n")
        return None

    coil_block = [SimData(0, count=coils, values=False, datatype=DataType.BITS)]
    di_block = [SimData(0, count=coils, values=False, datatype=DataType.BITS)]
    regs = [SimData(0, count=coils, values=0, datatype=DataType.REGISTERS)]
    return SimDevice(1, simdata=(coil_block, di_block, regs, list(regs)), action=record)


def main(argv: list[str] | None = None) -> None:
    from pymodbus.server import ModbusTcpServer

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5020)
    parser.add_argument("--log", type=Path, default=None, help="append coil writes here as JSON lines")
    parser.add_argument("--coils", type=int, default=64)
    args = parser.parse_args(argv)

    async def serve() -> None:
        server = ModbusTcpServer(_device(args.log, args.coils), address=(args.host, args.port))
        task = asyncio.create_task(server.serve_forever())
        while server.transport is None:  # READY means listening: wait for the bind, or for its failure
            if task.done():
                logger.debug("plc-sim listen failed: %s", task.exception())  # retrieved: asyncio stays quiet
                raise UserError(f"plc-sim cannot listen on {args.host}:{args.port}: the port is in use or the "
                                f"address is not this host's (choose another --port/--host)")
            await asyncio.sleep(0.02)
        print(f"READY {args.port}", flush=True)
        await task

    logging.basicConfig(level=logging.WARNING)
    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    try:
        main()
    except UserError as exc:
        print(f"npusuite: error: {exc}", file=sys.stderr)
        sys.exit(2)
