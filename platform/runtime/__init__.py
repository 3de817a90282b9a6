"""The model room: devices, torch-module and causal-LM runtimes, and builders for small local models."""

from npusuite.platform.runtime.devices import Device, DeviceUnavailableError, get_device, register_device
from npusuite.platform.runtime.modules import load_module, register_architecture, save_module

__all__ = ["Device", "DeviceUnavailableError", "get_device", "load_module", "register_architecture",
           "register_device", "save_module"]
