"""The simulated storage controllers: csi-addons/unified, Trident, Dell PowerStore and the CSI attacher."""
