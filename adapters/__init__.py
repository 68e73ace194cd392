"""Backend adapters behind one interface: csi-addons, unified, trident, powerstore (no temporalio)."""
